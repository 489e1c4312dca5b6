//! The serializing thread: takes events off the emitters' queue, resolves them against their
//! scope and spans, applies the limits, and serializes each into its chain's batch. Chunks go
//! on to the writer thread, which chains them.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};

use super::{DEFAULT_CHAIN, Limits, Msg, POLL, Pending, Shared, WRITE_CHUNK, Work};
use crate::event::{Actor, AuditEvent};
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
    }

    /// Sends every non-empty batch on to the writer thread. Fails only if it stopped.
    fn hand_over(&mut self, out: &Sender<Work>) -> Result<(), ()> {
        self.buffered = 0;
        self.events = 0;
        for (_, batch) in self.batches.drain() {
            if !batch.is_empty() {
                out.send(Work::Batch(batch)).map_err(drop)?;
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
        let context = (!event.context.is_empty()).then_some(&event.context);
        let before = batch.bytes();
        batch.push(
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
        self.buffered += batch.bytes() - before;
        self.events += 1;
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
