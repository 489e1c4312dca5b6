//! The writer: events leave the emitting threads through a bounded queue and become durable,
//! chained records in a pipeline of three threads, so that no step waits for another:
//!
//! 1. `audit-serialize` ([`intake`]) resolves each event against its scope, applies the
//!    limits and serializes it into its chain's [`ChainBatch`], in chunks of
//!    [`WRITE_CHUNK`] bytes;
//! 2. `audit-writer` ([`commit`]) chains the chunks (`seq`, `prev_hash`, `hash`), hands them
//!    to the store, answers flushes and writes seals;
//! 3. `audit-sync` runs the store's `fdatasync` (group commit) while the writer goes on.
//!
//! Requests from the [`WriterGuard`] travel the same queues as the events, so a flush is
//! answered only once everything sent before it is durable.

mod commit;
mod intake;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{RecvTimeoutError, SendTimeoutError, Sender, TrySendError, bounded};

use crate::error::{AuditError, StoreError};
use crate::event::AuditEvent;
use crate::layer::{AuditLayer, SpanCapture};
use crate::limits::Limits;
use crate::scope::AuditScope;
use crate::store::{ChainBatch, Store};

/// What an emitting thread does when the writer's queue is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnFull {
    /// Wait for room (backpressure): the default. Nothing is dropped.
    Block,
    /// Wait at most this long, then treat the event as undelivered (see
    /// [`FailureMode`](crate::FailureMode)).
    Timeout(Duration),
}

/// What the writer does while its store fails (a full disk, a lost database), like auditd's
/// `disk_full_action`. Either way the failed records are kept and retried with backoff, and
/// [`WriterGuard::flush`] reports the failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum StoreFailure {
    /// Keep taking events while the store is retried: the bounded queue fills and emitters
    /// wait (or time out) per [`OnFull`]. Nothing is lost unless a timeout expires. The
    /// default.
    #[default]
    Retry,
    /// Take no new events while the store fails: each one counts as undelivered and the
    /// [`FailureMode`](crate::FailureMode) decides (warn and count, or refuse the action).
    Reject,
}

/// An event the writer could not take, handed back to the emitter with the reason.
pub(crate) struct Undelivered(Box<Pending>, String);

impl Undelivered {
    pub fn into_parts(self) -> (AuditEvent, String) {
        (self.0.event, self.1)
    }
}

pub(crate) struct Pending {
    event: AuditEvent,
    scope: Option<AuditScope>,
    span: Option<SpanCapture>,
}

/// Why a request could not be answered with success.
#[derive(Debug)]
enum Refusal {
    /// The store fails (message).
    Store(String),
    /// Events were lost since the previous flush.
    Lost(u64),
}

/// Where a request's answer goes.
type Reply = Sender<Result<(), Refusal>>;

/// What emitters and the guard send to the serializing thread.
enum Msg {
    Event(Box<Pending>),
    Request(Request),
}

/// What the serializing thread sends to the writer thread: chunks of serialized records, and
/// the guard's requests in the order they came.
enum Work {
    Batch(ChainBatch),
    Request(Request),
}

enum Request {
    Flush(Reply),
    Seal(Reply),
    Shutdown(Reply),
}

/// The serializing thread hands a chunk on once it holds this many bytes, even mid-batch: a
/// chunk this size is still in the CPU cache while it is chained, hashed and copied to the
/// kernel, where a whole batch (megabytes) would be read back from memory at each step.
const WRITE_CHUNK: usize = 128 << 10;

/// While events keep coming, the serializing and writer threads poll their queues with short
/// sleeps instead of parking on them, so senders never pay for waking them; after a commit
/// interval without events they park.
const POLL: Duration = Duration::from_micros(100);

/// How often a caller waiting on the writer looks at whether the store has started failing.
const WATCH: Duration = Duration::from_millis(20);

/// Writers running in this process: an event that no layer took on a thread while one runs
/// was emitted under a subscriber that lacks the layer.
static RUNNING_WRITERS: AtomicUsize = AtomicUsize::new(0);

/// How many audit writers run in this process.
pub(crate) fn running_writers() -> usize {
    RUNNING_WRITERS.load(Ordering::Relaxed)
}

/// State shared by the layer(s), the guard and the writer thread.
pub(crate) struct Shared {
    tx: Sender<Msg>,
    /// The store accepts writes (no chain and no sync is failing).
    healthy: AtomicBool,
    running: AtomicBool,
    /// The guard is stopping the writer.
    stopping: AtomicBool,
    on_full: OnFull,
    on_store_failure: StoreFailure,
    /// Events this writer lost since the last flush answered.
    lost: AtomicU64,
    /// Records the store refused and the writer set aside, in all.
    set_aside: AtomicU64,
    /// What is failing now, for callers that must not wait behind it.
    failure: Mutex<Option<String>>,
}

