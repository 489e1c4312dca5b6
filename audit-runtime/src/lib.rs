//! Runtime of the audit toolkit: the event model, the ambient request scope, the `tracing`
//! layer, the writer that hash-chains records into a store, and verification and export.
//!
//! Most applications depend on the `audit` facade crate instead, which re-exports all of
//! this together with the `#[audited]` macro.
//!
//! ```
//! use audit_runtime::{Actor, AuditEvent, AuditLayer, AuditScope, AuthMethod, Category, FileStore};
//! use tracing_subscriber::prelude::*;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let (layer, guard) = AuditLayer::builder(FileStore::open(dir.path())?).build()?;
//! let subscriber = tracing_subscriber::registry().with(layer);
//! tracing::subscriber::with_default(subscriber, || {
//!     let scope = AuditScope::new().actor(Actor::user("usr_123", AuthMethod::Sso)).tenant("acme");
//!     scope.in_scope(|| {
//!         AuditEvent::new("customer_record.read", Category::DataAccess)
//!             .resource("customer", "cust_abc123")
//!             .emit()
//!     })
//! })?;
//! guard.flush()?; // durable from here on
//! drop(guard);
//! let report = audit_runtime::verify::verify_paths(&[dir.path()], &Default::default())?;
//! assert!(report.is_ok());
//! assert_eq!(report.chains[0].count, 1);
//! # Ok(()) }
//! ```

mod action;
pub mod copy;
mod emit;
mod error;
mod event;
pub mod export;
mod layer;
mod limits;
pub mod model;
pub mod query;
pub mod record;
pub mod redact;
pub mod retention;
mod scope;
pub mod store;
pub mod verify;
mod writer;

/// The contract crate: record framing, the chain rule, seals and the verifier of line streams
/// (what an outside verifier takes on its own).
pub use audit_chain as chain;
pub use audit_chain::{
    ChainHash, ChainHead, DEFAULT_CHAIN, Seal, StoredRecord, StoredSeal, Timestamp, check_continues,
};

pub use action::{
    Action, CompiledVocabulary, VocabularyEntry, install_vocabulary, installed_vocabulary, unknown_action_count,
};
pub use emit::{FailureMode, ensure_sink, failure_mode, set_failure_mode, sink_is_healthy, undelivered_count};
pub use error::{AuditError, StoreError};
pub use event::{
    Actor, ActorRef, ActorType, AuditEvent, AuthMethod, Category, Changes, Context, Outcome, REDACTED, Resource,
};
pub use layer::AuditLayer;
pub use limits::Limits;
pub use model::{AuditModel, ModelAction};
pub use record::Record;
pub use redact::{fingerprint, set_fingerprint_key};
pub use scope::{
    AuditScope, ChangeSlot, CollectGuard, HeldEvent, RESPONSE_ERROR, ScopeGuard, Scoped, SharedScope, SharedScoped,
    WithAuditScope,
};
pub use store::file::{FileSource, FileStore, FileStoreOptions};
pub use store::{SetAside, Store, SyncJob};
pub use writer::{AuditLayerBuilder, OnFull, StoreFailure, WriterGuard};
