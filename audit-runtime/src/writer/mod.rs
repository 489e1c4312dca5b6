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

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Sender, TrySendError, bounded};

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

/// An event the writer could not take, handed back to the emitter.
pub(crate) struct Undelivered(Box<Pending>);

impl Undelivered {
    pub fn into_event(self) -> AuditEvent {
        self.0.event
    }
}

pub(crate) struct Pending {
    event: AuditEvent,
    scope: Option<AuditScope>,
    span: Option<SpanCapture>,
}

/// Where a request's answer goes.
type Reply = Sender<Result<(), String>>;

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

/// State shared by the layer(s), the guard and the writer thread.
pub(crate) struct Shared {
    tx: Sender<Msg>,
    healthy: AtomicBool,
    running: AtomicBool,
    on_full: OnFull,
}

impl Shared {
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed) && self.running.load(Ordering::Relaxed)
    }

    /// Hands an event to the writer; gives it back if the writer cannot take it.
    pub fn send(
        &self,
        event: AuditEvent,
        scope: Option<AuditScope>,
        span: Option<SpanCapture>,
    ) -> Result<(), Undelivered> {
        let msg = Msg::Event(Box::new(Pending { event, scope, span }));
        let back = match self.tx.try_send(msg) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Disconnected(m)) => m,
            Err(TrySendError::Full(m)) => match self.on_full {
                OnFull::Block => match self.tx.send(m) {
                    Ok(()) => return Ok(()),
                    Err(e) => e.0,
                },
                OnFull::Timeout(d) => match self.tx.send_timeout(m, d) {
                    Ok(()) => return Ok(()),
                    Err(e) => e.into_inner(),
                },
            },
        };
        match back {
            Msg::Event(p) => Err(Undelivered(p)),
            Msg::Request(_) => unreachable!("only events are sent here"),
        }
    }

    fn request(&self, make: impl FnOnce(Reply) -> Request) -> Result<(), AuditError> {
        let (tx, rx) = bounded(1);
        self.tx
            .send(Msg::Request(make(tx)))
            .map_err(|_| AuditError::WriterGone)?;
        match rx.recv() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(AuditError::Writer(StoreError::Config(message))),
            Err(_) => Err(AuditError::WriterGone),
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
    limits: Limits,
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
            limits: Limits::default(),
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

    /// Field size limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Opens the store's chains (repairing a torn last line) and starts the writer's threads.
    pub fn build(mut self) -> Result<(AuditLayer, WriterGuard), StoreError> {
        let heads = self.store.heads()?;
        let (tx, rx) = bounded(self.capacity);
        // One chunk waits between the two threads: enough to keep both busy, and bounded, so a
        // slow store pushes back on the event queue instead of growing memory.
        let (work_tx, work_rx) = bounded(1);
        let (spare_tx, spare_rx) = bounded(8);
        let shared = Arc::new(Shared {
            tx,
            healthy: AtomicBool::new(true),
            running: AtomicBool::new(true),
            on_full: self.on_full,
        });
        let mut writer = commit::Writer::new(
            self.store,
            Arc::clone(&shared),
            heads,
            spare_tx,
            self.max_batch,
            self.commit_interval,
            self.seal_interval,
        );
        let mut intake = intake::Intake::new(
            Arc::clone(&shared),
            spare_rx,
            self.limits,
            self.max_batch,
            self.commit_interval,
        );
        let spawn_error = |e: std::io::Error| StoreError::Config(format!("cannot start the audit writer threads: {e}"));
        let writer_thread = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer.run(work_rx))
            .map_err(spawn_error)?;
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
            .finish()
    }
}

impl WriterGuard {
    /// Returns once every event handed to the writer before this call is durable on disk.
    pub fn flush(&self) -> Result<(), AuditError> {
        self.shared.request(Request::Flush)
    }

    /// Flushes, then seals the head of every chain that moved since its last seal.
    pub fn seal(&self) -> Result<(), AuditError> {
        self.shared.request(Request::Seal)
    }

    /// Drains the queue, syncs, seals and stops the writer, reporting any failure.
    pub fn shutdown(mut self) -> Result<(), AuditError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), AuditError> {
        if self.threads.is_empty() {
            return Ok(());
        }
        let result = self.shared.request(Request::Shutdown);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        result
    }
}

impl Drop for WriterGuard {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("audit: shutting down the writer failed: {e}");
        }
    }
}
