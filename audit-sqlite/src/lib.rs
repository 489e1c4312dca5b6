//! SQLite store for the audit toolkit: every record's exact bytes (Contract 2) in one file,
//! next to indexed columns for tenant, time, action, actor, resource and outcome.
//!
//! ```
//! use audit_runtime::query::{Query, RecordSource};
//! use audit_runtime::{Actor, AuditEvent, AuditLayer, AuditScope, AuthMethod, Category};
//! use audit_sqlite::SqliteStore;
//! use tracing_subscriber::prelude::*;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("audit.db");
//! let (layer, guard) = AuditLayer::builder(SqliteStore::open(&path)?).build()?;
//! tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
//!     let scope = AuditScope::new().actor(Actor::user("usr_123", AuthMethod::Sso)).tenant("acme");
//!     scope.in_scope(|| AuditEvent::new("customer_record.read", Category::DataAccess).resource("customer", "c_1").emit())
//! })?;
//! guard.shutdown()?; // flushed and sealed
//!
//! let mut reader = SqliteStore::open(&path)?; // a second connection, for reading
//! let records: Vec<_> = reader.query(&Query::new().tenant("acme"))?.collect::<Result<_, _>>()?;
//! assert_eq!(records.len(), 1);
//! assert!(audit_runtime::query::verify_source(&mut reader, &Default::default())?.is_ok());
//! # Ok(()) }
//! ```
//!
//! # Schema and append-only enforcement
//!
//! [`migrate`] creates, once and idempotently, version by version (table
//! `audit_schema_version`):
//! - `audit_records`: `chain, seq, ts` (Unix microseconds), `tenant, action, category,
//!   actor_id, resource_type, resource_id, outcome, id`, `line` (the exact bytes, as TEXT),
//!   `hash, prev_hash` (32-byte BLOBs); `PRIMARY KEY (chain, seq)`; indexes on
//!   `(chain, ts, seq)`, `(ts, chain, seq)`, `(actor_id, ts)`, `(resource_type, resource_id, ts)`.
//! - `audit_seals`: checkpoints, with `purged = 1` for retention purge seals.
//! - Triggers that reject every `UPDATE` of records and seals, every `DELETE` of seals, and
//!   every `DELETE` of records except the one documented purge path: a row may be deleted
//!   only while a row of `audit_purge_permit` covers its seq **and** a purge seal in
//!   `audit_seals` covers it, so the seal is necessarily written first. [`SqliteStore`]'s
//!   [`RetentionTarget`] implementation inserts the seal and the permit, deletes, and
//!   removes the permit, in one transaction.
//!
//! SQLite has no roles: whoever can write the file can drop the triggers. The triggers stop
//! application code (and mistakes) from editing the log; tampering by someone with the file
//! is what verification and seals (kept on another disk if possible) detect.
//!
//! Appends run in `BEGIN IMMEDIATE` transactions that re-read the chain's stored head, so
//! several processes may write the same file. The database runs in WAL mode with
//! `synchronous = FULL`: a committed append is durable.

use std::path::{Path, PathBuf};
use std::time::Duration;

use audit_runtime::check_continues;
use audit_runtime::copy::RecordSink;
use audit_runtime::query::{Cursor, Indexed, Order, Paged, Query, RecordSource, Records, StoredRecord, StoredSeal};
use audit_runtime::retention::{Blocked, ChainRange, PurgeUnit, RetentionConfig, RetentionPlan, RetentionTarget};
use audit_runtime::store::{ChainBatch, ChainHead, Seal, Store};
use audit_runtime::{ChainHash, StoreError, Timestamp};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params, params_from_iter};

/// The schema version this crate writes and reads.
pub const SCHEMA_VERSION: i64 = 1;

/// Records per page when streaming query results.
const PAGE: usize = 1000;

const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "records, seals, purge permits, append-only triggers",
    r#"
