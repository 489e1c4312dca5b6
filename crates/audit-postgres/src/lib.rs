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

mod schema;

use std::collections::HashSet;
use std::path::PathBuf;
use std::str::FromStr;

use audit_runtime::copy::{RecordSink, check_continues};
use audit_runtime::query::{Cursor, Indexed, Order, Paged, Query, RecordSource, Records, StoredRecord, StoredSeal};
use audit_runtime::retention::{Blocked, ChainRange, PurgeUnit, RetentionConfig, RetentionPlan, RetentionTarget};
use audit_runtime::store::{ChainBatch, ChainHead, Seal, Store};
use audit_runtime::{ChainHash, StoreError, Timestamp};
use chrono::{DateTime, Datelike, Utc};
use postgres::types::ToSql;
use postgres::{Client, NoTls, Row, Statement};
use sha2::{Digest, Sha256};

pub use schema::{SCHEMA_VERSION, role_setup_sql};

/// Records per page when streaming query results.
const PAGE: usize = 1000;

/// Where a store lives: a connection URL and a schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgConfig {
    /// A `postgres://` URL (or key=value connection string) accepted by the `postgres` crate.
    pub url: String,
    /// The schema (default `audit`): lowercase letters, digits and `_`.
    pub schema: String,
    /// Run pending migrations on connect (default true; needs the owner's rights when the
    /// schema is behind).
    pub migrate: bool,
}

impl PgConfig {
    /// `url` and `schema`.
    pub fn new(url: impl Into<String>, schema: impl Into<String>) -> Self {
        PgConfig {
            url: url.into(),
            schema: schema.into(),
            migrate: true,
        }
    }

    /// Parses a store URL: `postgres://user@host:port/db?schema=audit` (the `schema`
    /// parameter is this crate's; every other one goes to the connection).
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(StoreError::Config(format!("`{url}` is not a postgres:// URL")));
        }
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut schema = "audit".to_owned();
        let mut rest = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("schema", v)) => schema = v.to_owned(),
                _ => rest.push(pair),
            }
        }
        let url = if rest.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", rest.join("&"))
        };
        Ok(PgConfig::new(url, schema))
    }
}

fn check_schema_name(schema: &str) -> Result<(), StoreError> {
    let ok = !schema.is_empty()
        && schema.len() <= 48
        && schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !schema.as_bytes()[0].is_ascii_digit();
    if ok {
        Ok(())
    } else {
        Err(StoreError::Config(format!(
            "schema name `{schema}`: use lowercase letters, digits and `_` (at most 48)"
        )))
    }
}

/// A readable message for a PostgreSQL error (the crate's `Display` omits the server's).
fn pg_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut m = format!("{}: {} (SQLSTATE {})", db.severity(), db.message(), db.code().code());
            if let Some(d) = db.detail() {
                m.push_str(&format!("; {d}"));
            }
            if let Some(h) = db.hint() {
                m.push_str(&format!("; hint: {h}"));
            }
            m
        }
        None => {
            let mut m = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                m.push_str(&format!(": {s}"));
                source = s.source();
            }
            m
        }
    }
}

/// Applies every migration not yet applied to `schema`, in order, under an advisory lock so
/// that concurrent starts do not race. Returns the schema version.
pub fn migrate(client: &mut Client, schema: &str) -> Result<i32, postgres::Error> {
    let current = |c: &mut Client| -> Result<Option<i32>, postgres::Error> {
        let exists: bool = c
            .query_one(
                "SELECT to_regclass(format('%I.audit_schema_version', $1::text)) IS NOT NULL",
                &[&schema],
            )?
            .get(0);
        if !exists {
            return Ok(None);
        }
        Ok(c.query_one(
            &format!("SELECT max(version) FROM \"{schema}\".audit_schema_version"),
            &[],
        )?
        .get(0))
    };
    let latest = schema::MIGRATIONS.last().map_or(0, |m| m.version);
    if current(client)?.is_some_and(|v| v >= latest) {
        return Ok(current(client)?.unwrap_or(0));
    }
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&lock_key(schema, "\0migrations")])?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS \"{schema}\";
         CREATE TABLE IF NOT EXISTS \"{schema}\".audit_schema_version (
             version int PRIMARY KEY, description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
    ))?;
    for m in schema::MIGRATIONS {
        let done: bool = tx
            .query_one(
                &format!("SELECT EXISTS (SELECT 1 FROM \"{schema}\".audit_schema_version WHERE version = $1)"),
                &[&m.version],
            )?
            .get(0);
        if !done {
            tx.batch_execute(&m.sql.replace("{s}", &format!("\"{schema}\"")))?;
            tx.execute(
                &format!("INSERT INTO \"{schema}\".audit_schema_version (version, description) VALUES ($1, $2)"),
                &[&m.version, &m.description],
            )?;
        }
    }
    tx.commit()?;
    Ok(current(client)?.unwrap_or(0))
}

