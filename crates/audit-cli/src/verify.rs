//! `audit verify`: checks chains from the exact bytes on disk and reports, per chain, where it
//! starts, where it ends and the first damage.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use audit_runtime::ChainHash;
use audit_runtime::verify::{ChainReport, Damage, DamageKind, Inputs, VerifyOptions, VerifyReport, verify_inputs};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::{EXIT_DAMAGE, Error, is_broken_pipe};

/// Inputs smaller than this verify in well under a second, so a bar would only flicker.
const PROGRESS_THRESHOLD: u64 = 8 << 20;

/// Arguments of `audit verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Store directories (those with a `chains/` subdirectory), other directories (searched
    /// for `*.jsonl`), or JSONL files such as exports.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Print the report as JSON on stdout instead of text.
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

/// Runs `audit verify`.
pub fn run(args: &VerifyArgs) -> Result<ExitCode, Error> {
    let inputs = Inputs::collect(&args.paths)?;
    if inputs.sources.is_empty() && inputs.seals.is_empty() && args.seals.is_empty() {
        let paths: Vec<String> = args.paths.iter().map(|p| p.display().to_string()).collect();
        return Err(format!(
            "nothing to verify: no records (*.jsonl) or seals in {}",
            paths.join(", ")
        )
        .into());
    }
    let opts = VerifyOptions {
        seals: args.seals.clone(),
        strict: args.strict,
        require_genesis: args.require_genesis,
    };
    let total = inputs.total_bytes();
    let bar = (io::stderr().is_terminal() && total > PROGRESS_THRESHOLD).then(|| progress_bar(total));
    let report = verify_inputs(&inputs, &opts, &mut |bytes| {
        if let Some(bar) = &bar {
            bar.inc(bytes);
        }
    });
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let report = report?;
    for torn in &report.torn_fragments {
        eprintln!(
            "note: {}: a torn fragment the store kept aside after a crash (never acknowledged, not part of any chain)",
            torn.display()
        );
    }

    let mut out = io::BufWriter::new(io::stdout().lock());
    let written = if args.json {
        serde_json::to_writer_pretty(
            &mut out,
            &JsonReport {
                ok: report.is_ok(),
                report: &report,
            },
        )
        .map_err(io::Error::from)
        .and_then(|()| writeln!(out))
    } else {
        write_text(&mut out, &report)
    };
    if let Err(e) = written.and_then(|()| out.flush())
        && !is_broken_pipe(&e)
    {
        return Err(format!("writing the report: {e}").into());
    }
    Ok(if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_DAMAGE)
    })
}

fn progress_bar(total: u64) -> ProgressBar {
    let style = ProgressStyle::with_template("verifying {bar:40} {binary_bytes}/{binary_total_bytes} ({eta})")
        .expect("the template is valid");
    ProgressBar::new(total).with_style(style)
}

/// The text report: one line per chain, one per problem, then the verdict.
fn write_text(out: &mut impl Write, report: &VerifyReport) -> io::Result<()> {
    for chain in &report.chains {
        write_chain(out, chain)?;
    }
    for damage in &report.malformed {
        writeln!(out, "{}", describe(damage))?;
    }
    let records: u64 = report.chains.iter().map(|c| c.count).sum();
    match report.damages().count() {
        0 => writeln!(
            out,
            "OK: {} in {} verified",
            plural(records, "record"),
            plural(report.chains.len() as u64, "chain")
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

fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// One problem in words an auditor can act on: what, which chain and seq, which file:line.
fn describe(d: &Damage) -> String {
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
