//! One query API over every store: filter by tenant, time range, action (exact or a prefix
//! such as `billing.*`), actor, resource and outcome; newest or oldest first; cursor
//! pagination; records streamed with their exact stored bytes.
//!
//! A store that can be read implements [`RecordSource`]. [`FileSource`] reads a file store
//! directory; the SQLite and PostgreSQL crates implement the trait for their stores. Verify,
//! export and copy are written once against the trait ([`verify_source`], [`export_source`],
//! [`copy`](crate::copy::copy)).
//!
//! ```
//! use audit_runtime::query::{FileSource, Order, Query, RecordSource};
//! use audit_runtime::{AuditEvent, Category, FileStore, Timestamp};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let mut store = FileStore::open(dir.path())?;
//! let events = (0..5).map(|i| {
//!     AuditEvent::new("billing.update", Category::Mutation).tenant("acme").resource("invoice", i)
//! });
//! audit_runtime::copy::append_events(&mut store, events)?;
//!
//! let mut source = FileSource::open(dir.path())?;
//! let query = Query::new().tenant("acme").action("billing.*").order(Order::NewestFirst).limit(2);
//! let page = audit_runtime::query::page(&mut source, &query)?;
//! assert_eq!(page.records.iter().map(|r| r.seq).collect::<Vec<_>>(), [5, 4]);
//! let rest: Vec<_> = source.query(&query.clone().after(page.next.unwrap()).limit(10))?.collect::<Result<_, _>>()?;
//! assert_eq!(rest.iter().map(|r| r.seq).collect::<Vec<_>>(), [3, 2, 1]);
//! # Ok(()) }
//! ```

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::event::Category;
use crate::export::{ExportError, ExportSummary, Format};
use crate::record::{ChainHash, LineView, Malformed, Record};
use crate::store::file::{encode_chain, segments};
use crate::store::{Entry, Seal};
use crate::time::Timestamp;
use crate::verify::{Location, VerifyOptions, VerifyReport};

/// Which way results run. Both orders sort by `(timestamp, chain, seq)`, which within one
/// chain is chain order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Order {
    /// Oldest first (the default; chain order for one tenant).
    #[default]
    OldestFirst,
    /// Newest first.
    NewestFirst,
}

/// The outcome a query selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutcomeStatus {
    /// `{"status":"success"}`.
    Success,
    /// `{"status":"failure",...}`.
    Failure,
}

impl OutcomeStatus {
    /// The `status` text stored in records and indexed columns.
    pub const fn as_str(self) -> &'static str {
        match self {
            OutcomeStatus::Success => "success",
            OutcomeStatus::Failure => "failure",
        }
    }

    /// Parses `success` or `failure`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "success" => Some(OutcomeStatus::Success),
            "failure" => Some(OutcomeStatus::Failure),
            _ => None,
        }
    }
}

/// Where a page ended: the sort key `(timestamp, chain, seq)` of its last record. The next
/// page starts strictly after it in the query's order. Its text form (`Display`/`FromStr`)
/// is opaque and URL-safe, for APIs that hand it to clients.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Cursor {
    /// Timestamp of the last record returned.
    pub timestamp: Timestamp,
    /// Its chain.
    pub chain: String,
    /// Its seq.
    pub seq: u64,
}

impl Cursor {
    fn key(&self) -> (Timestamp, &str, u64) {
        (self.timestamp, &self.chain, self.seq)
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{}-{}",
            self.timestamp.unix_micros(),
            self.seq,
            hex::encode(self.chain.as_bytes())
        )
    }
}

impl FromStr for Cursor {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("`{text}` is not a cursor returned by a query");
        // Micros may be negative, so split from the right.
        let mut parts = text.rsplitn(3, '-');
        let chain = parts.next().ok_or_else(bad)?;
        let seq = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        let micros = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        let chain = hex::decode(chain)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(bad)?;
        Ok(Cursor {
            timestamp: Timestamp::from_unix_micros(micros),
            chain,
            seq,
        })
    }
}

/// What to read. Every filter that is set must match; see the builder methods.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query {
    /// Only this tenant's chain (the chain key; `default` for events without a tenant).
    pub tenant: Option<String>,
    /// Only records at or after this time.
    pub from: Option<Timestamp>,
    /// Only records before this time.
    pub to: Option<Timestamp>,
    /// Only this action, or every action under a prefix written `billing.*`.
    pub action: Option<String>,
    /// Only this actor id.
    pub actor: Option<String>,
    /// Only resources of this type.
    pub resource_type: Option<String>,
    /// Only resources with this id.
    pub resource_id: Option<String>,
    /// Only this outcome.
    pub outcome: Option<OutcomeStatus>,
    /// Sort direction.
    pub order: Order,
    /// At most this many records.
    pub limit: Option<usize>,
    /// Start after this cursor (from a previous [`Page`]).
    pub after: Option<Cursor>,
}

