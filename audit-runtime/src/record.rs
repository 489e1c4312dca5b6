//! The exact bytes of a chained record (Contracts 1 and 2 of DESIGN.md): writing a line,
//! and reading back the few members verification needs without re-serializing anything.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::event::{Actor, Category, Changes, Context, Outcome, Resource};
use crate::time::{TIMESTAMP_LEN, Timestamp};

/// Schema version written in every record's `v` member.
pub const SCHEMA_VERSION: u32 = 1;

/// A SHA-256 chain hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ChainHash(pub [u8; 32]);

impl ChainHash {
    /// The `prev_hash` of the first record of every chain: 64 zeros.
    pub const GENESIS: ChainHash = ChainHash([0; 32]);

    /// SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        ChainHash(Sha256::digest(bytes).into())
    }

    /// The 64-character lowercase hex form.
    pub fn to_hex(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        hex::encode_to_slice(self.0, &mut out).expect("64 bytes for 32");
        out
    }

    /// Parses 64 lowercase hex digits (uppercase is rejected: the contract says lowercase).
    pub fn from_hex(text: &[u8]) -> Option<Self> {
        // Verification decodes two hashes per record: a table lookup per digit keeps that
        // well below the cost of the SHA-256 it checks.
        const INVALID: u8 = 0xff;
        const TABLE: [u8; 256] = {
            let mut t = [INVALID; 256];
            let mut i = 0;
            while i < 10 {
                t[b'0' as usize + i] = i as u8;
                i += 1;
            }
            let mut i = 0;
            while i < 6 {
                t[b'a' as usize + i] = 10 + i as u8;
                i += 1;
            }
            t
        };
        let text: &[u8; 64] = text.try_into().ok()?;
        let mut out = [0u8; 32];
        let mut bad = 0u8;
        for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
            let (hi, lo) = (TABLE[pair[0] as usize], TABLE[pair[1] as usize]);
            bad |= (hi | lo) & 0xf0;
            *byte = (hi << 4) | (lo & 0x0f);
        }
        (bad == 0).then_some(ChainHash(out))
    }
}

impl fmt::Display for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(std::str::from_utf8(&self.to_hex()).expect("hex is ascii"))
    }
}

impl fmt::Debug for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainHash({self})")
    }
}

impl Serialize for ChainHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(std::str::from_utf8(&self.to_hex()).expect("hex is ascii"))
    }
}

impl<'de> Deserialize<'de> for ChainHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        ChainHash::from_hex(text.as_bytes()).ok_or_else(|| serde::de::Error::custom("expected 64 lowercase hex digits"))
    }
}

/// Bytes of `,"hash":"<64 hex>"}` at the end of every line.
pub const HASH_SUFFIX_LEN: usize = 9 + 64 + 2;
/// Bytes of `,"prev_hash":"<64 hex>"` just before the hash member.
const PREV_SUFFIX_LEN: usize = 14 + 64 + 1;

/// What is wrong with a line that is not a record.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(pub String);

/// The members of one record line that chaining depends on, borrowed from the line.
///
/// Parsing relies only on the member order fixed by the contract, so it costs a few
/// comparisons; the hash check covers every other byte.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineView<'a> {
    /// The chain key.
    pub chain: std::borrow::Cow<'a, str>,
    /// Position in the chain, from 1.
    pub seq: u64,
    /// The `timestamp` member's text.
    pub timestamp: &'a str,
    /// Hash of the previous record in the chain.
    pub prev_hash: ChainHash,
    /// This record's hash as written.
    pub hash: ChainHash,
    body_prefix: &'a [u8],
}

