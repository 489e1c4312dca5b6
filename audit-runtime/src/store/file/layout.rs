//! Where a file store keeps what (see the [module docs](super)): only the file store knows.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use crate::StoredSeal;
use crate::error::StoreError;
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

/// The chain keys stored under `DIR/chains`, sorted.
pub fn chain_names(chains_dir: &Path) -> Result<Vec<String>, StoreError> {
    let mut names = Vec::new();
    let entries = match fs::read_dir(chains_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(names),
        Err(e) => return Err(StoreError::io(chains_dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(StoreError::io(chains_dir))?;
        if entry.file_type().map_err(StoreError::io(entry.path()))?.is_dir() {
            let name = entry.file_name();
            let name = name
                .to_str()
                .and_then(decode_chain)
                .ok_or_else(|| StoreError::Corrupt {
                    path: entry.path(),
                    line: 0,
                    message: "directory name is not an encoded chain key".into(),
                })?;
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
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
}

/// True if `dir` has the layout of a file store.
pub fn is_store_dir(dir: &Path) -> bool {
    dir.join("chains").is_dir()
}

/// Lists the files of the store in `dir`.
pub fn store_files(dir: &Path) -> Result<StoreFiles, StoreError> {
    let chains_dir = dir.join("chains");
    let mut chains = Vec::new();
    for name in chain_names(&chains_dir)? {
        let files = segments(&chains_dir.join(encode_chain(&name)))?;
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
    })
}

/// Encodes a chain key as a directory name.
pub fn encode_chain(chain: &str) -> String {
    let plain = |(i, b): (usize, u8)| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (b == b'.' && i > 0);
    if !chain.is_empty() && chain.len() <= 100 && chain.bytes().enumerate().all(plain) {
        return chain.to_owned();
    }
    let mut out = String::with_capacity(chain.len() * 3);
    for (i, b) in chain.bytes().enumerate() {
        if plain((i, b)) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
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
}
