//! Verification of files and directories (Contract 2): the records and seals behind a list of
//! paths, fed to the contract crate's streaming [`Verifier`].
//!
//! A file store directory is walked by the file store itself (its segments chain by chain,
//! oldest first, its seals and torn fragments); any other directory is searched for `*.jsonl`
//! files; a file is read as it is (an export, say). Stores of other kinds are verified with
//! [`verify_source`](crate::query::verify_source).

use std::fs::File;
use std::path::{Path, PathBuf};

use audit_chain::read::{MAX_LINE_BYTES, Piece, for_each_hashed_chunk, lines};
pub use audit_chain::verify::{ChainReport, Damage, DamageKind, Location, RecordCheck, Verifier, VerifyReport};

use crate::error::StoreError;
use crate::record::Record;

/// Settings of a verification.
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// Extra seal files to check the chains against (the store's own are always used).
    pub seals: Vec<PathBuf>,
    /// Also parse every record fully (schema check), not only its chain members.
    pub strict: bool,
    /// Require every chain to start at seq 1, even in files that are not a store directory.
    pub require_genesis: bool,
}

impl VerifyOptions {
    /// A verifier as strict as these options say (the extra seals are loaded by the caller,
    /// after the store's own).
    pub fn verifier(&self) -> Verifier {
        let verifier = Verifier::new();
        if self.strict {
            verifier.with_record_check(Record::check)
        } else {
            verifier
        }
    }

    /// Loads the extra seal files into `verifier`.
    pub fn add_extra_seals(&self, verifier: &mut Verifier) -> Result<(), StoreError> {
        for seals in &self.seals {
            if let Some(torn) = verifier.add_seal_file(seals).map_err(StoreError::io(seals))? {
                verifier.report(Damage {
                    kind: DamageKind::Malformed,
                    chain: None,
                    seq: None,
                    location: torn,
                    detail: "the last seal line has no newline: cut short".into(),
                });
            }
        }
        Ok(())
    }
}

/// An input file and whether chains in it must start from seq 1.
#[derive(Clone, Debug)]
pub struct Source {
    /// The file.
    pub path: PathBuf,
    /// True for store segments (a store keeps whole chains), false for exports.
    pub from_genesis: bool,
    /// True for the newest segment of a chain in a store, which its writer may be appending to.
    pub growing: bool,
    /// The chain a store keeps in this file (from its directory), to name it in damage.
    pub chain: Option<String>,
}

/// The files behind a list of paths: a store directory's segments (chain by chain, oldest
/// first), any other directory's `*.jsonl` files (sorted), or the files themselves.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    /// Record files, in reading order.
    pub sources: Vec<Source>,
    /// Seal files.
    pub seals: Vec<PathBuf>,
    /// Torn fragments.
    pub torn: Vec<PathBuf>,
    /// Directories of a store that hold no chain, with what is wrong: reported as damage,
    /// while everything else is verified.
    pub unreadable: Vec<(PathBuf, String)>,
}

impl Inputs {
    /// Collects the inputs behind `paths`.
    pub fn collect<P: AsRef<Path>>(paths: &[P]) -> Result<Inputs, StoreError> {
        let mut inputs = Inputs::default();
        for path in paths {
            let path = path.as_ref();
            if crate::store::file::add_store_inputs(path, &mut inputs)? {
                continue;
            }
            if path.is_dir() {
                let mut found = Vec::new();
                walk(path, &mut found)?;
                found.sort();
                inputs.sources.extend(found.into_iter().map(|path| Source {
                    path,
                    from_genesis: false,
                    growing: false,
                    chain: None,
                }));
            } else {
                std::fs::metadata(path).map_err(StoreError::io(path))?;
                inputs.sources.push(Source {
                    path: path.to_path_buf(),
                    from_genesis: false,
                    growing: false,
                    chain: None,
                });
            }
        }
        Ok(inputs)
    }

    /// Total size of the record files, for progress reporting.
    pub fn total_bytes(&self) -> u64 {
        self.sources
            .iter()
            .filter_map(|s| std::fs::metadata(&s.path).ok())
            .map(|m| m.len())
            .sum()
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), StoreError> {
    for entry in std::fs::read_dir(dir).map_err(StoreError::io(dir))? {
        let path = entry.map_err(StoreError::io(dir))?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "jsonl") {
            out.push(path);
        }
    }
    Ok(())
}

/// Verifies every record and seal behind `paths` (see [`Inputs::collect`]).
pub fn verify_paths<P: AsRef<Path>>(paths: &[P], opts: &VerifyOptions) -> Result<VerifyReport, StoreError> {
    let inputs = Inputs::collect(paths)?;
    verify_inputs(&inputs, opts, &mut |_| {})
}

/// Verifies `inputs`, calling `progress` with the bytes read as it goes.
pub fn verify_inputs(
    inputs: &Inputs,
    opts: &VerifyOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<VerifyReport, StoreError> {
    let mut verifier = opts.verifier();
    // A store's own seals mean whole chains are expected, even if every record file is gone.
    if !inputs.seals.is_empty() || opts.require_genesis {
        verifier.expect_whole_chains();
    }
    let mut unfinished = Vec::new();
    for seals in &inputs.seals {
        // A store's seal line cut short by a crash is noted like a torn record line: the
        // store repairs it when it is next opened.
        unfinished.extend(verifier.add_seal_file(seals).map_err(StoreError::io(seals))?);
    }
    opts.add_extra_seals(&mut verifier)?;
    for (dir, why) in &inputs.unreadable {
        verifier.report(Damage {
            kind: DamageKind::Malformed,
            chain: None,
            seq: None,
            location: Location {
                path: dir.clone(),
                line: 0,
            },
            detail: format!("not a chain directory: {why}"),
        });
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    for source in &inputs.sources {
        let from_genesis = source.from_genesis || opts.require_genesis;
        let mut number = 0;
        let file = File::open(&source.path).map_err(StoreError::io(&source.path))?;
        let place = |number| Location {
            path: source.path.clone(),
            line: number,
        };
        for_each_hashed_chunk(file, threads, progress, |piece| match piece {
            Piece::Lines(chunk, flags) => {
                for (line, hash_ok) in lines(chunk).zip(flags) {
                    number += 1;
                    if line.len() > MAX_LINE_BYTES {
                        verifier.report(too_long(place(number), source.chain.as_deref(), line.len() as u64));
                        continue;
                    }
                    verifier.push_hashed(line, || place(number), from_genesis, *hash_ok, source.chain.as_deref());
                }
            }
            Piece::TooLong(bytes) => {
                number += 1;
                verifier.report(too_long(place(number), source.chain.as_deref(), bytes));
            }
            Piece::Unterminated(_) if source.growing => {
                number += 1;
                unfinished.push(place(number));
            }
            Piece::Unterminated(_) => {
                number += 1;
                verifier.report(Damage {
                    kind: DamageKind::Malformed,
                    chain: None,
                    seq: None,
                    location: place(number),
                    detail: "the last line has no newline: torn by a crash or cut short".into(),
                });
            }
        })
        .map_err(StoreError::io(&source.path))?;
    }
    let mut report = verifier.finish();
    report.torn_fragments = inputs.torn.clone();
    report.unfinished = unfinished;
    Ok(report)
}

/// A line longer than any record may be: damage at its place, never read whole.
fn too_long(location: Location, chain: Option<&str>, bytes: u64) -> Damage {
    Damage {
        kind: DamageKind::Malformed,
        chain: chain.map(str::to_owned),
        seq: None,
        location,
        detail: format!("a line of {bytes} bytes, longer than any record may be ({MAX_LINE_BYTES} bytes): not read"),
    }
}
