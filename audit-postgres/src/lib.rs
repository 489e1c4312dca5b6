//! PostgreSQL store for the audit toolkit: every record's exact bytes (Contract 2) next to
//! indexed columns, in a schema of its own, partitioned by month, append-only, and safe with
//! several writer processes (two app servers, say) on the same chains.
//!
//! ```no_run
//! use audit_postgres::PgStore;
//! use audit_runtime::query::{Query, RecordSource};
//! use audit_runtime::{AuditEvent, AuditLayer, Category};
//! use tracing_subscriber::prelude::*;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let url = "postgres://audit_app@127.0.0.1:5432/app?schema=audit";
//! let (layer, guard) = AuditLayer::builder(PgStore::connect_url(url)?).build()?;
//! tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
//!     AuditEvent::new("user.login", Category::Authentication).tenant("acme").emit()
//! })?;
//! guard.shutdown()?;
//!
//! let mut reader = PgStore::connect_url(url)?; // its own connection
//! for record in reader.query(&Query::new().tenant("acme").action("user.*"))? {
//!     println!("{}", String::from_utf8_lossy(&record?.line));
//! }
//! # Ok(()) }
//! ```
//!
//! # Schema
//!
//! Everything lives in one schema (default `audit`), created by versioned, idempotent
//! migrations ([`migrate`], table `audit_schema_version`), which every [`PgStore`] runs on
//! connect when the schema is behind (a role without DDL rights simply finds it current):
//! - `audit_records`: `chain, seq, ts, tenant, action, category, actor_id, resource_type,
//!   resource_id, outcome, id, line` (the exact bytes), `hash, prev_hash`; range-partitioned
//!   by `ts`, one partition per month (`audit_records_pYYYYMM`), created on demand through
//!   `audit_ensure_partition()`. Primary key `(chain, ts, seq)` (a partitioned table's unique
//!   keys must include the partition key; along a chain time never decreases, so this is
//!   chain order too); indexes `(ts, chain, seq)`, `(actor_id, ts)`,
//!   `(resource_type, resource_id, ts)`.
//! - `audit_heads`: each chain's head, maintained by a statement trigger that rejects any
//!   insert that does not continue its chain (seq up by one, `prev_hash` linking): `(chain,
//!   seq)` stays unique and gap-free even against a buggy or hostile writer.
//! - `audit_seals`: checkpoints; `purged = true` for retention's purge seals, which only the
//!   owner may write.
//! - Triggers that reject `UPDATE`, `DELETE` and `TRUNCATE` of records (parent and every
//!   partition) and seals, whoever runs them.
//!
//! # Roles
//!
//! [`role_setup_sql`] prints the setup: an owner role (no login) owns everything; the
//! application's role may only `INSERT` and `SELECT` (and create partitions through a
//! `SECURITY DEFINER` function); a retention role may read and call
//! `audit_purge_partition()`, which writes purge seals and drops the oldest partition in one
//! transaction:
//!
//! ```sql
//! CREATE ROLE audit_owner NOLOGIN;
//! CREATE ROLE audit_app LOGIN PASSWORD 'change-me';
//! CREATE ROLE audit_retention LOGIN PASSWORD 'change-me';
//! GRANT audit_owner TO CURRENT_USER;
//! CREATE SCHEMA IF NOT EXISTS audit AUTHORIZATION audit_owner;
//! -- SET ROLE audit_owner; run the migrations (open a PgStore); then:
//! GRANT USAGE ON SCHEMA audit TO audit_app, audit_retention;
//! GRANT SELECT, INSERT ON audit.audit_records, audit.audit_seals TO audit_app;
//! GRANT SELECT ON audit.audit_heads, audit.audit_schema_version TO audit_app, audit_retention;
//! GRANT EXECUTE ON FUNCTION audit.audit_ensure_partition(date) TO audit_app;
//! GRANT SELECT ON audit.audit_records, audit.audit_seals TO audit_retention;
//! GRANT EXECUTE ON FUNCTION audit.audit_purge_partition(text) TO audit_retention;
//! ```
//!
//! # Several writers
//!
//! Each append is one transaction: take a transaction-scoped advisory lock on the chain
//! (a 64-bit key from SHA-256 of schema and chain), read the stored head, re-chain the batch
//! onto it with [`ChainBatch::chain_onto`] (no re-serialization), insert every row in one
//! statement (binary `COPY`, or for small batches a multi-row `INSERT` of `unnest`ed arrays),
//! commit. Four or five round trips per batch, whatever its size.
//!
//! [`ChainBatch::chain_onto`]: audit_runtime::store::ChainBatch::chain_onto

mod config;
mod connection;
mod decode;
mod insert;
mod migrate;
mod months;
mod reader;
mod retention;
mod schema;
mod sink;
mod store;

pub use config::PgConfig;
pub use connection::PgStore;
pub use insert::{RECORD_COLUMN_TYPES, RECORD_COLUMNS};
pub use migrate::{lock_key, migrate};
pub use reader::page_sql;
pub use schema::{SCHEMA_VERSION, role_setup_sql};
