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
//!   by `ts`, one partition per month (`audit_records_pYYYYMM`), created on demand. Unique
//!   key `(audit_key(chain), ts, seq)` (a partitioned table's unique keys must include the
//!   partition key; along a chain time never decreases, so this is chain order too); indexes
//!   `(ts)`, `(audit_key(actor_id), ts)`, `(audit_key(resource_type),
//!   audit_key(resource_id), ts)`, and `(audit_key(chain), seq)` for the seal check.
//!   `audit_key(value)` is the value's bytes when it has at most 64 of them, else a zero byte
//!   and their SHA-256: a btree entry may not outgrow about 2,700 bytes and event values have
//!   no such bound, so every index holds a bounded key, and queries compare the key and then
//!   the value.
//! - `audit_heads`: each chain's head, maintained by a statement trigger that rejects any
//!   insert that does not continue its chain (seq up by one, `prev_hash` linking, time not
//!   going back): `(chain, seq)` stays unique and gap-free even against a buggy or hostile
//!   writer.
//! - `audit_seals`: checkpoints; a plain seal must match the stored record at its `(chain,
//!   seq)`; `purged = true` for retention's purge seals, which only the owner may write.
//! - `audit_set_aside`: `chain, set_aside_at, reason, event` (`bytea`, whatever the event
//!   was): events the store refused, kept apart ([`Store::set_aside`], read back with
//!   [`PgStore::set_aside_records`]).
//! - Triggers that reject `UPDATE`, `DELETE` and `TRUNCATE` of records (parent and every
//!   partition), seals and set-aside records, whoever runs them.
//!
//! **The database checks every row it is given** (the same statement trigger, one set-based
//! query per insert): `hash` must be the SHA-256 of the line without its `hash` member
//! (Contract 2), and the line must be exactly the bytes Contract 1 and the writer's
//! serializer give for its columns: it starts with `{"v":1,"id":…,"chain":…,"seq":…,
//! "timestamp":…,` and the actor as the columns say, ends with their `prev_hash` and `hash`,
//! holds the `action`, `category`, `resource`, `outcome` and `tenant` members of the columns
//! in the contract's order, and each member that is no column (the actor's name and
//! impersonator, the failure reason, `context`, `changes`) is one JSON value. A row that
//! fails is refused with SQLSTATE 22000 and a message naming its chain and seq; the store
//! reports such refusals, and any other refusal of content (SQLSTATE classes 22 and 54), as
//! [`StoreError::Rejected`]. Since the pieces are whole JSON values laid out as an object's
//! members, a line with a member twice, a member missing or anything between them is
//! refused.
//!
//! **Text columns hold event values encoded**: PostgreSQL's `text` cannot hold U+0000,
//! which JSON carries as `\u0000` and the file store keeps. So `chain`, `tenant`, `action`,
//! `actor_id`, `resource_type` and `resource_id` (and the `chain` of heads, seals and
//! set-aside records, and the set-aside `reason`) hold `\\` for a backslash and `\0` for
//! U+0000, every other character as it is ([`encode_text`], [`decode_text`]). The encoding
//! is lossless and keeps equality and prefixes, so filters compare encoded values (an action
//! prefix `billing.*` with `starts_with`), and everything read back is decoded. The `line`
//! column needs none: JSON escapes U+0000. In SQL, `chain = 'acme'` works as it reads for
//! every key without a backslash or U+0000; ordering among chain keys that differ at a
//! U+0000 follows the encoded form.
//!
//! # Roles
//!
//! [`role_setup_sql`] is the setup a DBA runs (the README shows it for schema `audit`):
//! an owner role (no login) owns everything and runs the migrations, which grant the roles
//! named after the schema what each needs. `<schema>_app` may only `INSERT` and `SELECT`
//! (records, seals, set-aside records) and create the partitions of last, this and next
//! month through the `SECURITY DEFINER` function `audit_ensure_partition()`; only the owner
//! creates other months' (`audit_create_partition()`, which a [`PgStore`] connected with the
//! owner's rights calls). `<schema>_reader` reads. `<schema>_retention` may also call
//! `audit_purge_partition()`, which writes purge seals and drops the oldest partition in one
//! transaction.
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
//! [`Store::set_aside`]: audit_runtime::store::Store::set_aside
//! [`StoreError::Rejected`]: audit_runtime::StoreError::Rejected

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
mod text;

pub use config::PgConfig;
pub use connection::PgStore;
pub use insert::{RECORD_COLUMN_TYPES, RECORD_COLUMNS};
pub use migrate::{lock_key, migrate};
pub use reader::page_sql;
pub use schema::{SCHEMA_VERSION, role_setup_sql};
pub use text::{decode_text, encode_text};