CREATE TABLE audit_records (
    chain         TEXT    NOT NULL,
    seq           INTEGER NOT NULL CHECK (seq > 0),
    ts            INTEGER NOT NULL,
    tenant        TEXT,
    action        TEXT    NOT NULL,
    category      TEXT    NOT NULL,
    actor_id      TEXT    NOT NULL,
    resource_type TEXT,
    resource_id   TEXT,
    outcome       TEXT    NOT NULL,
    id            TEXT    NOT NULL,
    line          TEXT    NOT NULL,
    hash          BLOB    NOT NULL CHECK (length(hash) = 32),
    prev_hash     BLOB    NOT NULL CHECK (length(prev_hash) = 32),
    PRIMARY KEY (chain, seq)
);
CREATE INDEX audit_records_chain_ts ON audit_records (chain, ts, seq);
CREATE INDEX audit_records_ts ON audit_records (ts, chain, seq);
CREATE INDEX audit_records_actor ON audit_records (actor_id, ts);
CREATE INDEX audit_records_resource ON audit_records (resource_type, resource_id, ts);

CREATE TABLE audit_seals (
    chain     TEXT    NOT NULL,
    seq       INTEGER NOT NULL,
    hash      BLOB    NOT NULL,
    sealed_at INTEGER NOT NULL,
    purged    INTEGER NOT NULL DEFAULT 0 CHECK (purged IN (0, 1)),
    UNIQUE (chain, seq, hash, purged)
);

CREATE TABLE audit_purge_permit (
    chain       TEXT    PRIMARY KEY,
    through_seq INTEGER NOT NULL
);

CREATE TRIGGER audit_records_no_update BEFORE UPDATE ON audit_records
BEGIN
    SELECT RAISE(ABORT, 'audit records are append-only: UPDATE is not allowed');
END;

CREATE TRIGGER audit_records_no_delete BEFORE DELETE ON audit_records
WHEN NOT EXISTS (SELECT 1 FROM audit_purge_permit p WHERE p.chain = OLD.chain AND OLD.seq <= p.through_seq)
  OR NOT EXISTS (SELECT 1 FROM audit_seals s WHERE s.chain = OLD.chain AND s.purged = 1 AND s.seq >= OLD.seq)
BEGIN
    SELECT RAISE(ABORT, 'audit records are append-only: DELETE is allowed only for a retention purge behind a purge seal');
END;

CREATE TRIGGER audit_seals_no_update BEFORE UPDATE ON audit_seals
BEGIN
    SELECT RAISE(ABORT, 'audit seals are append-only: UPDATE is not allowed');
END;

CREATE TRIGGER audit_seals_no_delete BEFORE DELETE ON audit_seals
BEGIN
    SELECT RAISE(ABORT, 'audit seals are append-only: DELETE is not allowed');
END;
"#,
)];

/// A SQLite audit store: a [`Store`] for the writer, and a [`RecordSource`],
/// [`RecordSink`] and [`RetentionTarget`] for readers, copies and retention. Open one per
/// use: the writer thread owns its own.
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn db_error(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    }
}

fn hash_of(bytes: Vec<u8>, path: &Path) -> Result<ChainHash, StoreError> {
    let arr: [u8; 32] = bytes.try_into().map_err(|_| StoreError::Corrupt {
        path: path.to_path_buf(),
        line: 0,
        message: "a stored hash is not 32 bytes".into(),
    })?;
    Ok(ChainHash(arr))
}