impl Shared {
    /// Running, and its store accepting writes.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed) && self.running.load(Ordering::Relaxed)
    }

    /// Whether an event sent now would be taken.
    pub fn accepting(&self) -> bool {
        self.running.load(Ordering::Relaxed)
            && (self.on_store_failure == StoreFailure::Retry || self.healthy.load(Ordering::Relaxed))
    }

    fn failure(&self) -> Option<String> {
        self.failure.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(super) fn set_failure(&self, failure: Option<String>) {
        self.healthy.store(failure.is_none(), Ordering::Relaxed);
        *self.failure.lock().unwrap_or_else(|e| e.into_inner()) = failure;
    }

    /// Hands an event to the writer; gives it back, with the reason, if the writer cannot
    /// take it (and counts it as lost for the next flush).
    pub fn send(
        &self,
        event: AuditEvent,
        scope: Option<AuditScope>,
        span: Option<SpanCapture>,
    ) -> Result<(), Undelivered> {
        let pending = Box::new(Pending { event, scope, span });
        if !self.accepting() {
            let reason = match self.failure() {
                Some(failure) if self.running.load(Ordering::Relaxed) => {
                    format!("the audit store is failing ({failure}) and the writer takes no events meanwhile")
                }
                _ => "the audit writer has stopped".to_owned(),
            };
            return Err(self.lose(pending, reason));
        }
        let msg = Msg::Event(pending);
        let back = match self.tx.try_send(msg) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Disconnected(m)) => (m, "the audit writer has stopped".to_owned()),
            Err(TrySendError::Full(m)) => match self.on_full {
                OnFull::Block => match self.tx.send(m) {
                    Ok(()) => return Ok(()),
                    Err(e) => (e.0, "the audit writer has stopped".to_owned()),
                },
                OnFull::Timeout(d) => match self.tx.send_timeout(m, d) {
                    Ok(()) => return Ok(()),
                    Err(e) => {
                        let reason = format!("the audit queue stayed full for {d:?}");
                        (e.into_inner(), reason)
                    }
                },
            },
        };
        match back {
            (Msg::Event(p), reason) => Err(self.lose(p, reason)),
            (Msg::Request(_), _) => unreachable!("only events are sent here"),
        }
    }

    fn lose(&self, pending: Box<Pending>, reason: String) -> Undelivered {
        self.lost.fetch_add(1, Ordering::Relaxed);
        Undelivered(pending, reason)
    }

    /// Sends a flush or seal request and waits for its answer, or until `deadline`. A store
    /// that fails meanwhile answers at once: the queue may be jammed behind it.
    fn request(&self, make: impl FnOnce(Reply) -> Request, deadline: Option<Instant>) -> Result<(), AuditError> {
        let failing = || self.failure().map(|f| AuditError::Writer(StoreError::Config(f)));
        if let Some(e) = failing() {
            return Err(e);
        }
        let timed_out = |since: Instant| deadline.map(|d| AuditError::Timeout(d.saturating_duration_since(since)));
        let started = Instant::now();
        let (tx, rx) = bounded(1);
        let mut msg = Msg::Request(make(tx));
        loop {
            match self.tx.send_timeout(msg, WATCH) {
                Ok(()) => break,
                Err(SendTimeoutError::Disconnected(_)) => return Err(AuditError::WriterGone),
                Err(SendTimeoutError::Timeout(m)) => {
                    if let Some(e) = failing() {
                        return Err(e);
                    }
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Err(timed_out(started).expect("deadline"));
                    }
                    msg = m;
                }
            }
        }
        loop {
            match rx.recv_timeout(WATCH) {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(Refusal::Store(message))) => return Err(AuditError::Writer(StoreError::Config(message))),
                Ok(Err(Refusal::Lost(count))) => return Err(AuditError::Lost { count }),
                Err(RecvTimeoutError::Disconnected) => return Err(AuditError::WriterGone),
                Err(RecvTimeoutError::Timeout) => {
                    if let Some(e) = failing() {
                        return Err(e);
                    }
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Err(timed_out(started).expect("deadline"));
                    }
                }
            }
        }
    }
}

/// Builds an [`AuditLayer`] and the writer thread behind it.
#[must_use]
pub struct AuditLayerBuilder<S> {
    store: S,
    capacity: usize,
    max_batch: usize,
    commit_interval: Duration,
    seal_interval: Duration,
    on_full: OnFull,
    on_store_failure: StoreFailure,
    shutdown_grace: Duration,
    limits: Limits,
    vocabulary: Option<crate::CompiledVocabulary>,
}