/// The advisory lock key of a chain: 64 bits of SHA-256 over schema and chain, so that
/// different chains (and stores) practically never share a lock.
pub fn lock_key(schema: &str, chain: &str) -> i64 {
    let digest = Sha256::new()
        .chain_update(schema.as_bytes())
        .chain_update([0])
        .chain_update(chain.as_bytes())
        .finalize();
    i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

fn month_index(ts: Timestamp) -> i32 {
    let dt = to_datetime(ts);
    dt.year() * 12 + dt.month0() as i32
}

/// Midnight UTC of the first day of a month index (`year * 12 + month0`).
fn month_start(month: i32) -> DateTime<Utc> {
    chrono::NaiveDate::from_ymd_opt(month.div_euclid(12), month.rem_euclid(12) as u32 + 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
        .unwrap_or_default()
}

fn to_datetime(ts: Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(ts.unix_micros()).unwrap_or_default()
}

fn from_datetime(dt: DateTime<Utc>) -> Timestamp {
    Timestamp::from_unix_micros(dt.timestamp_micros())
}

struct Statements {
    lock_chain: Statement,
    insert: Statement,
    head: Statement,
    insert_seal: Statement,
}

/// A PostgreSQL audit store: a [`Store`] for the writer thread, and a [`RecordSource`],
/// [`RecordSink`] and [`RetentionTarget`] for readers, copies and retention. Each value is
/// one connection; open one per use. A lost connection is re-opened on the next call.
pub struct PgStore {
    config: PgConfig,
    client: Client,
    statements: Statements,
    partitions: HashSet<i32>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("schema", &self.config.schema)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to `url` and uses (creating or upgrading if needed) `schema`.
    pub fn connect(url: &str, schema: &str) -> Result<Self, StoreError> {
        Self::with_config(PgConfig::new(url, schema))
    }

    /// Connects to a store URL, `postgres://user@host/db?schema=audit`.
    pub fn connect_url(url: &str) -> Result<Self, StoreError> {
        Self::with_config(PgConfig::from_url(url)?)
    }

    /// Connects with `config`.
    pub fn with_config(config: PgConfig) -> Result<Self, StoreError> {
        check_schema_name(&config.schema)?;
        let name = describe(&config);
        let err = |e: postgres::Error| StoreError::Io {
            path: PathBuf::from(&name),
            source: std::io::Error::other(pg_message(&e)),
        };
        let pg_config =
            postgres::Config::from_str(&config.url).map_err(|e| StoreError::Config(format!("{name}: {e}")))?;
        let mut client = pg_config.connect(NoTls).map_err(err)?;
        let encoding: String = client.query_one("SHOW server_encoding", &[]).map_err(err)?.get(0);
        if encoding != "UTF8" && encoding != "SQL_ASCII" {
            // Another encoding would transcode the stored lines: their bytes must not change.
            return Err(StoreError::Config(format!(
                "{name}: the database encoding is {encoding}; audit stores need UTF8"
            )));
        }
        client.batch_execute("SET TIME ZONE 'UTC'").map_err(err)?;
        let version = if config.migrate {
            migrate(&mut client, &config.schema).map_err(err)?
        } else {
            client
                .query_one(
                    &format!("SELECT max(version) FROM \"{}\".audit_schema_version", config.schema),
                    &[],
                )
                .map_err(err)?
                .get::<_, Option<i32>>(0)
                .unwrap_or(0)
        };
        if version != SCHEMA_VERSION {
            return Err(StoreError::Config(format!(
                "{name}: schema version {version}, this program needs {SCHEMA_VERSION}: run the migrations as the schema owner"
            )));
        }
        let s = &config.schema;
        let statements = Statements {
            lock_chain: client.prepare(&format!("SELECT seq, hash, ts FROM \"{s}\".audit_lock_chain($1, $2)")).map_err(err)?,
            insert: client
                .prepare(&format!(
                    "INSERT INTO \"{s}\".audit_records (chain, seq, ts, tenant, action, category, actor_id, resource_type,
                                                       resource_id, outcome, id, line, hash, prev_hash)
                     SELECT $1, * FROM unnest($2::bigint[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::text[],
                                              $8::text[], $9::text[], $10::text[], $11::uuid[], $12::text[], $13::bytea[], $14::bytea[])"
                ))
                .map_err(err)?,
            head: client
                .prepare(&format!("SELECT seq, hash, ts FROM \"{s}\".audit_heads WHERE chain = $1 AND seq > 0"))
                .map_err(err)?,
            insert_seal: client
                .prepare(&format!(
                    "INSERT INTO \"{s}\".audit_seals (chain, seq, hash, sealed_at, purged) VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT DO NOTHING"
                ))
                .map_err(err)?,
        };
        let mut store = PgStore {
            config,
            client,
            statements,
            partitions: HashSet::new(),
        };
        store.load_partitions()?;
        Ok(store)
    }

    /// The configuration.
    pub fn config(&self) -> &PgConfig {
        &self.config
    }

    /// The schema.
    pub fn schema(&self) -> &str {
        &self.config.schema
    }

    /// The connection, for inspection and administration.
    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    fn err(&self) -> impl Fn(postgres::Error) -> StoreError + use<> {
        let name = describe(&self.config);
        move |e| StoreError::Io {
            path: PathBuf::from(&name),
            source: std::io::Error::other(pg_message(&e)),
        }
    }

    fn reconnect_if_closed(&mut self) -> Result<(), StoreError> {
        if self.client.is_closed() {
            *self = PgStore::with_config(PgConfig {
                migrate: false,
                ..self.config.clone()
            })?;
        }
        Ok(())
    }

    fn load_partitions(&mut self) -> Result<(), StoreError> {
        let err = self.err();
        let names = self.partition_names()?;
        self.partitions = names.iter().filter_map(|n| partition_month(n)).collect();
        drop(err);
        Ok(())
    }

    /// The partitions of `audit_records`, oldest first.
    pub fn partition_names(&mut self) -> Result<Vec<String>, StoreError> {
        let err = self.err();
        let rows = self
            .client
            .query(
                "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                 WHERE i.inhparent = to_regclass(format('%I.audit_records', $1::text)) ORDER BY c.relname",
                &[&self.config.schema],
            )
            .map_err(err)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Appends `rows` of `chain` in one transaction under the chain's lock. `prepare` gets the
    /// stored head and returns the rows to insert (chaining them onto it).
    fn locked_append(
        &mut self,
        chain: &str,
        mut prepare: impl FnMut(Option<ChainHead>) -> Result<Rows, StoreError>,
    ) -> Result<(), StoreError> {
        self.reconnect_if_closed()?;
        let err = self.err();
        let key = lock_key(&self.config.schema, chain);
        for attempt in 0..2 {
            let mut tx = self.client.transaction().map_err(&err)?;
            let head = tx
                .query_opt(&self.statements.lock_chain, &[&chain, &key])
                .map_err(&err)?
                .map(|r| head_from_row(chain, &r))
                .transpose()?;
            let rows = prepare(head)?;
            if rows.seq.is_empty() {
                return Ok(());
            }
            for month in rows
                .ts
                .iter()
                .map(|t| month_index(from_datetime(*t)))
                .collect::<HashSet<_>>()
            {
                if !self.partitions.contains(&month) {
                    let first = month_start(month).date_naive();
                    tx.execute(
                        &format!("SELECT \"{}\".audit_ensure_partition($1)", self.config.schema),
                        &[&first],
                    )
                    .map_err(&err)?;
                }
            }
            let result = if rows.seq.len() >= COPY_THRESHOLD {
                copy_rows(&mut tx, &self.config.schema, chain, &rows)
            } else {
                tx.execute(
                    &self.statements.insert,
                    &[
                        &chain,
                        &rows.seq,
                        &rows.ts,
                        &rows.tenant,
                        &rows.action,
                        &rows.category,
                        &rows.actor_id,
                        &rows.resource_type,
                        &rows.resource_id,
                        &rows.outcome,
                        &rows.id,
                        &rows.line,
                        &rows.hash,
                        &rows.prev_hash,
                    ],
                )
                .map(drop)
            };
            match result {
                Ok(_) => {
                    tx.commit().map_err(&err)?;
                    for t in &rows.ts {
                        self.partitions.insert(month_index(from_datetime(*t)));
                    }
                    return Ok(());
                }
                // "no partition of relation found": retention dropped a month this process
                // thought it had. Reload and retry once.
                Err(e) if attempt == 0 && e.code() == Some(&postgres::error::SqlState::CHECK_VIOLATION) => {
                    drop(tx);
                    self.partitions.clear();
                    self.load_partitions()?;
                }
                Err(e) => return Err(err(e)),
            }
        }
        unreachable!("the second attempt returns")
    }

    fn fetch(&mut self, sql: &str, args: &[&(dyn ToSql + Sync)]) -> Result<Vec<StoredRecord>, StoreError> {
        let err = self.err();
        let rows = self.client.query(sql, args).map_err(&err)?;
        rows.iter().map(record_from_row).collect()
    }
}

fn describe(config: &PgConfig) -> String {
    // Never show a password.
    let base = config.url.split('?').next().unwrap_or_default();
    let shown = match (base.find("://"), base.rfind('@')) {
        (Some(i), Some(at)) if at > i => {
            let creds = &base[i + 3..at];
            let user = creds.split(':').next().unwrap_or_default();
            format!("{}{}{}", &base[..i + 3], user, &base[at..])
        }
        _ => base.to_owned(),
    };
    format!("{shown}?schema={}", config.schema)
}

fn partition_month(name: &str) -> Option<i32> {
    let digits = name.strip_prefix("audit_records_p")?;
    if digits.len() != 6 {
        return None;
    }
    let year: i32 = digits[..4].parse().ok()?;
    let month: i32 = digits[4..].parse().ok()?;
    Some(year * 12 + month - 1)
}

fn hash_from(bytes: &[u8]) -> Result<ChainHash, StoreError> {
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| StoreError::Config("a stored hash is not 32 bytes".to_owned()))?;
    Ok(ChainHash(arr))
}

fn head_from_row(chain: &str, r: &Row) -> Result<ChainHead, StoreError> {
    Ok(ChainHead {
        chain: chain.to_owned(),
        seq: r.get::<_, i64>(0) as u64,
        hash: hash_from(r.get(1))?,
        timestamp: from_datetime(r.get(2)),
    })
}

fn record_from_row(r: &Row) -> Result<StoredRecord, StoreError> {
    Ok(StoredRecord {
        chain: r.get(0),
        seq: r.get::<_, i64>(1) as u64,
        timestamp: from_datetime(r.get(2)),
        prev_hash: hash_from(r.get(3))?,
        hash: hash_from(r.get(4))?,
        line: r.get::<_, String>(5).into_bytes(),
    })
}

/// From this many rows on, an append uses binary `COPY` (one more round trip than a
/// multi-row `INSERT`, but cheaper per row on the server).
const COPY_THRESHOLD: usize = 64;

/// Binary `COPY` of `rows` (the statement trigger checks the chain as for an insert).
fn copy_rows(
    tx: &mut postgres::Transaction<'_>,
    schema: &str,
    chain: &str,
    rows: &Rows,
) -> Result<(), postgres::Error> {
    use postgres::types::Type;
    let sink = tx.copy_in(&format!(
        "COPY \"{schema}\".audit_records (chain, seq, ts, tenant, action, category, actor_id, resource_type, resource_id,
                                           outcome, id, line, hash, prev_hash) FROM STDIN BINARY"
    ))?;
    let types = [
        Type::TEXT,
        Type::INT8,
        Type::TIMESTAMPTZ,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::UUID,
        Type::TEXT,
        Type::BYTEA,
        Type::BYTEA,
    ];
    let mut w = postgres::binary_copy::BinaryCopyInWriter::new(sink, &types);
    for k in 0..rows.seq.len() {
        w.write(&[
            &chain,
            &rows.seq[k],
            &rows.ts[k],
            &rows.tenant[k],
            &rows.action[k],
            &rows.category[k],
            &rows.actor_id[k],
            &rows.resource_type[k],
            &rows.resource_id[k],
            &rows.outcome[k],
            &rows.id[k],
            &rows.line[k],
            &rows.hash[k],
            &rows.prev_hash[k],
        ])?;
    }
    w.finish().map(drop)
}

/// Column arrays of one insert.
#[derive(Default)]
struct Rows {
    seq: Vec<i64>,
    ts: Vec<DateTime<Utc>>,
    tenant: Vec<Option<String>>,
    action: Vec<String>,
    category: Vec<&'static str>,
    actor_id: Vec<String>,
    resource_type: Vec<Option<String>>,
    resource_id: Vec<Option<String>>,
    outcome: Vec<&'static str>,
    id: Vec<uuid::Uuid>,
    line: Vec<String>,
    hash: Vec<Vec<u8>>,
    prev_hash: Vec<Vec<u8>>,
}

impl Rows {
    fn with_capacity(n: usize) -> Self {
        Rows {
            seq: Vec::with_capacity(n),
            ts: Vec::with_capacity(n),
            tenant: Vec::with_capacity(n),
            action: Vec::with_capacity(n),
            category: Vec::with_capacity(n),
            actor_id: Vec::with_capacity(n),
            resource_type: Vec::with_capacity(n),
            resource_id: Vec::with_capacity(n),
            outcome: Vec::with_capacity(n),
            id: Vec::with_capacity(n),
            line: Vec::with_capacity(n),
            hash: Vec::with_capacity(n),
            prev_hash: Vec::with_capacity(n),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        ix: Indexed,
        seq: u64,
        ts: Timestamp,
        hash: ChainHash,
        prev: ChainHash,
        line: &[u8],
    ) -> Result<(), StoreError> {
        let line =
            std::str::from_utf8(line).map_err(|e| StoreError::Config(format!("a record line is not UTF-8: {e}")))?;
        self.seq.push(seq as i64);
        self.ts.push(to_datetime(ts));
        self.tenant.push(ix.tenant);
        self.action.push(ix.action);
        self.category.push(ix.category.as_str());
        self.actor_id.push(ix.actor_id);
        self.resource_type.push(ix.resource_type);
        self.resource_id.push(ix.resource_id);
        self.outcome.push(ix.outcome.as_str());
        self.id.push(ix.id);
        self.line.push(line.to_owned());
        self.hash.push(hash.0.to_vec());
        self.prev_hash.push(prev.0.to_vec());
        Ok(())
    }
}

fn genesis(chain: &str) -> ChainHead {
    ChainHead {
        chain: chain.to_owned(),
        seq: 0,
        hash: ChainHash::GENESIS,
        timestamp: Timestamp::from_unix_micros(i64::MIN),
    }
}

impl Store for PgStore {
    fn heads(&mut self) -> Result<Vec<ChainHead>, StoreError> {
        self.reconnect_if_closed()?;
        let err = self.err();
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT chain, seq, hash, ts FROM \"{}\".audit_heads WHERE seq > 0",
                    self.config.schema
                ),
                &[],
            )
            .map_err(err)?;
        rows.iter()
            .map(|r| {
                Ok(ChainHead {
                    chain: r.get(0),
                    seq: r.get::<_, i64>(1) as u64,
                    hash: hash_from(r.get(2))?,
                    timestamp: from_datetime(r.get(3)),
                })
            })
            .collect()
    }

    fn append(&mut self, batch: &mut ChainBatch, head: &mut ChainHead) -> Result<(), StoreError> {
        let chain = batch.chain().to_owned();
        let mut new_head = head.clone();
        self.locked_append(&chain, |stored| {
            // Another process may have appended since: chain onto what is stored.
            new_head = stored.unwrap_or_else(|| genesis(&chain));
            let mut prev = new_head.hash;
            batch.chain_onto(&mut new_head);
            let mut rows = Rows::with_capacity(batch.len());
            for (entry, c, line) in batch.records() {
                let line = line.strip_suffix(b"\n").unwrap_or(line);
                rows.push(Indexed::from_entry(entry), c.seq, c.timestamp, c.hash, prev, line)?;
                prev = c.hash;
            }
            Ok(rows)
        })?;
        *head = new_head;
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        // Every append committed (synchronous_commit is the server's durability setting).
        Ok(())
    }

    fn seal(&mut self, seals: &[Seal]) -> Result<(), StoreError> {
        let seals: Vec<StoredSeal> = seals
            .iter()
            .map(|s| StoredSeal {
                seal: s.clone(),
                purged: false,
            })
            .collect();
        self.add_seals(&seals)
    }
}