/// Applies every migration not yet applied, in order, each in its own transaction. Safe to
/// run concurrently from several processes and at every start.
pub fn migrate(conn: &mut Connection) -> Result<i64, rusqlite::Error> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS audit_schema_version (
             version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)",
    )?;
    for (version, description, sql) in MIGRATIONS {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let applied: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM audit_schema_version WHERE version = ?1)",
            [version],
            |r| r.get(0),
        )?;
        if !applied {
            tx.execute_batch(sql)?;
            tx.execute(
                "INSERT INTO audit_schema_version (version, description, applied_at) VALUES (?1, ?2, ?3)",
                params![version, description, Timestamp::now().to_string()],
            )?;
        }
        tx.commit()?;
    }
    conn.query_row("SELECT max(version) FROM audit_schema_version", [], |r| r.get(0))
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let err = db_error(&path);
        let mut conn = Connection::open(&path).map_err(&err)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(&err)?;
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
            .map_err(&err)?;
        let version = migrate(&mut conn).map_err(&err)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Config(format!(
                "{}: schema version {version} is newer than this program knows ({SCHEMA_VERSION})",
                path.display()
            )));
        }
        drop(err);
        Ok(SqliteStore { conn, path })
    }

    /// Opens the existing database at `path`, for reading or retention: a file that is not
    /// there is an error (reading never creates an empty store that would verify with nothing
    /// in it).
    pub fn open_existing(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        if !path.is_file() {
            return Err(StoreError::Config(format!(
                "sqlite://{}: no such SQLite database file",
                path.display()
            )));
        }
        Self::open(path)
    }

    /// Opens a `sqlite://PATH` URL (`sqlite:///abs/path` or `sqlite://relative/path`).
    pub fn open_url(url: &str) -> Result<Self, StoreError> {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| StoreError::Config(format!("`{url}` is not a sqlite:// URL")))?;
        let path = path.split('?').next().unwrap_or(path);
        Self::open(path)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The underlying connection (for inspection and tests).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        db_error(&self.path)
    }

    /// The stored head of `chain`: its newest record, else its newest purge seal.
    fn head_in(conn: &Connection, path: &Path, chain: &str) -> Result<Option<ChainHead>, StoreError> {
        let err = db_error(path);
        let row = conn
            .prepare_cached("SELECT seq, hash, ts FROM audit_records WHERE chain = ?1 ORDER BY seq DESC LIMIT 1")
            .and_then(|mut s| {
                s.query_row([chain], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, i64>(2)?))
                })
                .optional()
            })
            .map_err(&err)?;
        let row = match row {
            Some(r) => Some(r),
            None => conn
                .prepare_cached(
                    "SELECT seq, hash, sealed_at FROM audit_seals WHERE chain = ?1 AND purged = 1 ORDER BY seq DESC LIMIT 1",
                )
                .and_then(|mut s| {
                    s.query_row([chain], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, i64>(2)?)))
                        .optional()
                })
                .map_err(&err)?,
        };
        row.map(|(seq, hash, ts)| {
            Ok(ChainHead {
                chain: chain.to_owned(),
                seq: seq as u64,
                hash: hash_of(hash, path)?,
                timestamp: Timestamp::from_unix_micros(ts),
            })
        })
        .transpose()
    }

    fn insert_rows<'a>(
        conn: &Connection,
        rows: impl Iterator<Item = (Indexed, &'a str, u64, Timestamp, ChainHash, ChainHash, &'a [u8])>,
    ) -> rusqlite::Result<()> {
        let mut insert = conn.prepare_cached(
            "INSERT INTO audit_records (chain, seq, ts, tenant, action, category, actor_id, resource_type, resource_id,
                                        outcome, id, line, hash, prev_hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        )?;
        for (ix, chain, seq, ts, hash, prev, line) in rows {
            let line = std::str::from_utf8(line).map_err(rusqlite::Error::Utf8Error)?;
            insert.execute(params![
                chain,
                seq as i64,
                ts.unix_micros(),
                ix.tenant,
                ix.action,
                ix.category.as_str(),
                ix.actor_id,
                ix.resource_type,
                ix.resource_id,
                ix.outcome.as_str(),
                ix.id.to_string(),
                line,
                &hash.0[..],
                &prev.0[..],
            ])?;
        }
        Ok(())
    }

    fn fetch(&self, sql: &str, args: Vec<Value>) -> Result<Vec<StoredRecord>, StoreError> {
        let err = self.err();
        let mut stmt = self.conn.prepare_cached(sql).map_err(&err)?;
        let rows = stmt
            .query_map(params_from_iter(args), |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                    r.get::<_, Vec<u8>>(4)?,
                    r.get::<_, String>(5)?,
                ))
            })
            .map_err(&err)?;
        let mut out = Vec::new();
        for row in rows {
            let (chain, seq, ts, prev, hash, line) = row.map_err(&err)?;
            out.push(StoredRecord {
                chain,
                seq: seq as u64,
                timestamp: Timestamp::from_unix_micros(ts),
                prev_hash: hash_of(prev, &self.path)?,
                hash: hash_of(hash, &self.path)?,
                line: line.into_bytes(),
            });
        }
        Ok(out)
    }
}

const COLUMNS: &str = "chain, seq, ts, prev_hash, hash, line";

