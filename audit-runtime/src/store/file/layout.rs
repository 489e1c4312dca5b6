//! Where a file store keeps what (see the [module docs](super)): only the file store knows.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use crate::StoredSeal;
use crate::error::StoreError;
use crate::store::SetAside;
use crate::verify::{Inputs, Source};

/// Appends seals (purge seals with `"purged":true`) to `DIR/<chain>.jsonl`, durably.
pub(crate) fn write_seal_lines(seals_dir: &Path, seals: &[StoredSeal]) -> Result<(), StoreError> {
    fs::create_dir_all(seals_dir).map_err(StoreError::io(seals_dir))?;
    for seal in seals {
        let path = seals_dir.join(format!("{}.jsonl", encode_chain(&seal.seal.chain)));
        let mut line = serde_json::to_vec(seal).expect("seals serialize");
        line.push(b'\n');
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(StoreError::io(&path))?;
        file.write_all(&line)
            .and_then(|()| file.sync_data())
            .map_err(StoreError::io(&path))?;
    }
    File::open(seals_dir)
        .and_then(|d| d.sync_all())
        .map_err(StoreError::io(seals_dir))
}

/// Appends set-aside records to `DIR/set-aside/records.jsonl`, durably.
pub(crate) fn write_set_aside(dir: &Path, records: &[SetAside]) -> Result<(), StoreError> {
    let aside = dir.join("set-aside");
    fs::create_dir_all(&aside).map_err(StoreError::io(&aside))?;
    let path = aside.join("records.jsonl");
    let mut bytes = Vec::new();
    for record in records {
        bytes.extend_from_slice(&record.to_line());
        bytes.push(b'\n');
    }
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(StoreError::io(&path))?;
    file.write_all(&bytes)
        .and_then(|()| file.sync_data())
        .map_err(StoreError::io(&path))?;
    sync_dir(&aside)
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

pub(super) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(StoreError::io(dir))
}

/// The chain directories under `DIR/chains`: each chain key with its directory, sorted by
/// key, and the directories that hold no readable chain key (named by hand, or damaged),
/// with what is wrong. One bad directory never hides the others.
#[derive(Clone, Debug, Default)]
pub struct ChainDirs {
    /// Chain key and directory.
    pub chains: Vec<(String, PathBuf)>,
    /// Directory and what is wrong with it.
    pub unreadable: Vec<(PathBuf, String)>,
}