impl Query {
    /// A query for every record, oldest first.
    pub fn new() -> Self {
        Query::default()
    }

    /// Only `tenant`'s chain.
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// Only records in `[from, to)`.
    pub fn between(mut self, from: Timestamp, to: Timestamp) -> Self {
        self.from = Some(from);
        self.to = Some(to);
        self
    }

    /// Only records at or after `from`.
    pub fn from(mut self, from: Timestamp) -> Self {
        self.from = Some(from);
        self
    }

    /// Only records before `to`.
    pub fn to(mut self, to: Timestamp) -> Self {
        self.to = Some(to);
        self
    }

    /// Only `action`, or a prefix written `billing.*` (matching `billing.update` and
    /// `billing.card.update`, not `billing` or `billingx.update`).
    pub fn action(mut self, action: impl Into<String>) -> Self {
        self.action = Some(action.into());
        self
    }

    /// Only records of this actor id.
    pub fn actor(mut self, actor_id: impl Into<String>) -> Self {
        self.actor = Some(actor_id.into());
        self
    }

    /// Only this resource (type and id).
    pub fn resource(mut self, kind: impl Into<String>, id: impl Into<String>) -> Self {
        self.resource_type = Some(kind.into());
        self.resource_id = Some(id.into());
        self
    }

    /// Only this outcome.
    pub fn outcome(mut self, outcome: OutcomeStatus) -> Self {
        self.outcome = Some(outcome);
        self
    }

    /// Sort direction.
    pub fn order(mut self, order: Order) -> Self {
        self.order = order;
        self
    }

    /// At most `n` records.
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
    }

    /// Continue after `cursor`.
    pub fn after(mut self, cursor: Cursor) -> Self {
        self.after = Some(cursor);
        self
    }

    /// True when only tenant and time filters are set, so that the results of one tenant
    /// are a whole contiguous chain segment that verifies on its own.
    pub fn keeps_segments(&self) -> bool {
        self.action.is_none()
            && self.actor.is_none()
            && self.resource_type.is_none()
            && self.resource_id.is_none()
            && self.outcome.is_none()
    }

    /// The action prefix including its final `.` when the action filter is `prefix.*`.
    pub fn action_prefix(&self) -> Option<&str> {
        let pattern = self.action.as_deref()?;
        pattern.strip_suffix('*').filter(|p| p.ends_with('.'))
    }

    /// Whether `action` passes the action filter.
    pub fn action_matches(&self, action: &str) -> bool {
        match (self.action_prefix(), self.action.as_deref()) {
            (_, None) => true,
            (Some(prefix), _) => action.starts_with(prefix),
            (None, Some(exact)) => action == exact,
        }
    }

    /// Whether a record with these indexed members passes the filters other than tenant and
    /// time.
    pub fn matches(&self, indexed: &Indexed) -> bool {
        self.action_matches(&indexed.action)
            && self.actor.as_deref().is_none_or(|a| a == indexed.actor_id)
            && self
                .resource_type
                .as_deref()
                .is_none_or(|t| Some(t) == indexed.resource_type.as_deref())
            && self
                .resource_id
                .as_deref()
                .is_none_or(|i| Some(i) == indexed.resource_id.as_deref())
            && self.outcome.is_none_or(|o| o == indexed.outcome)
    }

    /// Whether a record at `timestamp` lies in the time range.
    pub fn in_time_range(&self, timestamp: Timestamp) -> bool {
        self.from.is_none_or(|f| timestamp >= f) && self.to.is_none_or(|t| timestamp < t)
    }

    /// Whether a record with this sort key comes after the cursor in the query's order.
    pub fn after_cursor(&self, timestamp: Timestamp, chain: &str, seq: u64) -> bool {
        match &self.after {
            None => true,
            Some(c) => {
                let cmp = (timestamp, chain, seq).cmp(&c.key());
                match self.order {
                    Order::OldestFirst => cmp == Ordering::Greater,
                    Order::NewestFirst => cmp == Ordering::Less,
                }
            }
        }
    }
}

impl From<&crate::export::Filter> for Query {
    fn from(f: &crate::export::Filter) -> Self {
        Query {
            tenant: f.tenant.clone(),
            from: f.from,
            to: f.to,
            action: f.action.clone(),
            actor: f.actor.clone(),
            ..Query::default()
        }
    }
}

