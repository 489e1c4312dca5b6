//! The writer thread: chains the serialized chunks onto each chain's head, hands them to the
//! store, and makes them durable with group commit on the sync thread.
//!
//! Failures stay where they happen. A chain whose appends fail keeps its records and retries
//! them with backoff while every other chain goes on; a record the store refuses outright
//! ([`StoreError::Rejected`]) is set aside and the rest of its chain is chained without it; a
//! failing sync holds the answer of every flush until a later sync succeeds. A flush is never
//! answered `Ok` while anything handed over before it is not durable.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError, bounded};

use super::{POLL, Refusal, Reply, Request, Shared, WRITE_CHUNK, Work};
use crate::Timestamp;
use crate::error::StoreError;
use crate::store::{ChainBatch, ChainHead, Seal, Store, SyncJob};

/// First wait before a failed append or sync is retried; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Something failing and when to try it again.
#[derive(Clone, Debug)]
struct Failure {
    error: String,
    retry_at: Instant,
    backoff: Duration,
}

impl Failure {
    fn first(error: String) -> Self {
        Failure {
            error,
            retry_at: Instant::now() + FIRST_BACKOFF,
            backoff: FIRST_BACKOFF,
        }
    }

    /// The same thing failed again (or something else in its place): wait longer.
    fn again(previous: Option<Failure>, error: String) -> Self {
        match previous {
            None => Failure::first(error),
            Some(f) => {
                let backoff = (f.backoff * 2).min(MAX_BACKOFF);
                Failure {
                    error,
                    retry_at: Instant::now() + backoff,
                    backoff,
                }
            }
        }
    }

    fn due(&self, now: Instant) -> bool {
        now >= self.retry_at
    }
}

struct ChainState {
    head: ChainHead,
    sealed_seq: u64,
    batch: ChainBatch,
    failure: Option<Failure>,
}

impl ChainState {
    fn new(head: ChainHead) -> Self {
        // Seals already on disk are not re-read: at worst the first seal repeats one.
        ChainState {
            sealed_seq: 0,
            batch: ChainBatch::new(&head.chain),
            head,
            failure: None,
        }
    }
}

/// The writer's intervals.
pub(super) struct Timing {
    pub commit_interval: Duration,
    pub seal_interval: Duration,
    pub shutdown_grace: Duration,
}

pub(super) struct Writer<S> {
    store: S,
    shared: Arc<Shared>,
    chains: HashMap<String, ChainState>,
    /// Emptied batches go back to the serializing thread, which refills them.
    spare: Sender<ChainBatch>,
    max_batch: usize,
    timing: Timing,
    /// Events and bytes taken since the last write.
    held: (usize, usize),
    /// Records held for failing chains beyond which the writer takes no more work, so that
    /// the bounded queue pushes back on emitters instead of memory growing.
    hold_limit: usize,
    sync_failure: Option<Failure>,
    /// Seals that could not be written, by chain: reported to seal requests.
    seal_failures: Vec<String>,
}

/// Work handed to the sync thread: a store's sync job and the write generation it covers.
type SyncWork = (SyncJob, u64, Vec<ChainHead>);
type SyncDone = (u64, Vec<ChainHead>, Result<(), String>);

impl<S: Store> Writer<S> {
    pub(super) fn new(
        store: S,
        shared: Arc<Shared>,
        heads: Vec<ChainHead>,
        spare: Sender<ChainBatch>,
        max_batch: usize,
        timing: Timing,
    ) -> Self {
        Writer {
            store,
            shared,
            chains: heads
                .into_iter()
                .map(|h| (h.chain.clone(), ChainState::new(h)))
                .collect(),
            spare,
            max_batch,
            timing,
            held: (0, 0),
            hold_limit: max_batch.saturating_mul(4).max(64),
            sync_failure: None,
            seal_failures: Vec::new(),
        }
    }

