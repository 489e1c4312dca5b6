//! Seals (Contract 2): checkpoints of a chain's head kept apart from its records, so that
//! deleting the newest records (truncation) is detected, not only edits in the middle.
//!
//! A seal line is a JSON object `{"chain":…,"seq":…,"hash":…,"sealed_at":…}`, with
//! `"purged":true` added for the seal retention writes before it removes a chain's oldest
//! records: every record up to and including `seq` was purged on purpose, and the rest of the
//! chain continues from `hash`.

use serde::{Deserialize, Serialize};

use crate::hash::ChainHash;
use crate::time::Timestamp;

/// A checkpoint of a chain: its head at `seq` had `hash`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seal {
    /// The chain key.
    pub chain: String,
    /// `seq` of the sealed record.
    pub seq: u64,
    /// `hash` of the sealed record.
    pub hash: ChainHash,
    /// When the seal was written.
    pub sealed_at: Timestamp,
}

/// A seal as stored, with its kind (see the module docs).
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

impl StoredSeal {
    /// The seal's line, without a newline.
    pub fn to_line(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("seals serialize")
    }

    /// Reads a seal line (without its newline).
    pub fn from_line(line: &[u8]) -> Result<Self, crate::Malformed> {
        serde_json::from_slice(line).map_err(|e| crate::Malformed(format!("not a seal: {e}")))
    }
}
