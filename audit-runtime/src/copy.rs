//! Copying records between stores byte for byte, verifying as it goes; and writing events
//! into a store directly, without the writer thread (imports, retention's own events, tests).
//!
//! [`copy`] reads any [`RecordSource`] and writes any [`RecordSink`]. It is resumable and
//! idempotent: each chain continues from the head the destination already has (after
//! checking that the destination's head is the source's record at that seq), so running it
//! twice adds nothing. Every record is verified before it is written; a chain stops at its
//! first damage, and the report says where.
//!
//! ```
//! use audit_runtime::copy::{CopyOptions, FileSink, append_events, copy};
//! use audit_runtime::query::FileSource;
//! use audit_runtime::{AuditEvent, Category, FileStore};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (src_dir, dst_dir) = (tempfile::tempdir()?, tempfile::tempdir()?);
//! let mut store = FileStore::open(src_dir.path())?;
//! append_events(&mut store, (0..3).map(|_| AuditEvent::new("user.login", Category::Authentication)))?;
//!
//! let mut source = FileSource::open(src_dir.path())?;
//! let mut sink = FileSink::open(dst_dir.path())?;
//! let first = copy(&mut source, &mut sink, &CopyOptions::default())?;
//! assert!(first.is_ok());
//! assert_eq!(first.copied(), 3);
//! let again = copy(&mut source, &mut sink, &CopyOptions::default())?;
//! assert_eq!(again.copied(), 0); // idempotent
//! # Ok(()) }
//! ```

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::StoreError;
use crate::event::{Actor, AuditEvent};
use crate::query::{RecordSource, StoredRecord, StoredSeal};
use crate::record::ChainHash;
use crate::store::file::{FileStore, FileStoreOptions, encode_chain, segments, write_seal_lines};
use crate::store::{ChainBatch, ChainHead, Store};
use crate::time::Timestamp;
use crate::verify::{Location, Verifier, VerifyReport};
use crate::writer::DEFAULT_CHAIN;

/// A store that takes records chained elsewhere, byte for byte.
pub trait RecordSink {
    /// A name for messages.
    fn describe(&self) -> String;

    /// The head stored for `chain`, read fresh: its newest record, or the newest purge seal
    /// when retention removed every record. `None` for a chain the store has never seen.
    fn stored_head(&mut self, chain: &str) -> Result<Option<ChainHead>, StoreError>;

    /// Appends records of one chain exactly as they are, atomically. They must continue the
    /// stored head (see [`check_continues`]); otherwise nothing is written and the error says
    /// why.
    fn append_records(&mut self, chain: &str, records: &[StoredRecord]) -> Result<(), StoreError>;

    /// Every seal stored, purge seals included.
    fn stored_seals(&mut self) -> Result<Vec<StoredSeal>, StoreError>;

    /// Stores these seals durably (the caller skips those already stored).
    fn add_seals(&mut self, seals: &[StoredSeal]) -> Result<(), StoreError>;

    /// Makes everything appended so far durable.
    fn sync(&mut self) -> Result<(), StoreError>;
}

/// Checks that `records` continue `head` (or start a chain, when there is none) and link to
/// each other: seq up by one, `prev_hash` the previous `hash`, time never going back.
pub fn check_continues(head: Option<&ChainHead>, records: &[StoredRecord]) -> Result<(), String> {
    let (mut seq, mut hash) = head.map_or((0, ChainHash::GENESIS), |h| (h.seq, h.hash));
    // Time is checked within the records only: a head read from a purge seal carries the
    // seal's time, later than the records that follow it.
    let mut ts: Option<Timestamp> = None;
    for r in records {
        if r.seq != seq + 1 {
            return Err(format!(
                "chain `{}`: seq {} does not follow the stored head at seq {seq}",
                r.chain, r.seq
            ));
        }
        if r.prev_hash != hash {
            return Err(format!(
                "chain `{}`: seq {}'s prev_hash is not the hash of seq {seq}",
                r.chain, r.seq
            ));
        }
        if ts.is_some_and(|t| r.timestamp < t) {
            return Err(format!("chain `{}`: seq {} goes back in time", r.chain, r.seq));
        }
        (seq, hash, ts) = (r.seq, r.hash, Some(r.timestamp));
    }
    Ok(())
}

/// How to copy.
#[derive(Clone, Debug)]
pub struct CopyOptions {
    /// Records per append (one transaction in the SQL stores).
    pub batch_size: usize,
    /// Only these chains (default: every chain of the source).
    pub chains: Option<Vec<String>>,
    /// Also parse every record fully while verifying.
    pub strict: bool,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            batch_size: 1000,
            chains: None,
            strict: false,
        }
    }
}

