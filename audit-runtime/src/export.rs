//! Customer exports: records filtered by tenant, time range, action and actor, written as
//! JSONL (the exact stored bytes: a verifiable chain segment), a JSON array, or CSV.
//! Streaming: memory does not grow with the size of the log.

use std::io::Write;
use std::path::Path;

use audit_chain::read::{Line, for_each_line};

use crate::Timestamp;
use crate::error::StoreError;
use crate::record::{LineView, Record};
use crate::verify::Inputs;

/// Output format of an export.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Format {
    /// One record per line, byte for byte as stored.
    #[default]
    Jsonl,
    /// A JSON array of the stored records.
    Json,
    /// RFC 4180 CSV with one column per member, spreadsheet formula injection neutralised.
    Csv,
}

/// Which records to export. Every filter that is set must match.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Only this tenant's chain.
    pub tenant: Option<String>,
    /// Only records at or after this time.
    pub from: Option<Timestamp>,
    /// Only records before this time.
    pub to: Option<Timestamp>,
    /// Only this action, or actions under a prefix written `billing.*`.
    pub action: Option<String>,
    /// Only this actor id.
    pub actor: Option<String>,
}

impl Filter {
    /// True when the export keeps whole contiguous chain segments (only tenant and time
    /// filters), so that the JSONL output verifies on its own.
    pub fn keeps_segments(&self) -> bool {
        self.action.is_none() && self.actor.is_none()
    }

    fn needs_record(&self) -> bool {
        !self.keeps_segments()
    }

    fn action_matches(&self, action: &str) -> bool {
        match self.action.as_deref() {
            None => true,
            Some(pattern) => match pattern.strip_suffix(".*") {
                Some(prefix) => action.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('.')),
                None => action == pattern,
            },
        }
    }
}

/// Counts of an export.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExportSummary {
    /// Records read.
    pub read: u64,
    /// Records written.
    pub written: u64,
    /// Last lines without their newline, skipped: torn by a crash or still being written by
    /// a live writer, so never acknowledged.
    pub torn: u64,
}