impl AuditLayer {
    /// Starts building a layer that writes to `store`, for example a
    /// [`FileStore`](crate::FileStore).
    pub fn builder<S: Store>(store: S) -> AuditLayerBuilder<S> {
        AuditLayerBuilder {
            store,
            capacity: 16 * 1024,
            max_batch: 4096,
            commit_interval: Duration::from_millis(10),
            seal_interval: Duration::from_secs(60),
            on_full: OnFull::Block,
            on_store_failure: StoreFailure::Retry,
            shutdown_grace: Duration::from_secs(10),
            limits: Limits::default(),
            vocabulary: None,
        }
    }
}

impl<S: Store> AuditLayerBuilder<S> {
    /// How many events may wait for the writer (default 16384). Emitters get backpressure
    /// (see [`OnFull`]) beyond it; memory stays bounded.
    pub fn capacity(mut self, events: usize) -> Self {
        self.capacity = events.max(1);
        self
    }

    /// Most events in one batch (default 4096; a batch also ends at 128 KiB of records).
    /// Together with [`capacity`](Self::capacity) it bounds the events held in memory: the
    /// queue, plus at most four batches between the serializing and the writer thread.
    pub fn max_batch(mut self, events: usize) -> Self {
        self.max_batch = events.max(1);
        self
    }

    /// Longest wait between a write and its `fdatasync` (default 10 ms): group commit.
    pub fn commit_interval(mut self, interval: Duration) -> Self {
        self.commit_interval = interval;
        self
    }

    /// How often each chain's head is sealed while it moves (default 60 s). Seals are also
    /// written at rotation, on [`WriterGuard::seal`] and at shutdown.
    pub fn seal_interval(mut self, interval: Duration) -> Self {
        self.seal_interval = interval;
        self
    }

    /// What emitters do when the queue is full (default [`OnFull::Block`]).
    pub fn on_full(mut self, on_full: OnFull) -> Self {
        self.on_full = on_full;
        self
    }

    /// What happens while the store fails (default [`StoreFailure::Retry`]).
    pub fn on_store_failure(mut self, on_store_failure: StoreFailure) -> Self {
        self.on_store_failure = on_store_failure;
        self
    }

    /// How long a failing store is still retried when the writer is shut down (default 10 s)
    /// before the records it holds are given up and reported lost.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// The vocabulary compiled into the binary (`audit::vocabulary!()`): actions given as
    /// strings are checked against it when emitted (see
    /// [`install_vocabulary`](crate::install_vocabulary)).
    pub fn vocabulary(mut self, vocabulary: crate::CompiledVocabulary) -> Self {
        self.vocabulary = Some(vocabulary);
        self
    }

    /// Size limits of each event's members (see [`Limits`]).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Opens the store's chains (repairing a torn last line) and starts the writer's threads.
    pub fn build(self) -> Result<(AuditLayer, WriterGuard), StoreError> {
        let longest = self.limits.max_record_bytes();
        if longest > audit_chain::read::MAX_LINE_BYTES {
            return Err(StoreError::Config(format!(
                "these limits allow records of {longest} bytes, more than the {} bytes readers take: lower them",
                audit_chain::read::MAX_LINE_BYTES
            )));
        }
        if let Some(vocabulary) = self.vocabulary {
            crate::install_vocabulary(vocabulary);
        }
        let (tx, rx) = bounded(self.capacity);
        // One chunk waits between the two threads: enough to keep both busy, and bounded, so a
        // slow store pushes back on the event queue instead of growing memory.
        let (work_tx, work_rx) = bounded(1);
        let (spare_tx, spare_rx) = bounded(8);
        let shared = Arc::new(Shared {
            tx,
            healthy: AtomicBool::new(true),
            running: AtomicBool::new(true),
            stopping: AtomicBool::new(false),
            on_full: self.on_full,
            on_store_failure: self.on_store_failure,
            lost: AtomicU64::new(0),
            set_aside: AtomicU64::new(0),
            failure: Mutex::new(None),
        });
        let mut intake = intake::Intake::new(
            Arc::clone(&shared),
            spare_rx,
            self.limits,
            self.max_batch,
            self.commit_interval,
        );
        let spawn_error = |e: std::io::Error| StoreError::Config(format!("cannot start the audit writer threads: {e}"));
        // The store is used on the writer thread only, its opening of the chains included:
        // a store whose client must not run on the caller's thread (PostgreSQL's synchronous
        // client inside an async runtime) then works however the caller runs.
        let (opened_tx, opened_rx) = bounded::<Result<(), StoreError>>(1);
        let mut store = self.store;
        let writer_shared = Arc::clone(&shared);
        let (max_batch, timing) = (
            self.max_batch,
            commit::Timing {
                commit_interval: self.commit_interval,
                seal_interval: self.seal_interval,
                shutdown_grace: self.shutdown_grace,
            },
        );
        RUNNING_WRITERS.fetch_add(1, Ordering::Relaxed);
        let writer_thread = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || {
                match store.heads() {
                    Ok(heads) => {
                        let _ = opened_tx.send(Ok(()));
                        commit::Writer::new(store, writer_shared, heads, spare_tx, max_batch, timing).run(work_rx);
                    }
                    Err(e) => {
                        let _ = opened_tx.send(Err(e));
                    }
                }
                RUNNING_WRITERS.fetch_sub(1, Ordering::Relaxed);
            })
            .map_err(|e| {
                RUNNING_WRITERS.fetch_sub(1, Ordering::Relaxed);
                spawn_error(e)
            })?;
        let opened = opened_rx.recv().unwrap_or_else(|_| {
            Err(StoreError::Config(
                "the audit writer thread stopped while opening the store".into(),
            ))
        });
        if let Err(e) = opened {
            let _ = writer_thread.join();
            return Err(e);
        }
        // Should this fail, dropping `work_tx` disconnects the writer thread, which then stops.
        let intake_thread = std::thread::Builder::new()
            .name("audit-serialize".into())
            .spawn(move || intake.run(rx, work_tx))
            .map_err(spawn_error)?;
        let layer = AuditLayer {
            shared: Arc::clone(&shared),
        };
        Ok((
            layer,
            WriterGuard {
                shared,
                threads: vec![intake_thread, writer_thread],
            },
        ))
    }
}