/// Lists the chain directories under `chains_dir` (see [`ChainDirs`]).
pub fn chain_dirs(chains_dir: &Path) -> Result<ChainDirs, StoreError> {
    let mut dirs = ChainDirs::default();
    let entries = match fs::read_dir(chains_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(dirs),
        Err(e) => return Err(StoreError::io(chains_dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(StoreError::io(chains_dir))?;
        if !entry.file_type().map_err(StoreError::io(entry.path()))?.is_dir() {
            continue;
        }
        let path = entry.path();
        match entry.file_name().to_str().map(|name| chain_of_dir(&path, name)) {
            Some(Ok(chain)) => dirs.chains.push((chain, path)),
            Some(Err(why)) => dirs.unreadable.push((path, why)),
            None => dirs.unreadable.push((path, "the directory name is not UTF-8".into())),
        }
    }
    dirs.chains.sort();
    dirs.unreadable.sort();
    Ok(dirs)
}

/// The chain keys stored under `DIR/chains`, sorted (directories without a readable key
/// left out: see [`chain_dirs`]).
pub fn chain_names(chains_dir: &Path) -> Result<Vec<String>, StoreError> {
    Ok(chain_dirs(chains_dir)?
        .chains
        .into_iter()
        .map(|(chain, _)| chain)
        .collect())
}

/// The chain key a directory holds: decoded from its name, or, for a hashed name, read from
/// its key file (or its first record) and checked against the name.
fn chain_of_dir(path: &Path, name: &str) -> Result<String, String> {
    let Some(hex) = name.strip_prefix(HASHED_PREFIX) else {
        return decode_chain(name).ok_or_else(|| format!("`{name}` is not an encoded chain key"));
    };
    let matches = |key: &str| hashed_name(key).strip_prefix(HASHED_PREFIX) == Some(hex);
    if let Ok(key) = fs::read_to_string(path.join(KEY_FILE))
        && matches(&key)
    {
        return Ok(key);
    }
    // The key file is written before the first segment; should it be lost, the records
    // themselves name their chain.
    for segment in segments(path).map_err(|e| e.to_string())? {
        let file = File::open(&segment).map_err(|e| format!("{}: {e}", segment.display()))?;
        let mut first = Vec::new();
        BufReader::new(file)
            .take(MAX_LINE_PROBE)
            .read_until(b'\n', &mut first)
            .map_err(|e| format!("{}: {e}", segment.display()))?;
        if let Ok(view) = audit_chain::LineView::parse(first.strip_suffix(b"\n").unwrap_or(&first))
            && matches(&view.chain)
        {
            return Ok(view.chain.into_owned());
        }
    }
    Err(format!(
        "`{name}` is a hashed chain directory whose key file `{KEY_FILE}` is missing or does not match"
    ))
}

/// How much of a segment is read to find its first record's chain key.
const MAX_LINE_PROBE: u64 = 64 << 10;

/// Directories of chain keys too long for a file name are named by the key's SHA-256.
const HASHED_PREFIX: &str = "~";

/// The file in a hashed chain directory that holds its chain key.
const KEY_FILE: &str = "chain-key";

/// Longest percent-encoded name kept as it is: well under the 255 bytes of a file name, with
/// room for the `.jsonl` of a seal file and the suffix of a torn fragment.
const MAX_ENCODED_NAME: usize = 150;

fn hashed_name(chain: &str) -> String {
    format!("{HASHED_PREFIX}{}", audit_chain::ChainHash::of(chain.as_bytes()))
}

/// Creates the directory of `chain` under `chains_dir` (with its key file, for a hashed
/// name), durably; returns it.
pub(crate) fn create_chain_dir(chains_dir: &Path, chain: &str) -> Result<PathBuf, StoreError> {
    let name = encode_chain(chain);
    let dir = chains_dir.join(&name);
    let fresh = !dir.exists();
    fs::create_dir_all(&dir).map_err(StoreError::io(&dir))?;
    if name.starts_with(HASHED_PREFIX) && !dir.join(KEY_FILE).exists() {
        let key = dir.join(KEY_FILE);
        let mut file = File::create(&key).map_err(StoreError::io(&key))?;
        file.write_all(chain.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(StoreError::io(&key))?;
        sync_dir(&dir)?;
    }
    if fresh {
        sync_dir(chains_dir)?;
    }
    Ok(dir)
}

/// The segment files of one chain directory, oldest first.
pub fn segments(chain_dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let mut files = Vec::new();
    let entries = match fs::read_dir(chain_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(files),
        Err(e) => return Err(StoreError::io(chain_dir)(e)),
    };
    for entry in entries {
        let path = entry.map_err(StoreError::io(chain_dir))?.path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Where a store directory keeps what: used by verify and export to read a store.
#[derive(Clone, Debug)]
pub struct StoreFiles {
    /// Per chain key, its segments oldest first.
    pub chains: Vec<(String, Vec<PathBuf>)>,
    /// Seal files.
    pub seals: Vec<PathBuf>,
    /// Torn fragments kept aside after crashes.
    pub torn: Vec<PathBuf>,
    /// Directories under `chains` that hold no readable chain key, with what is wrong.
    pub unreadable: Vec<(PathBuf, String)>,
}

/// True if `dir` has the layout of a file store.
pub fn is_store_dir(dir: &Path) -> bool {
    dir.join("chains").is_dir()
}

/// Lists the files of the store in `dir`.
pub fn store_files(dir: &Path) -> Result<StoreFiles, StoreError> {
    let dirs = chain_dirs(&dir.join("chains"))?;
    let mut chains = Vec::new();
    for (name, path) in dirs.chains {
        let files = segments(&path)?;
        chains.push((name, files));
    }
    let list = |sub: &str, ext: &str| -> Result<Vec<PathBuf>, StoreError> {
        let d = dir.join(sub);
        let mut out = Vec::new();
        if let Ok(entries) = fs::read_dir(&d) {
            for e in entries {
                let p = e.map_err(StoreError::io(&d))?.path();
                if p.extension().is_some_and(|x| x == ext) {
                    out.push(p);
                }
            }
        }
        out.sort();
        Ok(out)
    };
    Ok(StoreFiles {
        chains,
        seals: list("seals", "jsonl")?,
        torn: list("torn", "torn")?,
        unreadable: dirs.unreadable,
    })
}

/// Encodes a chain key as a file name of at most 150 bytes, whatever its length and script:
/// plain keys (`[A-Za-z0-9_-]`, `.` after the first byte, at most 100 bytes) as they are,
/// others percent-encoded while that stays within 150 bytes, and longer ones as `~` and the
/// hex SHA-256 of the key, whose directory keeps the key in a file `chain-key`.
pub fn encode_chain(chain: &str) -> String {
    let plain = |(i, b): (usize, u8)| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (b == b'.' && i > 0);
    if !chain.is_empty() && chain.len() <= 100 && chain.bytes().enumerate().all(plain) {
        return chain.to_owned();
    }
    let mut out = String::with_capacity(chain.len() * 3);
    for (i, b) in chain.bytes().enumerate() {
        if out.len() > MAX_ENCODED_NAME {
            return hashed_name(chain);
        }
        if plain((i, b)) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.len() > MAX_ENCODED_NAME {
        return hashed_name(chain);
    }
    out
}

/// Decodes a directory name made by [`encode_chain`].
pub fn decode_chain(name: &str) -> Option<String> {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = name.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Adds the inputs of the store in `dir` to `inputs`, for verification: each chain's segments
/// oldest first (the newest may be growing), its seals and torn fragments. False when `dir` is
/// not a file store.
pub(crate) fn add_store_inputs(dir: &Path, inputs: &mut Inputs) -> Result<bool, StoreError> {
    if !is_store_dir(dir) {
        return Ok(false);
    }
    let files = store_files(dir)?;
    for (chain, segments) in files.chains {
        let newest = segments.len().saturating_sub(1);
        inputs
            .sources
            .extend(segments.into_iter().enumerate().map(|(i, path)| Source {
                path,
                from_genesis: true,
                growing: i == newest,
                chain: Some(chain.clone()),
            }));
    }
    inputs.seals.extend(files.seals);
    inputs.torn.extend(files.torn);
    inputs.unreadable.extend(files.unreadable);
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_names_round_trip() {
        for key in ["acme", "default", "a.b-c_d", ".hidden", "tenant/one", "ünï", "%", "x y"] {
            let enc = encode_chain(key);
            assert!(!enc.contains('/') && !enc.starts_with('.'), "{enc}");
            assert_eq!(decode_chain(&enc).as_deref(), Some(key));
        }
    }

    #[test]
    fn chain_names_of_any_length_and_script_stay_bounded_and_distinct() {
        let long: Vec<String> = vec![
            "a".repeat(100),
            "a".repeat(101),
            "a".repeat(255),
            "b".repeat(256),
            "x".repeat(100_000),
            "租户".repeat(15),
            "租户".repeat(16),
            "\0".repeat(60),
        ];
        let mut seen = std::collections::HashSet::new();
        for key in &long {
            let name = encode_chain(key);
            assert!(name.len() <= 150 && !name.contains('/'), "{} bytes: {name}", name.len());
            assert!(seen.insert(name.clone()), "two keys share the name {name}");
            if !name.starts_with(HASHED_PREFIX) {
                assert_eq!(decode_chain(&name).as_deref(), Some(key.as_str()));
            }
        }
        let dir = tempfile::tempdir().unwrap();
        for key in &long {
            create_chain_dir(dir.path(), key).unwrap();
        }
        std::fs::create_dir(dir.path().join("bad%zz")).unwrap();
        let dirs = chain_dirs(dir.path()).unwrap();
        let mut keys: Vec<&String> = long.iter().collect();
        keys.sort();
        assert_eq!(dirs.chains.iter().map(|(k, _)| k).collect::<Vec<_>>(), keys);
        assert_eq!(dirs.unreadable.len(), 1, "{:?}", dirs.unreadable);
    }
}
