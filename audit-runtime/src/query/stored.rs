use serde::{Deserialize, Serialize};

use super::{Cursor, Indexed};
use crate::record::{ChainHash, LineView, Malformed, Record};
use crate::store::Seal;
use crate::time::Timestamp;

/// One stored record: its chain members and its exact line (without the newline).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecord {
    /// The chain key.
    pub chain: String,
    /// Position in the chain.
    pub seq: u64,
    /// The `timestamp` member.
    pub timestamp: Timestamp,
    /// The `prev_hash` member.
    pub prev_hash: ChainHash,
    /// The `hash` member.
    pub hash: ChainHash,
    /// The exact stored bytes, without the trailing newline.
    pub line: Vec<u8>,
}

impl StoredRecord {
    /// Reads the chain members of `line` (without its newline). The hash is not checked
    /// here: verification does that.
    pub fn from_line(line: Vec<u8>) -> Result<Self, Malformed> {
        let view = LineView::parse(&line)?;
        let timestamp = Timestamp::parse(view.timestamp).map_err(Malformed)?;
        let (chain, seq, prev_hash, hash) = (view.chain.into_owned(), view.seq, view.prev_hash, view.hash);
        Ok(StoredRecord {
            chain,
            seq,
            timestamp,
            prev_hash,
            hash,
            line,
        })
    }

    /// The cursor that continues after this record.
    pub fn cursor(&self) -> Cursor {
        Cursor {
            timestamp: self.timestamp,
            chain: self.chain.clone(),
            seq: self.seq,
        }
    }

    /// The whole record, parsed.
    pub fn record(&self) -> Result<Record, Malformed> {
        Record::parse(&self.line)
    }

    /// Its indexed members.
    pub fn indexed(&self) -> Result<Indexed, Malformed> {
        Indexed::from_line(&self.line)
    }
}

/// A seal as stored, with its kind. A purge seal (`"purged":true`) is written by retention
/// before it removes records: every record of the chain up to and including `seq` was
/// purged on purpose, and the remaining chain continues from `hash`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSeal {
    /// The checkpoint.
    #[serde(flatten)]
    pub seal: Seal,
    /// True for a retention purge seal.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub purged: bool,
}

impl From<Seal> for StoredSeal {
    /// A writer's checkpoint (not a purge seal).
    fn from(seal: Seal) -> Self {
        StoredSeal { seal, purged: false }
    }
}
