//! Audit logging for Rust services: who did what to which resource, when, from where, and
//! whether it worked, written to an append-only, hash-chained store anyone can verify.
//!
//! This is the one crate applications depend on. It re-exports the runtime
//! ([`audit_runtime`]): the event model, the ambient [`AuditScope`], the [`AuditLayer`] for
//! `tracing`, the chained [`FileStore`], verification and export.
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

pub use audit_runtime::*;
