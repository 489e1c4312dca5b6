use std::fmt;
use std::str::FromStr;

use crate::{StoredRecord, Timestamp};

/// Where a page ended: the sort key `(timestamp, chain, seq)` of its last record. The next
/// page starts strictly after it in the query's order. Its text form (`Display`/`FromStr`)
/// is opaque and URL-safe, for APIs that hand it to clients.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Cursor {
    /// Timestamp of the last record returned.
    pub timestamp: Timestamp,
    /// Its chain.
    pub chain: String,
    /// Its seq.
    pub seq: u64,
}

impl Cursor {
    /// The cursor that continues after `record`.
    pub fn after(record: &StoredRecord) -> Self {
        Cursor {
            timestamp: record.timestamp,
            chain: record.chain.clone(),
            seq: record.seq,
        }
    }

    pub(super) fn key(&self) -> (Timestamp, &str, u64) {
        (self.timestamp, &self.chain, self.seq)
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{}-{}",
            self.timestamp.unix_micros(),
            self.seq,
            hex::encode(self.chain.as_bytes())
        )
    }
}

impl FromStr for Cursor {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("`{text}` is not a cursor returned by a query");
        // Micros may be negative, so split from the right.
        let mut parts = text.rsplitn(3, '-');
        let chain = parts.next().ok_or_else(bad)?;
        let seq = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        let micros = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        let chain = hex::decode(chain)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(bad)?;
        Ok(Cursor {
            timestamp: Timestamp::from_unix_micros(micros),
            chain,
            seq,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        for chain in ["acme", "we-ird/chain", "", "ünï"] {
            for micros in [0, -5, 1_795_677_411_123_456] {
                let c = Cursor {
                    timestamp: Timestamp::from_unix_micros(micros),
                    chain: chain.into(),
                    seq: 42,
                };
                assert_eq!(c.to_string().parse::<Cursor>().unwrap(), c);
            }
        }
        assert!("nonsense".parse::<Cursor>().is_err());
    }
}