/// The WHERE clause and arguments of `q`, without the cursor.
fn where_clause(q: &Query) -> (String, Vec<Value>) {
    let mut sql = String::from(" WHERE 1 = 1");
    let mut args = Vec::new();
    fn add_to(sql: &mut String, args: &mut Vec<Value>, cond: &str, v: Value) {
        args.push(v);
        sql.push_str(&format!(" AND {cond} ?{}", args.len()));
    }
    let add = |sql: &mut String, args: &mut Vec<Value>, cond: &str, v: Value| add_to(sql, args, cond, v);
    if let Some(t) = &q.tenant {
        add(&mut sql, &mut args, "chain =", Value::Text(t.clone()));
    }
    if let Some(f) = q.from {
        add(&mut sql, &mut args, "ts >=", Value::Integer(f.unix_micros()));
    }
    if let Some(t) = q.to {
        add(&mut sql, &mut args, "ts <", Value::Integer(t.unix_micros()));
    }
    match (q.action_prefix(), &q.action) {
        (Some(prefix), _) => {
            args.push(Value::Text(prefix.to_owned()));
            let n = args.len();
            sql.push_str(&format!(" AND substr(action, 1, length(?{n})) = ?{n}"));
        }
        (None, Some(a)) => add(&mut sql, &mut args, "action =", Value::Text(a.clone())),
        (None, None) => {}
    }
    if let Some(a) = &q.actor {
        add(&mut sql, &mut args, "actor_id =", Value::Text(a.clone()));
    }
    if let Some(t) = &q.resource_type {
        add(&mut sql, &mut args, "resource_type =", Value::Text(t.clone()));
    }
    if let Some(i) = &q.resource_id {
        add(&mut sql, &mut args, "resource_id =", Value::Text(i.clone()));
    }
    if let Some(o) = q.outcome {
        add(&mut sql, &mut args, "outcome =", Value::Text(o.as_str().to_owned()));
    }
    (sql, args)
}