    pub(super) fn run(&mut self, rx: Receiver<Work>) {
        // Group commit on a thread of its own: the writer keeps chaining and writing while the
        // disk syncs the previous batches.
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

        let mut written = 0u64; // generation of the last write
        let mut synced = 0u64; // generation covered by the last completed sync
        let mut in_flight = false;
        let mut last_sync = Instant::now();
        let mut last_seal = Instant::now();
        let mut last_work = Instant::now();
        let mut durable: HashMap<String, ChainHead> = HashMap::new();
        let mut flushes: Vec<(u64, Reply)> = Vec::new();
        let mut seal_requests: Vec<(u64, Reply)> = Vec::new();
        let mut shutdown: Option<Reply> = None;
        let mut stop_deadline: Option<Instant> = None;
        let mut disconnected = false;
        loop {
            let now = Instant::now();
            let stopping = shutdown.is_some() || disconnected || self.shared.stopping.load(Ordering::Relaxed);
            if stopping && stop_deadline.is_none() {
                stop_deadline = Some(now + self.timing.shutdown_grace);
            }
            let failing = self.is_failing();
            let jammed = self.held_records() >= self.hold_limit;
            let busy = in_flight || written > synced || failing || !flushes.is_empty();
            let first = if disconnected || shutdown.is_some() || jammed {
                if in_flight || failing {
                    std::thread::sleep(POLL);
                }
                None
            } else if busy || last_work.elapsed() < self.timing.commit_interval {
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
            let mut taken = false;
            let mut new_flushes = Vec::new();
            let mut new_seals = Vec::new();
            while let Some(work) = next.take() {
                match work {
                    Work::Batch(batch) => self.accept(batch),
                    Work::Request(Request::Flush(r)) => new_flushes.push(r),
                    Work::Request(Request::Seal(r)) => new_seals.push(r),
                    Work::Request(Request::Shutdown(r)) => shutdown = Some(r),
                }
                taken = true;
                // Small batches (the queue ran dry) are merged into one write, up to the same
                // limits the serializing thread applies: the writer holds under two batches.
                let (events, bytes) = self.held;
                if shutdown.is_none() && events < self.max_batch && bytes < WRITE_CHUNK {
                    next = rx.try_recv().ok();
                }
            }
            if taken {
                last_work = Instant::now();
            }
            if self.write_buffers() {
                written += 1;
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
                        if let Some(f) = self.sync_failure.take() {
                            tracing::info!(target: "audit::store", "audit store syncs again (it failed: {})", f.error);
                        }
                    }
                    Err(message) => self.sync_failed(message),
                }
            }

            let want_sync = !flushes.is_empty()
                || !seal_requests.is_empty()
                || stopping
                || last_sync.elapsed() >= self.timing.commit_interval;
            let sync_due = self.sync_failure.as_ref().is_none_or(|f| f.due(Instant::now()));
            if !in_flight && written > synced && want_sync && sync_due {
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
                            in_flight = false;
                            self.sync_failed("the audit sync thread stopped".into());
                        }
                    }
                    Ok(None) => {
                        synced = written;
                        durable.extend(heads.into_iter().map(|h| (h.chain.clone(), h)));
                        self.sync_failure = None;
                    }
                    Err(e) => self.sync_failed(e.to_string()),
                }
            }
            self.publish_health();

            let refusal = self.refusal();
            flushes.retain(|(needed, reply)| match self.answer(&refusal, *needed <= synced) {
                Some(result) => {
                    let _ = reply.send(result);
                    false
                }
                None => true,
            });
            let seal_due = last_seal.elapsed() >= self.timing.seal_interval;
            let all_synced = written == synced && !in_flight;
            let seals_ready = seal_requests.iter().all(|(needed, _)| *needed <= synced);
            let must_seal = (!seal_requests.is_empty() && seals_ready) || (stopping && all_synced);
            if seal_due || must_seal {
                self.seal(&durable);
                last_seal = Instant::now();
            }
            let refusal = self.refusal().or_else(|| {
                (!self.seal_failures.is_empty()).then(|| format!("sealing failed: {}", self.seal_failures.join("; ")))
            });
            seal_requests.retain(|(needed, reply)| match self.answer(&refusal, *needed <= synced) {
                Some(result) => {
                    let _ = reply.send(result);
                    false
                }
                None => true,
            });

            if (shutdown.is_some() || disconnected) && !in_flight {
                let done = all_synced && !self.is_failing() && self.held_records() == 0;
                let give_up = stop_deadline.is_some_and(|d| Instant::now() >= d);
                if done || give_up {
                    if done && !stopping {
                        // The stop came with this round's receive (a shutdown request, or the
                        // queue disconnected while the writer waited), so the seal of a stopping
                        // writer above did not run: seal now, it is the last chance.
                        self.seal(&durable);
                    }
                    if !done {
                        self.abandon();
                    }
                    if let Some(r) = shutdown.take() {
                        let result = self.answer(&self.refusal(), true).expect("decided");
                        let _ = r.send(result);
                    }
                    break;
                }
            } else if stop_deadline.is_some_and(|d| Instant::now() >= d) && self.is_failing() {
                // The guard is stopping, but its request is stuck behind events this failing
                // store cannot take: give them up so that the queue disconnects.
                self.abandon();
                break;
            }
        }
        drop(sync_tx);
        let _ = syncer.join();
        self.shared.running.store(false, Ordering::Relaxed);
    }

    /// The answer to a flush or seal request: the failure if something fails, the loss if
    /// events were lost since the last answer, success once its generation is synced,
    /// nothing yet otherwise.
    fn answer(&self, refusal: &Option<String>, covered: bool) -> Option<Result<(), Refusal>> {
        match refusal {
            Some(message) => Some(Err(Refusal::Store(message.clone()))),
            None if covered => match self.shared.lost.swap(0, Ordering::Relaxed) {
                0 => Some(Ok(())),
                lost => Some(Err(Refusal::Lost(lost))),
            },
            None => None,
        }
    }

    fn is_failing(&self) -> bool {
        self.sync_failure.is_some() || self.chains.values().any(|s| s.failure.is_some())
    }

    /// What fails now, in words, or `None`.
    fn refusal(&self) -> Option<String> {
        let mut parts: Vec<String> = self
            .chains
            .values()
            .filter_map(|s| s.failure.as_ref().map(|f| (s, f)))
            .map(|(s, f)| format!("chain `{}` ({} records held): {}", s.head.chain, s.batch.len(), f.error))
            .collect();
        parts.sort();
        if let Some(f) = &self.sync_failure {
            parts.insert(0, format!("sync: {}", f.error));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    fn publish_health(&self) {
        let failure = self.refusal();
        let was_healthy = self.shared.healthy.load(Ordering::Relaxed);
        match (&failure, was_healthy) {
            (Some(message), true) => {
                eprintln!("audit: the audit store is failing, its records are held and retried: {message}");
                tracing::error!(target: "audit::store", error = %message, "audit store failing; retrying");
            }
            (None, false) => tracing::info!(target: "audit::store", "audit store recovered"),
            _ => {}
        }
        self.shared.set_failure(failure);
    }

    fn sync_failed(&mut self, message: String) {
        self.sync_failure = Some(Failure::again(self.sync_failure.take(), message));
    }

    fn held_records(&self) -> usize {
        self.chains
            .values()
            .filter(|s| s.failure.is_some())
            .map(|s| s.batch.len())
            .sum()
    }

    /// Gives up the records of failing chains (shutdown past its grace): they are lost, and
    /// said so loudly.
    fn abandon(&mut self) {
        let mut lost = 0u64;
        for state in self.chains.values_mut().filter(|s| !s.batch.is_empty()) {
            lost += state.batch.len() as u64;
            eprintln!(
                "AUDIT EVENTS LOST: {} records of chain `{}` could not be stored before shutdown: {}",
                state.batch.len(),
                state.head.chain,
                state
                    .failure
                    .as_ref()
                    .map_or("the store did not recover", |f| f.error.as_str())
            );
            state.batch.clear();
        }
        if lost > 0 {
            tracing::error!(target: "audit::store", lost, "audit records lost at shutdown: the store kept failing");
            self.shared.lost.fetch_add(lost, Ordering::Relaxed);
        }
    }

    /// Takes a chunk of serialized records into its chain's batch.
    fn accept(&mut self, mut batch: ChainBatch) {
        self.held.0 += batch.len();
        self.held.1 += batch.bytes();
        let state = match self.chains.get_mut(batch.chain()) {
            Some(s) => s,
            None => self
                .chains
                .entry(batch.chain().to_owned())
                .or_insert_with(|| ChainState::new(ChainHead::genesis(batch.chain()))),
        };
        if state.batch.is_empty() {
            std::mem::swap(&mut state.batch, &mut batch);
        } else {
            // The store failed and holds earlier records: these queue behind them.
            state.batch.append(&mut batch);
        }
        // Full of spares already: let this one go.
        let _ = self.spare.try_send(batch);
    }

    /// Appends every chain's batch that is due; returns whether anything was written. A
    /// failing chain keeps its records for a later retry and never stops the others.
    fn write_buffers(&mut self) -> bool {
        self.held = (0, 0);
        let now = Instant::now();
        let mut wrote = false;
        let mut set_aside = Vec::new();
        for state in self.chains.values_mut() {
            if state.batch.is_empty() || state.failure.as_ref().is_some_and(|f| !f.due(now)) {
                continue;
            }
            // The head moves only once the store has the batch: a failed append is retried
            // from the same head.
            let mut head = state.head.clone();
            match self.store.append(&mut state.batch, &mut head) {
                Ok(()) => {
                    state.head = head;
                    state.batch.clear();
                    state.failure = None;
                    wrote = true;
                }
                Err(StoreError::Rejected { .. }) => {
                    wrote |= Self::append_one_by_one(&mut self.store, state, &mut set_aside);
                }
                Err(e) => state.failure = Some(Failure::again(state.failure.take(), e.to_string())),
            }
        }
        if !set_aside.is_empty() {
            self.keep_aside(set_aside);
        }
        wrote
    }

    /// After the store refused a batch: appends its records one at a time, chaining each onto
    /// the last one stored, and puts the refused ones in `set_aside`. Stops at a failure that
    /// is not a refusal, keeping the rest for a retry.
    fn append_one_by_one(store: &mut S, state: &mut ChainState, set_aside: &mut Vec<crate::store::SetAside>) -> bool {
        let mut wrote = false;
        let mut singles = state.batch.split_records().into_iter();
        while let Some(mut single) = singles.next() {
            let mut head = state.head.clone();
            match store.append(&mut single, &mut head) {
                Ok(()) => {
                    state.head = head;
                    wrote = true;
                }
                Err(StoreError::Rejected { reason, .. }) => {
                    set_aside.extend(single.set_aside(&reason, Timestamp::now()));
                }
                Err(e) => {
                    state.batch.append(&mut single);
                    for mut rest in singles.by_ref() {
                        state.batch.append(&mut rest);
                    }
                    state.failure = Some(Failure::again(state.failure.take(), e.to_string()));
                    return wrote;
                }
            }
        }
        state.failure = None;
        wrote
    }

    /// Keeps refused records with the store, or, where it has no place for them, in full on
    /// stderr and in `tracing`: never silently dropped.
    fn keep_aside(&mut self, records: Vec<crate::store::SetAside>) {
        let count = records.len() as u64;
        self.shared.set_aside.fetch_add(count, Ordering::Relaxed);
        for r in &records {
            eprintln!(
                "audit: the store refused a record of chain `{}`, set aside: {}",
                r.chain, r.reason
            );
        }
        if let Err(e) = self.store.set_aside(&records) {
            for r in &records {
                let line = String::from_utf8_lossy(&r.to_line()).into_owned();
                eprintln!("AUDIT RECORD SET ASIDE (the store could not keep it: {e}): {line}");
                tracing::error!(target: "audit::set_aside", record = %line, error = %e, "audit record refused by the store");
            }
            self.shared.lost.fetch_add(count, Ordering::Relaxed);
        }
    }

    /// Seals the durable head of every chain that moved since its last seal, each on its own:
    /// a chain whose seal fails never keeps the others from being sealed.
    fn seal(&mut self, durable: &HashMap<String, ChainHead>) {
        let now = Timestamp::now();
        self.seal_failures.clear();
        let mut chains: Vec<&ChainHead> = durable
            .values()
            .filter(|d| self.chains.get(&d.chain).is_some_and(|s| d.seq > s.sealed_seq))
            .collect();
        chains.sort_by(|a, b| a.chain.cmp(&b.chain));
        for head in chains {
            let seal = Seal {
                chain: head.chain.clone(),
                seq: head.seq,
                hash: head.hash,
                sealed_at: now,
            };
            match self.store.seal(std::slice::from_ref(&seal)) {
                Ok(()) => {
                    if let Some(state) = self.chains.get_mut(&seal.chain) {
                        state.sealed_seq = seal.seq;
                    }
                }
                Err(e) => {
                    eprintln!(
                        "audit: sealing chain `{}` failed (retried at the next seal): {e}",
                        seal.chain
                    );
                    tracing::error!(target: "audit::store", chain = %seal.chain, error = %e, "sealing failed");
                    self.seal_failures.push(format!("chain `{}`: {e}", seal.chain));
                }
            }
        }
    }
}
