//! Copying records between stores byte for byte, verifying as it goes.
//!
//! [`copy`] reads any [`RecordSource`] and writes any [`RecordSink`]. It is resumable and
//! idempotent: each chain continues from the head the destination already has (after
//! checking that the destination's head is the source's record at that seq), so running it
//! twice adds nothing. Every record is verified before it is written; a chain stops at its
//! first damage, and the report says where.
//!
//! ```
//! use audit_runtime::copy::{CopyOptions, copy};
//! use audit_runtime::store::append_events;
//! use audit_runtime::store::file::FileSink;
//! use audit_runtime::{AuditEvent, Category, FileSource, FileStore};
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
use std::path::PathBuf;

use crate::error::StoreError;
use crate::query::{RecordSource, StoredRecord, StoredSeal};
use crate::verify::{Location, VerifyReport};
use crate::{ChainHash, ChainHead};

/// A store that takes records chained elsewhere, byte for byte.
pub trait RecordSink {
    /// A name for messages.
    fn describe(&self) -> String;

    /// The head stored for `chain`, read fresh: its newest record, or the newest purge seal
    /// when retention removed every record. `None` for a chain the store has never seen.
    fn stored_head(&mut self, chain: &str) -> Result<Option<ChainHead>, StoreError>;

    /// Appends records of one chain exactly as they are, atomically. They must continue the
    /// stored head (see [`check_continues`](crate::check_continues)); otherwise nothing is
    /// written and the error says why.
    fn append_records(&mut self, chain: &str, records: &[StoredRecord]) -> Result<(), StoreError>;

    /// Every seal stored, purge seals included.
    fn stored_seals(&mut self) -> Result<Vec<StoredSeal>, StoreError>;

    /// Stores these seals durably (the caller skips those already stored).
    fn add_seals(&mut self, seals: &[StoredSeal]) -> Result<(), StoreError>;

    /// Makes everything appended so far durable.
    fn sync(&mut self) -> Result<(), StoreError>;
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
    let mut verifier = crate::verify::VerifyOptions {
        strict: opts.strict,
        ..Default::default()
    }
    .verifier();
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