/// What a copy did for one chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainCopy {
    /// The chain key.
    pub chain: String,
    /// Records the destination already had (checked against the source at its head).
    pub already: u64,
    /// Records written now.
    pub copied: u64,
    /// The destination's head seq afterwards.
    pub head_seq: u64,
}

/// What a copy did, and the verification of everything it read.
#[derive(Clone, Debug)]
pub struct CopyReport {
    /// Per chain, in key order.
    pub chains: Vec<ChainCopy>,
    /// Seals written to the destination.
    pub seals_added: usize,
    /// Verification of the source as read. A damaged chain was copied only up to the record
    /// before its damage.
    pub verify: VerifyReport,
}

impl CopyReport {
    /// True when the source verified completely (so everything was copied).
    pub fn is_ok(&self) -> bool {
        self.verify.is_ok()
    }

    /// Records written in all.
    pub fn copied(&self) -> u64 {
        self.chains.iter().map(|c| c.copied).sum()
    }
}

/// Why a copy stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CopyError {
    /// Reading or writing a store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The destination holds a different chain under the same key.
    #[error("chain `{chain}` differs at seq {seq}: {detail}")]
    Diverged {
        /// The chain key.
        chain: String,
        /// Where they differ.
        seq: u64,
        /// How.
        detail: String,
    },
}

/// Copies every chain of `source` into `sink` (see the module docs).
pub fn copy(
    source: &mut dyn RecordSource,
    sink: &mut dyn RecordSink,
    opts: &CopyOptions,
) -> Result<CopyReport, CopyError> {
    let mut verifier = Verifier::new(opts.strict);
    let src_seals = source.seals()?;
    let origin = PathBuf::from(format!("{} (seals)", source.describe()));
    for (n, s) in src_seals.iter().enumerate() {
        verifier.add_seal(s.seal.clone(), s.purged, &origin, n as u64 + 1);
    }
    let mut have: HashSet<SealKey> = sink.stored_seals()?.iter().map(SealKey::of).collect();
    let mut seals_added = 0;
    let wanted = |chain: &str| opts.chains.as_ref().is_none_or(|c| c.iter().any(|x| x == chain));

    // Purge seals first: they tell the destination where a purged chain resumes.
    let purges: Vec<StoredSeal> = src_seals
        .iter()
        .filter(|s| s.purged && wanted(&s.seal.chain) && !have.contains(&SealKey::of(s)))
        .cloned()
        .collect();
    if !purges.is_empty() {
        sink.add_seals(&purges)?;
        seals_added += purges.len();
        have.extend(purges.iter().map(SealKey::of));
    }

    let name = source.describe();
    let mut chains = Vec::new();
    for chain in source.chains()? {
        if !wanted(&chain) {
            continue;
        }
        let dst_head = sink.stored_head(&chain)?;
        let mut report = ChainCopy {
            chain: chain.clone(),
            already: 0,
            copied: 0,
            head_seq: dst_head.as_ref().map_or(0, |h| h.seq),
        };
        let mut pending: Vec<StoredRecord> = Vec::with_capacity(opts.batch_size.min(4096));
        let mut last_seen = 0;
        let path = PathBuf::from(format!("{name} chain {chain}"));
        let mut records = source.chain_records(&chain, 0)?;
        for record in records.by_ref() {
            let record = record?;
            verifier.push(
                &record.line,
                || Location {
                    path: path.clone(),
                    line: record.seq,
                },
                true,
            );
            if verifier.chain_damage(&chain).is_some() {
                break;
            }
            last_seen = record.seq;
            if let Some(h) = &dst_head {
                if record.seq < h.seq {
                    report.already += 1;
                    continue;
                }
                if record.seq == h.seq {
                    if record.hash != h.hash {
                        return Err(CopyError::Diverged {
                            chain,
                            seq: record.seq,
                            detail: format!(
                                "{} has hash {} there, the source {}",
                                sink.describe(),
                                h.hash,
                                record.hash
                            ),
                        });
                    }
                    report.already += 1;
                    continue;
                }
            }
            pending.push(record);
            if pending.len() >= opts.batch_size.max(1) {
                sink.append_records(&chain, &pending)?;
                report.copied += pending.len() as u64;
                report.head_seq = pending.last().expect("non-empty").seq;
                pending.clear();
            }
        }
        drop(records);
        if !pending.is_empty() {
            sink.append_records(&chain, &pending)?;
            report.copied += pending.len() as u64;
            report.head_seq = pending.last().expect("non-empty").seq;
        }
        if let Some(h) = &dst_head
            && last_seen < h.seq
            && verifier.chain_damage(&chain).is_none()
            && report.already > 0
        {
            return Err(CopyError::Diverged {
                chain,
                seq: last_seen + 1,
                detail: format!(
                    "{} has records up to seq {}, beyond the source's end",
                    sink.describe(),
                    h.seq
                ),
            });
        }
        chains.push(report);
    }
    sink.sync()?;

    // Plain seals after the records they vouch for, and only those the destination now reaches.
    let reached: HashMap<&str, u64> = chains.iter().map(|c| (c.chain.as_str(), c.head_seq)).collect();
    let rest: Vec<StoredSeal> = src_seals
        .iter()
        .filter(|s| !s.purged && !have.contains(&SealKey::of(s)))
        .filter(|s| {
            reached
                .get(s.seal.chain.as_str())
                .is_some_and(|&head| s.seal.seq <= head)
        })
        .cloned()
        .collect();
    if !rest.is_empty() {
        sink.add_seals(&rest)?;
        seals_added += rest.len();
    }
    chains.sort_by(|a, b| a.chain.cmp(&b.chain));
    Ok(CopyReport {
        chains,
        seals_added,
        verify: verifier.finish(),
    })
}

