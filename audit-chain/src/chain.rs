//! The chain rule (Contract 2): how a record line is framed and hashed onto the head of its
//! chain, and the check that records handed over from elsewhere continue a stored head.

use crate::hash::ChainHash;
use crate::line::SCHEMA_VERSION;
use crate::record::StoredRecord;
use crate::time::Timestamp;

/// The chain of events that name no tenant.
pub const DEFAULT_CHAIN: &str = "default";

/// The newest record of a chain: what the next record links to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainHead {
    /// The chain key.
    pub chain: String,
    /// `seq` of the newest record (0 for an empty chain).
    pub seq: u64,
    /// `hash` of the newest record ([`ChainHash::GENESIS`] for an empty chain).
    pub hash: ChainHash,
    /// `timestamp` of the newest record; later records never go back in time.
    pub timestamp: Timestamp,
}

impl ChainHead {
    /// The head of a chain with no record yet: seq 0, 64 zeros, no time constraint.
    pub fn genesis(chain: impl Into<String>) -> Self {
        ChainHead {
            chain: chain.into(),
            seq: 0,
            hash: ChainHash::GENESIS,
            timestamp: Timestamp::from_unix_micros(i64::MIN),
        }
    }
}

/// Appends one record line (ending in `\n`) to `out`, chained onto `head`, and advances
/// `head` to it. Returns the new record's hash.
///
/// `id` is the event's hyphenated lowercase UUID, `chain_json` the chain key as a JSON
/// string (quotes included), and `members` the serialized members from `actor` to `changes`
/// in contract order, without braces (`"actor":{...},...`). The written timestamp never goes
/// back before the head's: a clock stepping back cannot reorder a chain.
pub fn append_line(
    out: &mut Vec<u8>,
    id: &str,
    chain_json: &[u8],
    members: &[u8],
    timestamp: Timestamp,
    head: &mut ChainHead,
) -> ChainHash {
    let seq = head.seq + 1;
    let timestamp = timestamp.max(head.timestamp);
    let start = out.len();
    out.extend_from_slice(br#"{"v":"#);
    out.extend_from_slice(itoa::Buffer::new().format(SCHEMA_VERSION).as_bytes());
    out.extend_from_slice(br#","id":""#);
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(br#"","chain":"#);
    out.extend_from_slice(chain_json);
    out.extend_from_slice(br#","seq":"#);
    out.extend_from_slice(itoa::Buffer::new().format(seq).as_bytes());
    out.extend_from_slice(br#","timestamp":""#);
    out.extend_from_slice(&timestamp.format());
    out.extend_from_slice(b"\",");
    out.extend_from_slice(members);
    out.extend_from_slice(br#","prev_hash":""#);
    out.extend_from_slice(&head.hash.to_hex());
    out.extend_from_slice(b"\"}");
    // The body is the line without its `hash` member: hash it, then put `hash` inside.
    let hash = ChainHash::of(&out[start..]);
    out.pop();
    out.extend_from_slice(br#","hash":""#);
    out.extend_from_slice(&hash.to_hex());
    out.extend_from_slice(b"\"}\n");
    head.seq = seq;
    head.hash = hash;
    head.timestamp = timestamp;
    hash
}

/// Checks that `records` continue `head` (or start a chain, when there is none) and link to
/// each other: seq up by one, `prev_hash` the previous `hash`, time never going back.
pub fn check_continues(head: Option<&ChainHead>, records: &[StoredRecord]) -> Result<(), String> {
    let (mut seq, mut hash) = head.map_or((0, ChainHash::GENESIS), |h| (h.seq, h.hash));
    // Time is checked within the records only: a head read from a purge seal carries the
    // seal's time, later than the records that follow it.
    let mut ts: Option<Timestamp> = None;
    for r in records {
        if r.seq != seq + 1 {
            return Err(format!(
                "chain `{}`: seq {} does not follow the stored head at seq {seq}",
                r.chain, r.seq
            ));
        }
        if r.prev_hash != hash {
            return Err(format!(
                "chain `{}`: seq {}'s prev_hash is not the hash of seq {seq}",
                r.chain, r.seq
            ));
        }
        if ts.is_some_and(|t| r.timestamp < t) {
            return Err(format!("chain `{}`: seq {} goes back in time", r.chain, r.seq));
        }
        (seq, hash, ts) = (r.seq, r.hash, Some(r.timestamp));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::LineView;

    pub(crate) fn line(chain: &str, head: &mut ChainHead, micros: i64) -> Vec<u8> {
        let mut out = Vec::new();
        let chain_json = serde_json::to_vec(chain).unwrap();
        let members = br#""actor":{"type":"user","id":"usr_1","auth":"password"},"action":"user.login","category":"authentication","outcome":{"status":"success"}"#;
        append_line(
            &mut out,
            "01938a5e-0000-7000-8000-000000000000",
            &chain_json,
            members,
            Timestamp::from_unix_micros(micros),
            head,
        );
        out
    }

    #[test]
    fn hash_is_sha256_of_line_without_hash_member() {
        let mut head = ChainHead::genesis("default");
        let line = line("default", &mut head, 1_795_677_411_123_456);
        let text = std::str::from_utf8(&line).unwrap();
        let hash = head.hash;
        assert!(text.ends_with(&format!(",\"hash\":\"{hash}\"}}\n")));
        let body = text.trim_end().replace(&format!(",\"hash\":\"{hash}\""), "");
        assert_eq!(ChainHash::of(body.as_bytes()), hash);
        let view = LineView::parse(&line[..line.len() - 1]).unwrap();
        assert_eq!((view.seq, view.hash, view.body_hash()), (1, hash, hash));
        assert_eq!(view.chain, "default");
        assert_eq!(view.timestamp, "2026-11-26T07:16:51.123456Z");
        assert!(LineView::hash_matches(&line[..line.len() - 1]));
    }

    #[test]
    fn time_never_goes_back_and_links_follow() {
        let mut head = ChainHead::genesis("acme");
        let first = line("acme", &mut head, 2_000_000);
        let second = line("acme", &mut head, 1_000_000);
        let records: Vec<StoredRecord> = [first, second]
            .into_iter()
            .map(|mut l| {
                l.pop();
                StoredRecord::from_line(l).unwrap()
            })
            .collect();
        assert_eq!(records[1].timestamp, Timestamp::from_unix_micros(2_000_000));
        assert_eq!(records[1].prev_hash, records[0].hash);
        assert_eq!(check_continues(None, &records), Ok(()));
        let err = check_continues(None, &records[1..]).unwrap_err();
        assert!(err.contains("seq 2 does not follow"), "{err}");
    }
}