/// The members of a record that stores index, read from a line or from a batch entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Indexed {
    /// The record's id.
    pub id: uuid::Uuid,
    /// The `tenant` member (absent for the default chain).
    pub tenant: Option<String>,
    /// The action.
    pub action: String,
    /// The category.
    pub category: Category,
    /// The actor's id.
    pub actor_id: String,
    /// The resource's type.
    pub resource_type: Option<String>,
    /// The resource's id.
    pub resource_id: Option<String>,
    /// The outcome's status.
    pub outcome: OutcomeStatus,
}

#[derive(Deserialize)]
struct IndexedLine {
    id: uuid::Uuid,
    actor: ActorLine,
    action: String,
    category: Category,
    #[serde(default)]
    resource: Option<ResourceLine>,
    outcome: OutcomeLine,
    #[serde(default)]
    tenant: Option<String>,
}

#[derive(Deserialize)]
struct ActorLine {
    id: String,
}

#[derive(Deserialize)]
struct ResourceLine {
    #[serde(rename = "type")]
    kind: String,
    id: String,
}

#[derive(Deserialize)]
struct OutcomeLine {
    status: OutcomeStatus,
}

impl Indexed {
    /// Reads the indexed members of a stored line (skipping everything else).
    pub fn from_line(line: &[u8]) -> Result<Self, Malformed> {
        let l: IndexedLine = serde_json::from_slice(line).map_err(|e| Malformed(format!("not a valid record: {e}")))?;
        Ok(Indexed {
            id: l.id,
            tenant: l.tenant,
            action: l.action,
            category: l.category,
            actor_id: l.actor.id,
            resource_type: l.resource.as_ref().map(|r| r.kind.clone()),
            resource_id: l.resource.map(|r| r.id),
            outcome: l.outcome.status,
        })
    }

    /// The indexed members of a batch entry (no parsing).
    pub fn from_entry(e: &Entry) -> Self {
        Indexed {
            id: e.id,
            tenant: e.tenant.clone(),
            action: e.action.to_string(),
            category: e.category,
            actor_id: e.actor.id.clone(),
            resource_type: e.resource.as_ref().map(|r| r.kind.to_string()),
            resource_id: e.resource.as_ref().map(|r| r.id.clone()),
            outcome: if e.outcome.is_success() {
                OutcomeStatus::Success
            } else {
                OutcomeStatus::Failure
            },
        }
    }
}

/// One stored record: its chain members and its exact line (without the newline).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecord {
    /// The chain key.
    pub chain: String,
    /// Position in the chain.
    pub seq: u64,
    /// The `timestamp` member.
    pub timestamp: Timestamp,
    /// The `prev_hash` member.
    pub prev_hash: ChainHash,
    /// The `hash` member.
    pub hash: ChainHash,
    /// The exact stored bytes, without the trailing newline.
    pub line: Vec<u8>,
}

impl StoredRecord {
    /// Reads the chain members of `line` (without its newline). The hash is not checked
    /// here: verification does that.
    pub fn from_line(line: Vec<u8>) -> Result<Self, Malformed> {
        let view = LineView::parse(&line)?;
        let timestamp = Timestamp::parse(view.timestamp).map_err(Malformed)?;
        let (chain, seq, prev_hash, hash) = (view.chain.into_owned(), view.seq, view.prev_hash, view.hash);
        Ok(StoredRecord {
            chain,
            seq,
            timestamp,
            prev_hash,
            hash,
            line,
        })
    }

    /// The cursor that continues after this record.
    pub fn cursor(&self) -> Cursor {
        Cursor {
            timestamp: self.timestamp,
            chain: self.chain.clone(),
            seq: self.seq,
        }
    }

    /// The whole record, parsed.
    pub fn record(&self) -> Result<Record, Malformed> {
        Record::parse(&self.line)
    }

    /// Its indexed members.
    pub fn indexed(&self) -> Result<Indexed, Malformed> {
        Indexed::from_line(&self.line)
    }
}

/// A seal as stored, with its kind. A purge seal (`"purged":true`) is written by retention
/// before it removes records: every record of the chain up to and including `seq` was
/// purged on purpose, and the remaining chain continues from `hash`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSeal {
    /// The checkpoint.
    #[serde(flatten)]
    pub seal: Seal,
    /// True for a retention purge seal.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub purged: bool,
}

/// Records streamed from a store, oldest or newest first, in bounded memory.
pub type Records<'a> = Box<dyn Iterator<Item = Result<StoredRecord, StoreError>> + 'a>;

