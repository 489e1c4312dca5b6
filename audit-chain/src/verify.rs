//! Verification of chained records (Contract 2): every hash, every link, every `seq`, and
//! the seals, from the exact bytes stored. Streaming, constant memory per chain.
//!
//! A [`Verifier`] knows nothing of where lines come from: a store walks its own files or
//! rows and feeds it each chain's lines in order, with a [`Location`] to name them by.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::hash::ChainHash;
use crate::line::{LineView, Malformed};
use crate::read::Line;
use crate::seal::{Seal, StoredSeal};

/// What kind of damage verification found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DamageKind {
    /// A line is not a record of schema version 1 (cut short, not JSON, members out of order).
    Malformed,
    /// A record's bytes no longer match its hash.
    Edited,
    /// One or more records are gone from the middle or the start of the chain.
    Missing,
    /// Records are out of order.
    Reordered,
    /// A record has a valid hash of its own but does not belong where it stands: inserted,
    /// duplicated, or rewritten together with its successors (detected by links or seals).
    Forged,
    /// The newest records are gone: the chain ends before a seal says it reached.
    Truncated,
}

impl fmt::Display for DamageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DamageKind::Malformed => "malformed",
            DamageKind::Edited => "edited",
            DamageKind::Missing => "missing",
            DamageKind::Reordered => "reordered",
            DamageKind::Forged => "forged",
            DamageKind::Truncated => "truncated",
        })
    }
}

/// Where a line is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Location {
    /// The file.
    pub path: PathBuf,
    /// 1-based line number. For a truncation, the seal that the chain falls short of.
    pub line: u64,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.path.display(), self.line)
    }
}

/// The first problem found in a chain (or in a line that belongs to no chain).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Damage {
    /// What is wrong.
    pub kind: DamageKind,
    /// The chain, when the line names one.
    pub chain: Option<String>,
    /// The first bad `seq`, when known.
    pub seq: Option<u64>,
    /// Where it was found.
    pub location: Location,
    /// Details for a human.
    pub detail: String,
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if let Some(chain) = &self.chain {
            write!(f, " in chain `{chain}`")?;
        }
        if let Some(seq) = self.seq {
            write!(f, " at seq {seq}")?;
        }
        write!(f, " ({}): {}", self.location, self.detail)
    }
}

/// The verified state of one chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    /// The chain key.
    pub chain: String,
    /// How many records were checked.
    pub count: u64,
    /// `seq` of the first record seen (1 unless this is a segment starting mid-chain).
    pub first_seq: u64,
    /// `prev_hash` of the first record: where this segment attaches.
    pub start_prev_hash: ChainHash,
    /// `seq` of the last good record.
    pub last_seq: u64,
    /// `hash` of the last good record: the head, to compare with seals.
    pub head: ChainHash,
    /// Highest sealed `seq` that was checked against the chain.
    pub sealed_through: Option<u64>,
    /// The first damage, if any.
    pub damage: Option<Damage>,
}

/// What verification found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct VerifyReport {
    /// Every chain seen, in key order.
    pub chains: Vec<ChainReport>,
    /// Lines that could not be attributed to a chain.
    pub malformed: Vec<Damage>,
    /// Torn fragments a crash left, kept aside by the store (informational).
    pub torn_fragments: Vec<PathBuf>,
    /// Last lines without a newline at the end of a store's newest segment: a write in
    /// progress, or a crash not yet repaired. They are not records yet, so they are neither
    /// verified nor damage; a seal beyond them still reports the chain as truncated.
    pub unfinished: Vec<Location>,
    /// Lines read.
    pub lines: u64,
}

impl VerifyReport {
    /// True when nothing is damaged.
    pub fn is_ok(&self) -> bool {
        self.malformed.is_empty() && self.chains.iter().all(|c| c.damage.is_none())
    }

    /// Every damage found: unattributed lines first, then per chain.
    pub fn damages(&self) -> impl Iterator<Item = &Damage> {
        self.malformed
            .iter()
            .chain(self.chains.iter().filter_map(|c| c.damage.as_ref()))
    }
}