impl<'a> LineView<'a> {
    /// Parses the framing of `line` (without its trailing newline).
    pub fn parse(line: &'a [u8]) -> Result<Self, Malformed> {
        let bad = |what: &str| Malformed(what.to_owned());
        if line.len() < HASH_SUFFIX_LEN + PREV_SUFFIX_LEN + 20 {
            return Err(bad("too short to be a record"));
        }
        let hash_at = line.len() - HASH_SUFFIX_LEN;
        let suffix = &line[hash_at..];
        if !suffix.starts_with(br#","hash":""#) || !suffix.ends_with(b"\"}") {
            return Err(bad(r#"does not end with the `"hash":"<64 hex>"}` member"#));
        }
        let hash = ChainHash::from_hex(&suffix[9..73]).ok_or_else(|| bad("`hash` is not 64 lowercase hex digits"))?;
        let prev_at = hash_at - PREV_SUFFIX_LEN;
        let prev = &line[prev_at..hash_at];
        if !prev.starts_with(br#","prev_hash":""#) || prev[PREV_SUFFIX_LEN - 1] != b'"' {
            return Err(bad("`prev_hash` is not the member before `hash`"));
        }
        let prev_hash =
            ChainHash::from_hex(&prev[14..78]).ok_or_else(|| bad("`prev_hash` is not 64 lowercase hex digits"))?;

        let rest = line
            .strip_prefix(br#"{"v":1,"id":""#)
            .ok_or_else(|| bad(r#"does not start with `{"v":1,"id":"` (schema version 1)"#))?;
        if rest.len() < 37 || rest[36] != b'"' {
            return Err(bad("`id` is not a hyphenated UUID"));
        }
        let rest = rest[37..]
            .strip_prefix(br#","chain":"#)
            .ok_or_else(|| bad("`chain` does not follow `id`"))?;
        let (chain, rest) = json_string(rest).ok_or_else(|| bad("`chain` is not a JSON string"))?;
        let rest = rest
            .strip_prefix(br#","seq":"#)
            .ok_or_else(|| bad("`seq` does not follow `chain`"))?;
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || digits > 20 || (digits > 1 && rest[0] == b'0') {
            return Err(bad("`seq` is not an unsigned integer"));
        }
        let seq: u64 = std::str::from_utf8(&rest[..digits])
            .expect("digits")
            .parse()
            .map_err(|_| bad("`seq` does not fit in 64 bits"))?;
        if seq == 0 {
            return Err(bad("`seq` starts from 1"));
        }
        let rest = rest[digits..]
            .strip_prefix(br#","timestamp":""#)
            .ok_or_else(|| bad("`timestamp` does not follow `seq`"))?;
        if rest.len() < TIMESTAMP_LEN + 1 || rest[TIMESTAMP_LEN] != b'"' {
            return Err(bad("`timestamp` is not RFC 3339 UTC with six fractional digits"));
        }
        let timestamp = std::str::from_utf8(&rest[..TIMESTAMP_LEN]).map_err(|_| bad("`timestamp` is not text"))?;
        if !timestamp_shape(timestamp.as_bytes()) {
            return Err(bad("`timestamp` is not RFC 3339 UTC with six fractional digits"));
        }
        Ok(LineView {
            chain,
            seq,
            timestamp,
            prev_hash,
            hash,
            body_prefix: &line[..hash_at],
        })
    }

    /// Whether a line's bytes match its `hash` member, without parsing anything else: the
    /// part of verification that lines can do independently, on several threads. A line whose
    /// hash member is unreadable counts as matching here; [`LineView::parse`] reports it.
    pub fn hash_matches(line: &[u8]) -> bool {
        let Some(at) = line.len().checked_sub(HASH_SUFFIX_LEN) else {
            return true;
        };
        let suffix = &line[at..];
        if !suffix.starts_with(br#","hash":""#) || !suffix.ends_with(b"\"}") {
            return true;
        }
        let Some(hash) = ChainHash::from_hex(&suffix[9..73]) else {
            return true;
        };
        let mut hasher = Sha256::new();
        hasher.update(&line[..at]);
        hasher.update(b"}");
        ChainHash(hasher.finalize().into()) == hash
    }

    /// SHA-256 of the body (the line without its `hash` member), per Contract 2.
    pub fn body_hash(&self) -> ChainHash {
        let mut hasher = Sha256::new();
        hasher.update(self.body_prefix);
        hasher.update(b"}");
        ChainHash(hasher.finalize().into())
    }
}

fn timestamp_shape(t: &[u8]) -> bool {
    const SHAPE: &[u8; TIMESTAMP_LEN] = b"dddd-dd-ddTdd:dd:dd.ddddddZ";
    t.len() == TIMESTAMP_LEN
        && t.iter()
            .zip(SHAPE)
            .all(|(b, s)| if *s == b'd' { b.is_ascii_digit() } else { b == s })
}

/// Reads a JSON string token at the start of `bytes`; returns its value and the rest.
fn json_string(bytes: &[u8]) -> Option<(std::borrow::Cow<'_, str>, &[u8])> {
    let body = bytes.strip_prefix(b"\"")?;
    let end = body.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
    if body[end] == b'"' {
        let text = std::str::from_utf8(&body[..end]).ok()?;
        return Some((text.into(), &body[end + 1..]));
    }
    // Escapes are rare in chain keys: let serde_json decode them.
    let mut stream = serde_json::Deserializer::from_slice(bytes).into_iter::<String>();
    let value = stream.next()?.ok()?;
    let used = stream.byte_offset();
    Some((value.into(), &bytes[used..]))
}

/// A whole record, parsed with serde for export and queries (verification does not need it).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct Record {
    /// Schema version.
    pub v: u32,
    /// UUIDv7 of the event.
    pub id: uuid::Uuid,
    /// Chain key.
    pub chain: String,
    /// Position in the chain.
    pub seq: u64,
    /// When the event happened.
    pub timestamp: Timestamp,
    /// Who.
    pub actor: Actor,
    /// What.
    pub action: String,
    /// The action's category.
    pub category: Category,
    /// On what.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<Resource>,
    /// Whether it worked.
    pub outcome: Outcome,
    /// From where.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Context>,
    /// For which customer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Before/after state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<Changes>,
    /// Previous record's hash.
    pub prev_hash: ChainHash,
    /// This record's hash.
    pub hash: ChainHash,
}

impl Record {
    /// Parses one line with serde, naming what is wrong.
    pub fn parse(line: &[u8]) -> Result<Self, Malformed> {
        serde_json::from_slice(line).map_err(|e| Malformed(format!("not a valid record: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(chain: &str, seq: u64, prev: ChainHash) -> (Vec<u8>, ChainHash) {
        let mut batch = crate::store::ChainBatch::new(chain);
        batch.push(
            uuid::Uuid::nil(),
            Timestamp::from_unix_micros(1_795_677_411_123_456),
            Actor::user("usr_1", crate::AuthMethod::Password),
            "user.login".into(),
            Category::Authentication,
            None,
            Outcome::Success,
            None,
            None,
            None,
            usize::MAX,
        );
        let mut head = crate::ChainHead {
            chain: chain.into(),
            seq: seq - 1,
            hash: prev,
            timestamp: Timestamp::from_unix_micros(0),
        };
        let line = batch.chain_onto(&mut head).to_vec();
        (line, head.hash)
    }

    #[test]
    fn hash_is_sha256_of_line_without_hash_member() {
        let (line, hash) = sample("default", 1, ChainHash::GENESIS);
        let text = std::str::from_utf8(&line).unwrap();
        assert!(text.ends_with(&format!(",\"hash\":\"{hash}\"}}\n")));
        let body = text.trim_end().replace(&format!(",\"hash\":\"{hash}\""), "");
        assert_eq!(ChainHash::of(body.as_bytes()), hash);
        let view = LineView::parse(&line[..line.len() - 1]).unwrap();
        assert_eq!((view.seq, view.hash, view.body_hash()), (1, hash, hash));
        assert_eq!(view.chain, "default");
        assert_eq!(view.timestamp, "2026-11-26T07:16:51.123456Z");
    }

    #[test]
    fn escaped_chain_keys_parse() {
        let (line, _) = sample("we\"ird\\key\n", 7, ChainHash::GENESIS);
        let view = LineView::parse(&line[..line.len() - 1]).unwrap();
        assert_eq!(view.chain, "we\"ird\\key\n");
        assert_eq!(view.seq, 7);
        let record = Record::parse(&line).unwrap();
        assert_eq!(record.chain, "we\"ird\\key\n");
    }

    #[test]
    fn malformed_lines_say_what_is_wrong() {
        let (line, _) = sample("default", 1, ChainHash::GENESIS);
        let line = &line[..line.len() - 1];
        assert!(LineView::parse(&line[..line.len() - 3]).unwrap_err().0.contains("hash"));
        assert!(LineView::parse(b"{}").unwrap_err().0.contains("short"));
        let upper = String::from_utf8(line.to_vec()).unwrap().replace("\"v\":1", "\"v\":2");
        assert!(
            LineView::parse(upper.as_bytes())
                .unwrap_err()
                .0
                .contains("schema version")
        );
    }
}
