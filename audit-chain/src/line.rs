//! The framing of a record line (Contract 1): reading back the members chaining depends on
//! without re-serializing anything, and checking a line's bytes against its `hash` member.

use sha2::{Digest, Sha256};

use crate::hash::ChainHash;
use crate::time::TIMESTAMP_LEN;

/// Schema version written in every record's `v` member.
pub const SCHEMA_VERSION: u32 = 1;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{ChainHead, append_line};
    use crate::time::Timestamp;

    fn sample(chain: &str, seq: u64) -> Vec<u8> {
        let mut head = ChainHead {
            seq: seq - 1,
            ..ChainHead::genesis(chain)
        };
        let mut out = Vec::new();
        let members = br#""actor":{"type":"system","id":"x","auth":"none"},"action":"a.b","category":"admin","outcome":{"status":"success"}"#;
        let chain_json = serde_json::to_vec(chain).unwrap();
        let id = "01938a5e-0000-7000-8000-000000000000";
        append_line(
            &mut out,
            id,
            &chain_json,
            members,
            Timestamp::from_unix_micros(0),
            &mut head,
        );
        out.pop();
        out
    }

    #[test]
    fn escaped_chain_keys_parse() {
        let line = sample("we\"ird\\key\n", 7);
        let view = LineView::parse(&line).unwrap();
        assert_eq!(view.chain, "we\"ird\\key\n");
        assert_eq!(view.seq, 7);
        assert!(LineView::hash_matches(&line));
    }

    #[test]
    fn malformed_lines_say_what_is_wrong() {
        let line = sample("default", 1);
        assert!(LineView::parse(&line[..line.len() - 3]).unwrap_err().0.contains("hash"));
        assert!(LineView::parse(b"{}").unwrap_err().0.contains("short"));
        let other = String::from_utf8(line.clone()).unwrap().replace("\"v\":1", "\"v\":2");
        assert!(
            LineView::parse(other.as_bytes())
                .unwrap_err()
                .0
                .contains("schema version")
        );
    }
}