/// Arguments of a dynamically built query.
struct Args(Vec<Box<dyn ToSql + Sync>>);

impl Args {
    fn push(&mut self, v: impl ToSql + Sync + 'static) -> String {
        self.0.push(Box::new(v));
        format!("${}", self.0.len())
    }
}

fn where_clause(q: &Query, args: &mut Args) -> String {
    let mut sql = String::from(" WHERE true");
    if let Some(t) = &q.tenant {
        sql.push_str(&format!(" AND chain = {}", args.push(t.clone())));
    }
    if let Some(f) = q.from {
        sql.push_str(&format!(" AND ts >= {}", args.push(to_datetime(f))));
    }
    if let Some(t) = q.to {
        sql.push_str(&format!(" AND ts < {}", args.push(to_datetime(t))));
    }
    match (q.action_prefix(), &q.action) {
        (Some(prefix), _) => sql.push_str(&format!(" AND starts_with(action, {})", args.push(prefix.to_owned()))),
        (None, Some(a)) => sql.push_str(&format!(" AND action = {}", args.push(a.clone()))),
        (None, None) => {}
    }
    if let Some(a) = &q.actor {
        sql.push_str(&format!(" AND actor_id = {}", args.push(a.clone())));
    }
    if let Some(t) = &q.resource_type {
        sql.push_str(&format!(" AND resource_type = {}", args.push(t.clone())));
    }
    if let Some(i) = &q.resource_id {
        sql.push_str(&format!(" AND resource_id = {}", args.push(i.clone())));
    }
    if let Some(o) = q.outcome {
        sql.push_str(&format!(" AND outcome = {}", args.push(o.as_str())));
    }
    sql
}

