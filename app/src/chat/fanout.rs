//! Delivery of the hub's messages to every connection without waking the connections' tasks.
//!
//! The obvious shape, a hub receiver in every connection's task, wakes 10,000 tasks for one
//! broadcast, and each woken task polls its reader, its ping timer and its error channel before it
//! writes. Profiled on one core, that bookkeeping was about a third of the server's CPU for a
//! broadcast; the rest was the one `sendto` per socket that no design avoids. Here one fan-out task
//! takes each message from the hub and writes it into every connection's WebSocket in turn,
//! without waking any connection task, so a broadcast costs little more than those system calls.
//!
//! A connection that cannot take a message right away (its socket buffer is full, or its own task
//! is in the middle of a write) is *backlogged*: the fan-out skips it and wakes its task, which
//! flushes with its own waker and then catches up from the [`History`], the last `capacity`
//! messages kept once for everybody (a connection costs one sequence number, not a queue). A
//! client that fell further behind than the history reaches is told how many messages it missed,
//! as the contract asks. A slow client therefore costs the fan-out one skipped write per message
//! and holds nobody else back.
//!
//! On one core the fan-out writes every broadcast itself. Where the process may use several cores,
//! a room of more than a thousand or so connections is split into one slice per core, written by
//! that many tasks side by side, so a large room does not wait for one thread.

use std::collections::{BTreeMap, VecDeque};
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{ready, Context, Poll};

use axum::extract::ws::{Message, WebSocket};
use futures_util::sink::Sink;
use futures_util::stream::SplitSink;
use tokio::sync::{broadcast, Notify};

use super::hub::Delivery;

/// Most hub messages the fan-out takes in one pass; they go to each connection with one flush.
const BATCH: usize = 64;

/// Most bytes handed to tungstenite between two flushes. Its write buffer grows to whatever one
/// flush holds and never shrinks; flushing at this size keeps that buffer small on every one of
/// thousands of connections, even after a burst (tungstenite itself would let it reach 4 KiB plus a
/// frame, which its `Vec` rounds up to 8 KiB).
const FLUSH_BYTES: usize = 2 * 1024;

/// Locks a mutex whose data stays consistent even if a holder panicked: every update below is
/// a single step.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The last messages of the room, numbered, for connections catching up.
#[derive(Debug)]
pub(super) struct History {
    frames: VecDeque<Delivery>,
    /// Sequence number of `frames[0]`.
    first: u64,
    capacity: usize,
}

impl History {
    fn new(capacity: usize) -> Self {
        Self {
            frames: VecDeque::with_capacity(capacity.max(1)),
            first: 0,
            capacity: capacity.max(1),
        }
    }

    /// The sequence number the next message will get.
    fn end(&self) -> u64 {
        self.first + self.frames.len() as u64
    }

    /// Appends `frame` and returns its sequence number, forgetting the oldest beyond capacity.
    fn push(&mut self, frame: Delivery) -> u64 {
        if self.frames.len() == self.capacity {
            self.frames.pop_front();
            self.first += 1;
        }
        self.frames.push_back(frame);
        self.end() - 1
    }

    /// What a connection whose next message is `next` should send now: a notice if messages it
    /// needed are gone, else the next frame, else nothing. Returns the sequence number to expect
    /// after it.
    fn next_for(&self, next: u64) -> Option<(Message, u64)> {
        if next < self.first {
            let notice = super::connection::missed_notice(self.first - next);
            return Some((Message::Text(notice), self.first));
        }
        let index = usize::try_from(next - self.first).ok()?;
        let frame = self.frames.get(index)?;
        Some((Message::Text(frame.clone()), next + 1))
    }
}

/// The sending side of one connection, shared by the fan-out and the connection's own task.
pub(super) struct Outbox<S = SplitSink<WebSocket, Message>> {
    state: Mutex<OutState<S>>,
    /// Wakes the connection's task when it has something to flush or catch up on.
    wake: Notify,
    /// The hub's feed has ended: nothing more will come, the connection should close.
    hub_closed: AtomicBool,
}

struct OutState<S> {
    sink: S,
    /// Sequence number of the next hub message this client should get.
    next: u64,
    /// The sink holds unflushed data, or the connection's task is mid-write: only that task may
    /// write until it has caught up, so the fan-out leaves this connection alone.
    backlogged: bool,
    /// The transport failed; nothing more can be sent.
    failed: bool,
}