/// Error of an export: a store problem or an unreadable record, naming file and line.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Reading the inputs failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A line is not a record.
    #[error("{path}:{line}: {message}")]
    Malformed {
        /// The file.
        path: String,
        /// 1-based line.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// Writing the output failed.
    #[error("writing the export: {0}")]
    Output(#[from] std::io::Error),
}

/// The CSV header.
pub const CSV_COLUMNS: [&str; 24] = [
    "id",
    "chain",
    "seq",
    "timestamp",
    "actor_type",
    "actor_id",
    "actor_auth",
    "actor_name",
    "impersonator",
    "action",
    "category",
    "resource_type",
    "resource_id",
    "outcome",
    "reason",
    "ip",
    "user_agent",
    "request_id",
    "session_id",
    "trace_id",
    "tenant",
    "changes",
    "prev_hash",
    "hash",
];

/// Exports the records behind `paths` that match `filter` into `out`.
pub fn export_paths<P: AsRef<Path>>(
    paths: &[P],
    filter: &Filter,
    format: Format,
    out: impl Write,
) -> Result<ExportSummary, ExportError> {
    let inputs = Inputs::collect(paths)?;
    let mut writer = Writer::new(format, out)?;
    let mut summary = ExportSummary::default();
    let from = filter.from.map(|t| t.to_string());
    let to = filter.to.map(|t| t.to_string());
    for source in &inputs.sources {
        let mut failure = None;
        let file = std::fs::File::open(&source.path).map_err(StoreError::io(&source.path))?;
        for_each_line(
            file,
            |line, number| {
                let malformed = |message: String| ExportError::Malformed {
                    path: source.path.display().to_string(),
                    line: number,
                    message,
                };
                let line = match line {
                    _ if failure.is_some() => return,
                    Line::Complete(line) => line,
                    // Exporting from a live store may catch the writer mid-line: that record
                    // is not committed yet, so it is left out instead of failing the export.
                    Line::Unterminated(_) => {
                        summary.torn += 1;
                        return;
                    }
                    Line::TooLong(bytes) => {
                        failure = Some(malformed(format!(
                            "a line of {bytes} bytes, longer than any record may be: not a record"
                        )));
                        return;
                    }
                };
                if line.is_empty() {
                    return;
                }
                summary.read += 1;
                let view = match LineView::parse(line) {
                    Ok(v) => v,
                    Err(m) => {
                        failure = Some(malformed(m.0));
                        return;
                    }
                };
                // Timestamps have one fixed-width text form, so text order is time order.
                let keep = filter.tenant.as_deref().is_none_or(|t| t == view.chain)
                    && from.as_deref().is_none_or(|f| view.timestamp >= f)
                    && to.as_deref().is_none_or(|t| view.timestamp < t);
                if !keep {
                    return;
                }
                let record = if filter.needs_record() || format == Format::Csv {
                    match Record::parse(line) {
                        Ok(r) => Some(r),
                        Err(m) => {
                            failure = Some(malformed(m.0));
                            return;
                        }
                    }
                } else {
                    None
                };
                if let Some(r) = &record
                    && (!filter.action_matches(&r.action) || filter.actor.as_deref().is_some_and(|a| a != r.actor.id))
                {
                    return;
                }
                if let Err(e) = writer.write(line, record.as_ref()) {
                    failure = Some(e);
                    return;
                }
                summary.written += 1;
            },
            &mut |_| {},
        )
        .map_err(StoreError::io(&source.path))?;
        if let Some(e) = failure {
            return Err(e);
        }
    }
    writer.finish()?;
    Ok(summary)
}

/// Writes stored lines (each without its newline) in `format`, for records read through
/// [`query`](crate::query), which did the filtering already.
pub fn export_lines<I>(lines: I, format: Format, out: impl Write) -> Result<ExportSummary, ExportError>
where
    I: Iterator<Item = Result<Vec<u8>, StoreError>>,
{
    let mut writer = Writer::new(format, out)?;
    let mut summary = ExportSummary::default();
    for line in lines {
        let line = line?;
        summary.read += 1;
        let record = match format {
            Format::Csv => Some(Record::parse(&line).map_err(|m| ExportError::Malformed {
                path: "<store>".into(),
                line: summary.read,
                message: m.0,
            })?),
            _ => None,
        };
        writer.write(&line, record.as_ref())?;
        summary.written += 1;
    }
    writer.finish()?;
    Ok(summary)
}

enum Writer<W: Write> {
    Lines(W),
    Array(W, bool),
    Csv(Box<csv::Writer<W>>),
}

impl<W: Write> Writer<W> {
    fn new(format: Format, mut out: W) -> Result<Self, ExportError> {
        Ok(match format {
            Format::Jsonl => Writer::Lines(out),
            Format::Json => {
                out.write_all(b"[")?;
                Writer::Array(out, true)
            }
            Format::Csv => {
                let mut w = csv::WriterBuilder::new()
                    .terminator(csv::Terminator::CRLF)
                    .from_writer(out);
                w.write_record(CSV_COLUMNS).map_err(csv_error)?;
                Writer::Csv(Box::new(w))
            }
        })
    }

    fn write(&mut self, line: &[u8], record: Option<&Record>) -> Result<(), ExportError> {
        match self {
            Writer::Lines(out) => {
                out.write_all(line)?;
                out.write_all(b"\n")?;
            }
            Writer::Array(out, first) => {
                out.write_all(if *first { b"\n" } else { b",\n" })?;
                *first = false;
                out.write_all(line)?;
            }
            Writer::Csv(w) => {
                let r = record.expect("CSV rows are parsed");
                w.write_record(csv_row(r).iter().map(|c| neutralise(c).into_owned()))
                    .map_err(csv_error)?;
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<(), ExportError> {
        match self {
            Writer::Lines(mut out) => out.flush()?,
            Writer::Array(mut out, first) => {
                out.write_all(if first { b"]\n" } else { b"\n]\n" })?;
                out.flush()?;
            }
            Writer::Csv(mut w) => w.flush()?,
        }
        Ok(())
    }
}

fn csv_error(e: csv::Error) -> ExportError {
    // Keep an I/O error as it is, so that callers can tell a closed pipe from a failure.
    if !e.is_io_error() {
        return ExportError::Output(std::io::Error::other(e));
    }
    match e.into_kind() {
        csv::ErrorKind::Io(e) => ExportError::Output(e),
        _ => unreachable!("checked to be an I/O error"),
    }
}

fn text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn csv_row(r: &Record) -> Vec<String> {
    let ctx = r.context.clone().unwrap_or_default();
    let (outcome, reason) = match &r.outcome {
        crate::Outcome::Success => ("success", String::new()),
        crate::Outcome::Failure { reason } => ("failure", reason.clone()),
    };
    vec![
        r.id.to_string(),
        r.chain.clone(),
        r.seq.to_string(),
        r.timestamp.to_string(),
        text(&r.actor.kind),
        r.actor.id.clone(),
        text(&r.actor.auth),
        r.actor.name.clone().unwrap_or_default(),
        r.actor.impersonator.as_ref().map(|i| i.id.clone()).unwrap_or_default(),
        r.action.clone(),
        r.category.to_string(),
        r.resource.as_ref().map(|x| x.kind.to_string()).unwrap_or_default(),
        r.resource.as_ref().map(|x| x.id.clone()).unwrap_or_default(),
        outcome.to_owned(),
        reason,
        ctx.ip.unwrap_or_default(),
        ctx.user_agent.unwrap_or_default(),
        ctx.request_id.unwrap_or_default(),
        ctx.session_id.unwrap_or_default(),
        ctx.trace_id.unwrap_or_default(),
        r.tenant.clone().unwrap_or_default(),
        r.changes
            .as_ref()
            .map(|c| serde_json::to_string(c).expect("values serialize"))
            .unwrap_or_default(),
        r.prev_hash.to_string(),
        r.hash.to_string(),
    ]
}

/// Prefixes a cell that a spreadsheet could run as a formula with `'` (OWASP's CSV injection
/// rules): a cell whose first character is `=`, `+`, `-`, `@`, `|` or their full-width
/// forms, once leading white space, control characters, invisible characters (byte order
/// mark, zero-width and no-break spaces) and `;` are passed over, or that starts with a tab,
/// carriage return or line feed.
pub fn neutralise(cell: &str) -> std::borrow::Cow<'_, str> {
    let invisible = |c: char| {
        c.is_whitespace()
            || c.is_control()
            || c == ';'
            || matches!(c, '\u{feff}' | '\u{200b}'..='\u{200d}' | '\u{2060}')
    };
    let trigger = |c: char| {
        matches!(
            c,
            '=' | '+' | '-' | '@' | '|' | '\u{ff1d}' | '\u{ff0b}' | '\u{ff0d}' | '\u{ff20}' | '\u{ff5c}'
        )
    };
    let starts_with_break = cell.starts_with(['\t', '\r', '\n']);
    match cell.trim_start_matches(invisible).chars().next() {
        Some(c) if trigger(c) => format!("'{cell}").into(),
        _ if starts_with_break => format!("'{cell}").into(),
        _ => cell.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_never_run_as_formulas() {
        // (cell, neutralised?): the OWASP triggers, behind every prefix a spreadsheet skips.
        let table = [
            ("=HYPERLINK(\"http://x\")", true),
            ("+1", true),
            ("-2", true),
            ("@SUM(A1)", true),
            ("|calc!A1", true),
            ("\u{ff5c}x", true),
            ("\tx", true),
            ("\rx", true),
            ("\nx", true),
            (" =1+1", true),
            ("   +cmd", true),
            ("\n=1+1", true),
            ("\u{feff}=1+1", true),
            ("\u{a0}=1+1", true),
            ("\u{3000}=1", true),
            ("\u{200b}=1", true),
            ("\u{ff1d}1+1", true),
            ("\u{ff0b}1", true),
            ("\u{ff0d}1", true),
            ("\u{ff20}SUM(A1)", true),
            (";=1+1", true),
            ("; ;=1", true),
            ("\u{1}=1", true),
            ("acme", false),
            ("usr_123", false),
            ("2026-11-26T07:16:51.123456Z", false),
            ("a=b", false),
            ("", false),
            (" plain", false),
            ("; not a formula", false),
        ];
        for (cell, dangerous) in table {
            let out = neutralise(cell);
            assert_eq!(
                out.starts_with('\'') && out.len() == cell.len() + 1,
                dangerous,
                "{cell:?} -> {out:?}"
            );
            if !dangerous {
                assert_eq!(out, cell);
            }
        }
    }

    #[test]
    fn action_prefixes_match_whole_segments() {
        let f = Filter {
            action: Some("billing.*".into()),
            ..Filter::default()
        };
        assert!(f.action_matches("billing.update"));
        assert!(f.action_matches("billing.card.update"));
        assert!(!f.action_matches("billingx.update"));
        assert!(!f.action_matches("billing"));
    }
}