/// A store that can be read: queried, and walked chain by chain for verify and copy.
pub trait RecordSource {
    /// A name for messages (a directory, `sqlite://...`, `postgres://.../schema`).
    fn describe(&self) -> String;

    /// Every chain key, sorted.
    fn chains(&mut self) -> Result<Vec<String>, StoreError>;

    /// The records of `chain` with seq above `after_seq`, in seq order, exactly as stored
    /// (including any gap or damage, which verification is there to find).
    fn chain_records(&mut self, chain: &str, after_seq: u64) -> Result<Records<'_>, StoreError>;

    /// The records that match `query`, in its order.
    fn query(&mut self, query: &Query) -> Result<Records<'_>, StoreError>;

    /// Every seal, purge seals included.
    fn seals(&mut self) -> Result<Vec<StoredSeal>, StoreError>;
}

/// Where a store is, as written on a command line: `sqlite://PATH`, `postgres://...` (or
/// `postgresql://...`), or a file store directory. The SQL stores live in their own crates
/// (`audit-sqlite`, `audit-postgres`); a program that links them opens the right one by this.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreLocation {
    /// A file store directory.
    Files(PathBuf),
    /// A SQLite database file.
    Sqlite(PathBuf),
    /// A PostgreSQL URL, `?schema=NAME` included when given.
    Postgres(String),
}

impl StoreLocation {
    /// Reads a location; anything that is not a known URL scheme is a directory path.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Some(path) = text.strip_prefix("sqlite://") {
            let path = path.split('?').next().unwrap_or_default();
            if path.is_empty() {
                return Err(format!("`{text}`: no database file after sqlite://"));
            }
            return Ok(StoreLocation::Sqlite(PathBuf::from(path)));
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Ok(StoreLocation::Postgres(text.to_owned()));
        }
        if let Some((scheme, _)) = text.split_once("://") {
            return Err(format!(
                "`{text}`: unknown store scheme `{scheme}` (use sqlite://, postgres:// or a directory)"
            ));
        }
        Ok(StoreLocation::Files(PathBuf::from(text)))
    }
}

/// One page of results and the cursor of the next page (`None` when this was the last).
#[derive(Clone, Debug, Default)]
pub struct Page {
    /// The records of this page.
    pub records: Vec<StoredRecord>,
    /// Where the next page starts, if there may be one.
    pub next: Option<Cursor>,
}

/// Runs `query` for one page of `query.limit` records (100 when unset).
pub fn page(source: &mut dyn RecordSource, query: &Query) -> Result<Page, StoreError> {
    let limit = query.limit.unwrap_or(100);
    let q = Query {
        limit: Some(limit),
        ..query.clone()
    };
    let records: Vec<StoredRecord> = source.query(&q)?.collect::<Result<_, _>>()?;
    let next = (records.len() == limit && limit > 0)
        .then(|| records.last().map(StoredRecord::cursor))
        .flatten();
    Ok(Page { records, next })
}

/// Verifies every chain of `source` from its start (or from a purge seal) against its seals:
/// the same checks as [`verify_paths`](crate::verify::verify_paths) for a store directory.
pub fn verify_source(source: &mut dyn RecordSource, opts: &VerifyOptions) -> Result<VerifyReport, StoreError> {
    let mut verifier = crate::verify::Verifier::new(opts.strict);
    // A store keeps whole chains: a sealed chain without a single record left was deleted.
    verifier.expect_whole = true;
    let origin = PathBuf::from(format!("{} (seals)", source.describe()));
    for (n, s) in source.seals()?.into_iter().enumerate() {
        verifier.add_seal(s.seal, s.purged, &origin, n as u64 + 1);
    }
    for seals in &opts.seals {
        verifier.add_seals(seals)?;
    }
    let name = source.describe();
    for chain in source.chains()? {
        let path = PathBuf::from(format!("{name} chain {chain}"));
        for record in source.chain_records(&chain, 0)? {
            let record = record?;
            verifier.push(
                &record.line,
                || Location {
                    path: path.clone(),
                    line: record.seq,
                },
                true,
            );
        }
    }
    Ok(verifier.finish())
}

/// Exports the records of `source` that match `query` (see [`crate::export`]). JSONL output
/// of one tenant over a time range, with no other filter, is a verifiable chain segment.
pub fn export_source(
    source: &mut dyn RecordSource,
    query: &Query,
    format: Format,
    out: impl Write,
) -> Result<ExportSummary, ExportError> {
    let records = source.query(query)?;
    crate::export::export_lines(records.map(|r| r.map(|r| r.line)), format, out)
}

// ---------------------------------------------------------------------------------------
// File store directories.

