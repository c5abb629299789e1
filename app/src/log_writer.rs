//! A log writer that never makes a request wait: log lines are appended to a shared buffer and a
//! background thread writes the buffer out a few times a second.
//!
//! `tracing_appender::non_blocking` also keeps writing off the request path, but it hands every
//! line to its worker thread through a channel and wakes that thread for it. On one core under
//! load, that wake-up and the context switch that follows cost more than formatting the line; the
//! load benchmark measured the demo at 0.49 of bare axum with the access log on against 0.68 with
//! it off. Here a request only appends to a `Vec` behind an uncontended mutex, and the writer
//! thread wakes on a timer, so a thousand lines cost one system call.
//!
//! The buffer is bounded: past [`MAX_BUFFERED`] bytes new lines are dropped and counted, and the
//! count is reported in the log when the writer catches up, as `tracing_appender`'s lossy mode
//! does. Lines are written at the latest [`FLUSH_EVERY`] after they were logged, and at exit.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How often the background thread writes what has been logged.
pub const FLUSH_EVERY: Duration = Duration::from_millis(50);

/// Most bytes held before new lines are dropped.
pub const MAX_BUFFERED: usize = 8 * 1024 * 1024;

#[derive(Default)]
struct Shared {
    buf: Mutex<Vec<u8>>,
    dropped: AtomicU64,
    stop: AtomicBool,
}

impl Shared {
    // A panic while holding the lock cannot leave the `Vec` inconsistent; keep logging.
    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        self.buf.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends `bytes`, or drops and counts them when the buffer is full.
    fn append(&self, bytes: &[u8]) {
        let mut buf = self.lock();
        if buf.len() + bytes.len() > MAX_BUFFERED {
            drop(buf);
            self.dropped.fetch_add(1, Ordering::Relaxed);
        } else {
            buf.extend_from_slice(bytes);
        }
    }
}

/// The [`MakeWriter`] handed to the subscriber. Cheap to clone.
#[derive(Clone)]
pub struct BatchWriter {
    shared: Arc<Shared>,
}

impl BatchWriter {
    /// Appends one or more whole lines, as a line from the subscriber is appended; for a writer
    /// of its own lines such as [`AccessLines`](crate::log_format::AccessLines).
    pub fn write_lines(&self, bytes: &[u8]) {
        self.shared.append(bytes);
    }
}

/// Stops the background thread and writes what is left when dropped: keep it alive in `main`.
pub struct FlushGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// A writer for `out` and the guard that flushes it at exit.
pub fn batch_writer<W: Write + Send + 'static>(out: W) -> (BatchWriter, FlushGuard) {
    let shared = Arc::new(Shared::default());
    let worker = Arc::clone(&shared);
    let thread = std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || {
            let mut out = out;
            let mut spare = Vec::new();
            loop {
                let stopping = worker.stop.load(Ordering::Acquire);
                drain(&worker, &mut spare, &mut out);
                if stopping {
                    break;
                }
                std::thread::park_timeout(FLUSH_EVERY);
            }
        })
        .ok();
    (
        BatchWriter {
            shared: Arc::clone(&shared),
        },
        FlushGuard { shared, thread },
    )
}

/// Swaps the buffer out under the lock and writes it without holding the lock, so a slow stdout
/// never holds up a request appending its line.
fn drain(shared: &Shared, spare: &mut Vec<u8>, out: &mut impl Write) {
    spare.clear();
    std::mem::swap(&mut *shared.lock(), spare);
    let dropped = shared.dropped.swap(0, Ordering::Relaxed);
    if !spare.is_empty() {
        // Nowhere to report a failing log sink but the sink itself: carry on.
        let _ = out.write_all(spare);
    }
    if dropped > 0 {
        let _ = writeln!(out, "log writer: {dropped} lines dropped: output too slow");
    }
    let _ = out.flush();
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

/// One log line on its way into the shared buffer.
pub struct LineWriter<'a> {
    shared: &'a Shared,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.shared.append(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchWriter {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            shared: &self.shared,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_arrive_in_order_within_a_flush_period() {
        let sink = Sink::default();
        let (writer, guard) = batch_writer(sink.clone());
        for i in 0..1000 {
            writeln!(writer.make_writer(), "line {i}").unwrap();
        }
        std::thread::sleep(FLUSH_EVERY * 4);
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1000);
        assert!(text.starts_with("line 0\n") && text.ends_with("line 999\n"));
        drop(guard);
    }

    #[test]
    fn the_guard_writes_what_is_left() {
        let sink = Sink::default();
        let (writer, guard) = batch_writer(sink.clone());
        writeln!(writer.make_writer(), "last words").unwrap();
        drop(guard);
        assert_eq!(&*sink.0.lock().unwrap(), b"last words\n");
    }

    #[test]
    fn a_full_buffer_drops_lines_and_says_so() {
        let shared = Shared::default();
        let line = vec![b'x'; MAX_BUFFERED / 2 + 1];
        let mut w = LineWriter { shared: &shared };
        w.write_all(&line).unwrap();
        w.write_all(&line).unwrap();
        assert_eq!(shared.dropped.load(Ordering::Relaxed), 1);
        let mut out = Vec::new();
        drain(&shared, &mut Vec::new(), &mut out);
        assert!(String::from_utf8_lossy(&out)
            .ends_with("log writer: 1 lines dropped: output too slow\n"));
    }
}
