//! The embedded default store: append-only JSONL segments per chain, seals kept apart.
//!
//! ```text
//! DIR                                        locked (flock) by the one writing process
//! DIR/chains/<chain>/<first seq, 20 digits>.jsonl   segments; all but the newest read-only
//! DIR/seals/<chain>.jsonl                    checkpoints (chain, seq, hash, time)
//! DIR/torn/<chain>-<seq>-<micros>.torn       torn last lines found after a crash, kept aside
//! DIR/set-aside/records.jsonl                records a store refused, kept (see Store::set_aside)
//! ```
//! Chain keys that are not plain file names (`[A-Za-z0-9_-]`, `.` after the first byte) are
//! percent-encoded.
//!
//! [`FileStore`] is the writer's side; [`FileSource`] reads a store (queries, verify, export),
//! [`FileSink`] takes records copied from another store, and [`FileRetention`] purges whole
//! old segments.

mod chain_reader;
mod layout;
mod retention;
mod sink;
mod source;

pub use layout::{
    ChainDirs, StoreFiles, chain_dirs, chain_names, decode_chain, encode_chain, is_store_dir, read_seal_files,
    segments, store_files,
};
pub(crate) use layout::{add_store_inputs, write_seal_lines, write_set_aside};
pub use retention::FileRetention;
pub use sink::FileSink;
pub use source::FileSource;

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use layout::{create_chain_dir, sync_dir};

use crate::error::StoreError;
use crate::record::LineView;
use crate::store::{ChainBatch, ChainHead, Seal, SetAside, Store, SyncJob};
use crate::{StoredSeal, Timestamp};

/// Settings of a [`FileStore`].
#[derive(Clone, Debug)]
pub struct FileStoreOptions {
    /// Start a new segment once the current one would grow past this many bytes.
    pub max_segment_bytes: u64,
    /// Start a new segment once the current one has been open this long.
    pub max_segment_age: Duration,
    /// Where seals go (default `DIR/seals`). Point it at another disk or mount to make
    /// truncation of events and seals together harder.
    pub seals_dir: Option<PathBuf>,
}

impl Default for FileStoreOptions {
    fn default() -> Self {
        FileStoreOptions {
            max_segment_bytes: 64 << 20,
            max_segment_age: Duration::from_secs(24 * 3600),
            seals_dir: None,
        }
    }
}

struct Active {
    path: PathBuf,
    file: File,
    len: u64,
    opened: Instant,
    last: Option<ChainHead>,
    dirty: bool,
}

/// Chained JSONL files in a directory: the embedded default store.
pub struct FileStore {
    dir: PathBuf,
    seals_dir: PathBuf,
    opts: FileStoreOptions,
    active: HashMap<String, Active>,
    /// Chains found damaged when the store was opened, with why.
    broken: HashMap<String, String>,
    _lock: File,
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl FileStore {
    /// Opens (creating if needed) a store in `dir` with default options.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::with_options(dir, FileStoreOptions::default())
    }

