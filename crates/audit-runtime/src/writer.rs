//! The writer thread: orders each chain (assigns `seq`, `prev_hash`, `hash`), writes batches
//! and makes them durable with group commit, off the threads that emit events.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError, bounded};

use crate::error::{AuditError, StoreError};
use crate::event::{Actor, AuditEvent};
use crate::layer::{AuditLayer, SpanCapture};
use crate::record::ChainHash;
use crate::scope::AuditScope;
use crate::store::{ChainBatch, ChainHead, Seal, Store, SyncJob};
use crate::time::Timestamp;

/// The chain of events that name no tenant.
pub const DEFAULT_CHAIN: &str = "default";

/// What an emitting thread does when the writer's queue is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnFull {
    /// Wait for room (backpressure): the default. Nothing is dropped.
    Block,
    /// Wait at most this long, then treat the event as undelivered (see
    /// [`FailureMode`](crate::FailureMode)).
    Timeout(Duration),
}

/// Size limits applied by the writer. Longer text is cut at a character boundary and marked
/// `…[truncated N bytes]`, so an oversized field never costs the whole event.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Longest string member (ids, reasons, context values), in bytes.
    pub max_field_bytes: usize,
    /// Longest `changes` member once serialized; larger ones are replaced by
    /// `{"truncated":true,"bytes":N}`.
    pub max_changes_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_field_bytes: 4096,
            max_changes_bytes: 256 << 10,
        }
    }
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

enum Msg {
    Event(Box<Pending>),
    Flush(Sender<Result<(), String>>),
    Seal(Sender<Result<(), String>>),
    Shutdown(Sender<Result<(), String>>),
}

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
            _ => unreachable!("only events are sent here"),
        }
    }

    fn request(&self, make: impl FnOnce(Sender<Result<(), String>>) -> Msg) -> Result<(), AuditError> {
        let (tx, rx) = bounded(1);
        self.tx.send(make(tx)).map_err(|_| AuditError::WriterGone)?;
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

    /// Most events the writer takes into one batch (default 4096). Together with
    /// [`capacity`](Self::capacity) it bounds the events held in memory.
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

    /// Opens the store's chains (repairing a torn last line) and starts the writer thread.
    pub fn build(mut self) -> Result<(AuditLayer, WriterGuard), StoreError> {
        let heads = self.store.heads()?;
        let (tx, rx) = bounded(self.capacity);
        let shared = Arc::new(Shared {
            tx,
            healthy: AtomicBool::new(true),
            running: AtomicBool::new(true),
            on_full: self.on_full,
        });
        let mut writer = Writer {
            store: self.store,
            shared: Arc::clone(&shared),
            chains: heads
                .into_iter()
                .map(|h| (h.chain.clone(), ChainState::new(h)))
                .collect(),
            rng: fastrand::Rng::new(),
            limits: self.limits,
            max_batch: self.max_batch,
            commit_interval: self.commit_interval,
            seal_interval: self.seal_interval,
        };
        let thread = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StoreError::Config(format!("cannot start the audit writer thread: {e}")))?;
        let layer = AuditLayer {
            shared: Arc::clone(&shared),
        };
        Ok((
            layer,
            WriterGuard {
                shared,
                thread: Some(thread),
            },
        ))
    }
}

/// Owns the writer thread: [`flush`](WriterGuard::flush) waits for durability, and dropping
/// the guard drains the queue, syncs and seals every chain. Keep it alive in `main`.
#[must_use = "dropping the guard stops the audit writer"]
pub struct WriterGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
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
        self.shared.request(Msg::Flush)
    }

    /// Flushes, then seals the head of every chain that moved since its last seal.
    pub fn seal(&self) -> Result<(), AuditError> {
        self.shared.request(Msg::Seal)
    }

    /// Drains the queue, syncs, seals and stops the writer, reporting any failure.
    pub fn shutdown(mut self) -> Result<(), AuditError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), AuditError> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        let result = self.shared.request(Msg::Shutdown);
        let _ = thread.join();
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

struct ChainState {
    head: ChainHead,
    sealed_seq: u64,
    batch: ChainBatch,
}

impl ChainState {
    fn new(head: ChainHead) -> Self {
        // Seals already on disk are not re-read: at worst the first seal repeats one.
        ChainState {
            sealed_seq: 0,
            batch: ChainBatch::new(&head.chain),
            head,
        }
    }
}

