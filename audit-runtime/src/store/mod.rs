//! Where chained records go. The writer thread owns a [`Store`] and gives it whole lines,
//! already chained; a store only has to keep the bytes, make them durable and keep seals.
//! [`append_events`] writes events into a store without the writer (imports, retention's own
//! events, tests).

mod append;
mod batch;
pub mod file;

pub use append::{append_events, event_batch};
pub use audit_chain::{ChainHead, Seal};
pub use batch::{ChainBatch, Chained, Entry};

use crate::Timestamp;
use crate::error::StoreError;

/// Work that makes appended records durable, run off the writer's thread.
pub type SyncJob = Box<dyn FnOnce() -> Result<(), StoreError> + Send>;

/// A record a store refused ([`StoreError::Rejected`]), kept apart from the chains instead of
/// being dropped: the event as it would have been recorded, without chain members.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetAside {
    /// The chain it was meant for.
    pub chain: String,
    /// Why the store refused it.
    pub reason: String,
    /// When it was set aside.
    pub at: Timestamp,
    /// The event as a JSON object: `id`, `timestamp` and the members from `actor` on, exactly
    /// as they would have stood in the record.
    pub event: Vec<u8>,
}

impl SetAside {
    /// One JSON line (without newline): `{"chain":…,"reason":…,"set_aside_at":…,"event":{…}}`.
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = Vec::with_capacity(self.event.len() + self.reason.len() + 128);
        line.extend_from_slice(br#"{"chain":"#);
        serde_json::to_writer(&mut line, &self.chain).expect("strings serialize");
        line.extend_from_slice(br#","reason":"#);
        serde_json::to_writer(&mut line, &self.reason).expect("strings serialize");
        line.extend_from_slice(br#","set_aside_at":""#);
        line.extend_from_slice(&self.at.format());
        line.extend_from_slice(br#"","event":"#);
        line.extend_from_slice(&self.event);
        line.push(b'}');
        line
    }
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

    /// Keeps records the store refused ([`StoreError::Rejected`]) apart from the chains,
    /// durably, so that a refused event is never dropped. A store that cannot keep them
    /// returns an error; the writer then reports each one in full on stderr and `tracing`.
    fn set_aside(&mut self, records: &[SetAside]) -> Result<(), StoreError> {
        let _ = records;
        Err(StoreError::Config(
            "this store has no place for set-aside records".into(),
        ))
    }
}

/// A store chosen at run time (from a location string, say) is a store too.
impl<S: Store + ?Sized> Store for Box<S> {
    fn heads(&mut self) -> Result<Vec<ChainHead>, StoreError> {
        (**self).heads()
    }

    fn append(&mut self, batch: &mut ChainBatch, head: &mut ChainHead) -> Result<(), StoreError> {
        (**self).append(batch, head)
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        (**self).sync()
    }

    fn sync_job(&mut self) -> Result<Option<SyncJob>, StoreError> {
        (**self).sync_job()
    }

    fn seal(&mut self, heads: &[Seal]) -> Result<(), StoreError> {
        (**self).seal(heads)
    }

    fn set_aside(&mut self, records: &[SetAside]) -> Result<(), StoreError> {
        (**self).set_aside(records)
    }
}