struct Progress {
    /// The chain was read from seq 1 in sources that keep whole chains, so its end can be
    /// checked against seals; a segment (an export) may legitimately end before a seal.
    whole: bool,
    first_seq: u64,
    start_prev_hash: ChainHash,
    count: u64,
    last_seq: u64,
    head: ChainHash,
    sealed_through: Option<u64>,
    damage: Option<Damage>,
}

/// A seal as loaded: the hash it vouches for and where it was read, to name it as evidence.
struct SealEntry {
    hash: ChainHash,
    file: usize,
    line: u64,
}

/// A full check of one record line, beyond its chain members (a schema check, say), for
/// [`Verifier::with_record_check`].
pub type RecordCheck = fn(&[u8]) -> Result<(), Malformed>;

/// Streaming verifier: feed it lines in chain order, then [`finish`](Verifier::finish).
#[derive(Default)]
pub struct Verifier {
    chains: HashMap<String, Progress>,
    seals: HashMap<String, BTreeMap<u64, SealEntry>>,
    seal_files: Vec<PathBuf>,
    /// Whole chains are expected (a store or genesis-only input), so a sealed chain with no
    /// records at all was deleted rather than merely not exported.
    expect_whole: bool,
    /// Newest purge seal per chain: retention removed every record up to its seq on purpose,
    /// so a whole chain may start after it.
    purges: HashMap<String, (u64, ChainHash)>,
    malformed: Vec<Damage>,
    check: Option<RecordCheck>,
    lines: u64,
}

impl Verifier {
    /// A verifier of chain members, hashes, links and seals.
    pub fn new() -> Self {
        Verifier::default()
    }

    /// Also runs `check` on every record of a chain not damaged so far (strict mode); a record
    /// it refuses is reported as malformed at its seq.
    pub fn with_record_check(mut self, check: RecordCheck) -> Self {
        self.check = Some(check);
        self
    }

    /// Declares that the input holds whole chains (a store), so that a sealed chain without a
    /// single record left was deleted, not merely left out of an export. Feeding a line with
    /// `from_genesis` declares it too.
    pub fn expect_whole_chains(&mut self) {
        self.expect_whole = true;
    }

    /// Loads one seal line (without its newline) to check chains against; `origin` and
    /// `number` name it in reports. A line that is not a seal is reported as damage.
    pub fn add_seal_line(&mut self, line: &[u8], origin: &Path, number: u64) {
        if line.is_empty() {
            return;
        }
        match StoredSeal::from_line(line) {
            Ok(s) => self.add_seal(s.seal, s.purged, origin, number),
            Err(m) => self.report(Damage {
                kind: DamageKind::Malformed,
                chain: None,
                seq: None,
                location: Location {
                    path: origin.to_path_buf(),
                    line: number,
                },
                detail: m.0,
            }),
        }
    }

    /// Loads the seal lines of a file (see [`add_seal_line`](Self::add_seal_line)). A last
    /// line without its newline is a seal whose write a crash cut short: it was never
    /// acknowledged, so it is not loaded, and its place is returned to be noted.
    pub fn add_seal_file(&mut self, path: &Path) -> std::io::Result<Option<Location>> {
        let file = std::fs::File::open(path)?;
        let mut unfinished = None;
        crate::read::for_each_line(
            file,
            |line, number| match line {
                Line::Complete(line) => self.add_seal_line(line, path, number),
                Line::Unterminated(_) => {
                    unfinished = Some(Location {
                        path: path.to_path_buf(),
                        line: number,
                    })
                }
                Line::TooLong(bytes) => self.report(Damage {
                    kind: DamageKind::Malformed,
                    chain: None,
                    seq: None,
                    location: Location {
                        path: path.to_path_buf(),
                        line: number,
                    },
                    detail: format!("a line of {bytes} bytes is not a seal"),
                }),
            },
            &mut |_| {},
        )?;
        Ok(unfinished)
    }

