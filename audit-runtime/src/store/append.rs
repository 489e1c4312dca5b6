//! Writing events into a store directly, without the writer's threads or `tracing`: imports,
//! retention's own events, tests.

use std::collections::HashMap;

use crate::error::StoreError;
use crate::event::AuditEvent;
use crate::limits::{Limits, prepare};
use crate::store::{ChainBatch, ChainHead, Store};

/// A batch of `events` for `chain`, serialized with the default [`Limits`] and ready for
/// [`Store::append`]. The events' own tenants are kept as they are; an event without an actor
/// gets the `unknown` system actor, and an event without a fixed id a fresh UUIDv7, as in the
/// writer.
pub fn event_batch(chain: &str, events: impl IntoIterator<Item = AuditEvent>) -> ChainBatch {
    let limits = Limits::default();
    prepared_batch(
        chain,
        events.into_iter().map(|mut event| {
            prepare(&mut event, &limits);
            event
        }),
        &limits,
    )
}

/// A batch of events that went through [`prepare`].
fn prepared_batch(chain: &str, events: impl IntoIterator<Item = AuditEvent>, limits: &Limits) -> ChainBatch {
    let ctx = uuid::ContextV7::new();
    let mut batch = ChainBatch::new(chain);
    for event in events {
        let micros = event.timestamp.unix_micros().max(0) as u64;
        // An id fixed by the caller (an outbox relay) is kept, as the writer does.
        let id = event.fixed_id().unwrap_or_else(|| {
            uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
                &ctx,
                micros / 1_000_000,
                (micros % 1_000_000) as u32 * 1000,
            ))
        });
        batch.push_event(event, id, limits.max_changes_bytes);
    }
    batch
}

/// Appends `events` to `store` synchronously (one batch per chain, then a sync), without a
/// writer thread or `tracing`. Only for a store no writer is using in this process (the file
/// store's lock prevents other processes anyway). Returns the new heads of the chains
/// written.
pub fn append_events<S: Store + ?Sized>(
    store: &mut S,
    events: impl IntoIterator<Item = AuditEvent>,
) -> Result<Vec<ChainHead>, StoreError> {
    let limits = Limits::default();
    let mut by_chain: Vec<(String, Vec<AuditEvent>)> = Vec::new();
    for mut event in events {
        prepare(&mut event, &limits);
        let chain = event.chain_key().to_owned();
        match by_chain.iter_mut().find(|(c, _)| *c == chain) {
            Some((_, list)) => list.push(event),
            None => by_chain.push((chain, vec![event])),
        }
    }
    if by_chain.is_empty() {
        return Ok(Vec::new());
    }
    let heads: HashMap<String, ChainHead> = store.heads()?.into_iter().map(|h| (h.chain.clone(), h)).collect();
    let mut out = Vec::new();
    for (chain, events) in by_chain {
        let mut head = heads.get(&chain).cloned().unwrap_or_else(|| ChainHead::genesis(&chain));
        let mut batch = prepared_batch(&chain, events, &limits);
        store.append(&mut batch, &mut head)?;
        out.push(head);
    }
    store.sync()?;
    Ok(out)
}