struct Writer<S> {
    store: S,
    shared: Arc<Shared>,
    chains: HashMap<String, ChainState>,
    rng: fastrand::Rng,
    limits: Limits,
    max_batch: usize,
    commit_interval: Duration,
    seal_interval: Duration,
}

type Reply = Sender<Result<(), String>>;

/// Work handed to the sync thread: a store's sync job and the write generation it covers.
type SyncWork = (SyncJob, u64, Vec<ChainHead>);
type SyncDone = (u64, Vec<ChainHead>, Result<(), String>);

/// The answer to a flush or seal request: the failure if the store failed, success once the
/// request's generation is synced, nothing yet otherwise.
fn outcome(failed: &Option<String>, covered: bool) -> Option<Result<(), String>> {
    match failed {
        Some(message) => Some(Err(message.clone())),
        None if covered => Some(Ok(())),
        None => None,
    }
}

/// While events keep coming the writer polls its queue with short sleeps instead of parking on
/// it, so emitters never pay for waking it; after this long without events it parks.
const POLL: Duration = Duration::from_micros(100);

impl<S: Store> Writer<S> {
    fn run(&mut self, rx: Receiver<Msg>) {
        // Group commit on a thread of its own: the writer keeps serializing and writing while
        // the disk syncs the previous batches.
        let (sync_tx, sync_rx) = bounded::<SyncWork>(1);
        let (done_tx, done_rx) = bounded::<SyncDone>(1);
        let syncer = std::thread::Builder::new()
            .name("audit-sync".into())
            .spawn(move || {
                for (job, generation, heads) in sync_rx {
                    let result = job().map_err(|e| e.to_string());
                    if done_tx.send((generation, heads, result)).is_err() {
                        break;
                    }
                }
            })
            .expect("start the audit sync thread");

        let mut written = 0u64; // generation of the last successful write
        let mut synced = 0u64; // generation covered by the last completed sync
        let mut in_flight = false;
        let mut failed: Option<String> = None;
        let mut last_sync = Instant::now();
        let mut last_seal = Instant::now();
        let mut last_event = Instant::now();
        let mut durable: HashMap<String, ChainHead> = HashMap::new();
        let mut flushes: Vec<(u64, Reply)> = Vec::new();
        let mut seal_requests: Vec<(u64, Reply)> = Vec::new();
        let mut shutdown: Option<Reply> = None;
        let mut disconnected = false;
        loop {
            let busy = in_flight || written > synced || failed.is_some() || !flushes.is_empty();
            let first = if disconnected || shutdown.is_some() {
                if in_flight {
                    std::thread::sleep(POLL);
                }
                None
            } else if busy || last_event.elapsed() < self.commit_interval {
                match rx.try_recv() {
                    Ok(m) => Some(m),
                    Err(TryRecvError::Empty) => {
                        std::thread::sleep(POLL);
                        None
                    }
                    Err(TryRecvError::Disconnected) => {
                        disconnected = true;
                        None
                    }
                }
            } else {
                match rx.recv() {
                    Ok(m) => Some(m),
                    Err(_) => {
                        disconnected = true;
                        None
                    }
                }
            };
            let mut next = first;
            let mut taken = 0;
            let mut new_flushes = Vec::new();
            let mut new_seals = Vec::new();
            while let Some(msg) = next.take() {
                match msg {
                    Msg::Event(p) => self.chain(*p),
                    Msg::Flush(r) => new_flushes.push(r),
                    Msg::Seal(r) => new_seals.push(r),
                    Msg::Shutdown(r) => shutdown = Some(r),
                }
                taken += 1;
                if taken < self.max_batch && shutdown.is_none() {
                    next = rx.try_recv().ok();
                }
            }
            if taken > 0 {
                last_event = Instant::now();
            }

            // Write what was chained; on failure keep it and retry, reporting unhealthy.
            if failed.is_none() {
                match self.write_buffers() {
                    Ok(true) => written += 1,
                    Ok(false) => {}
                    Err(e) => failed = Some(self.fail(e)),
                }
            }
            // Requests wait for the generation that covers every event sent before them.
            flushes.extend(new_flushes.into_iter().map(|r| (written, r)));
            seal_requests.extend(new_seals.into_iter().map(|r| (written, r)));

            if let Ok((generation, heads, result)) = done_rx.try_recv() {
                in_flight = false;
                match result {
                    Ok(()) => {
                        synced = synced.max(generation);
                        for head in heads {
                            durable.insert(head.chain.clone(), head);
                        }
                    }
                    Err(message) => failed = Some(self.fail(StoreError::Config(message))),
                }
            }
            if failed.is_some() && !in_flight && self.retry_ok() {
                failed = None;
                synced = written;
                durable.extend(self.chains.values().map(|s| (s.head.chain.clone(), s.head.clone())));
            }

            let want_sync = !flushes.is_empty()
                || !seal_requests.is_empty()
                || shutdown.is_some()
                || disconnected
                || last_sync.elapsed() >= self.commit_interval;
            if failed.is_none() && !in_flight && written > synced && want_sync {
                let heads: Vec<ChainHead> = self
                    .chains
                    .values()
                    .filter(|s| durable.get(&s.head.chain).is_none_or(|d| d.seq < s.head.seq))
                    .map(|s| s.head.clone())
                    .collect();
                last_sync = Instant::now();
                match self.store.sync_job() {
                    Ok(Some(job)) => {
                        in_flight = true;
                        if sync_tx.send((job, written, heads)).is_err() {
                            failed = Some(self.fail(StoreError::Config("the audit sync thread stopped".into())));
                        }
                    }
                    Ok(None) => {
                        synced = written;
                        durable.extend(heads.into_iter().map(|h| (h.chain.clone(), h)));
                    }
                    Err(e) => failed = Some(self.fail(e)),
                }
            }

            flushes.retain(|(needed, reply)| match outcome(&failed, *needed <= synced) {
                Some(result) => {
                    let _ = reply.send(result);
                    false
                }
                None => true,
            });
            let seal_due = last_seal.elapsed() >= self.seal_interval;
            let all_synced = written == synced && !in_flight;
            let seals_ready = seal_requests.iter().all(|(needed, _)| *needed <= synced);
            let must_seal = (!seal_requests.is_empty() && seals_ready) || (shutdown.is_some() && all_synced);
            if failed.is_none() && (seal_due || must_seal) {
                if let Err(e) = self.seal(&durable) {
                    failed = Some(self.fail(e));
                }
                last_seal = Instant::now();
            }
            seal_requests.retain(|(needed, reply)| match outcome(&failed, *needed <= synced) {
                Some(result) => {
                    let _ = reply.send(result);
                    false
                }
                None => true,
            });
            let finished = all_synced || failed.is_some();
            if (shutdown.is_some() || disconnected) && finished && !in_flight {
                if let Some(r) = shutdown.take() {
                    let _ = r.send(outcome(&failed, true).expect("decided"));
                }
                break;
            }
        }
        drop(sync_tx);
        let _ = syncer.join();
        self.shared.running.store(false, Ordering::Relaxed);
    }

