//! One stored record: its chain members and its exact line, as every store hands it out.

use crate::hash::ChainHash;
use crate::line::{LineView, Malformed};
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
}