impl<S> Outbox<S>
where
    S: Sink<Message> + Unpin,
{
    /// An outbox writing into `sink`. It receives the messages numbered from `next` on.
    fn new(sink: S, next: u64) -> Self {
        Self {
            state: Mutex::new(OutState {
                sink,
                next,
                backlogged: false,
                failed: false,
            }),
            wake: Notify::new(),
            hub_closed: AtomicBool::new(false),
        }
    }

    /// Whether the hub's feed has ended (checked by the connection's task when woken).
    pub(super) fn hub_closed(&self) -> bool {
        self.hub_closed.load(Ordering::Acquire)
    }

    /// Called by the fan-out: writes the numbered `batch` straight into the socket when the
    /// connection is keeping up, else leaves it to the connection's task and wakes that. Never
    /// waits.
    fn deliver(&self, batch: &[(u64, Delivery)]) {
        let mut st = lock(&self.state);
        if st.failed {
            return;
        }
        let first_seq = batch.first().map_or(st.next, |(seq, _)| *seq);
        // Behind the batch (it cannot happen while the connection keeps up, but if it did, the
        // history has what is missing): the connection's task catches up.
        if !st.backlogged && st.next >= first_seq {
            // A waker that does nothing: when the socket is full the connection's task takes
            // over and registers its own.
            let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
            let from_batch = |next: u64| {
                let (_, frame) = batch.get(usize::try_from(next - first_seq).ok()?)?;
                Some((Message::Text(frame.clone()), next + 1))
            };
            match st.write_out(&mut cx, from_batch, &mut None) {
                Poll::Ready(true) => return,
                Poll::Ready(false) => {}
                Poll::Pending => st.backlogged = true,
            }
        } else {
            st.backlogged = true;
        }
        drop(st);
        self.wake.notify_one();
    }

    /// Resolves when the fan-out has left work for this connection's task.
    pub(super) async fn woken(&self) {
        self.wake.notified().await;
    }

    /// Called by the connection's task: sends `first` (a ping, an error frame, or nothing), then
    /// whatever of `history` this client has not had yet, and flushes. Returns `false` once the
    /// transport has failed.
    pub(super) async fn send(&self, history: &Mutex<History>, first: Option<Message>) -> bool {
        let mut first = first;
        poll_fn(|cx| {
            let mut st = lock(&self.state);
            let done = st.write_out(cx, |next| lock(history).next_for(next), &mut first);
            if done.is_pending() {
                // Until this task has flushed, the fan-out must not write around it.
                st.backlogged = true;
            }
            done
        })
        .await
    }

    /// Sends `frame` (a close frame) and flushes, without catching up first: the client is
    /// leaving, and tungstenite refuses data frames after a close anyway.
    pub(super) async fn close(&self, frame: Message) -> bool {
        let mut frame = Some(frame);
        poll_fn(|cx| {
            let mut st = lock(&self.state);
            st.backlogged = true;
            st.write_out(cx, |_| None, &mut frame)
        })
        .await
    }

    /// Flushes the reply to the peer's close frame that tungstenite has queued.
    pub(super) async fn finish_close(&self) {
        poll_fn(|cx| {
            let mut st = lock(&self.state);
            st.backlogged = true;
            st.sink_mut().poll_close(cx).map(|_| ())
        })
        .await;
    }
}

impl<S> OutState<S>
where
    S: Sink<Message> + Unpin,
{
    fn sink_mut(&mut self) -> Pin<&mut S> {
        Pin::new(&mut self.sink)
    }

    fn fail(&mut self) -> Poll<bool> {
        self.failed = true;
        Poll::Ready(false)
    }

    /// Sends `first`, then what `source` gives for `next` on (the message and the number after
    /// it), flushing every [`FLUSH_BYTES`] and at the end. `Pending` leaves unsent messages where
    /// they were; `Ready(false)` means the transport failed.
    fn write_out(
        &mut self,
        cx: &mut Context<'_>,
        mut source: impl FnMut(u64) -> Option<(Message, u64)>,
        first: &mut Option<Message>,
    ) -> Poll<bool> {
        if self.failed {
            return Poll::Ready(false);
        }
        let mut unflushed = 0;
        loop {
            if unflushed >= FLUSH_BYTES {
                match ready!(self.sink_mut().poll_flush(cx)) {
                    Ok(()) => unflushed = 0,
                    Err(_) => return self.fail(),
                }
            }
            // Ready before taking anything, so nothing is taken that cannot be sent.
            match self.sink_mut().poll_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(_)) => return self.fail(),
                Poll::Pending => return Poll::Pending,
            }
            let message = match first.take() {
                Some(message) => message,
                None => match source(self.next) {
                    Some((message, next)) => {
                        self.next = next;
                        message
                    }
                    None => break,
                },
            };
            unflushed += payload_len(&message);
            if self.sink_mut().start_send(message).is_err() {
                return self.fail();
            }
        }
        match ready!(self.sink_mut().poll_flush(cx)) {
            Ok(()) => {
                self.backlogged = false;
                Poll::Ready(true)
            }
            Err(_) => self.fail(),
        }
    }
}

