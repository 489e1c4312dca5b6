//! A file store directory as the destination of [`copy`](crate::copy::copy).

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::layout::{create_chain_dir, read_seal_files, segments, write_seal_lines};
use super::{FileStore, FileStoreOptions};
use crate::copy::RecordSink;
use crate::error::StoreError;
use crate::query::{StoredRecord, StoredSeal};
use crate::store::Store;
use crate::{ChainHead, check_continues};

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
        let chain_dir = create_chain_dir(&self.store.dir().join("chains"), chain)?;
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
        let seals = read_seal_files(&self.seals_dir)?;
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
        if let Some(why) = self.store.broken(chain) {
            return Err(StoreError::Config(format!(
                "chain `{chain}` cannot be continued: {why}"
            )));
        }
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
        read_seal_files(&self.seals_dir)
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
