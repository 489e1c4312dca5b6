//! The writer thread: chains the serialized chunks onto each chain's head, hands them to the
//! store, and makes them durable with group commit on the sync thread.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError, bounded};

use super::{POLL, Reply, Request, Shared, WRITE_CHUNK, Work};
use crate::Timestamp;
use crate::error::StoreError;
use crate::store::{ChainBatch, ChainHead, Seal, Store, SyncJob};

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

pub(super) struct Writer<S> {
    store: S,
    shared: Arc<Shared>,
    chains: HashMap<String, ChainState>,
    /// Emptied batches go back to the serializing thread, which refills them.
    spare: Sender<ChainBatch>,
    max_batch: usize,
    commit_interval: Duration,
    seal_interval: Duration,
    /// Events and bytes taken since the last write.
    held: (usize, usize),
}

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

impl<S: Store> Writer<S> {
    pub(super) fn new(
        store: S,
        shared: Arc<Shared>,
        heads: Vec<ChainHead>,
        spare: Sender<ChainBatch>,
        max_batch: usize,
        commit_interval: Duration,
        seal_interval: Duration,
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
            commit_interval,
            seal_interval,
            held: (0, 0),
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

        let mut written = 0u64; // generation of the last successful write
        let mut synced = 0u64; // generation covered by the last completed sync
        let mut in_flight = false;
        let mut failed: Option<String> = None;
        let mut last_sync = Instant::now();
        let mut last_seal = Instant::now();
        let mut last_work = Instant::now();
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
            } else if busy || last_work.elapsed() < self.commit_interval {
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

    fn write_buffers(&mut self) -> Result<bool, StoreError> {
        self.held = (0, 0);
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
}