/// Bytes of payload `message` adds to the write buffer (its few header bytes aside).
fn payload_len(message: &Message) -> usize {
    match message {
        Message::Text(text) => text.len(),
        Message::Binary(bytes) | Message::Ping(bytes) | Message::Pong(bytes) => bytes.len(),
        Message::Close(frame) => 2 + frame.as_ref().map_or(0, |f| f.reason.len()),
    }
}

/// The connections the fan-out writes to, and the history they catch up from.
#[derive(Debug)]
pub(super) struct Registry<S = SplitSink<WebSocket, Message>> {
    members: Mutex<Members<S>>,
    history: Mutex<History>,
    writers: usize,
}

#[derive(Debug)]
struct Members<S> {
    next_id: u64,
    /// By id, so in the order the members joined: a broadcast then walks the connections in the
    /// order the server accepted them and allocated their memory (its own and the kernel's),
    /// rather than a hash map's scattered order; at 10,000 clients on one core that took about a
    /// tenth off each broadcast's time (`BENCHMARKS.md`, twelfth round).
    outboxes: BTreeMap<u64, Arc<Outbox<S>>>,
    /// The current members as one list, rebuilt after a change: a broadcast walks it without
    /// holding the lock, so joins and leaves never wait for a broadcast to finish.
    snapshot: Option<Arc<[Arc<Outbox<S>>]>>,
}

impl<S> std::fmt::Debug for Outbox<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox").finish_non_exhaustive()
    }
}

impl<S> Registry<S>
where
    S: Sink<Message> + Unpin,
{
    /// An empty room that lets a connection catch up on at most `capacity` messages.
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            members: Mutex::new(Members {
                next_id: 0,
                outboxes: BTreeMap::new(),
                snapshot: None,
            }),
            history: Mutex::new(History::new(capacity)),
            // One writer per core the process may run on: on one core that is the fan-out alone.
            writers: std::thread::available_parallelism().map_or(1, usize::from),
        }
    }

    /// The history connections catch up from.
    pub(super) fn history(&self) -> &Mutex<History> {
        &self.history
    }

    /// Adds a connection writing into `sink`; it gets every message the fan-out numbers from now
    /// on. Dropping the returned membership removes it.
    pub(super) fn join(self: &Arc<Self>, sink: S) -> Membership<S> {
        // The history stays locked until the newcomer is a member, so a batch is numbered either
        // before it joins (and is not its to receive) or after (and the batch's walk includes it):
        // no message falls between the two.
        let history = lock(&self.history);
        let outbox = Arc::new(Outbox::new(sink, history.end()));
        let mut members = lock(&self.members);
        let id = members.next_id;
        members.next_id += 1;
        members.outboxes.insert(id, Arc::clone(&outbox));
        members.snapshot = None;
        drop((members, history));
        Membership {
            registry: Arc::clone(self),
            outbox,
            id,
        }
    }

    fn snapshot(&self) -> Arc<[Arc<Outbox<S>>]> {
        let mut members = lock(&self.members);
        if let Some(snapshot) = &members.snapshot {
            return Arc::clone(snapshot);
        }
        let snapshot: Arc<[Arc<Outbox<S>>]> = members.outboxes.values().cloned().collect();
        members.snapshot = Some(Arc::clone(&snapshot));
        snapshot
    }

    /// How many tasks write one broadcast to a large room (1 leaves it to the fan-out alone).
    #[cfg(test)]
    #[must_use]
    fn writers(mut self, writers: usize) -> Self {
        self.writers = writers.max(1);
        self
    }

    /// Numbers `frames`, keeps them in the history and writes them to every member.
    async fn broadcast(&self, frames: impl Iterator<Item = Delivery>)
    where
        S: Send + 'static,
    {
        let batch: Vec<(u64, Delivery)> = {
            let mut history = lock(&self.history);
            frames
                .map(|frame| (history.push(frame.clone()), frame))
                .collect()
        };
        let members = self.snapshot();
        let writers = self.writers.min(members.len() / MIN_PER_WRITER).max(1);
        if writers == 1 {
            write_all(&members, &batch).await;
            return;
        }
        // A large room on several cores: the other writers take a slice each, on whatever worker
        // is free, and this task writes the first.
        let chunk = members.len().div_ceil(writers);
        let batch = Arc::new(batch);
        let others: Vec<_> = (chunk..members.len())
            .step_by(chunk)
            .map(|start| {
                let (members, batch) = (Arc::clone(&members), Arc::clone(&batch));
                tokio::spawn(async move {
                    let end = (start + chunk).min(members.len());
                    write_all(&members[start..end], &batch).await;
                })
            })
            .collect();
        write_all(&members[..chunk], &batch).await;
        for task in others {
            // A writer can only fail by panicking in a sink; the others' deliveries stand.
            let _ = task.await;
        }
    }
}

