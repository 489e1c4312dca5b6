//! `audit verify`: checks chains from the exact bytes stored (files, SQLite, PostgreSQL) and
//! reports, per chain, where it starts, where it ends and the first damage.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use audit::ChainHash;
use audit::query::verify_source;
use audit::verify::{ChainReport, Damage, DamageKind, Inputs, VerifyOptions, VerifyReport, verify_inputs};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::{EXIT_DAMAGE, Error, is_broken_pipe, source};

/// Inputs smaller than this verify in well under a second, so a bar would only flicker.
const PROGRESS_THRESHOLD: u64 = 8 << 20;

/// Arguments of `audit verify`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Locations:
  DIR                   a file store directory (with chains/ and seals/)
  DIR or FILE           any other directory (searched for *.jsonl) or a JSONL file, such as an export
  sqlite://PATH         a SQLite store (sqlite:///abs/path or sqlite://relative/path)
  postgres://USER@HOST[:PORT]/DB[?schema=NAME]
                        a PostgreSQL store (schema `audit` unless ?schema= says otherwise)

Files and directories are verified together, as one set of chains; each SQL store on its own.
Exit status: 0 all verified, 1 damage found (named by chain, seq and place), 2 usage or I/O error.

Example:
  audit verify sqlite:///var/lib/myapp/audit.db")]
pub struct VerifyArgs {
    /// What to verify: store directories, JSONL files or directories of them, sqlite://PATH or
    /// postgres://... store URLs (see below).
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Print the report as JSON on stdout instead of text. With several SQL stores (or SQL
    /// stores and files) the report has one entry per store under `stores`.
    #[arg(long)]
    json: bool,
    /// Also check the chains against the seals in FILE (repeatable). A store's own seals are
    /// always used.
    #[arg(long = "seals", value_name = "FILE")]
    seals: Vec<PathBuf>,
    /// Also parse every record fully (schema version 1), not only its chain members.
    #[arg(long)]
    strict: bool,
    /// Require every chain to start at seq 1: the input must hold whole chains, not segments.
    /// (Stores always hold whole chains, or chains that start after a retention purge seal.)
    #[arg(long)]
    require_genesis: bool,
}

/// `--json` output: the runtime's report plus the verdict, so scripts need not recompute it.
#[derive(Serialize)]
struct JsonReport<'a> {
    ok: bool,
    #[serde(flatten)]
    report: &'a VerifyReport,
}

/// `--json` output of one store among several.
#[derive(Serialize)]
struct JsonStoreReport<'a> {
    store: &'a str,
    ok: bool,
    #[serde(flatten)]
    report: &'a VerifyReport,
}

/// `--json` output for several stores.
#[derive(Serialize)]
struct JsonReports<'a> {
    ok: bool,
    stores: Vec<JsonStoreReport<'a>>,
}

/// Runs `audit verify`.
pub fn run(args: &VerifyArgs) -> Result<ExitCode, Error> {
    let (paths, stores) = source::split(&args.paths)?;
    let opts = VerifyOptions {
        seals: args.seals.clone(),
        strict: args.strict,
        require_genesis: args.require_genesis,
    };
    // (what was verified, its report)
    let mut reports: Vec<(String, VerifyReport)> = Vec::new();
    if !paths.is_empty() {
        let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        reports.push((names.join(", "), verify_files(&paths, args, &opts)?));
    }
    for store in &stores {
        let mut source = source::open_source(store)?;
        let report = verify_source(source.as_mut(), &opts)?;
        let name = source.describe();
        if report.chains.is_empty() && report.malformed.is_empty() && args.seals.is_empty() {
            return Err(format!("nothing to verify: {name} holds no records or seals").into());
        }
        reports.push((name, report));
    }
    for (_, report) in &reports {
        for line in &report.unfinished {
            eprintln!(
                "note: {line}: the file ends with an incomplete line (a write in progress, or a crash the \
                 store repairs when it is next opened); it was never acknowledged and was not verified"
            );
        }
        for torn in &report.torn_fragments {
            eprintln!(
                "note: {}: a torn fragment the store kept aside after a crash (never acknowledged, not part of any chain)",
                torn.display()
            );
        }
    }

    let ok = reports.iter().all(|(_, r)| r.is_ok());
    let mut out = io::BufWriter::new(io::stdout().lock());
    let written = if args.json {
        let json = match &reports[..] {
            [(_, report)] => serde_json::to_writer_pretty(&mut out, &JsonReport { ok, report }),
            several => serde_json::to_writer_pretty(
                &mut out,
                &JsonReports {
                    ok,
                    stores: several
                        .iter()
                        .map(|(store, report)| JsonStoreReport {
                            store,
                            ok: report.is_ok(),
                            report,
                        })
                        .collect(),
                },
            ),
        };
        json.map_err(io::Error::from).and_then(|()| writeln!(out))
    } else {
        write_text(&mut out, &reports)
    };
    if let Err(e) = written.and_then(|()| out.flush())
        && !is_broken_pipe(&e)
    {
        return Err(format!("writing the report: {e}").into());
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_DAMAGE)
    })
}