/// Reads a file store directory (see [`FileStore`](crate::FileStore)) without locking it,
/// so it can run next to the writing process: a last line still being written is skipped.
#[derive(Clone, Debug)]
pub struct FileSource {
    dir: PathBuf,
    seals_dir: PathBuf,
}

impl FileSource {
    /// Reads the store in `dir`, whose seals are in `dir/seals`.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        let seals_dir = dir.join("seals");
        Self::with_seals_dir(dir, seals_dir)
    }

    /// Reads the store in `dir` whose seals are kept in `seals_dir`.
    pub fn with_seals_dir(dir: impl AsRef<Path>, seals_dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        if !crate::store::file::is_store_dir(&dir) {
            return Err(StoreError::Config(format!(
                "{}: not an audit file store (no `chains` directory)",
                dir.display()
            )));
        }
        Ok(FileSource {
            dir,
            seals_dir: seals_dir.as_ref().to_path_buf(),
        })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn chain_segments(&self, chain: &str) -> Result<Vec<PathBuf>, StoreError> {
        segments(&self.dir.join("chains").join(encode_chain(chain)))
    }

    fn chain_reader(
        &self,
        chain: &str,
        q: &Query,
    ) -> Result<Box<dyn Iterator<Item = Result<StoredRecord, StoreError>>>, StoreError> {
        let segs = self.chain_segments(chain)?;
        let q = q.clone();
        Ok(match q.order {
            Order::OldestFirst => Box::new(ForwardChain::new(segs, &q, 0)?.filter_map(move |r| filter_record(r, &q))),
            Order::NewestFirst => Box::new(BackwardChain::new(segs, &q)?.filter_map(move |r| filter_record(r, &q))),
        })
    }
}

fn filter_record(r: Result<StoredRecord, StoreError>, q: &Query) -> Option<Result<StoredRecord, StoreError>> {
    let r = match r {
        Ok(r) => r,
        Err(e) => return Some(Err(e)),
    };
    if !q.in_time_range(r.timestamp) || !q.after_cursor(r.timestamp, &r.chain, r.seq) {
        return None;
    }
    if q.keeps_segments() {
        return Some(Ok(r));
    }
    match r.indexed() {
        Ok(ix) => q.matches(&ix).then_some(Ok(r)),
        Err(m) => Some(Err(StoreError::Corrupt {
            path: PathBuf::from(&r.chain),
            line: r.seq,
            message: m.0,
        })),
    }
}

impl RecordSource for FileSource {
    fn describe(&self) -> String {
        self.dir.display().to_string()
    }

    fn chains(&mut self) -> Result<Vec<String>, StoreError> {
        crate::store::file::chain_names(&self.dir.join("chains"))
    }

    fn chain_records(&mut self, chain: &str, after_seq: u64) -> Result<Records<'_>, StoreError> {
        let segs = self.chain_segments(chain)?;
        let after = after_seq;
        let reader = ForwardChain::new(segs, &Query::default(), after)?;
        Ok(Box::new(
            reader.filter(move |r| r.as_ref().map_or(true, |r| r.seq > after)),
        ))
    }

    fn query(&mut self, query: &Query) -> Result<Records<'_>, StoreError> {
        let chains = match &query.tenant {
            Some(t) => vec![t.clone()],
            None => self.chains()?,
        };
        let mut readers = Vec::with_capacity(chains.len());
        for chain in &chains {
            readers.push(self.chain_reader(chain, query)?);
        }
        let merged = Merge::new(readers, query.order);
        Ok(match query.limit {
            Some(n) => Box::new(merged.take(n)),
            None => Box::new(merged),
        })
    }

    fn seals(&mut self) -> Result<Vec<StoredSeal>, StoreError> {
        read_seal_files(&self.seals_dir)
    }
}

/// Reads every `*.jsonl` seal file in `dir` (sorted), purge seals included.
pub fn read_seal_files(dir: &Path) -> Result<Vec<StoredSeal>, StoreError> {
    let mut out = Vec::new();
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(StoreError::io(dir)(e)),
    };
    files.sort();
    for path in files {
        let file = File::open(&path).map_err(StoreError::io(&path))?;
        for (n, line) in BufReader::new(file).split(b'\n').enumerate() {
            let line = line.map_err(StoreError::io(&path))?;
            if line.is_empty() {
                continue;
            }
            let seal = serde_json::from_slice(&line).map_err(|e| StoreError::Corrupt {
                path: path.clone(),
                line: n as u64 + 1,
                message: format!("not a seal: {e}"),
            })?;
            out.push(seal);
        }
    }
    Ok(out)
}