/// Owns the writer's threads: [`flush`](WriterGuard::flush) waits for durability, and
/// dropping the guard drains the queue, syncs and seals every chain. Keep it alive in `main`.
#[must_use = "dropping the guard stops the audit writer"]
pub struct WriterGuard {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for WriterGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterGuard")
            .field("healthy", &self.shared.is_healthy())
            .field("failure", &self.shared.failure())
            .finish()
    }
}

impl WriterGuard {
    /// Returns once every event handed to the writer before this call is durable.
    ///
    /// An error says what is not: the store is failing (its records are held and retried),
    /// or [`AuditError::Lost`] counts the events lost since the previous flush (refused while
    /// the store failed under [`StoreFailure::Reject`], or timed out under
    /// [`OnFull::Timeout`]). It never returns `Ok` while an event handed over before it is
    /// not durable. It waits as long as the writer needs: see
    /// [`flush_timeout`](Self::flush_timeout) for a bound.
    pub fn flush(&self) -> Result<(), AuditError> {
        self.shared.request(Request::Flush, None)
    }

    /// [`flush`](Self::flush), giving up with [`AuditError::Timeout`] after `timeout`.
    pub fn flush_timeout(&self, timeout: Duration) -> Result<(), AuditError> {
        self.shared.request(Request::Flush, Some(Instant::now() + timeout))
    }

    /// Flushes, then seals the head of every chain that moved since its last seal.
    pub fn seal(&self) -> Result<(), AuditError> {
        self.shared.request(Request::Seal, None)
    }

    /// What is failing now (a chain's appends, the store's sync), if anything.
    pub fn failure(&self) -> Option<String> {
        self.shared.failure()
    }

    /// Records the store refused and the writer set aside so far (see
    /// [`Store::set_aside`](crate::Store::set_aside)).
    pub fn set_aside_count(&self) -> u64 {
        self.shared.set_aside.load(Ordering::Relaxed)
    }

    /// Drains the queue, syncs, seals and stops the writer, reporting any failure. A store
    /// that still fails after the [shutdown grace](AuditLayerBuilder::shutdown_grace) costs
    /// the records held for it, and the error counts them.
    pub fn shutdown(mut self) -> Result<(), AuditError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), AuditError> {
        if self.threads.is_empty() {
            return Ok(());
        }
        self.shared.stopping.store(true, Ordering::Relaxed);
        let (tx, rx) = bounded(1);
        let mut msg = Msg::Request(Request::Shutdown(tx));
        // The writer gives up on a failing store after its grace even if this request is
        // stuck behind events; it then disconnects the queue.
        loop {
            match self.shared.tx.send_timeout(msg, WATCH) {
                Ok(()) | Err(SendTimeoutError::Disconnected(_)) => break,
                Err(SendTimeoutError::Timeout(m)) => msg = m,
            }
        }
        let answer = rx.recv();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        let lost = self.shared.lost.swap(0, Ordering::Relaxed);
        match answer {
            Ok(Err(Refusal::Store(message))) => Err(AuditError::Writer(StoreError::Config(message))),
            Ok(Err(Refusal::Lost(count))) => Err(AuditError::Lost { count: count + lost }),
            _ if lost > 0 => Err(AuditError::Lost { count: lost }),
            Ok(Ok(())) => Ok(()),
            Err(_) => Err(AuditError::WriterGone),
        }
    }
}

impl Drop for WriterGuard {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("audit: shutting down the writer failed: {e}");
        }
    }
}