/// The keyset condition for continuing after `c` in `q`'s order. With a tenant the chain is
/// fixed, so the condition stays on `(ts, seq)`, which the `(chain, ts, seq)` index serves.
fn cursor_clause(q: &Query, c: &Cursor, args: &mut Vec<Value>) -> String {
    let op = match q.order {
        Order::OldestFirst => ">",
        Order::NewestFirst => "<",
    };
    args.push(Value::Integer(c.timestamp.unix_micros()));
    let ts = args.len();
    match q.tenant.as_deref() {
        Some(t) if t == c.chain => {
            args.push(Value::Integer(c.seq as i64));
            format!(" AND (ts, seq) {op} (?{ts}, ?{})", args.len())
        }
        Some(t) => {
            // Same microsecond, other chain: the chain key decides.
            let later = (t > c.chain.as_str()) == (q.order == Order::OldestFirst);
            format!(" AND ts {op}{} ?{ts}", if later { "=" } else { "" })
        }
        None => {
            args.push(Value::Text(c.chain.clone()));
            args.push(Value::Integer(c.seq as i64));
            format!(
                " AND (ts, chain, seq) {op} (?{ts}, ?{}, ?{})",
                args.len() - 1,
                args.len()
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

impl Store for SqliteStore {
    fn heads(&mut self) -> Result<Vec<ChainHead>, StoreError> {
        let chains = self.chains()?;
        let mut heads = Vec::with_capacity(chains.len());
        for chain in chains {
            if let Some(h) = Self::head_in(&self.conn, &self.path, &chain)? {
                heads.push(h);
            }
        }
        Ok(heads)
    }

    fn append(&mut self, batch: &mut ChainBatch, head: &mut ChainHead) -> Result<(), StoreError> {
        let path = self.path.clone();
        let err = db_error(&path);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&err)?;
        // Another process may have appended since this writer last did: the stored head wins.
        *head = Self::head_in(&tx, &path, batch.chain())?.unwrap_or_else(|| genesis(batch.chain()));
        let mut prev = head.hash;
        batch.chain_onto(head);
        let chain = batch.chain();
        let rows = batch.records().map(|(e, c, line)| {
            let line = line.strip_suffix(b"\n").unwrap_or(line);
            let link = std::mem::replace(&mut prev, c.hash);
            (Indexed::from_entry(e), chain, c.seq, c.timestamp, c.hash, link, line)
        });
        Self::insert_rows(&tx, rows).map_err(&err)?;
        tx.commit().map_err(&err)
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        // Each append committed with synchronous = FULL: already durable.
        Ok(())
    }

    fn seal(&mut self, seals: &[Seal]) -> Result<(), StoreError> {
        let seals: Vec<StoredSeal> = seals.iter().cloned().map(StoredSeal::from).collect();
        self.add_seals(&seals)
    }
}

/// The head of a chain with no records.
fn genesis(chain: &str) -> ChainHead {
    ChainHead {
        chain: chain.to_owned(),
        seq: 0,
        hash: ChainHash::GENESIS,
        timestamp: Timestamp::from_unix_micros(i64::MIN),
    }
}

impl RecordSource for SqliteStore {
    fn describe(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }

    fn chains(&mut self) -> Result<Vec<String>, StoreError> {
        let err = self.err();
        let mut stmt = self
            .conn
            .prepare_cached("SELECT DISTINCT chain FROM audit_records ORDER BY chain")
            .map_err(&err)?;
        let chains = stmt
            .query_map([], |r| r.get(0))
            .map_err(&err)?
            .collect::<Result<Vec<String>, _>>()
            .map_err(&err)?;
        Ok(chains)
    }

    fn chain_records(&mut self, chain: &str, after_seq: u64) -> Result<Records<'_>, StoreError> {
        let chain = chain.to_owned();
        let start = Cursor {
            timestamp: Timestamp::from_unix_micros(0),
            chain: chain.clone(),
            seq: after_seq,
        };
        let this = &*self;
        let fetch = move |after: Option<&Cursor>, n: usize| {
            let seq = after.map_or(after_seq, |c| c.seq);
            let sql =
                format!("SELECT {COLUMNS} FROM audit_records WHERE chain = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3");
            this.fetch(
                &sql,
                vec![
                    Value::Text(chain.clone()),
                    Value::Integer(seq as i64),
                    Value::Integer(n as i64),
                ],
            )
        };
        Ok(Box::new(Paged::new(fetch, Some(start), None, PAGE)))
    }

    fn query(&mut self, query: &Query) -> Result<Records<'_>, StoreError> {
        let q = query.clone();
        let this = &*self;
        let fetch = move |after: Option<&Cursor>, n: usize| {
            let (mut sql, mut args) = where_clause(&q);
            if let Some(c) = after {
                sql.push_str(&cursor_clause(&q, c, &mut args));
            }
            args.push(Value::Integer(n as i64));
            let sql = format!(
                "SELECT {COLUMNS} FROM audit_records{sql}{} LIMIT ?{}",
                order_clause(&q),
                args.len()
            );
            this.fetch(&sql, args)
        };
        Ok(Box::new(Paged::new(fetch, query.after.clone(), query.limit, PAGE)))
    }

    fn seals(&mut self) -> Result<Vec<StoredSeal>, StoreError> {
        let err = self.err();
        let mut stmt = self
            .conn
            .prepare_cached("SELECT chain, seq, hash, sealed_at, purged FROM audit_seals ORDER BY rowid")
            .map_err(&err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, bool>(4)?,
                ))
            })
            .map_err(&err)?;
        let mut out = Vec::new();
        for row in rows {
            let (chain, seq, hash, sealed_at, purged) = row.map_err(&err)?;
            let seal = Seal {
                chain,
                seq: seq as u64,
                hash: hash_of(hash, &self.path)?,
                sealed_at: Timestamp::from_unix_micros(sealed_at),
            };
            out.push(StoredSeal { seal, purged });
        }
        Ok(out)
    }
}

impl RecordSink for SqliteStore {
    fn describe(&self) -> String {
        RecordSource::describe(self)
    }

    fn stored_head(&mut self, chain: &str) -> Result<Option<ChainHead>, StoreError> {
        Self::head_in(&self.conn, &self.path, chain)
    }

    fn append_records(&mut self, chain: &str, records: &[StoredRecord]) -> Result<(), StoreError> {
        let path = self.path.clone();
        let err = db_error(&path);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&err)?;
        let head = Self::head_in(&tx, &path, chain)?;
        check_continues(head.as_ref(), records).map_err(StoreError::Config)?;
        let mut rows = Vec::with_capacity(records.len());
        for r in records {
            let ix = Indexed::from_line(&r.line).map_err(|m| StoreError::Corrupt {
                path: path.clone(),
                line: r.seq,
                message: m.0,
            })?;
            rows.push((ix, chain, r.seq, r.timestamp, r.hash, r.prev_hash, r.line.as_slice()));
        }
        Self::insert_rows(&tx, rows.into_iter()).map_err(&err)?;
        tx.commit().map_err(&err)
    }

    fn stored_seals(&mut self) -> Result<Vec<StoredSeal>, StoreError> {
        self.seals()
    }

    fn add_seals(&mut self, seals: &[StoredSeal]) -> Result<(), StoreError> {
        let path = self.path.clone();
        let err = db_error(&path);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&err)?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO audit_seals (chain, seq, hash, sealed_at, purged) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT DO NOTHING",
                )
                .map_err(&err)?;
            for s in seals {
                insert
                    .execute(params![
                        s.seal.chain,
                        s.seal.seq as i64,
                        &s.seal.hash.0[..],
                        s.seal.sealed_at.unix_micros(),
                        s.purged
                    ])
                    .map_err(&err)?;
            }
        }
        tx.commit().map_err(&err)
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}