/// The first record's timestamp of a segment (None when it is empty or unreadable yet).
fn first_timestamp(path: &Path) -> Result<Option<Timestamp>, StoreError> {
    let file = File::open(path).map_err(StoreError::io(path))?;
    let mut line = Vec::new();
    BufReader::with_capacity(8 << 10, file)
        .read_until(b'\n', &mut line)
        .map_err(StoreError::io(path))?;
    if line.last() != Some(&b'\n') {
        return Ok(None);
    }
    line.pop();
    Ok(LineView::parse(&line)
        .ok()
        .and_then(|v| Timestamp::parse(v.timestamp).ok()))
}

fn first_seq_of(path: &Path) -> u64 {
    path.file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn corrupt(path: &Path, line: u64, m: Malformed) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        line,
        message: m.0,
    }
}

/// A chain's records oldest first, skipping whole segments before `from` or below
/// `after_seq`, and stopping at `to`.
struct ForwardChain {
    segments: std::vec::IntoIter<PathBuf>,
    current: Option<(PathBuf, BufReader<File>, u64)>,
    to: Option<Timestamp>,
    done: bool,
    buf: Vec<u8>,
}

impl ForwardChain {
    fn new(segs: Vec<PathBuf>, q: &Query, after_seq: u64) -> Result<Self, StoreError> {
        // Timestamps never decrease along a chain: a segment whose successor starts before
        // `from` holds nothing at or after `from`.
        let mut start = 0;
        let from = match (&q.after, q.order) {
            (Some(c), Order::OldestFirst) => q.from.max(Some(c.timestamp)),
            _ => q.from,
        };
        for (i, seg) in segs.iter().enumerate().skip(1) {
            let skip_by_seq = after_seq > 0 && first_seq_of(seg) <= after_seq + 1;
            let skip_by_time = match from {
                Some(f) => first_timestamp(seg)?.is_some_and(|t| t < f),
                None => false,
            };
            if skip_by_seq || skip_by_time {
                start = i;
            } else {
                break;
            }
        }
        let rest: Vec<PathBuf> = segs.into_iter().skip(start).collect();
        Ok(ForwardChain {
            segments: rest.into_iter(),
            current: None,
            to: q.to,
            done: false,
            buf: Vec::new(),
        })
    }
}

impl Iterator for ForwardChain {
    type Item = Result<StoredRecord, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            if self.current.is_none() {
                let path = self.segments.next()?;
                match File::open(&path) {
                    Ok(f) => self.current = Some((path, BufReader::with_capacity(128 << 10, f), 0)),
                    Err(e) => {
                        self.done = true;
                        return Some(Err(StoreError::io(&path)(e)));
                    }
                }
            }
            let (path, reader, line_no) = self.current.as_mut().expect("opened");
            self.buf.clear();
            match reader.read_until(b'\n', &mut self.buf) {
                Err(e) => {
                    self.done = true;
                    return Some(Err(StoreError::io(path.as_path())(e)));
                }
                Ok(0) => {
                    self.current = None;
                    continue;
                }
                Ok(_) => {}
            }
            *line_no += 1;
            if self.buf.last() != Some(&b'\n') {
                // Still being written (or torn by a crash, which the writer repairs).
                self.current = None;
                continue;
            }
            self.buf.pop();
            if self.buf.is_empty() {
                continue;
            }
            let record = match StoredRecord::from_line(std::mem::take(&mut self.buf)) {
                Ok(r) => r,
                Err(m) => {
                    self.done = true;
                    return Some(Err(corrupt(path, *line_no, m)));
                }
            };
            if self.to.is_some_and(|t| record.timestamp >= t) {
                self.done = true;
                return None;
            }
            return Some(Ok(record));
        }
    }
}

/// Lines of a file from the last complete one backwards, in bounded memory.
struct RevLines {
    file: File,
    pos: u64,
    buf: Vec<u8>,
}

impl RevLines {
    fn open(path: &Path) -> std::io::Result<Self> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        // Drop a last line still being written: everything after the last newline.
        let mut end = len;
        let mut chunk = vec![0u8; 64 << 10];
        let mut complete = 0;
        while end > 0 {
            let start = end.saturating_sub(chunk.len() as u64);
            let part = &mut chunk[..(end - start) as usize];
            file.seek(SeekFrom::Start(start))?;
            file.read_exact(part)?;
            if let Some(i) = part.iter().rposition(|&b| b == b'\n') {
                complete = start + i as u64 + 1;
                break;
            }
            end = start;
        }
        Ok(RevLines {
            file,
            pos: complete,
            buf: Vec::new(),
        })
    }

    fn next_line(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        loop {
            if !self.buf.is_empty() {
                let body = &self.buf[..self.buf.len() - 1];
                if let Some(i) = body.iter().rposition(|&b| b == b'\n') {
                    let line = body[i + 1..].to_vec();
                    self.buf.truncate(i + 1);
                    return Ok(Some(line));
                }
                if self.pos == 0 {
                    let line = body.to_vec();
                    self.buf.clear();
                    return Ok(Some(line));
                }
            } else if self.pos == 0 {
                return Ok(None);
            }
            let n = self.pos.min(64 << 10);
            self.pos -= n;
            let mut chunk = vec![0u8; n as usize];
            self.file.seek(SeekFrom::Start(self.pos))?;
            self.file.read_exact(&mut chunk)?;
            chunk.extend_from_slice(&self.buf);
            self.buf = chunk;
        }
    }
}

