//! Audit logging for Rust services: who did what to which resource, when, from where, and
//! whether it worked, written to an append-only, hash-chained store anyone can verify.
//!
//! This is the one crate applications depend on (the package is `audit-log`, the library
//! `audit`). It re-exports the runtime ([`audit_runtime`]): the event model, the ambient
//! [`AuditScope`], the [`AuditLayer`] for `tracing`, the chained [`FileStore`], verification
//! and export; the macros: the [`macro@audited`] attribute and the [`derive@AuditModel`]
//! derive; and, with features, the other stores and integrations:
//!
//! | feature | adds |
//! |---|---|
//! | *(default)* | everything above, with the file store: the embedded default, no server needed |
//! | `sqlite` | `audit::sqlite`: the SQLite store, and `sqlite://PATH` locations |
//! | `postgres` | `audit::postgres`: the PostgreSQL store, and `postgres://...` locations |
//! | `diesel-sqlite` | `audit::diesel`: audited diesel inserts, updates and deletes on SQLite |
//! | `diesel-postgres` | `audit::diesel`: the same on PostgreSQL |
//! | `diesel-async` | `audit::diesel::AsyncAudited`: the same on diesel-async (`AsyncPgConnection`, plain or pooled by deadpool or bb8) |
//! | `axum` | `audit::http`: the tower layer opening each request's scope, extractors; `#[audited]` handlers record 4xx/5xx as failures and answer 503 when refused |
//! | `full` | all of the above |
//!
//! [`open_store`] and [`open_source`] open a store from a location string, the syntax of the
//! `audit` command (a directory, `sqlite://...`, `postgres://...`), so the store can be a
//! setting of the application.
//!
//! ```
//! use audit::{Actor, AuditEvent, AuditLayer, AuditScope, AuthMethod, FileStore};
//! use tracing_subscriber::prelude::*;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! // Once, in main: the audit layer next to the application's own logging, as the global
//! // default (a `set_default()` would cover only this thread, not a runtime's workers).
//! let (audit_layer, guard) = AuditLayer::builder(FileStore::open(dir.path())?)
//!     .vocabulary(audit::vocabulary!()) // actions given as strings are checked against it
//!     .build()?;
//! tracing_subscriber::registry()
//!     .with(tracing_subscriber::fmt::layer().with_filter(tracing_subscriber::EnvFilter::new("warn")))
//!     .with(audit_layer)
//!     .init();
//!
//! // Per request (typically in middleware): who is acting, for which tenant, from where.
//! let scope = AuditScope::new()
//!     .actor(Actor::user("usr_123", AuthMethod::Password))
//!     .tenant("acme")
//!     .context("ip", "203.0.113.7");
//! scope.in_scope(|| {
//!     // `audit::action!` is checked against audit.toml at compile time, with its category.
//!     AuditEvent::of(audit::action!("user.login")).emit()
//! })?;
//!
//! guard.flush()?; // durable on disk from here on
//! # Ok(()) }
//! ```

//!
//! Annotated fns record their event themselves, with the outcome, and the action is checked at
//! compile time against the vocabulary file `audit.toml` (found from the crate's directory
//! upwards):
//!
//! ```
//! use audit::audited;
//!
//! #[derive(Debug)]
//! pub struct BillingError(&'static str);
//! impl std::fmt::Display for BillingError {
//!     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
//!         f.write_str(self.0)
//!     }
//! }
//!
//! /// `Ok` is recorded as a success, `Err` as a failure with its `Display`, a panic or a
//! /// dropped future as a failure too. Arguments are recorded only when named.
//! #[audited(action = "billing.update", resource = "customer", id = customer_id)]
//! async fn update_billing(customer_id: &str, plan: &str) -> Result<(), BillingError> {
//!     if plan.is_empty() { Err("no plan") } else { Ok(()) }.map_err(BillingError)
//! }
//!
//! # async fn handler() -> Result<(), BillingError> {
//! update_billing("cust_abc123", "pro").await
//! # }
//! ```
//!
//! `#[audited(action = "biling.update")]` does not compile: "unknown audit action
//! `biling.update`: did you mean `billing.update`?".

pub use audit_runtime::*;

pub use audit_macros::{AuditModel, action, audited, vocabulary};

pub mod location;
pub use location::{StoreLocation, open_source, open_store};

/// The controlled action vocabulary: `audit.toml`, the standard always-log set, the catalogue.
pub use audit_vocab as vocab;

/// The SQLite store (feature `sqlite`): records in one file, append-only by triggers.
#[cfg(feature = "sqlite")]
pub use audit_sqlite as sqlite;

/// The PostgreSQL store (feature `postgres`): partitioned by month, append-only by triggers and
/// roles, several writer processes at once.
#[cfg(feature = "postgres")]
pub use audit_postgres as postgres;

/// The diesel integration (features `diesel-sqlite`, `diesel-postgres`): before/after state of
/// inserts, updates and deletes, captured in the transaction and released on commit.
#[cfg(any(feature = "diesel-sqlite", feature = "diesel-postgres"))]
pub use audit_diesel as diesel;

/// HTTP services (feature `axum`): the tower layer that opens each request's audit scope, the
/// extractor that sets who is acting, the 503 of a refusal, scope-keeping tokio tasks.
#[cfg(feature = "axum")]
pub use audit_http as http;

mod http_support;
mod support;

/// Support for the expansions of `#[audited]` and `#[derive(AuditModel)]`: the only paths they
/// name, so that a crate depending on `audit` alone compiles them. Not a public API: it may
/// change in any release.
#[doc(hidden)]
pub mod __private {
    pub use crate::support::*;
}