    /// Opens (creating if needed) a store in `dir`. Fails if another process has it open.
    pub fn with_options(dir: impl AsRef<Path>, opts: FileStoreOptions) -> Result<Self, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        let seals_dir = opts.seals_dir.clone().unwrap_or_else(|| dir.join("seals"));
        for d in [dir.join("chains"), seals_dir.clone()] {
            fs::create_dir_all(&d).map_err(StoreError::io(&d))?;
        }
        // The lock is held on the store directory itself (flock on an open descriptor), not
        // on a file in it: deleting a file cannot let a second writer in, and the lock goes
        // with the process, even on SIGKILL.
        let lock = File::open(&dir).map_err(StoreError::io(&dir))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(StoreError::Locked { path: dir }),
            Err(fs::TryLockError::Error(e)) => return Err(StoreError::io(&dir)(e)),
        }
        Ok(FileStore {
            dir,
            seals_dir,
            opts,
            active: HashMap::new(),
            broken: HashMap::new(),
            _lock: lock,
        })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Why `chain` cannot be continued, if it was found damaged when the store was opened.
    pub(super) fn broken(&self, chain: &str) -> Option<&str> {
        self.broken.get(chain).map(String::as_str)
    }

    fn open_chain(&mut self, chain: &str) -> Result<Option<ChainHead>, StoreError> {
        let chain_dir = self.dir.join("chains").join(encode_chain(chain));
        let segments = segments(&chain_dir)?;
        let Some(newest) = segments.last().cloned() else {
            return Ok(None);
        };
        self.repair_tail(chain, &newest)?;
        let seal_path = self.seals_dir.join(format!("{}.jsonl", encode_chain(chain)));
        if seal_path.exists() {
            self.repair_tail(chain, &seal_path)?;
        }
        let mut head = None;
        for segment in segments.iter().rev() {
            if let Some((at, line)) = last_line(segment)? {
                let corrupt = |message: String| StoreError::Corrupt {
                    path: segment.clone(),
                    line: line_number(segment, at),
                    message,
                };
                let view = LineView::parse(&line).map_err(|m| corrupt(m.0))?;
                if view.chain != chain {
                    return Err(corrupt(format!(
                        "record of chain `{}` in the directory of chain `{chain}`",
                        view.chain
                    )));
                }
                let timestamp = Timestamp::parse(view.timestamp).map_err(StoreError::Config)?;
                head = Some(ChainHead {
                    chain: chain.to_owned(),
                    seq: view.seq,
                    hash: view.hash,
                    timestamp,
                });
                break;
            }
        }
        let file = OpenOptions::new()
            .append(true)
            .open(&newest)
            .map_err(StoreError::io(&newest))?;
        let len = file.metadata().map_err(StoreError::io(&newest))?.len();
        self.active.insert(
            chain.to_owned(),
            Active {
                path: newest,
                file,
                len,
                opened: Instant::now(),
                last: head.clone(),
                dirty: false,
            },
        );
        Ok(head)
    }

    /// Moves bytes after the last newline (a line torn by a crash mid-write) into `torn/`.
    fn repair_tail(&self, chain: &str, path: &Path) -> Result<(), StoreError> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(StoreError::io(path))?;
        let len = file.metadata().map_err(StoreError::io(path))?.len();
        let keep = complete_prefix_len(&mut file, len).map_err(StoreError::io(path))?;
        if keep == len {
            return Ok(());
        }
        let mut torn = Vec::new();
        file.seek(SeekFrom::Start(keep)).map_err(StoreError::io(path))?;
        file.read_to_end(&mut torn).map_err(StoreError::io(path))?;
        let torn_dir = self.dir.join("torn");
        fs::create_dir_all(&torn_dir).map_err(StoreError::io(&torn_dir))?;
        let name = format!(
            "{}-{}-{}.torn",
            encode_chain(chain),
            path.file_stem().and_then(|s| s.to_str()).unwrap_or("file"),
            Timestamp::now().unix_micros()
        );
        let torn_path = torn_dir.join(name);
        let mut out = File::create(&torn_path).map_err(StoreError::io(&torn_path))?;
        out.write_all(&torn)
            .and_then(|()| out.sync_all())
            .map_err(StoreError::io(&torn_path))?;
        sync_dir(&torn_dir)?;
        file.set_len(keep)
            .and_then(|()| file.sync_all())
            .map_err(StoreError::io(path))?;
        tracing::warn!(
            target: "audit::store",
            file = %path.display(),
            bytes = torn.len(),
            kept_at = %torn_path.display(),
            "repaired a torn last line left by a crash; the incomplete bytes were kept aside"
        );
        Ok(())
    }

    fn start_segment(&mut self, chain: &str, first_seq: u64, last: Option<ChainHead>) -> Result<(), StoreError> {
        let chain_dir = create_chain_dir(&self.dir.join("chains"), chain)?;
        let path = chain_dir.join(format!("{first_seq:020}.jsonl"));
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(StoreError::io(&path))?;
        let len = file.metadata().map_err(StoreError::io(&path))?.len();
        sync_dir(&chain_dir)?;
        self.active.insert(
            chain.to_owned(),
            Active {
                path,
                file,
                len,
                opened: Instant::now(),
                last,
                dirty: false,
            },
        );
        Ok(())
    }

    fn rotate(&mut self, chain: &str, first_seq: u64) -> Result<(), StoreError> {
        let old = self.active.remove(chain).expect("rotating an open chain");
        old.file.sync_data().map_err(StoreError::io(&old.path))?;
        if let Some(head) = &old.last {
            self.seal(&[Seal {
                chain: chain.to_owned(),
                seq: head.seq,
                hash: head.hash,
                sealed_at: Timestamp::now(),
            }])?;
        }
        let mut perms = fs::metadata(&old.path)
            .map_err(StoreError::io(&old.path))?
            .permissions();
        perms.set_readonly(true);
        fs::set_permissions(&old.path, perms).map_err(StoreError::io(&old.path))?;
        self.start_segment(chain, first_seq, old.last)
    }
}

impl Store for FileStore {
    fn heads(&mut self) -> Result<Vec<ChainHead>, StoreError> {
        let dirs = chain_dirs(&self.dir.join("chains"))?;
        for (dir, why) in &dirs.unreadable {
            // Not a chain this writer can continue: any event of its chain goes to the
            // directory its key names, so the rest of the store is safe to write.
            eprintln!("audit: {}: skipped, not a chain directory: {why}", dir.display());
            tracing::warn!(target: "audit::store", dir = %dir.display(), why, "skipped a directory that is not a chain");
        }
        let mut heads = Vec::new();
        for (chain, _) in dirs.chains {
            match self.open_chain(&chain) {
                Ok(Some(head)) => heads.push(head),
                Ok(None) => {}
                // One damaged chain cannot be continued safely, but it never keeps the others
                // from being written: its records are refused (and held by the writer).
                Err(e) => {
                    eprintln!("audit: chain `{chain}` cannot be continued: {e}");
                    tracing::error!(target: "audit::store", chain = %chain, error = %e, "chain cannot be continued");
                    self.broken.insert(chain, e.to_string());
                }
            }
        }
        Ok(heads)
    }