/// Verifies files and directories together, with a progress bar on a terminal for big ones.
fn verify_files(paths: &[PathBuf], args: &VerifyArgs, opts: &VerifyOptions) -> Result<VerifyReport, Error> {
    let inputs = Inputs::collect(paths)?;
    if inputs.sources.is_empty() && inputs.seals.is_empty() && args.seals.is_empty() {
        let paths: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(format!(
            "nothing to verify: no records (*.jsonl) or seals in {}",
            paths.join(", ")
        )
        .into());
    }
    let total = inputs.total_bytes();
    let bar = (io::stderr().is_terminal() && total > PROGRESS_THRESHOLD).then(|| progress_bar(total));
    let report = verify_inputs(&inputs, opts, &mut |bytes| {
        if let Some(bar) = &bar {
            bar.inc(bytes);
        }
    });
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(report?)
}

fn progress_bar(total: u64) -> ProgressBar {
    let style = ProgressStyle::with_template("verifying {bar:40} {binary_bytes}/{binary_total_bytes} ({eta})")
        .expect("the template is valid");
    ProgressBar::new(total).with_style(style)
}

/// The text report: one line per chain, one per problem, then the verdict. With several
/// stores, each one's lines follow a line naming it.
fn write_text(out: &mut impl Write, reports: &[(String, VerifyReport)]) -> io::Result<()> {
    for (name, report) in reports {
        if reports.len() > 1 {
            writeln!(out, "store {name}:")?;
        }
        for chain in &report.chains {
            write_chain(out, chain)?;
        }
        for damage in &report.malformed {
            writeln!(out, "{}", describe(damage))?;
        }
    }
    let records: u64 = reports.iter().flat_map(|(_, r)| &r.chains).map(|c| c.count).sum();
    let chains: usize = reports.iter().map(|(_, r)| r.chains.len()).sum();
    match reports.iter().map(|(_, r)| r.damages().count()).sum::<usize>() {
        0 => writeln!(
            out,
            "OK: {} in {} verified",
            plural(records, "record"),
            plural(chains as u64, "chain")
        ),
        problems => writeln!(out, "FAILED: {} found", plural(problems as u64, "problem")),
    }
}

fn write_chain(out: &mut impl Write, c: &ChainReport) -> io::Result<()> {
    let mut line = format!("chain `{}`: ", c.chain);
    // For a damaged chain the counts cover only the good records before the damage.
    if c.damage.is_some() {
        line.push_str("DAMAGED after ");
    }
    line.push_str(&plural(
        c.count,
        if c.damage.is_some() { "good record" } else { "record" },
    ));
    if c.count > 0 {
        line.push_str(&format!(", seq {}..={}", c.first_seq, c.last_seq));
        // A segment (an export over a time range) attaches to a record outside it: print
        // where, so it can be matched with the previous segment or a seal.
        if c.first_seq != 1 || c.start_prev_hash != ChainHash::GENESIS {
            line.push_str(&format!(", starts mid-chain after prev_hash {}", c.start_prev_hash));
        }
        line.push_str(&format!(", head {}", c.head));
    }
    if let Some(sealed) = c.sealed_through {
        line.push_str(&format!(", sealed through seq {sealed}"));
    }
    writeln!(out, "{line}")?;
    if let Some(damage) = &c.damage {
        writeln!(out, "  {}", describe(damage))?;
    }
    Ok(())
}

/// `1 record`, `2 records`.
pub fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// One problem in words an auditor can act on: what, which chain and seq, which file:line.
pub fn describe(d: &Damage) -> String {
    let what = match d.kind {
        DamageKind::Malformed => "malformed line",
        DamageKind::Edited => "edited record",
        DamageKind::Missing => "deleted or missing record",
        DamageKind::Reordered => "reordered records",
        DamageKind::Forged => "inserted or forged record",
        DamageKind::Truncated => "truncated chain (newest records deleted, per the seals)",
    };
    let mut text = format!("DAMAGE [{}]: {what}", d.kind);
    if let Some(chain) = &d.chain {
        text.push_str(&format!(" in chain `{chain}`"));
    }
    if let Some(seq) = d.seq {
        text.push_str(&format!(" at seq {seq}"));
    }
    text.push_str(&format!(", {}: {}", d.location, d.detail));
    text
}
