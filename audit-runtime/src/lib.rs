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

pub mod copy;
mod emit;
mod error;
mod event;
pub mod export;
mod layer;
pub mod model;
pub mod query;
pub mod record;
pub mod retention;
mod scope;
pub mod store;
mod time;
pub mod verify;
mod writer;

pub use emit::{FailureMode, ensure_sink, failure_mode, set_failure_mode, sink_is_healthy, undelivered_count};
pub use error::{AuditError, StoreError};
pub use event::{
    Actor, ActorRef, ActorType, AuditEvent, AuthMethod, Category, Changes, Context, Outcome, REDACTED, Resource,
};
pub use layer::AuditLayer;
pub use model::AuditModel;
pub use record::{ChainHash, Record};
pub use scope::{AuditScope, ScopeGuard, Scoped, WithAuditScope};
pub use store::file::{FileStore, FileStoreOptions};
pub use store::{ChainHead, Seal, Store, SyncJob};
pub use time::Timestamp;
pub use writer::{AuditLayerBuilder, DEFAULT_CHAIN, Limits, OnFull, WriterGuard};