    /// Reports damage found outside the lines fed (a line cut short in a store, say).
    pub fn report(&mut self, damage: Damage) {
        self.malformed.push(damage);
    }

    /// Adds one seal read from elsewhere than a file (a database's seals table); `purged`
    /// marks a retention purge seal. `origin` and `line` name it in reports.
    pub fn add_seal(&mut self, seal: Seal, purged: bool, origin: &Path, line: u64) {
        if self.seal_files.last().is_none_or(|p| p != origin) {
            self.seal_files.push(origin.to_path_buf());
        }
        if purged {
            note_purge(&mut self.purges, &seal);
        }
        let entry = SealEntry {
            hash: seal.hash,
            file: self.seal_files.len() - 1,
            line,
        };
        self.insert_seal(seal.chain, seal.seq, entry);
    }

    /// Keeps a seal; two seals of one seq that disagree are evidence in themselves (a forged
    /// seal, or a chain rewritten between them), whatever the records say.
    fn insert_seal(&mut self, chain: String, seq: u64, entry: SealEntry) {
        let seals = self.seals.entry(chain.clone()).or_default();
        match seals.get(&seq) {
            Some(old) if old.hash != entry.hash => {
                let place = |e: &SealEntry| format!("{}:{}", self.seal_files[e.file].display(), e.line);
                let detail = format!(
                    "two seals of seq {seq} disagree: {} at {} and {} at {}",
                    old.hash,
                    place(old),
                    entry.hash,
                    place(&entry)
                );
                let location = Location {
                    path: self.seal_files[entry.file].clone(),
                    line: entry.line,
                };
                self.malformed.push(Damage {
                    kind: DamageKind::Forged,
                    chain: Some(chain),
                    seq: Some(seq),
                    location,
                    detail,
                });
            }
            _ => {
                seals.insert(seq, entry);
            }
        }
    }

    /// The first damage found so far in `chain` (to stop copying at it).
    pub fn chain_damage(&self, chain: &str) -> Option<&Damage> {
        self.chains.get(chain).and_then(|p| p.damage.as_ref())
    }

    /// Checks one line (without its newline). `from_genesis` demands that a chain seen for
    /// the first time starts at seq 1 (or within or right after the range a purge seal
    /// covers), and that it is not cut short of its seals.
    pub fn push(&mut self, line: &[u8], location: impl FnOnce() -> Location, from_genesis: bool) {
        self.push_checked(line, location, from_genesis, None, None);
    }

    /// [`push`](Self::push), with the hash check already done (on another thread, see
    /// [`for_each_hashed_chunk`](crate::read::for_each_hashed_chunk)), and the chain the
    /// line stands in when the store says (its directory or partition), so that a line that
    /// is not a record is still attributed to it.
    pub fn push_hashed(
        &mut self,
        line: &[u8],
        location: impl FnOnce() -> Location,
        from_genesis: bool,
        hash_ok: bool,
        known_chain: Option<&str>,
    ) {
        self.push_checked(line, location, from_genesis, Some(hash_ok), known_chain);
    }

