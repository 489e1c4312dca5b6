//! Reading a file store directory: queries, and chains walked for verify and copy.

use std::path::{Path, PathBuf};

use super::chain_reader::{BackwardChain, ForwardChain};
use super::layout::{chain_names, encode_chain, is_store_dir, read_seal_files, segments};
use crate::error::StoreError;
use crate::query::{Indexed, Merge, Order, Query, RecordSource, Records, StoredRecord, StoredSeal};

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
        if !is_store_dir(&dir) {
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
    match Indexed::from_line(&r.line) {
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
        chain_names(&self.dir.join("chains"))
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
