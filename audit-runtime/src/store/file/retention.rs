//! Retention over a file store directory: whole segment files go, never a chain's newest.

use std::fs;
use std::path::{Path, PathBuf};

use super::layout::{chain_names, encode_chain, is_store_dir, segments, write_seal_lines};
use crate::error::StoreError;
use crate::record::{LineView, Malformed};
use crate::retention::{Blocked, ChainRange, PurgeUnit, RetentionConfig, RetentionPlan, RetentionTarget};
use crate::{Seal, StoredSeal, Timestamp};

/// Retention over a file store directory: whole segment files go, never a chain's newest.
/// It needs no lock: the writer never touches a segment once it rotated away from it.
#[derive(Clone, Debug)]
pub struct FileRetention {
    dir: PathBuf,
    seals_dir: PathBuf,
}

impl FileRetention {
    /// The store in `dir`, seals in `dir/seals`.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        let seals_dir = dir.as_ref().join("seals");
        Self::with_seals_dir(dir, seals_dir)
    }

    /// The store in `dir` with seals in `seals_dir`.
    pub fn with_seals_dir(dir: impl AsRef<Path>, seals_dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        if !is_store_dir(&dir) {
            return Err(StoreError::Config(format!(
                "{}: not an audit file store",
                dir.display()
            )));
        }
        Ok(FileRetention {
            dir,
            seals_dir: seals_dir.as_ref().to_path_buf(),
        })
    }
}

/// First and last record of a segment.
fn segment_range(path: &Path) -> Result<Option<ChainRange>, StoreError> {
    let data = fs::read(path).map_err(StoreError::io(path))?;
    let body = match data.iter().rposition(|&b| b == b'\n') {
        Some(i) => &data[..i],
        None => return Ok(None),
    };
    let first = body.split(|&b| b == b'\n').next().unwrap_or_default();
    let last = body.rsplit(|&b| b == b'\n').next().unwrap_or_default();
    let bad = |m: Malformed| StoreError::Corrupt {
        path: path.to_path_buf(),
        line: 0,
        message: m.0,
    };
    let (f, l) = (
        LineView::parse(first).map_err(bad)?,
        LineView::parse(last).map_err(bad)?,
    );
    let ts = |t: &str| Timestamp::parse(t).map_err(StoreError::Config);
    Ok(Some(ChainRange {
        chain: l.chain.to_string(),
        first_seq: f.seq,
        last_seq: l.seq,
        last_hash: l.hash,
        oldest: ts(f.timestamp)?,
        newest: ts(l.timestamp)?,
    }))
}

impl RetentionTarget for FileRetention {
    fn plan(&mut self, config: &RetentionConfig, now: Timestamp) -> Result<RetentionPlan, StoreError> {
        let mut plan = RetentionPlan {
            store: self.dir.display().to_string(),
            now,
            units: Vec::new(),
            blocked: Vec::new(),
        };
        for chain in chain_names(&self.dir.join("chains"))? {
            let segs = segments(&self.dir.join("chains").join(encode_chain(&chain)))?;
            let cutoff = config.cutoff_for(&chain, now);
            for (i, seg) in segs.iter().enumerate() {
                let Some(range) = segment_range(seg)? else {
                    continue;
                };
                let name = seg.display().to_string();
                let cutoff = match &cutoff {
                    Ok(c) => *c,
                    Err(why) => {
                        if range.newest >= config.policy_for(&chain).cutoff(now) || i + 1 == segs.len() {
                            break;
                        }
                        plan.blocked.push(Blocked {
                            unit: name,
                            reason: why.clone(),
                        });
                        continue;
                    }
                };
                if range.newest >= cutoff {
                    break;
                }
                if i + 1 == segs.len() {
                    let reason = "the newest segment of its chain is still being written".to_owned();
                    plan.blocked.push(Blocked { unit: name, reason });
                    break;
                }
                plan.units.push(PurgeUnit {
                    name,
                    chains: vec![range],
                });
            }
        }
        Ok(plan)
    }

    fn purge(&mut self, plan: &RetentionPlan) -> Result<Vec<String>, StoreError> {
        let seals: Vec<StoredSeal> = plan
            .by_chain()
            .into_iter()
            .map(|r| StoredSeal {
                seal: Seal {
                    chain: r.chain,
                    seq: r.last_seq,
                    hash: r.last_hash,
                    sealed_at: Timestamp::now(),
                },
                purged: true,
            })
            .collect();
        // Seals first and durable: a crash between here and the last removal leaves a chain
        // that still verifies (its remaining records are vouched for by the purge seal).
        write_seal_lines(&self.seals_dir, &seals)?;
        let mut removed = Vec::new();
        for unit in &plan.units {
            let path = PathBuf::from(&unit.name);
            match fs::remove_file(&path) {
                Ok(()) => removed.push(unit.name.clone()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io(&path)(e)),
            }
            if let Some(parent) = path.parent() {
                fs::File::open(parent)
                    .and_then(|d| d.sync_all())
                    .map_err(StoreError::io(parent))?;
            }
        }
        Ok(removed)
    }
}