    fn fail(&self, e: StoreError) -> String {
        if self.shared.healthy.swap(false, Ordering::Relaxed) {
            eprintln!("audit: the audit store failed, events are held and retried: {e}");
            tracing::error!(target: "audit::store", error = %e, "audit store failed; retrying");
        }
        e.to_string()
    }

    fn retry_ok(&mut self) -> bool {
        let ok = self.write_buffers().is_ok() && self.store.sync().is_ok();
        if ok {
            self.shared.healthy.store(true, Ordering::Relaxed);
            tracing::info!(target: "audit::store", "audit store recovered");
        }
        ok
    }

    fn write_buffers(&mut self) -> Result<bool, StoreError> {
        let mut wrote = false;
        for state in self.chains.values_mut().filter(|s| !s.batch.is_empty()) {
            // The head moves only once the store has the batch: a failed append is retried
            // from the same head.
            let mut head = state.head.clone();
            self.store.append(&mut state.batch, &mut head)?;
            state.head = head;
            state.batch.clear();
            wrote = true;
        }
        Ok(wrote)
    }

    /// Seals the durable head of every chain that moved since its last seal.
    fn seal(&mut self, durable: &HashMap<String, ChainHead>) -> Result<(), StoreError> {
        let now = Timestamp::now();
        let seals: Vec<Seal> = durable
            .values()
            .filter(|d| self.chains.get(&d.chain).is_some_and(|s| d.seq > s.sealed_seq))
            .map(|d| Seal {
                chain: d.chain.clone(),
                seq: d.seq,
                hash: d.hash,
                sealed_at: now,
            })
            .collect();
        if seals.is_empty() {
            return Ok(());
        }
        self.store.seal(&seals)?;
        for seal in seals {
            if let Some(state) = self.chains.get_mut(&seal.chain) {
                state.sealed_seq = seal.seq;
            }
        }
        Ok(())
    }