/// A chain's records newest first, skipping whole segments at or after `to`, stopping
/// before `from`.
struct BackwardChain {
    segments: Vec<PathBuf>,
    current: Option<(PathBuf, RevLines)>,
    from: Option<Timestamp>,
    done: bool,
}

impl BackwardChain {
    fn new(mut segs: Vec<PathBuf>, q: &Query) -> Result<Self, StoreError> {
        let to = match (&q.after, q.order) {
            // Records at the cursor's time may still follow it (other chains, same micro).
            (Some(c), Order::NewestFirst) => {
                q.to.min(Some(Timestamp::from_unix_micros(c.timestamp.unix_micros() + 1)))
            }
            _ => q.to,
        };
        if let Some(to) = to {
            while segs.len() > 1 {
                let last = segs.last().expect("non-empty");
                if first_timestamp(last)?.is_some_and(|t| t >= to) {
                    segs.pop();
                } else {
                    break;
                }
            }
        }
        Ok(BackwardChain {
            segments: segs,
            current: None,
            from: q.from,
            done: false,
        })
    }
}

impl Iterator for BackwardChain {
    type Item = Result<StoredRecord, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            if self.current.is_none() {
                let path = self.segments.pop()?;
                match RevLines::open(&path) {
                    Ok(r) => self.current = Some((path, r)),
                    Err(e) => {
                        self.done = true;
                        return Some(Err(StoreError::io(&path)(e)));
                    }
                }
            }
            let (path, lines) = self.current.as_mut().expect("opened");
            let line = match lines.next_line() {
                Err(e) => {
                    self.done = true;
                    return Some(Err(StoreError::io(path.as_path())(e)));
                }
                Ok(None) => {
                    self.current = None;
                    continue;
                }
                Ok(Some(l)) if l.is_empty() => continue,
                Ok(Some(l)) => l,
            };
            let record = match StoredRecord::from_line(line) {
                Ok(r) => r,
                Err(m) => {
                    self.done = true;
                    return Some(Err(corrupt(path, 0, m)));
                }
            };
            if self.from.is_some_and(|f| record.timestamp < f) {
                self.done = true;
                return None;
            }
            return Some(Ok(record));
        }
    }
}

/// A k-way merge of per-chain streams by `(timestamp, chain, seq)`: memory grows with the
/// number of chains, not of records.
struct Merge<I> {
    streams: Vec<I>,
    heap: BinaryHeap<HeapItem>,
    order: Order,
    started: bool,
    error: Option<StoreError>,
}

struct HeapItem {
    record: StoredRecord,
    stream: usize,
    order: Order,
}

impl HeapItem {
    fn key(&self) -> (Timestamp, &str, u64) {
        (self.record.timestamp, &self.record.chain, self.record.seq)
    }
}

impl PartialEq for HeapItem {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for HeapItem {}
impl PartialOrd for HeapItem {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for HeapItem {
    fn cmp(&self, other: &Self) -> Ordering {
        // BinaryHeap pops the greatest: invert for oldest first.
        match self.order {
            Order::OldestFirst => other.key().cmp(&self.key()),
            Order::NewestFirst => self.key().cmp(&other.key()),
        }
    }
}

impl<I: Iterator<Item = Result<StoredRecord, StoreError>>> Merge<I> {
    fn new(streams: Vec<I>, order: Order) -> Self {
        Merge {
            streams,
            heap: BinaryHeap::new(),
            order,
            started: false,
            error: None,
        }
    }