fn cursor_clause(q: &Query, c: &Cursor, args: &mut Args) -> String {
    let op = match q.order {
        Order::OldestFirst => ">",
        Order::NewestFirst => "<",
    };
    let ts = args.push(to_datetime(c.timestamp));
    match q.tenant.as_deref() {
        Some(t) if t == c.chain => {
            format!(" AND (ts, seq) {op} ({ts}, {})", args.push(c.seq as i64))
        }
        Some(t) => {
            let later = (t > c.chain.as_str()) == (q.order == Order::OldestFirst);
            format!(" AND ts {op}{} {ts}", if later { "=" } else { "" })
        }
        None => {
            let chain = args.push(c.chain.clone());
            format!(
                " AND (ts, chain, seq) {op} ({ts}, {chain}, {})",
                args.push(c.seq as i64)
            )
        }
    }
}

fn order_clause(q: &Query) -> &'static str {
    match (q.tenant.is_some(), q.order) {
        (true, Order::OldestFirst) => " ORDER BY ts, seq",
        (true, Order::NewestFirst) => " ORDER BY ts DESC, seq DESC",
        (false, Order::OldestFirst) => " ORDER BY ts, chain, seq",
        (false, Order::NewestFirst) => " ORDER BY ts DESC, chain DESC, seq DESC",
    }
}

