//! A batch of records of one chain, serialized once and chained onto a head by the store.
//!
//! Everything but the chain members (`seq`, `timestamp`, `prev_hash`, `hash`) is serialized
//! when the writer receives an event. Chaining then only concatenates bytes and hashes them,
//! so a store shared by several writer processes (PostgreSQL) can re-chain a batch onto the
//! head it finds under its lock without serializing anything again.

use std::borrow::Cow;
use std::ops::Range;

use serde::Serialize;
use uuid::Uuid;

use crate::event::{Actor, AuditEvent, Category, Changes, Context, Outcome, Resource};
use crate::store::{ChainHead, SetAside};
use crate::{ChainHash, Timestamp};

/// The members after `timestamp` and before `changes`, in contract order (`changes`, the last
/// one before `prev_hash`, is appended by [`ChainBatch::push`] with its size limit).
#[derive(Serialize)]
pub(crate) struct RecordTail<'a> {
    pub actor: &'a Actor,
    pub action: &'a str,
    pub category: Category,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<&'a Resource>,
    pub outcome: &'a Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<&'a Context>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<&'a str>,
}

/// One record of a batch, with the members stores index.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The record's UUIDv7.
    pub id: Uuid,
    /// When the event happened, as recorded (before [`ChainBatch::chain_onto`] keeps time from
    /// going backwards within the chain).
    pub timestamp: Timestamp,
    /// Who.
    pub actor: Actor,
    /// What.
    pub action: Cow<'static, str>,
    /// The action's category.
    pub category: Category,
    /// On what.
    pub resource: Option<Resource>,
    /// Whether it worked.
    pub outcome: Outcome,
    /// For which tenant.
    pub tenant: Option<String>,
    tail: Range<usize>,
    chained: Chained,
}

/// Where chaining put a record.
#[derive(Clone, Copy, Debug, Default)]
pub struct Chained {
    /// Position in the chain.
    pub seq: u64,
    /// The record's hash.
    pub hash: ChainHash,
    /// The timestamp written (never before the previous record's).
    pub timestamp: Timestamp,
    line: (usize, usize),
}

/// Records of one chain waiting to be stored.
#[derive(Debug)]
pub struct ChainBatch {
    chain: String,
    chain_json: Vec<u8>,
    tails: Vec<u8>,
    entries: Vec<Entry>,
    lines: Vec<u8>,
}

impl ChainBatch {
    /// An empty batch for `chain`.
    pub fn new(chain: &str) -> Self {
        ChainBatch {
            chain: chain.to_owned(),
            chain_json: serde_json::to_vec(chain).expect("strings serialize"),
            tails: Vec::new(),
            entries: Vec::new(),
            lines: Vec::new(),
        }
    }