#[derive(Hash, PartialEq, Eq)]
struct SealKey(String, u64, ChainHash, bool);

impl SealKey {
    fn of(s: &StoredSeal) -> Self {
        SealKey(s.seal.chain.clone(), s.seal.seq, s.seal.hash, s.purged)
    }
}

// ---------------------------------------------------------------------------------------
// File store as a destination.

/// A file store directory as a copy destination. It holds the store's lock (through a
/// [`FileStore`]) while open, so no writer runs at the same time, and writes each chain's
/// copied records into new segments, like the writer's rotation does.
pub struct FileSink {
    store: FileStore,
    seals_dir: PathBuf,
    max_segment_bytes: u64,
    heads: HashMap<String, ChainHead>,
    open: HashMap<String, (PathBuf, File, u64)>,
}

impl std::fmt::Debug for FileSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSink")
            .field("dir", &self.store.dir())
            .finish_non_exhaustive()
    }
}

impl FileSink {
    /// Opens (creating if needed) the store in `dir`; fails if a writer has it open.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::with_options(dir, FileStoreOptions::default())
    }

    /// Opens the store in `dir` with these options (segment size, seals directory).
    pub fn with_options(dir: impl AsRef<Path>, opts: FileStoreOptions) -> Result<Self, StoreError> {
        let seals_dir = opts.seals_dir.clone().unwrap_or_else(|| dir.as_ref().join("seals"));
        let max_segment_bytes = opts.max_segment_bytes;
        let mut store = FileStore::with_options(dir, opts)?;
        // Opening the chains repairs any torn last line first.
        let heads = store.heads()?.into_iter().map(|h| (h.chain.clone(), h)).collect();
        Ok(FileSink {
            store,
            seals_dir,
            max_segment_bytes,
            heads,
            open: HashMap::new(),
        })
    }

    fn start_segment(&mut self, chain: &str, first_seq: u64) -> Result<(), StoreError> {
        let chain_dir = self.store.dir().join("chains").join(encode_chain(chain));
        fs::create_dir_all(&chain_dir).map_err(StoreError::io(&chain_dir))?;
        let previous = match self.open.remove(chain) {
            Some((path, file, _)) => {
                file.sync_data().map_err(StoreError::io(&path))?;
                Some(path)
            }
            None => segments(&chain_dir)?.pop(),
        };
        if let Some(prev) = previous {
            // Earlier segments are never written again: read-only, as after a rotation.
            let mut perms = fs::metadata(&prev).map_err(StoreError::io(&prev))?.permissions();
            perms.set_readonly(true);
            fs::set_permissions(&prev, perms).map_err(StoreError::io(&prev))?;
        }
        let path = chain_dir.join(format!("{first_seq:020}.jsonl"));
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(StoreError::io(&path))?;
        let len = file.metadata().map_err(StoreError::io(&path))?.len();
        File::open(&chain_dir)
            .and_then(|d| d.sync_all())
            .map_err(StoreError::io(&chain_dir))?;
        self.open.insert(chain.to_owned(), (path, file, len));
        Ok(())
    }

    fn purge_head(&self, chain: &str) -> Result<Option<ChainHead>, StoreError> {
        let seals = crate::query::read_seal_files(&self.seals_dir)?;
        Ok(seals
            .into_iter()
            .filter(|s| s.purged && s.seal.chain == chain)
            .max_by_key(|s| s.seal.seq)
            .map(|s| ChainHead {
                chain: chain.to_owned(),
                seq: s.seal.seq,
                hash: s.seal.hash,
                timestamp: s.seal.sealed_at,
            }))
    }
}

impl RecordSink for FileSink {
    fn describe(&self) -> String {
        self.store.dir().display().to_string()
    }

    fn stored_head(&mut self, chain: &str) -> Result<Option<ChainHead>, StoreError> {
        match self.heads.get(chain) {
            Some(h) => Ok(Some(h.clone())),
            None => self.purge_head(chain),
        }
    }