/// The SQL and arguments of one page of `q` after `after`: what [`RecordSource::query`]
/// runs (public so that the plan can be inspected with `EXPLAIN`).
pub fn page_sql(schema: &str, q: &Query, after: Option<&Cursor>, n: usize) -> (String, Vec<Box<dyn ToSql + Sync>>) {
    let mut args = Args(Vec::new());
    let mut sql = where_clause(q, &mut args);
    if let Some(c) = after {
        sql.push_str(&cursor_clause(q, c, &mut args));
    }
    let limit = args.push(n as i64);
    let sql = format!(
        "SELECT chain, seq, ts, prev_hash, hash, line FROM \"{schema}\".audit_records{sql}{} LIMIT {limit}",
        order_clause(q)
    );
    (sql, args.0)
}

impl RecordSource for PgStore {
    fn describe(&self) -> String {
        describe(&self.config)
    }

    fn chains(&mut self) -> Result<Vec<String>, StoreError> {
        self.reconnect_if_closed()?;
        let err = self.err();
        // Chains with records: the heads (a chain whose records were all purged has none).
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT h.chain FROM \"{s}\".audit_heads h
                     WHERE h.seq > 0 AND EXISTS (SELECT 1 FROM \"{s}\".audit_records r WHERE r.chain = h.chain)
                     ORDER BY h.chain",
                    s = self.config.schema
                ),
                &[],
            )
            .map_err(err)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn chain_records(&mut self, chain: &str, after_seq: u64) -> Result<Records<'_>, StoreError> {
        self.reconnect_if_closed()?;
        let chain = chain.to_owned();
        let schema = self.config.schema.clone();
        let this = &mut *self;
        // Along a chain time never decreases, so (ts, seq) order is seq order and the primary
        // key serves it; a record whose time was edited shows up out of place for verify.
        let fetch = move |after: Option<&Cursor>, n: usize| match after {
            None => this.fetch(
                &format!(
                    "SELECT chain, seq, ts, prev_hash, hash, line FROM \"{schema}\".audit_records
                     WHERE chain = $1 AND seq > $2 ORDER BY ts, seq LIMIT $3"
                ),
                &[&chain, &(after_seq as i64), &(n as i64)],
            ),
            Some(c) => this.fetch(
                &format!(
                    "SELECT chain, seq, ts, prev_hash, hash, line FROM \"{schema}\".audit_records
                     WHERE chain = $1 AND (ts, seq) > ($2, $3) ORDER BY ts, seq LIMIT $4"
                ),
                &[&chain, &to_datetime(c.timestamp), &(c.seq as i64), &(n as i64)],
            ),
        };
        Ok(Box::new(Paged::new(fetch, None, None, PAGE)))
    }

    fn query(&mut self, query: &Query) -> Result<Records<'_>, StoreError> {
        self.reconnect_if_closed()?;
        let q = query.clone();
        let schema = self.config.schema.clone();
        let this = &mut *self;
        let fetch = move |after: Option<&Cursor>, n: usize| {
            let (sql, args) = page_sql(&schema, &q, after, n);
            let refs: Vec<&(dyn ToSql + Sync)> = args.iter().map(|b| b.as_ref()).collect();
            this.fetch(&sql, &refs)
        };
        Ok(Box::new(Paged::new(fetch, query.after.clone(), query.limit, PAGE)))
    }

    fn seals(&mut self) -> Result<Vec<StoredSeal>, StoreError> {
        self.reconnect_if_closed()?;
        let err = self.err();
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT chain, seq, hash, sealed_at, purged FROM \"{}\".audit_seals ORDER BY sealed_at, chain, seq",
                    self.config.schema
                ),
                &[],
            )
            .map_err(err)?;
        rows.iter()
            .map(|r| {
                Ok(StoredSeal {
                    seal: Seal {
                        chain: r.get(0),
                        seq: r.get::<_, i64>(1) as u64,
                        hash: hash_from(r.get(2))?,
                        sealed_at: from_datetime(r.get(3)),
                    },
                    purged: r.get(4),
                })
            })
            .collect()
    }
}