    /// Resolves ambient values, applies limits, and appends the chained line to its chain's
    /// buffer.
    fn chain(&mut self, pending: Pending) {
        let Pending { mut event, scope, span } = pending;
        let limits = self.limits;
        if let Some(scope) = &scope {
            let data = &scope.0;
            if event.actor.is_none() {
                event.actor.clone_from(&data.actor);
            }
            if event.tenant.is_none() {
                event.tenant.clone_from(&data.tenant);
            }
            event.context.fill_from(&data.context);
        }
        if let Some(span) = &span {
            span.fill(&mut event.context, &mut event.tenant);
        }
        let mut actor = event.actor.take().unwrap_or_else(Actor::unknown);
        apply_limits(&mut event, &mut actor, &limits);

        let chain_key: &str = match event.tenant.as_deref() {
            Some(t) if !t.is_empty() => t,
            _ => DEFAULT_CHAIN,
        };
        let state = match self.chains.get_mut(chain_key) {
            Some(s) => s,
            None => self.chains.entry(chain_key.to_owned()).or_insert_with(|| {
                ChainState::new(ChainHead {
                    chain: chain_key.to_owned(),
                    seq: 0,
                    hash: ChainHash::GENESIS,
                    timestamp: Timestamp::from_unix_micros(i64::MIN),
                })
            }),
        };
        let micros = event.timestamp.unix_micros().max(0) as u64;
        // UUIDv7: the time in milliseconds, then random bits. Uniqueness needs randomness, not
        // secrecy, so a fast generator seeded once beats a getrandom call per event.
        let id = event.id.unwrap_or_else(|| {
            let mut random = [0u8; 10];
            self.rng.fill(&mut random);
            uuid::Builder::from_unix_timestamp_millis(micros / 1000, &random).into_uuid()
        });
        let context = (!event.context.is_empty()).then_some(&event.context);
        state.batch.push(
            id,
            event.timestamp,
            actor,
            event.action,
            event.category,
            event.resource,
            event.outcome,
            context,
            event.tenant,
            event.changes.as_ref(),
            limits.max_changes_bytes,
        );
    }
}

fn apply_limits(event: &mut AuditEvent, actor: &mut Actor, limits: &Limits) {
    let max = limits.max_field_bytes;
    let cut = |s: &mut String| truncate(s, max);
    cut(&mut actor.id);
    if let Some(n) = &mut actor.name {
        cut(n);
    }
    if let Some(i) = &mut actor.impersonator {
        cut(&mut i.id);
    }
    if event.action.len() > max {
        let mut a = event.action.to_string();
        cut(&mut a);
        event.action = a.into();
    }
    if let Some(r) = &mut event.resource {
        if r.kind.len() > max {
            cut(r.kind.to_mut());
        }
        cut(&mut r.id);
    }
    if let crate::event::Outcome::Failure { reason } = &mut event.outcome {
        cut(reason);
    }
    if let Some(t) = &mut event.tenant {
        cut(t);
    }
    let c = &mut event.context;
    for v in [
        &mut c.ip,
        &mut c.user_agent,
        &mut c.request_id,
        &mut c.session_id,
        &mut c.trace_id,
    ]
    .into_iter()
    .flatten()
    {
        cut(v);
    }
    for v in c.extra.values_mut() {
        cut(v);
    }
}

/// Cuts `s` to at most `max` bytes (at a character boundary) plus a marker saying how much went.
fn truncate(s: &mut String, max: usize) {
    if s.len() <= max {
        return;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let dropped = s.len() - end;
    s.truncate(end);
    s.push_str(&format!("…[truncated {dropped} bytes]"));
}

#[cfg(test)]
mod tests {
    use super::truncate;

    #[test]
    fn truncation_is_marked_and_keeps_utf8() {
        let mut s = "é".repeat(10);
        truncate(&mut s, 5);
        assert_eq!(s, "éé…[truncated 16 bytes]");
    }
}