    fn append_records(&mut self, chain: &str, records: &[StoredRecord]) -> Result<(), StoreError> {
        let Some(first) = records.first() else {
            return Ok(());
        };
        let head = self.stored_head(chain)?;
        check_continues(head.as_ref(), records).map_err(StoreError::Config)?;
        let mut bytes = Vec::with_capacity(records.iter().map(|r| r.line.len() + 1).sum());
        for r in records {
            bytes.extend_from_slice(&r.line);
            bytes.push(b'\n');
        }
        let needs_new = match self.open.get(chain) {
            None => true,
            Some((_, _, len)) => *len > 0 && len + bytes.len() as u64 > self.max_segment_bytes,
        };
        if needs_new {
            self.start_segment(chain, first.seq)?;
        }
        let (path, file, len) = self.open.get_mut(chain).expect("segment open");
        if let Err(e) = file.write_all(&bytes) {
            let _ = file.set_len(*len);
            return Err(StoreError::io(path.as_path())(e));
        }
        *len += bytes.len() as u64;
        let last = records.last().expect("non-empty");
        self.heads.insert(
            chain.to_owned(),
            ChainHead {
                chain: chain.to_owned(),
                seq: last.seq,
                hash: last.hash,
                timestamp: last.timestamp,
            },
        );
        Ok(())
    }

    fn stored_seals(&mut self) -> Result<Vec<StoredSeal>, StoreError> {
        crate::query::read_seal_files(&self.seals_dir)
    }

    fn add_seals(&mut self, seals: &[StoredSeal]) -> Result<(), StoreError> {
        write_seal_lines(&self.seals_dir, seals)
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        for (path, file, _) in self.open.values() {
            file.sync_data().map_err(StoreError::io(path))?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Writing events directly.

/// The chain an event goes to: its tenant, or [`DEFAULT_CHAIN`].
pub fn chain_of(event: &AuditEvent) -> &str {
    match event.tenant.as_deref() {
        Some(t) if !t.is_empty() => t,
        _ => DEFAULT_CHAIN,
    }
}

/// A batch of `events` for `chain`, serialized and ready for [`Store::append`]. The events'
/// own tenants are kept as they are; an event without an actor gets the `unknown` system
/// actor, as in the writer. Size limits are not applied here.
pub fn event_batch(chain: &str, events: impl IntoIterator<Item = AuditEvent>) -> ChainBatch {
    let ctx = uuid::ContextV7::new();
    let mut batch = ChainBatch::new(chain);
    for event in events {
        let micros = event.timestamp.unix_micros().max(0) as u64;
        // An id fixed by the caller (an outbox relay) is kept, as the writer does.
        let id = event.fixed_id().unwrap_or_else(|| {
            uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
                &ctx,
                micros / 1_000_000,
                (micros % 1_000_000) as u32 * 1000,
            ))
        });
        let context = (!event.context.is_empty()).then_some(&event.context);
        batch.push(
            id,
            event.timestamp,
            event.actor.clone().unwrap_or_else(Actor::unknown),
            event.action.clone(),
            event.category,
            event.resource.clone(),
            event.outcome.clone(),
            context,
            event.tenant.clone(),
            event.changes.as_ref(),
            crate::writer::Limits::default().max_changes_bytes,
        );
    }
    batch
}

/// Appends `events` to `store` synchronously (one batch per chain, then a sync), without a
/// writer thread or `tracing`. Only for a store no writer is using in this process (the file
/// store's lock prevents other processes anyway). Returns the new heads of the chains
/// written.
pub fn append_events<S: Store + ?Sized>(
    store: &mut S,
    events: impl IntoIterator<Item = AuditEvent>,
) -> Result<Vec<ChainHead>, StoreError> {
    let mut by_chain: Vec<(String, Vec<AuditEvent>)> = Vec::new();
    for event in events {
        let chain = chain_of(&event).to_owned();
        match by_chain.iter_mut().find(|(c, _)| *c == chain) {
            Some((_, list)) => list.push(event),
            None => by_chain.push((chain, vec![event])),
        }
    }
    if by_chain.is_empty() {
        return Ok(Vec::new());
    }
    let heads: HashMap<String, ChainHead> = store.heads()?.into_iter().map(|h| (h.chain.clone(), h)).collect();
    let mut out = Vec::new();
    for (chain, events) in by_chain {
        let mut head = heads.get(&chain).cloned().unwrap_or_else(|| ChainHead {
            chain: chain.clone(),
            seq: 0,
            hash: ChainHash::GENESIS,
            timestamp: Timestamp::from_unix_micros(i64::MIN),
        });
        let mut batch = event_batch(&chain, events);
        store.append(&mut batch, &mut head)?;
        out.push(head);
    }
    store.sync()?;
    Ok(out)
}