impl RecordSink for PgStore {
    fn describe(&self) -> String {
        describe(&self.config)
    }

    fn stored_head(&mut self, chain: &str) -> Result<Option<ChainHead>, StoreError> {
        self.reconnect_if_closed()?;
        let err = self.err();
        let row = self.client.query_opt(&self.statements.head, &[&chain]).map_err(err)?;
        row.map(|r| head_from_row(chain, &r)).transpose()
    }

    fn append_records(&mut self, chain: &str, records: &[StoredRecord]) -> Result<(), StoreError> {
        let name = describe(&self.config);
        self.locked_append(chain, |head| {
            check_continues(head.as_ref(), records).map_err(StoreError::Config)?;
            let mut rows = Rows::with_capacity(records.len());
            for r in records {
                let ix = r.indexed().map_err(|m| StoreError::Corrupt {
                    path: PathBuf::from(&name),
                    line: r.seq,
                    message: m.0,
                })?;
                rows.push(ix, r.seq, r.timestamp, r.hash, r.prev_hash, &r.line)?;
            }
            Ok(rows)
        })
    }

    fn stored_seals(&mut self) -> Result<Vec<StoredSeal>, StoreError> {
        self.seals()
    }

    fn add_seals(&mut self, seals: &[StoredSeal]) -> Result<(), StoreError> {
        self.reconnect_if_closed()?;
        let err = self.err();
        let mut tx = self.client.transaction().map_err(&err)?;
        for s in seals {
            tx.execute(
                &self.statements.insert_seal,
                &[
                    &s.seal.chain,
                    &(s.seal.seq as i64),
                    &&s.seal.hash.0[..],
                    &to_datetime(s.seal.sealed_at),
                    &s.purged,
                ],
            )
            .map_err(&err)?;
        }
        tx.commit().map_err(&err)
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}

impl RetentionTarget for PgStore {
    /// Whole monthly partitions, oldest first, while every chain in the partition may lose
    /// all its records there (policy, override, legal hold) and the month is over.
    fn plan(&mut self, config: &RetentionConfig, now: Timestamp) -> Result<RetentionPlan, StoreError> {
        let mut plan = RetentionPlan {
            store: describe(&self.config),
            now,
            units: Vec::new(),
            blocked: Vec::new(),
        };
        let err = self.err();
        let current_month = month_index(now);
        for part in self.partition_names()? {
            let Some(month) = partition_month(&part) else {
                continue;
            };
            if month >= current_month {
                plan.blocked.push(Blocked {
                    unit: part,
                    reason: "the month is not over".into(),
                });
                break;
            }
            // Distinct chains by skipping through the primary key, then each one's range. Through
            // the parent with the month's bounds (pruned to the one partition), because the
            // retention role has rights on the parent only.
            let lower = month_start(month);
            let upper = month_start(month + 1);
            let rows = self
                .client
                .query(
                    &format!(
                        "WITH RECURSIVE c AS (
                             (SELECT chain FROM {t} WHERE ts >= $1 AND ts < $2 ORDER BY chain LIMIT 1)
                             UNION ALL
                             SELECT (SELECT p.chain FROM {t} p WHERE p.ts >= $1 AND p.ts < $2 AND p.chain > c.chain
                                     ORDER BY p.chain LIMIT 1)
                             FROM c WHERE c.chain IS NOT NULL)
                         SELECT c.chain, f.seq, f.ts, l.seq, l.ts, l.hash FROM c,
                             LATERAL (SELECT seq, ts FROM {t} p WHERE p.chain = c.chain AND p.ts >= $1 AND p.ts < $2
                                      ORDER BY ts, seq LIMIT 1) f,
                             LATERAL (SELECT seq, ts, hash FROM {t} p WHERE p.chain = c.chain AND p.ts >= $1 AND p.ts < $2
                                      ORDER BY ts DESC, seq DESC LIMIT 1) l
                         WHERE c.chain IS NOT NULL ORDER BY c.chain",
                        t = format!("\"{}\".audit_records", self.config.schema)
                    ),
                    &[&lower, &upper],
                )
                .map_err(&err)?;
            let mut chains = Vec::new();
            let mut reasons = Vec::new();
            for r in &rows {
                let range = ChainRange {
                    chain: r.get(0),
                    first_seq: r.get::<_, i64>(1) as u64,
                    oldest: from_datetime(r.get(2)),
                    last_seq: r.get::<_, i64>(3) as u64,
                    newest: from_datetime(r.get(4)),
                    last_hash: hash_from(r.get(5))?,
                };
                match config.cutoff_for(&range.chain, now) {
                    Err(why) => reasons.push(why),
                    Ok(cutoff) if range.newest >= cutoff => reasons.push(format!(
                        "tenant `{}` keeps records from {} under policy `{}`",
                        range.chain,
                        cutoff,
                        config.policy_for(&range.chain).name
                    )),
                    Ok(_) => {}
                }
                chains.push(range);
            }
            if !reasons.is_empty() {
                plan.blocked.extend(reasons.into_iter().map(|reason| Blocked {
                    unit: part.clone(),
                    reason,
                }));
                break;
            }
            plan.units.push(PurgeUnit { name: part, chains });
        }
        Ok(plan)
    }