    fn pull(&mut self, stream: usize) {
        match self.streams[stream].next() {
            Some(Ok(record)) => self.heap.push(HeapItem {
                record,
                stream,
                order: self.order,
            }),
            Some(Err(e)) if self.error.is_none() => self.error = Some(e),
            Some(Err(_)) | None => {}
        }
    }
}

impl<I: Iterator<Item = Result<StoredRecord, StoreError>>> Iterator for Merge<I> {
    type Item = Result<StoredRecord, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if !self.started {
            self.started = true;
            for i in 0..self.streams.len() {
                self.pull(i);
            }
        }
        if let Some(e) = self.error.take() {
            self.heap.clear();
            self.streams.clear();
            return Some(Err(e));
        }
        let item = self.heap.pop()?;
        self.pull(item.stream);
        Some(Ok(item.record))
    }
}

/// Helpers for stores that read in pages by keyset (the SQL stores): each page is fetched
/// after the last record of the previous one, so memory stays bounded and no long-lived
/// cursor or transaction is held.
pub struct Paged<F> {
    fetch: F,
    page: std::vec::IntoIter<StoredRecord>,
    last: Option<Cursor>,
    remaining: Option<usize>,
    page_size: usize,
    exhausted: bool,
}

impl<F> Paged<F>
where
    F: FnMut(Option<&Cursor>, usize) -> Result<Vec<StoredRecord>, StoreError>,
{
    /// Pages of `page_size` records from `fetch(after, n)`, which returns at most `n` records
    /// after the cursor (or from the start), at most `limit` in all.
    pub fn new(fetch: F, start: Option<Cursor>, limit: Option<usize>, page_size: usize) -> Self {
        Paged {
            fetch,
            page: Vec::new().into_iter(),
            last: start,
            remaining: limit,
            page_size: page_size.max(1),
            exhausted: false,
        }
    }
}

impl<F> Iterator for Paged<F>
where
    F: FnMut(Option<&Cursor>, usize) -> Result<Vec<StoredRecord>, StoreError>,
{
    type Item = Result<StoredRecord, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == Some(0) {
            return None;
        }
        if let Some(r) = self.page.next() {
            self.last = Some(r.cursor());
            if let Some(n) = &mut self.remaining {
                *n -= 1;
            }
            return Some(Ok(r));
        }
        if self.exhausted {
            return None;
        }
        let want = self.remaining.map_or(self.page_size, |n| n.min(self.page_size));
        match (self.fetch)(self.last.as_ref(), want) {
            Err(e) => {
                self.exhausted = true;
                Some(Err(e))
            }
            Ok(records) => {
                if records.len() < want {
                    self.exhausted = true;
                }
                if records.is_empty() {
                    return None;
                }
                self.page = records.into_iter();
                self.next()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        for chain in ["acme", "we-ird/chain", "", "ünï"] {
            for micros in [0, -5, 1_795_677_411_123_456] {
                let c = Cursor {
                    timestamp: Timestamp::from_unix_micros(micros),
                    chain: chain.into(),
                    seq: 42,
                };
                assert_eq!(c.to_string().parse::<Cursor>().unwrap(), c);
            }
        }
        assert!("nonsense".parse::<Cursor>().is_err());
    }

    #[test]
    fn store_locations() {
        assert_eq!(
            StoreLocation::parse("sqlite:///var/a.db"),
            Ok(StoreLocation::Sqlite("/var/a.db".into()))
        );
        assert_eq!(
            StoreLocation::parse("sqlite://rel.db"),
            Ok(StoreLocation::Sqlite("rel.db".into()))
        );
        let pg = "postgres://u@h/db?schema=audit";
        assert_eq!(StoreLocation::parse(pg), Ok(StoreLocation::Postgres(pg.into())));
        assert_eq!(
            StoreLocation::parse("./logs"),
            Ok(StoreLocation::Files("./logs".into()))
        );
        assert!(StoreLocation::parse("mysql://x").is_err());
    }

    #[test]
    fn action_prefixes_match_whole_segments() {
        let q = Query::new().action("billing.*");
        assert!(q.action_matches("billing.update"));
        assert!(q.action_matches("billing.card.update"));
        assert!(!q.action_matches("billingx.update"));
        assert!(!q.action_matches("billing"));
        assert!(Query::new().action("billing.update").action_matches("billing.update"));
    }

    #[test]
    fn reverse_lines_cross_chunks_and_skip_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut text = String::new();
        for i in 0..20_000 {
            text.push_str(&format!("line {i}\n"));
        }
        text.push_str("torn");
        std::fs::write(&path, &text).unwrap();
        let mut r = RevLines::open(&path).unwrap();
        let mut got = Vec::new();
        while let Some(l) = r.next_line().unwrap() {
            got.push(String::from_utf8(l).unwrap());
        }
        assert_eq!(got.len(), 20_000);
        assert_eq!(got[0], "line 19999");
        assert_eq!(got[19_999], "line 0");
    }
}