    /// The chain key.
    pub fn chain(&self) -> &str {
        &self.chain
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Bytes of the records serialized so far, without their chain members.
    pub fn bytes(&self) -> usize {
        self.tails.len()
    }

    /// True when there is nothing to store.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Forgets every record (after they were stored).
    pub fn clear(&mut self) {
        self.tails.clear();
        self.entries.clear();
        self.lines.clear();
    }

    /// Empties the batch and points it at `chain`, keeping its buffers for reuse.
    pub(crate) fn reset(&mut self, chain: &str) {
        self.clear();
        if self.chain != chain {
            self.chain = chain.to_owned();
            self.chain_json = serde_json::to_vec(chain).expect("strings serialize");
        }
    }

    /// Moves the records of `other` (of the same chain, not yet chained) after these.
    pub(crate) fn append(&mut self, other: &mut ChainBatch) {
        debug_assert_eq!(self.chain, other.chain);
        let offset = self.tails.len();
        self.tails.extend_from_slice(&other.tails);
        self.entries.extend(other.entries.drain(..).map(|mut entry| {
            entry.tail = entry.tail.start + offset..entry.tail.end + offset;
            entry
        }));
        other.clear();
    }

    /// Splits the batch into one batch per record, in order, leaving this one empty: to find
    /// which records a store refuses, and chain the others without them.
    pub(crate) fn split_records(&mut self) -> Vec<ChainBatch> {
        let mut singles = Vec::with_capacity(self.entries.len());
        for mut entry in self.entries.drain(..) {
            let mut single = ChainBatch {
                chain: self.chain.clone(),
                chain_json: self.chain_json.clone(),
                tails: self.tails[entry.tail.clone()].to_vec(),
                entries: Vec::with_capacity(1),
                lines: Vec::new(),
            };
            entry.tail = 0..single.tails.len();
            single.entries.push(entry);
            singles.push(single);
        }
        self.clear();
        singles
    }

    /// The records as they would have been recorded, without chain members, to be set aside
    /// (see [`Store::set_aside`](crate::Store::set_aside)).
    pub fn set_aside(&self, reason: &str, at: Timestamp) -> Vec<SetAside> {
        let mut id_buf = Uuid::encode_buffer();
        self.entries
            .iter()
            .map(|entry| {
                let tail = &self.tails[entry.tail.clone()];
                let mut event = Vec::with_capacity(tail.len() + 80);
                event.extend_from_slice(br#"{"id":""#);
                event.extend_from_slice(entry.id.hyphenated().encode_lower(&mut id_buf).as_bytes());
                event.extend_from_slice(br#"","timestamp":""#);
                event.extend_from_slice(&entry.timestamp.format());
                event.extend_from_slice(b"\",");
                event.extend_from_slice(tail);
                event.push(b'}');
                SetAside {
                    chain: self.chain.clone(),
                    reason: reason.to_owned(),
                    at,
                    event,
                }
            })
            .collect()
    }

    /// Adds an event that went through [`prepare`](crate::limits::prepare) (actor resolved,
    /// members cut to the limits), as record `id`.
    pub(crate) fn push_event(&mut self, event: AuditEvent, id: Uuid, max_changes_bytes: usize) {
        let context = (!event.context.is_empty()).then_some(&event.context);
        self.push(
            id,
            event.timestamp,
            event.actor.unwrap_or_else(Actor::unknown),
            event.action,
            event.category,
            event.resource,
            event.outcome,
            context,
            event.tenant,
            event.changes.as_ref(),
            max_changes_bytes,
        );
    }

    /// Adds a record: serializes everything but its chain members.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn push(
        &mut self,
        id: Uuid,
        timestamp: Timestamp,
        actor: Actor,
        action: Cow<'static, str>,
        category: Category,
        resource: Option<Resource>,
        outcome: Outcome,
        context: Option<&Context>,
        tenant: Option<String>,
        changes: Option<&Changes>,
        max_changes_bytes: usize,
    ) {
        let start = self.tails.len();
        let tail = RecordTail {
            actor: &actor,
            action: &action,
            category,
            resource: resource.as_ref(),
            outcome: &outcome,
            context,
            tenant: tenant.as_deref(),
        };
        serde_json::to_writer(&mut self.tails, &tail).expect("records serialize to memory");
        // Keep `"actor":...` without the object's braces: it is spliced into the record.
        self.tails.pop();
        if let Some(changes) = changes.filter(|c| c.before.is_some() || c.after.is_some()) {
            self.tails.extend_from_slice(br#","changes":"#);
            let at = self.tails.len();
            serde_json::to_writer(&mut self.tails, changes).expect("values serialize to memory");
            let size = self.tails.len() - at;
            if size > max_changes_bytes {
                // An oversized diff must not cost the whole event: say how much went instead.
                self.tails.truncate(at);
                let marker = serde_json::json!({ "truncated": true, "bytes": size });
                let marked = Changes {
                    before: Some(marker.clone()),
                    after: Some(marker),
                    fields: Vec::new(),
                };
                serde_json::to_writer(&mut self.tails, &marked).expect("values serialize to memory");
            }
        }
        let end = self.tails.len();
        self.entries.push(Entry {
            id,
            timestamp,
            actor,
            action,
            category,
            resource,
            outcome,
            tenant,
            tail: start + 1..end,
            chained: Chained::default(),
        });
    }

    /// Chains every record onto `head` (advancing it) and returns the complete lines, each
    /// ending in `\n`. Calling it again with another head re-chains the same records.
    pub fn chain_onto(&mut self, head: &mut ChainHead) -> &[u8] {
        self.lines.clear();
        let mut id_buf = Uuid::encode_buffer();
        for entry in &mut self.entries {
            let start = self.lines.len();
            let id = entry.id.hyphenated().encode_lower(&mut id_buf);
            let tail = &self.tails[entry.tail.clone()];
            let hash = audit_chain::append_line(&mut self.lines, id, &self.chain_json, tail, entry.timestamp, head);
            entry.chained = Chained {
                seq: head.seq,
                hash,
                timestamp: head.timestamp,
                line: (start, self.lines.len()),
            };
        }
        &self.lines
    }

    /// The records with their chained position and exact line (with `\n`), after
    /// [`chain_onto`](ChainBatch::chain_onto).
    pub fn records(&self) -> impl Iterator<Item = (&Entry, &Chained, &[u8])> {
        self.entries
            .iter()
            .map(|e| (e, &e.chained, &self.lines[e.chained.line.0..e.chained.line.1]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{AuthMethod, Outcome};
    use crate::record::LineView;

    fn push(batch: &mut ChainBatch, id: &str) {
        batch.push(
            Uuid::now_v7(),
            Timestamp::now(),
            Actor::user("usr_1", AuthMethod::Password),
            "user.login".into(),
            Category::Authentication,
            Some(Resource::new("user", id)),
            Outcome::Success,
            None,
            Some("acme".into()),
            None,
            1 << 10,
        );
    }

    #[test]
    fn appended_records_chain_after_the_held_ones() {
        let mut held = ChainBatch::new("acme");
        push(&mut held, "a");
        push(&mut held, "b");
        let mut later = ChainBatch::new("acme");
        push(&mut later, "c");
        held.append(&mut later);
        assert!(later.is_empty());

        let mut head = ChainHead {
            chain: "acme".into(),
            seq: 0,
            hash: ChainHash::GENESIS,
            timestamp: Timestamp::from_unix_micros(0),
        };
        held.chain_onto(&mut head);
        let mut prev = ChainHash::GENESIS;
        let ids: Vec<String> = held
            .records()
            .map(|(entry, chained, line)| {
                let line = line.strip_suffix(b"\n").unwrap();
                assert!(LineView::hash_matches(line));
                let view = LineView::parse(line).unwrap();
                assert_eq!((view.seq, view.prev_hash), (chained.seq, prev));
                prev = view.hash;
                let record: crate::Record = serde_json::from_slice(line).unwrap();
                assert_eq!(record.resource.as_ref(), entry.resource.as_ref());
                record.resource.unwrap().id
            })
            .collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(head.seq, 3);
    }
}