    fn append(&mut self, batch: &mut ChainBatch, head: &mut ChainHead) -> Result<(), StoreError> {
        if let Some(why) = self.broken.get(batch.chain()) {
            return Err(StoreError::Config(format!(
                "chain `{}` cannot be continued until it is repaired: {why}",
                batch.chain()
            )));
        }
        // The store's lock makes this process the only writer: the caller's head is the truth.
        let chain = batch.chain().to_owned();
        let first_seq = head.seq + 1;
        let lines = batch.chain_onto(head);
        match self.active.get(&chain) {
            None => self.start_segment(&chain, first_seq, None)?,
            Some(a) => {
                let full = a.len + lines.len() as u64 > self.opts.max_segment_bytes;
                if a.len > 0 && (full || a.opened.elapsed() >= self.opts.max_segment_age) {
                    self.rotate(&chain, first_seq)?;
                }
            }
        }
        let active = self.active.get_mut(&chain).expect("segment open");
        if let Err(e) = active.file.write_all(lines) {
            // Leave no partial line: the writer retries this same batch.
            let _ = active.file.set_len(active.len);
            return Err(StoreError::io(&active.path)(e));
        }
        active.len += lines.len() as u64;
        active.dirty = true;
        active.last = Some(head.clone());
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        for active in self.active.values_mut().filter(|a| a.dirty) {
            active.file.sync_data().map_err(StoreError::io(&active.path))?;
            active.dirty = false;
        }
        Ok(())
    }

    fn sync_job(&mut self) -> Result<Option<SyncJob>, StoreError> {
        // A duplicated descriptor syncs the same file, so the writer keeps appending meanwhile.
        let mut files = Vec::new();
        for active in self.active.values_mut().filter(|a| a.dirty) {
            let file = active.file.try_clone().map_err(StoreError::io(&active.path))?;
            files.push((active.path.clone(), file));
            active.dirty = false;
        }
        Ok(Some(Box::new(move || {
            for (path, file) in files {
                file.sync_data().map_err(StoreError::io(&path))?;
            }
            Ok(())
        })))
    }

    fn seal(&mut self, seals: &[Seal]) -> Result<(), StoreError> {
        let seals: Vec<StoredSeal> = seals.iter().cloned().map(StoredSeal::from).collect();
        write_seal_lines(&self.seals_dir, &seals)
    }

    fn set_aside(&mut self, records: &[SetAside]) -> Result<(), StoreError> {
        write_set_aside(&self.dir, records)
    }
}

/// Length of the part of a file that ends in a newline (0 if it has none).
fn complete_prefix_len(file: &mut File, len: u64) -> std::io::Result<u64> {
    let mut end = len;
    let mut buf = vec![0u8; 64 << 10];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// The last complete line of a file (without newline) and the offset where it starts, read
/// from the end: opening a store costs the same whatever the size of its segments.
fn last_line(path: &Path) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
    let mut file = File::open(path).map_err(StoreError::io(path))?;
    let len = file.metadata().map_err(StoreError::io(path))?.len();
    let io = StoreError::io(path);
    let end = complete_prefix_len(&mut file, len).map_err(StoreError::io(path))?;
    if end == 0 {
        return Ok(None);
    }
    // The line ends at `end - 1` (its newline); find the newline before it.
    let body_end = end - 1;
    let mut start = 0;
    let mut buf = vec![0u8; 64 << 10];
    let mut pos = body_end;
    while pos > 0 {
        let from = pos.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(pos - from) as usize];
        let read = file.seek(SeekFrom::Start(from)).and_then(|_| file.read_exact(chunk));
        if let Err(e) = read {
            return Err(io(e));
        }
        if let Some(i) = memchr_last(chunk) {
            start = from + i as u64 + 1;
            break;
        }
        if body_end - from > audit_chain::read::MAX_LINE_BYTES as u64 {
            return Err(StoreError::Corrupt {
                path: path.to_path_buf(),
                line: line_number(path, from),
                message: "the last line is longer than any record may be".into(),
            });
        }
        pos = from;
    }
    let mut line = vec![0u8; (body_end - start) as usize];
    file.seek(SeekFrom::Start(start))
        .and_then(|_| file.read_exact(&mut line))
        .map_err(StoreError::io(path))?;
    Ok(Some((start, line)))
}

fn memchr_last(bytes: &[u8]) -> Option<usize> {
    bytes.iter().rposition(|&b| b == b'\n')
}

/// The 1-based number of the line at byte `offset` of a file, for error messages only (it
/// reads the file up to there).
fn line_number(path: &Path, offset: u64) -> u64 {
    let Ok(file) = File::open(path) else { return 0 };
    let mut newlines = 0;
    let mut reader = std::io::BufReader::new(file.take(offset));
    let mut buf = [0u8; 64 << 10];
    while let Ok(n) = reader.read(&mut buf) {
        if n == 0 {
            break;
        }
        newlines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
    }
    newlines + 1
}
