//! Audit logging for Rust services: who did what to which resource, when, from where, and
//! whether it worked, written to an append-only, hash-chained store anyone can verify.
//!
//! This is the one crate applications depend on. It re-exports the runtime
//! ([`audit_runtime`]): the event model, the ambient [`AuditScope`], the [`AuditLayer`] for
//! `tracing`, the chained [`FileStore`], verification and export; and the macros: the
//! [`macro@audited`] attribute and the [`derive@AuditModel`] derive.
//!
//! ```
//! use audit::{Actor, AuditEvent, AuditLayer, AuditScope, AuthMethod, Category, FileStore};
//! use tracing_subscriber::prelude::*;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! // Once, in main: the audit layer next to the application's own logging.
//! let (audit_layer, guard) = AuditLayer::builder(FileStore::open(dir.path())?).build()?;
//! let _default = tracing_subscriber::registry()
//!     .with(tracing_subscriber::fmt::layer().with_filter(tracing_subscriber::EnvFilter::new("warn")))
//!     .with(audit_layer)
//!     .set_default();
//!
//! // Per request (typically in middleware): who is acting, for which tenant, from where.
//! let scope = AuditScope::new()
//!     .actor(Actor::user("usr_123", AuthMethod::Password))
//!     .tenant("acme")
//!     .context("ip", "203.0.113.7");
//! scope.in_scope(|| {
//!     AuditEvent::new("user.login", Category::Authentication).emit()
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

pub use audit_macros::{AuditModel, audited};

mod support;

/// Support for the expansions of `#[audited]` and `#[derive(AuditModel)]`: the only paths they
/// name, so that a crate depending on `audit` alone compiles them. Not a public API: it may
/// change in any release.
#[doc(hidden)]
pub mod __private {
    pub use crate::support::*;
}