/// Members per extra writer task before a broadcast is split at all.
const MIN_PER_WRITER: usize = 1024;

async fn write_all<S>(outboxes: &[Arc<Outbox<S>>], batch: &[(u64, Delivery)])
where
    S: Sink<Message> + Unpin,
{
    for outbox in outboxes {
        outbox.deliver(batch);
        // Lets other tasks on this thread run between connections once the budget is spent.
        tokio::task::consume_budget().await;
    }
}

/// A connection's place in the [`Registry`]; leaving is dropping it.
#[derive(Debug)]
pub(super) struct Membership<S = SplitSink<WebSocket, Message>> {
    registry: Arc<Registry<S>>,
    outbox: Arc<Outbox<S>>,
    id: u64,
}

impl<S> Membership<S> {
    /// This connection's outbox.
    pub(super) fn outbox(&self) -> &Outbox<S> {
        &self.outbox
    }
}

impl<S> Drop for Membership<S> {
    fn drop(&mut self) {
        let mut members = lock(&self.registry.members);
        members.outboxes.remove(&self.id);
        members.snapshot = None;
    }
}

/// Runs the fan-out: every message of `feed` goes to every member of `registry`, until the hub
/// closes. If the fan-out itself falls behind the hub, every member gets the notice of what it
/// missed in place of the lost messages.
pub(super) async fn run<S>(registry: Arc<Registry<S>>, mut feed: broadcast::Receiver<Delivery>)
where
    S: Sink<Message> + Unpin + Send + 'static,
{
    let mut frames = Vec::with_capacity(BATCH);
    loop {
        match feed.recv().await {
            Ok(frame) => frames.push(frame),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                frames.push(super::connection::missed_notice(n));
            }
            Err(broadcast::error::RecvError::Closed) => {
                // Nothing more will come: tell every member, so their clients are closed
                // rather than left waiting on a silent room.
                for outbox in registry.snapshot().iter() {
                    outbox.hub_closed.store(true, Ordering::Release);
                    outbox.wake.notify_one();
                }
                return;
            }
        }
        while frames.len() < BATCH {
            match feed.try_recv() {
                Ok(frame) => frames.push(frame),
                Err(broadcast::error::TryRecvError::Lagged(n)) => {
                    frames.push(super::connection::missed_notice(n));
                }
                Err(_) => break,
            }
        }
        registry.broadcast(frames.drain(..)).await;
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;
    use std::time::Duration;

    use axum::extract::ws::Utf8Bytes;

    use super::*;

    /// A sink that records what it is sent and can be made to stop accepting, like a socket whose
    /// buffer is full, or to fail, like a vanished peer.
    #[derive(Clone, Default)]
    struct TestSink(Arc<Mutex<TestSinkState>>);

    #[derive(Default)]
    struct TestSinkState {
        sent: Vec<String>,
        flushes: usize,
        blocked: bool,
        broken: bool,
        waker: Option<Waker>,
    }

    impl TestSink {
        fn sent(&self) -> Vec<String> {
            lock(&self.0).sent.clone()
        }

        fn flushes(&self) -> usize {
            lock(&self.0).flushes
        }

        fn set_blocked(&self, blocked: bool) {
            let mut st = lock(&self.0);
            st.blocked = blocked;
            if let Some(waker) = st.waker.take() {
                waker.wake();
            }
        }

        fn break_it(&self) {
            lock(&self.0).broken = true;
        }

        fn poll_open(&self, cx: &mut Context<'_>) -> Poll<Result<(), ()>> {
            let mut st = lock(&self.0);
            if st.broken {
                Poll::Ready(Err(()))
            } else if st.blocked {
                st.waker = Some(cx.waker().clone());
                Poll::Pending
            } else {
                Poll::Ready(Ok(()))
            }
        }
    }

    impl Sink<Message> for TestSink {
        type Error = ();

        fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), ()>> {
            self.poll_open(cx)
        }

        fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), ()> {
            let text = match item {
                Message::Text(text) => text.to_string(),
                Message::Ping(_) => "<ping>".to_owned(),
                Message::Close(_) => "<close>".to_owned(),
                other => format!("{other:?}"),
            };
            lock(&self.0).sent.push(text);
            Ok(())
        }

        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), ()>> {
            let open = self.poll_open(cx);
            if open.is_ready() {
                lock(&self.0).flushes += 1;
            }
            open
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), ()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn frames(texts: &[&str]) -> impl Iterator<Item = Delivery> {
        texts
            .iter()
            .map(|t| Utf8Bytes::from((*t).to_owned()))
            .collect::<Vec<_>>()
            .into_iter()
    }

    fn room(capacity: usize) -> Arc<Registry<TestSink>> {
        Arc::new(Registry::new(capacity))
    }

    async fn woken_soon(outbox: &Outbox<TestSink>) -> bool {
        tokio::time::timeout(Duration::from_millis(100), outbox.woken())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn members_get_a_batch_written_and_flushed_once_without_waking_their_task() {
        let registry = room(8);
        let (a, b) = (TestSink::default(), TestSink::default());
        let ma = registry.join(a.clone());
        let _mb = registry.join(b.clone());
        registry.broadcast(frames(&["1", "2"])).await;
        assert_eq!(a.sent(), ["1", "2"]);
        assert_eq!(b.sent(), ["1", "2"]);
        assert_eq!((a.flushes(), b.flushes()), (1, 1));
        assert!(
            !woken_soon(ma.outbox()).await,
            "a member keeping up is not woken"
        );
    }

    #[tokio::test]
    async fn a_burst_is_flushed_every_few_kilobytes_so_write_buffers_stay_small() {
        let registry = room(8);
        let sink = TestSink::default();
        let _m = registry.join(sink.clone());
        let big = "x".repeat(FLUSH_BYTES / 2 + 100);
        registry
            .broadcast(frames(&[&big, &big, &big, &big, &big]))
            .await;
        assert_eq!(sink.sent().len(), 5);
        // After the second, the fourth, and at the end.
        assert_eq!(sink.flushes(), 3);
    }

    #[tokio::test]
    async fn a_blocked_member_catches_up_in_order_without_holding_others_or_duplicating() {
        let registry = room(8);
        let (slow, fast) = (TestSink::default(), TestSink::default());
        let m = registry.join(slow.clone());
        let _f = registry.join(fast.clone());
        slow.set_blocked(true);
        registry.broadcast(frames(&["1"])).await;
        registry.broadcast(frames(&["2"])).await;
        assert_eq!(fast.sent(), ["1", "2"]);
        assert!(slow.sent().is_empty());
        assert!(
            woken_soon(m.outbox()).await,
            "the blocked member's task is woken"
        );

        // Its task catches up once the socket drains; the ping it came to send goes first.
        slow.set_blocked(false);
        assert!(
            m.outbox()
                .send(registry.history(), Some(Message::Ping(bytes::Bytes::new())))
                .await
        );
        assert_eq!(slow.sent(), ["<ping>", "1", "2"]);

        // A batch the task already sent while catching up is not written twice.
        let again: Vec<(u64, Delivery)> = vec![(1, Utf8Bytes::from_static("2"))];
        m.outbox().deliver(&again);
        registry.broadcast(frames(&["3"])).await;
        assert_eq!(slow.sent(), ["<ping>", "1", "2", "3"]);
        assert_eq!(fast.sent(), ["1", "2", "3"]);
    }

    #[tokio::test]
    async fn a_member_behind_the_history_is_told_how_many_it_missed() {
        let registry = room(2);
        let slow = TestSink::default();
        let m = registry.join(slow.clone());
        slow.set_blocked(true);
        for text in ["1", "2", "3", "4", "5"] {
            registry.broadcast(frames(&[text])).await;
        }
        slow.set_blocked(false);
        assert!(m.outbox().send(registry.history(), None).await);
        let sent = slow.sent();
        assert_eq!(sent.len(), 3, "{sent:?}");
        assert!(sent[0].contains("You missed 3 messages"), "{sent:?}");
        assert_eq!(sent[1..], ["4", "5"]);
    }

    #[tokio::test]
    async fn leaving_stops_delivery_and_a_broken_sink_fails_the_send() {
        let registry = room(4);
        let (gone, broken) = (TestSink::default(), TestSink::default());
        drop(registry.join(gone.clone()));
        let m = registry.join(broken.clone());
        broken.break_it();
        registry.broadcast(frames(&["1"])).await;
        assert!(gone.sent().is_empty());
        assert!(!m.outbox().send(registry.history(), None).await);
        assert_eq!(registry.snapshot().len(), 1);
    }

    #[tokio::test]
    async fn the_fan_out_task_forwards_the_hub_and_reports_its_own_lag() {
        let registry = room(16);
        let sink = TestSink::default();
        let member = registry.join(sink.clone());
        let (tx, rx) = broadcast::channel(2);
        // Published before the task runs, more than the channel holds: the task starts behind.
        for text in ["a", "b", "c", "d"] {
            tx.send(Utf8Bytes::from(text.to_owned())).unwrap();
        }
        let task = tokio::spawn(run(Arc::clone(&registry), rx));
        tokio::time::timeout(Duration::from_secs(5), async {
            while sink.sent().len() < 3 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the fan-out delivers");
        let sent = sink.sent();
        assert!(sent[0].contains("You missed 2 messages"), "{sent:?}");
        assert_eq!(sent[1..], ["c", "d"]);
        drop(tx);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the task ends when the hub closes")
            .unwrap();
        assert!(
            member.outbox().hub_closed(),
            "members learn that the hub closed"
        );
        assert!(woken_soon(member.outbox()).await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 3)]
    async fn a_large_room_is_split_over_writers_and_everyone_gets_each_message_once() {
        let registry = Arc::new(Registry::new(8).writers(3));
        let sinks: Vec<TestSink> = (0..3 * MIN_PER_WRITER + 7)
            .map(|_| TestSink::default())
            .collect();
        let _members: Vec<_> = sinks.iter().map(|s| registry.join(s.clone())).collect();
        registry.broadcast(frames(&["1", "2"])).await;
        registry.broadcast(frames(&["3"])).await;
        for sink in &sinks {
            assert_eq!(sink.sent(), ["1", "2", "3"]);
        }
    }

    /// A sink that notes its member's number in one log shared by every member, so a test
    /// can see the order a broadcast visits them in.
    struct OrderSink {
        member: usize,
        log: Arc<Mutex<Vec<usize>>>,
    }

    impl Sink<Message> for OrderSink {
        type Error = ();

        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), ()>> {
            Poll::Ready(Ok(()))
        }

        fn start_send(self: Pin<&mut Self>, _: Message) -> Result<(), ()> {
            lock(&self.log).push(self.member);
            Ok(())
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), ()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), ()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_broadcast_visits_members_in_the_order_they_joined() {
        let registry: Arc<Registry<OrderSink>> = Arc::new(Registry::new(8));
        let log = Arc::new(Mutex::new(Vec::new()));
        let join = |member: usize| {
            registry.join(OrderSink {
                member,
                log: Arc::clone(&log),
            })
        };
        let mut members: Vec<_> = (0..300).map(|m| Some(join(m))).collect();
        // Leaving and joining between broadcasts keeps the order of those still there.
        for m in (0..300).step_by(7) {
            members[m] = None;
        }
        members.extend((300..350).map(|m| Some(join(m))));
        registry.broadcast(frames(&["hello"])).await;
        let expected: Vec<usize> = (0..350).filter(|m| *m >= 300 || m % 7 != 0).collect();
        assert_eq!(*lock(&log), expected);
    }

    #[test]
    fn history_numbers_messages_and_forgets_the_oldest() {
        let mut history = History::new(2);
        assert_eq!(history.push(Utf8Bytes::from_static("a")), 0);
        assert_eq!(history.push(Utf8Bytes::from_static("b")), 1);
        assert_eq!(history.push(Utf8Bytes::from_static("c")), 2);
        assert_eq!(history.end(), 3);
        assert!(history.next_for(3).is_none());
        match history.next_for(2) {
            Some((Message::Text(t), 3)) => assert_eq!(t.as_str(), "c"),
            other => panic!("{other:?}"),
        }
        match history.next_for(0) {
            Some((Message::Text(t), 1)) => assert!(t.as_str().contains("You missed 1 messages")),
            other => panic!("{other:?}"),
        }
    }
}
