//! The workspace's root package holds the black-box tests in `tests/` and the benchmarks in
//! `benches/`; this library has what the benchmarks share (the test helpers live in
//! `tests/it/common.rs`).

use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// A server process a benchmark started: stopped gracefully (SIGTERM, then SIGKILL once `grace`
/// has passed) by [`stop`](Self::stop) or when dropped, so a failed or interrupted benchmark
/// never leaves a server behind holding a core.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    grace: Duration,
}

impl ServerProcess {
    /// Takes charge of `child`.
    pub fn new(child: Child, grace: Duration) -> Self {
        Self { child, grace }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if the process has already ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM, so the server drains as in production; SIGKILL if it has not ended after the grace
    /// period.
    pub fn stop(&mut self) {
        if self.exited().is_some() {
            return;
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        let deadline = Instant::now() + self.grace;
        while Instant::now() < deadline {
            if self.exited().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}