    fn push_checked(
        &mut self,
        line: &[u8],
        location: impl FnOnce() -> Location,
        from_genesis: bool,
        hash_ok: Option<bool>,
        known_chain: Option<&str>,
    ) {
        self.lines += 1;
        self.expect_whole |= from_genesis;
        let view = match LineView::parse(line) {
            Ok(v) => v,
            // In a store the file says which chain the line stands in: name it, and the seq a
            // record there would have. The chain itself goes on being checked around the line.
            Err(m) if known_chain.is_some() => {
                let chain = known_chain.expect("checked");
                let next = self.chains.get(chain).map_or(1, |p| p.last_seq + 1);
                self.malformed.push(Damage {
                    kind: DamageKind::Malformed,
                    chain: Some(chain.to_owned()),
                    seq: Some(next),
                    location: location(),
                    detail: m.0,
                });
                return;
            }
            Err(m) => {
                self.malformed.push(Damage {
                    kind: DamageKind::Malformed,
                    chain: None,
                    seq: None,
                    location: location(),
                    detail: m.0,
                });
                return;
            }
        };
        // A record of another chain planted in this chain's file: it belongs to neither.
        if let Some(chain) = known_chain.filter(|c| *c != view.chain) {
            let next = self.chains.get(chain).map_or(1, |p| p.last_seq + 1);
            self.malformed.push(Damage {
                kind: DamageKind::Forged,
                chain: Some(chain.to_owned()),
                seq: Some(next),
                location: location(),
                detail: format!(
                    "a record of chain `{}` (seq {}) stands where chain `{chain}` keeps its records",
                    view.chain, view.seq
                ),
            });
            return;
        }
        let damage = |kind, seq, detail: String, location: Location| Damage {
            kind,
            chain: Some(view.chain.to_string()),
            seq: Some(seq),
            location,
            detail,
        };
        // A purged chain starts right after its purge seal, whose hash the first record must
        // link to; or, if a purge stopped half way, before it, where the seal checks the hash.
        let purged_start = self
            .purges
            .get(&*view.chain)
            .is_some_and(|&(seq, hash)| view.seq <= seq || (view.seq == seq + 1 && view.prev_hash == hash));
        let state = match self.chains.get_mut(&*view.chain) {
            Some(s) => s,
            None => self.chains.entry(view.chain.to_string()).or_insert(Progress {
                whole: from_genesis,
                first_seq: view.seq,
                start_prev_hash: view.prev_hash,
                count: 0,
                last_seq: view.seq - 1,
                head: view.prev_hash,
                sealed_through: None,
                damage: None,
            }),
        };
        if let Some(d) = &mut state.damage {
            // Keep reading only to tell a reorder from a deletion.
            if d.kind == DamageKind::Missing && d.seq == Some(view.seq) {
                d.kind = DamageKind::Reordered;
                d.detail = format!("record seq {} appears after later records ({})", view.seq, location());
            }
            return;
        }
        if let Some(check) = self.check
            && let Err(m) = check(line)
        {
            state.damage = Some(damage(DamageKind::Malformed, view.seq, m.0, location()));
            return;
        }
        if !hash_ok.unwrap_or_else(|| view.body_hash() == view.hash) {
            let seq = if state.count > 0 { state.last_seq + 1 } else { view.seq };
            let detail = "the record's bytes do not match its hash".to_owned();
            state.damage = Some(damage(DamageKind::Edited, seq, detail, location()));
            return;
        }
        let expected = state.last_seq + 1;
        if state.count == 0 && from_genesis && view.seq != 1 && !purged_start {
            let detail = format!(
                "the chain starts at seq {}: records 1..={} are missing",
                view.seq,
                view.seq - 1
            );
            state.damage = Some(damage(DamageKind::Missing, 1, detail, location()));
            return;
        }
        if view.seq > expected {
            let detail = format!("records {expected}..={} are missing before this one", view.seq - 1);
            state.damage = Some(damage(DamageKind::Missing, expected, detail, location()));
            return;
        }
        if view.seq < expected {
            // A record moved later leaves a gap where it was, reported as missing first and
            // turned into a reorder above. With no gap before it, a second record claims a
            // position already verified: a duplicate or an inserted record. Only a segment's
            // predecessor (seq below the first one seen) can still be a reorder here.
            let (kind, detail) = if view.seq < state.first_seq {
                let detail = format!(
                    "seq {} appears after seq {}, which follows it",
                    view.seq, state.last_seq
                );
                (DamageKind::Reordered, detail)
            } else if view.seq == state.last_seq && view.hash == state.head {
                (DamageKind::Forged, format!("a duplicate of seq {}", view.seq))
            } else {
                let detail = format!(
                    "a second record claims seq {} after seq {}: inserted or duplicated",
                    view.seq, state.last_seq
                );
                (DamageKind::Forged, detail)
            };
            state.damage = Some(damage(kind, view.seq, detail, location()));
            return;
        }
        let genesis_ok = !(from_genesis && state.count == 0) || view.prev_hash == ChainHash::GENESIS || purged_start;
        if view.prev_hash != state.head || !genesis_ok {
            let detail = if state.count == 0 {
                "the first record's prev_hash is not 64 zeros".to_owned()
            } else {
                format!("prev_hash does not match the hash of seq {}", state.last_seq)
            };
            state.damage = Some(damage(DamageKind::Forged, view.seq, detail, location()));
            return;
        }
        if let Some(sealed) = self.seals.get(&*view.chain).and_then(|s| s.get(&view.seq)) {
            if sealed.hash != view.hash {
                // The links are consistent, so the records were rewritten together: the seal
                // only bounds where the rewrite starts.
                let since = state.sealed_through.map_or(state.first_seq, |s| s + 1);
                let detail = format!(
                    "hash differs from the seal of seq {} ({}:{}, {}): the chain was rewritten with recomputed \
                     hashes from somewhere in seq {since}..={}",
                    view.seq,
                    self.seal_files[sealed.file].display(),
                    sealed.line,
                    sealed.hash,
                    view.seq
                );
                state.damage = Some(damage(DamageKind::Forged, view.seq, detail, location()));
                return;
            }
            state.sealed_through = Some(view.seq);
        }
        state.count += 1;
        state.last_seq = view.seq;
        state.head = view.hash;
    }

