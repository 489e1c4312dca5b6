use std::io::Write;
use std::path::PathBuf;

use super::{Cursor, Query, StoredRecord, StoredSeal};
use crate::error::StoreError;
use crate::export::{ExportError, ExportSummary, Format};
use crate::verify::{Location, VerifyOptions, VerifyReport};

/// Records streamed from a store, oldest or newest first, in bounded memory.
pub type Records<'a> = Box<dyn Iterator<Item = Result<StoredRecord, StoreError>> + 'a>;

/// A store that can be read: queried, and walked chain by chain for verify and copy.
pub trait RecordSource {
    /// A name for messages (a directory, `sqlite://...`, `postgres://.../schema`).
    fn describe(&self) -> String;

    /// Every chain key, sorted.
    fn chains(&mut self) -> Result<Vec<String>, StoreError>;

    /// The records of `chain` with seq above `after_seq`, in seq order, exactly as stored
    /// (including any gap or damage, which verification is there to find).
    fn chain_records(&mut self, chain: &str, after_seq: u64) -> Result<Records<'_>, StoreError>;

    /// The records that match `query`, in its order.
    fn query(&mut self, query: &Query) -> Result<Records<'_>, StoreError>;

    /// Every seal, purge seals included.
    fn seals(&mut self) -> Result<Vec<StoredSeal>, StoreError>;
}

/// One page of results and the cursor of the next page (`None` when this was the last).
#[derive(Clone, Debug, Default)]
pub struct Page {
    /// The records of this page.
    pub records: Vec<StoredRecord>,
    /// Where the next page starts, if there may be one.
    pub next: Option<Cursor>,
}

/// Runs `query` for one page of `query.limit` records (100 when unset).
pub fn page(source: &mut dyn RecordSource, query: &Query) -> Result<Page, StoreError> {
    let limit = query.limit.unwrap_or(100);
    let q = Query {
        limit: Some(limit),
        ..query.clone()
    };
    let records: Vec<StoredRecord> = source.query(&q)?.collect::<Result<_, _>>()?;
    let next = (records.len() == limit && limit > 0)
        .then(|| records.last().map(Cursor::after))
        .flatten();
    Ok(Page { records, next })
}

/// Verifies every chain of `source` from its start (or from a purge seal) against its seals:
/// the same checks as [`verify_paths`](crate::verify::verify_paths) for a store directory.
pub fn verify_source(source: &mut dyn RecordSource, opts: &VerifyOptions) -> Result<VerifyReport, StoreError> {
    let mut verifier = opts.verifier();
    // A store keeps whole chains: a sealed chain without a single record left was deleted.
    verifier.expect_whole_chains();
    let origin = PathBuf::from(format!("{} (seals)", source.describe()));
    for (n, s) in source.seals()?.into_iter().enumerate() {
        verifier.add_seal(s.seal, s.purged, &origin, n as u64 + 1);
    }
    opts.add_extra_seals(&mut verifier)?;
    let name = source.describe();
    for chain in source.chains()? {
        let path = PathBuf::from(format!("{name} chain {chain}"));
        for record in source.chain_records(&chain, 0)? {
            let record = record?;
            verifier.push(
                &record.line,
                || Location {
                    path: path.clone(),
                    line: record.seq,
                },
                true,
            );
        }
    }
    Ok(verifier.finish())
}

/// Exports the records of `source` that match `query` (see [`crate::export`]). JSONL output
/// of one tenant over a time range, with no other filter, is a verifiable chain segment.
pub fn export_source(
    source: &mut dyn RecordSource,
    query: &Query,
    format: Format,
    out: impl Write,
) -> Result<ExportSummary, ExportError> {
    let records = source.query(query)?;
    crate::export::export_lines(records.map(|r| r.map(|r| r.line)), format, out)
}
