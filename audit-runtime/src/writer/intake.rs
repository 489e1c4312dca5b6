//! The serializing thread: takes events off the emitters' queue, resolves them against their
//! scope and spans, applies the limits, and serializes each into its chain's batch. Chunks go
//! on to the writer thread, which chains them.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};

use super::{Msg, POLL, Pending, Shared, WRITE_CHUNK, Work};
use crate::limits::{Limits, prepare};
use crate::store::ChainBatch;

pub(super) struct Intake {
    shared: Arc<Shared>,
    /// Batches the writer thread emptied, to refill.
    spare: Receiver<ChainBatch>,
    /// Per chain, the records serialized since the last hand-over.
    batches: HashMap<String, ChainBatch>,
    rng: fastrand::Rng,
    limits: Limits,
    max_batch: usize,
    commit_interval: Duration,
    buffered: usize,
    events: usize,
}

impl Intake {
    pub(super) fn new(
        shared: Arc<Shared>,
        spare: Receiver<ChainBatch>,
        limits: Limits,
        max_batch: usize,
        commit_interval: Duration,
    ) -> Self {
        Intake {
            shared,
            spare,
            batches: HashMap::new(),
            rng: fastrand::Rng::new(),
            limits,
            max_batch,
            commit_interval,
            buffered: 0,
            events: 0,
        }
    }

    pub(super) fn run(&mut self, rx: Receiver<Msg>, out: Sender<Work>) {
        let mut last_event = Instant::now();
        loop {
            let msg = if self.events > 0 {
                // Whatever is serialized moves on as soon as the queue runs dry.
                match rx.try_recv() {
                    Ok(m) => Some(m),
                    Err(TryRecvError::Empty) => {
                        if self.hand_over(&out).is_err() {
                            break;
                        }
                        last_event = Instant::now();
                        continue;
                    }
                    Err(TryRecvError::Disconnected) => None,
                }
            } else if last_event.elapsed() < self.commit_interval {
                match rx.try_recv() {
                    Ok(m) => Some(m),
                    Err(TryRecvError::Empty) => {
                        std::thread::sleep(POLL);
                        continue;
                    }
                    Err(TryRecvError::Disconnected) => None,
                }
            } else {
                rx.recv().ok()
            };
            let Some(msg) = msg else {
                // Every sender is gone: pass on what is left; dropping `out` tells the writer.
                let _ = self.hand_over(&out);
                break;
            };
            match msg {
                Msg::Event(pending) => {
                    self.serialize(*pending);
                    if (self.buffered >= WRITE_CHUNK || self.events >= self.max_batch) && self.hand_over(&out).is_err()
                    {
                        break;
                    }
                }
                Msg::Request(request) => {
                    let shutdown = matches!(request, super::Request::Shutdown(_));
                    if self.hand_over(&out).is_err() || out.send(Work::Request(request)).is_err() || shutdown {
                        break;
                    }
                }
            }
        }
        // Nothing sent from now on is delivered: emitters must know (see `FailureMode`).
        self.shared.running.store(false, Ordering::Relaxed);
        // Events still queued were accepted but will never be written: count them, loudly.
        let stranded = rx.try_iter().filter(|m| matches!(m, Msg::Event(_))).count() as u64;
        if stranded > 0 {
            eprintln!("AUDIT EVENTS LOST: {stranded} events were still queued when the audit writer stopped");
            self.shared.lost.fetch_add(stranded, Ordering::Relaxed);
        }
    }

    /// Sends every non-empty batch on to the writer thread. Fails only if it stopped; the
    /// events it could not take then count as lost.
    fn hand_over(&mut self, out: &Sender<Work>) -> Result<(), ()> {
        self.buffered = 0;
        self.events = 0;
        let mut batches = self.batches.drain().map(|(_, b)| b).filter(|b| !b.is_empty());
        while let Some(batch) = batches.next() {
            if let Err(e) = out.send(Work::Batch(batch)) {
                let stranded = match e.0 {
                    Work::Batch(b) => b.len(),
                    Work::Request(_) => 0,
                } + batches.map(|b| b.len()).sum::<usize>();
                eprintln!("AUDIT EVENTS LOST: {stranded} serialized events could not reach the stopped audit writer");
                self.shared.lost.fetch_add(stranded as u64, Ordering::Relaxed);
                return Err(());
            }
        }
        Ok(())
    }

    /// Resolves ambient values, applies limits, and serializes the record into its chain's
    /// batch.
    fn serialize(&mut self, pending: Pending) {
        let Pending { mut event, scope, span } = pending;
        let limits = self.limits;
        if let Some(scope) = &scope {
            let data = &scope.data;
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
        prepare(&mut event, &limits);
        let chain_key = event.chain_key();
        let batch = match self.batches.get_mut(chain_key) {
            Some(b) => b,
            None => {
                let mut batch = self.spare.try_recv().unwrap_or_else(|_| ChainBatch::new(chain_key));
                batch.reset(chain_key);
                self.batches.entry(chain_key.to_owned()).or_insert(batch)
            }
        };
        let micros = event.timestamp.unix_micros().max(0) as u64;
        // UUIDv7: the time in milliseconds, then random bits. Uniqueness needs randomness, not
        // secrecy, so a fast generator seeded once beats a getrandom call per event.
        let id = event.id.unwrap_or_else(|| {
            let mut random = [0u8; 10];
            self.rng.fill(&mut random);
            uuid::Builder::from_unix_timestamp_millis(micros / 1000, &random).into_uuid()
        });
        let before = batch.bytes();
        batch.push_event(event, id, limits.max_changes_bytes);
        self.buffered += batch.bytes() - before;
        self.events += 1;
    }
}