    fn purge(&mut self, plan: &RetentionPlan) -> Result<Vec<String>, StoreError> {
        self.reconnect_if_closed()?;
        let err = self.err();
        let mut removed = Vec::new();
        for unit in &plan.units {
            self.client
                .query(
                    &format!("SELECT * FROM \"{}\".audit_purge_partition($1)", self.config.schema),
                    &[&unit.name],
                )
                .map_err(&err)?;
            if let Some(m) = partition_month(&unit.name) {
                self.partitions.remove(&m);
            }
            removed.push(unit.name.clone());
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_the_schema_apart_and_hide_passwords() {
        let c = PgConfig::from_url("postgres://app:secret@db:5432/main?schema=audit_x&sslmode=disable").unwrap();
        assert_eq!(c.schema, "audit_x");
        assert_eq!(c.url, "postgres://app:secret@db:5432/main?sslmode=disable");
        assert_eq!(describe(&c), "postgres://app@db:5432/main?schema=audit_x");
        assert_eq!(PgConfig::from_url("postgres://db/main").unwrap().schema, "audit");
        assert!(PgConfig::from_url("mysql://x").is_err());
        assert!(check_schema_name("Audit").is_err());
        assert!(check_schema_name("audit; drop").is_err());
    }

    #[test]
    fn partition_names_map_to_months() {
        assert_eq!(partition_month("audit_records_p202611"), Some(2026 * 12 + 10));
        assert_eq!(month_index(Timestamp::parse("2026-11-26").unwrap()), 2026 * 12 + 10);
        assert_ne!(lock_key("audit", "acme"), lock_key("audit", "acme2"));
        assert_ne!(lock_key("audit", "acme"), lock_key("audit2", "acme"));
    }
}
