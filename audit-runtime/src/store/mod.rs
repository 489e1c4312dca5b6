//! Where chained records go. The writer thread owns a [`Store`] and gives it whole lines,
//! already chained; a store only has to keep the bytes, make them durable and keep seals.

mod batch;
pub mod file;

pub use batch::{ChainBatch, Chained, Entry};

use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::record::ChainHash;
use crate::time::Timestamp;

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

/// Work that makes appended records durable, run off the writer's thread.
pub type SyncJob = Box<dyn FnOnce() -> Result<(), StoreError> + Send>;

/// A checkpoint of a chain kept apart from its events, so that deleting the newest events
/// (truncation) is detected, not only edits in the middle.
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

/// A chained-record store, driven by one writer thread.
///
/// The writer calls [`append`](Store::append) with a batch per chain, then
/// [`sync`](Store::sync) at each group commit, then [`seal`](Store::seal) now and then. If
/// `append` fails, the store must leave no partial record behind, because the writer retries
/// the same batch.
pub trait Store: Send + 'static {
    /// The heads of every chain already stored, read once when the writer starts (after any
    /// repair of a torn last line).
    fn heads(&mut self) -> Result<Vec<ChainHead>, StoreError>;

    /// Chains `batch` onto `head` with [`ChainBatch::chain_onto`] (which advances `head`) and
    /// appends the lines. A store that several processes write to takes its per-chain lock,
    /// replaces `head` with the head it finds stored, and chains onto that.
    fn append(&mut self, batch: &mut ChainBatch, head: &mut ChainHead) -> Result<(), StoreError>;

    /// Makes everything appended so far durable (survives power loss, not only `kill -9`).
    fn sync(&mut self) -> Result<(), StoreError>;

    /// Starts making everything appended so far durable on another thread: returns the work
    /// to run there, so the writer keeps writing while the disk syncs. Stores whose sync must
    /// run on the writer's thread (a database commit) sync here and return `None`.
    fn sync_job(&mut self) -> Result<Option<SyncJob>, StoreError> {
        self.sync()?;
        Ok(None)
    }

    /// Records seals of these heads, durably; called only after `sync` covered them.
    fn seal(&mut self, heads: &[Seal]) -> Result<(), StoreError>;
}
