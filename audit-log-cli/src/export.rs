//! `audit export`: records filtered by tenant, time range, action and actor, streamed as
//! JSONL (the stored bytes, a verifiable segment), a JSON array or CSV, from files, file
//! stores, SQLite or PostgreSQL.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use audit::Timestamp;
use audit::export::{ExportError, ExportSummary, Filter, Format, export_paths};
use audit::query::{Query, RecordSource, export_source};

use crate::{Error, is_broken_pipe, source};

/// Arguments of `audit export`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Locations:
  DIR or FILE           file store directories, other directories (searched for *.jsonl), JSONL files
  sqlite://PATH         a SQLite store
  postgres://USER@HOST[:PORT]/DB[?schema=NAME]
                        a PostgreSQL store (schema `audit` unless ?schema= says otherwise)
A store URL is exported on its own (one URL, no other PATH).

Example:
  audit export 'postgres://audit_ro@db/app?schema=audit' --tenant acme --from 2026-11-01 \\
      --to 2026-12-01 --format jsonl -o acme-november.jsonl")]
pub struct ExportArgs {
    /// Store directories, other directories (searched for `*.jsonl`), JSONL files, or one
    /// sqlite://PATH or postgres://... store URL.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Only this tenant's chain.
    #[arg(long, value_name = "T")]
    tenant: Option<String>,
    /// Only records at or after TIME: RFC 3339 (2026-11-26T07:16:51Z) or a date (2026-11-26).
    #[arg(long, value_name = "TIME", value_parser = Timestamp::parse)]
    from: Option<Timestamp>,
    /// Only records before TIME (exclusive): RFC 3339 or a date.
    #[arg(long, value_name = "TIME", value_parser = Timestamp::parse)]
    to: Option<Timestamp>,
    /// Only this action, or every action under a prefix written `billing.*`.
    #[arg(long, value_name = "A")]
    action: Option<String>,
    /// Only records by this actor id.
    #[arg(long, value_name = "ID")]
    actor: Option<String>,
    /// Output format: `jsonl` keeps the stored bytes (verifiable), `json` is an array, `csv`
    /// has one column per member with spreadsheet formulas neutralised.
    #[arg(long, value_enum)]
    format: FormatArg,
    /// Write to FILE instead of stdout. FILE appears only once the export is complete.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
}

/// The `--format` values.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum FormatArg {
    /// A JSON array of records.
    Json,
    /// One record per line, byte for byte as stored.
    Jsonl,
    /// RFC 4180 CSV.
    Csv,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::Json => Format::Json,
            FormatArg::Jsonl => Format::Jsonl,
            FormatArg::Csv => Format::Csv,
        }
    }
}

/// Runs `audit export`.
pub fn run(args: &ExportArgs) -> Result<ExitCode, Error> {
    if let (Some(from), Some(to)) = (args.from, args.to)
        && from >= to
    {
        return Err(format!("--from {from} is not before --to {to}: the range is empty").into());
    }
    let filter = Filter {
        tenant: args.tenant.clone(),
        from: args.from,
        to: args.to,
        action: args.action.clone(),
        actor: args.actor.clone(),
    };
    if !filter.keeps_segments() {
        eprintln!(
            "warning: --action/--actor leave out records in between, so this export is not a complete chain \
             segment: its hashes are genuine but `audit verify` will report the gaps as missing records"
        );
    }
    let format = Format::from(args.format);
    let mut input = Input::open(&args.paths)?;
    let summary = match &args.output {
        Some(path) => export_to_file(&mut input, &filter, format, path)?,
        None => {
            let mut out = BufWriter::new(io::stdout().lock());
            let result = input.export(&filter, format, &mut out).and_then(|summary| {
                out.flush()?;
                Ok(summary)
            });
            match result {
                Ok(summary) => summary,
                Err(ExportError::Output(e)) if is_broken_pipe(&e) => return Ok(ExitCode::SUCCESS),
                Err(e) => return Err(e.into()),
            }
        }
    };
    if summary.torn > 0 {
        eprintln!(
            "note: left out {} last line(s) without a newline: torn by a crash or still being written, never acknowledged",
            summary.torn
        );
    }
    let into = args
        .output
        .as_ref()
        .map(|p| format!(" into {}", p.display()))
        .unwrap_or_default();
    match &input {
        Input::Paths(_) => eprintln!("exported {} of {} records{into}", summary.written, summary.read),
        // The store filtered: every record read was written.
        Input::Store(store) => eprintln!("exported {} records from {}{into}", summary.written, store.describe()),
    }
    Ok(ExitCode::SUCCESS)
}

/// Exports into a temporary file beside `path` and renames it into place once complete, so
/// that a failed export never leaves a partial file that looks like a whole one.
fn export_to_file(input: &mut Input, filter: &Filter, format: Format, path: &Path) -> Result<ExportSummary, Error> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let io_error = |e: io::Error| format!("{}: {e}", path.display());
    let temp = tempfile::NamedTempFile::new_in(dir).map_err(io_error)?;
    let mut out = BufWriter::new(temp);
    let summary = input.export(filter, format, &mut out)?;
    let temp = out.into_inner().map_err(|e| io_error(e.into_error()))?;
    temp.as_file().sync_all().map_err(io_error)?;
    temp.persist(path).map_err(|e| io_error(e.error))?;
    Ok(summary)
}

/// What an export reads: files and directories, or one SQL store.
enum Input {
    /// Files and directories of JSONL.
    Paths(Vec<PathBuf>),
    /// A SQLite or PostgreSQL store.
    Store(Box<dyn RecordSource>),
}

impl Input {
    /// Opens the locations named on the command line.
    fn open(args: &[PathBuf]) -> Result<Input, Error> {
        let (paths, mut stores) = source::split(args)?;
        match (paths.is_empty(), stores.len()) {
            (_, 0) => Ok(Input::Paths(paths)),
            (true, 1) => Ok(Input::Store(source::open_source(&stores.remove(0))?)),
            _ => Err(format!(
                "a store URL is exported on its own: got {} locations, {} of them store URLs; export one at a time",
                args.len(),
                stores.len()
            )
            .into()),
        }
    }

    /// Writes the records that pass `filter` to `out` in `format`.
    fn export(&mut self, filter: &Filter, format: Format, out: impl Write) -> Result<ExportSummary, ExportError> {
        match self {
            Input::Paths(paths) => export_paths(paths, filter, format, out),
            Input::Store(store) => {
                // (`Query::from` would be the builder method that sets `from`.)
                let query: Query = filter.into();
                export_source(store.as_mut(), &query, format, out)
            }
        }
    }
}