    /// Final checks (truncation against seals) and the report.
    pub fn finish(mut self) -> VerifyReport {
        for (chain, seals) in &self.seals {
            if !self.chains.contains_key(chain) {
                if !self.expect_whole {
                    continue;
                }
                // Every record purged: the chain legitimately ends at its purge seal.
                let (last_seq, head) = self.purges.get(chain).copied().unwrap_or((0, ChainHash::GENESIS));
                self.chains.insert(
                    chain.clone(),
                    Progress {
                        whole: true,
                        first_seq: last_seq + 1,
                        start_prev_hash: head,
                        count: 0,
                        last_seq,
                        head,
                        sealed_through: None,
                        damage: None,
                    },
                );
            }
            let state = self.chains.get_mut(chain).expect("inserted");
            if state.damage.is_some() || !state.whole {
                continue;
            }
            if let Some((&sealed_seq, seal)) = seals.iter().next_back()
                && sealed_seq > state.last_seq
            {
                // The seal is the evidence: name where it is.
                let seal_file = &self.seal_files[seal.file];
                state.damage = Some(Damage {
                    kind: DamageKind::Truncated,
                    chain: Some(chain.clone()),
                    seq: Some(state.last_seq + 1),
                    location: Location {
                        path: seal_file.clone(),
                        line: seal.line,
                    },
                    detail: format!(
                        "the chain ends at seq {} but its seal covers seq {sealed_seq}: the newest records were deleted",
                        state.last_seq
                    ),
                });
            }
        }
        let mut chains: Vec<ChainReport> = self
            .chains
            .into_iter()
            .map(|(chain, p)| ChainReport {
                chain,
                count: p.count,
                first_seq: p.first_seq,
                start_prev_hash: p.start_prev_hash,
                last_seq: p.last_seq,
                head: p.head,
                sealed_through: p.sealed_through,
                damage: p.damage,
            })
            .collect();
        chains.sort_by(|a, b| a.chain.cmp(&b.chain));
        VerifyReport {
            chains,
            malformed: self.malformed,
            torn_fragments: Vec::new(),
            unfinished: Vec::new(),
            lines: self.lines,
        }
    }
}

fn note_purge(purges: &mut HashMap<String, (u64, ChainHash)>, seal: &Seal) {
    let slot = purges.entry(seal.chain.clone()).or_insert((seal.seq, seal.hash));
    if seal.seq > slot.0 {
        *slot = (seal.seq, seal.hash);
    }
}