impl RetentionTarget for SqliteStore {
    fn plan(&mut self, config: &RetentionConfig, now: Timestamp) -> Result<RetentionPlan, StoreError> {
        let mut plan = RetentionPlan {
            store: RecordSource::describe(self),
            now,
            units: Vec::new(),
            blocked: Vec::new(),
        };
        let chains = self.chains()?;
        let err = self.err();
        for chain in chains {
            let policy_cutoff = config.policy_for(&chain).cutoff(now);
            let cutoff = config.cutoff_for(&chain, now);
            let limit = match &cutoff {
                Ok(c) => *c,
                Err(_) => policy_cutoff,
            };
            let first = self
                .conn
                .prepare_cached("SELECT seq, ts FROM audit_records WHERE chain = ?1 ORDER BY seq LIMIT 1")
                .and_then(|mut s| {
                    s.query_row([&chain], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
                        .optional()
                })
                .map_err(&err)?;
            let last = self
                .conn
                .prepare_cached(
                    "SELECT seq, hash, ts FROM audit_records WHERE chain = ?1 AND ts < ?2 ORDER BY ts DESC, seq DESC LIMIT 1",
                )
                .and_then(|mut s| {
                    s.query_row(params![&chain, limit.unix_micros()], |r| {
                        Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, i64>(2)?))
                    })
                    .optional()
                })
                .map_err(&err)?;
            let (Some((first_seq, first_ts)), Some((last_seq, hash, last_ts))) = (first, last) else {
                continue;
            };
            let name = format!("rows of chain `{chain}` seq {first_seq}..={last_seq}");
            match cutoff {
                Err(reason) => plan.blocked.push(Blocked { unit: name, reason }),
                Ok(_) => plan.units.push(PurgeUnit {
                    name,
                    chains: vec![ChainRange {
                        chain: chain.clone(),
                        first_seq: first_seq as u64,
                        last_seq: last_seq as u64,
                        last_hash: hash_of(hash, &self.path)?,
                        oldest: Timestamp::from_unix_micros(first_ts),
                        newest: Timestamp::from_unix_micros(last_ts),
                    }],
                }),
            }
        }
        Ok(plan)
    }

    fn purge(&mut self, plan: &RetentionPlan) -> Result<Vec<String>, StoreError> {
        let path = self.path.clone();
        let err = db_error(&path);
        let mut removed = Vec::new();
        for unit in &plan.units {
            for r in &unit.chains {
                let tx = self
                    .conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(&err)?;
                // The documented purge path: seal, permit, delete, withdraw the permit.
                tx.execute(
                    "INSERT INTO audit_seals (chain, seq, hash, sealed_at, purged) VALUES (?1, ?2, ?3, ?4, 1)
                     ON CONFLICT DO NOTHING",
                    params![
                        r.chain,
                        r.last_seq as i64,
                        &r.last_hash.0[..],
                        Timestamp::now().unix_micros()
                    ],
                )
                .map_err(&err)?;
                tx.execute(
                    "INSERT OR REPLACE INTO audit_purge_permit (chain, through_seq) VALUES (?1, ?2)",
                    params![r.chain, r.last_seq as i64],
                )
                .map_err(&err)?;
                tx.execute(
                    "DELETE FROM audit_records WHERE chain = ?1 AND seq <= ?2",
                    params![r.chain, r.last_seq as i64],
                )
                .map_err(&err)?;
                tx.execute("DELETE FROM audit_purge_permit WHERE chain = ?1", params![r.chain])
                    .map_err(&err)?;
                tx.commit().map_err(&err)?;
            }
            removed.push(unit.name.clone());
        }
        Ok(removed)
    }
}
