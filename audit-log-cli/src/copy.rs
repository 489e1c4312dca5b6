//! `audit copy SRC DST`: records from one store into another (files, SQLite, PostgreSQL),
//! byte for byte, each one verified before it is written. Resumable and idempotent: every
//! chain continues from the head the destination already has, so a second run adds nothing.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use audit::copy::{ChainCopy, CopyError, CopyOptions, CopyReport, copy};

use crate::verify::{describe, plural};
use crate::{EXIT_DAMAGE, Error, is_broken_pipe, source};

/// Arguments of `audit copy`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
SRC and DST are each a file store directory, sqlite://PATH or
postgres://USER@HOST[:PORT]/DB[?schema=NAME] (schema `audit` unless ?schema= says otherwise).
DST is created when it does not exist: the directory, the SQLite file, or the PostgreSQL schema
and its tables.

Each chain continues from the head DST already has, after checking that it is the same record
in SRC: an interrupted copy resumes, and a second run copies nothing. Every record is verified
before it is written; a damaged chain is copied up to the record before the damage. Seals are
copied too, once DST holds the records they vouch for.

Exit status: 0 copied and verified, 1 SRC is damaged or DST holds a different chain under the
same key, 2 usage or I/O error.

Example:
  audit copy /var/lib/myapp/audit 'postgres://audit_owner@db/app?schema=audit'")]
pub struct CopyArgs {
    /// The store to copy from.
    #[arg(value_name = "SRC")]
    src: PathBuf,
    /// The store to copy into (created when missing).
    #[arg(value_name = "DST")]
    dst: PathBuf,
    /// Copy only this chain (tenant); repeatable. Default: every chain.
    #[arg(long = "chain", value_name = "CHAIN")]
    chains: Vec<String>,
    /// Records per append: one transaction in the SQL stores.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    batch_size: u64,
    /// Also parse every record fully (schema version 1) while verifying.
    #[arg(long)]
    strict: bool,
}

/// Runs `audit copy`.
pub fn run(args: &CopyArgs) -> Result<ExitCode, Error> {
    let src_location = source::location(&args.src)?;
    let dst_location = source::location(&args.dst)?;
    if src_location == dst_location {
        return Err(format!("SRC and DST are the same store ({})", src_location).into());
    }
    let mut src = source::open_source(&src_location)?;
    let mut dst = source::open_sink(&dst_location)?;
    let opts = CopyOptions {
        batch_size: usize::try_from(args.batch_size).unwrap_or(usize::MAX),
        chains: (!args.chains.is_empty()).then(|| args.chains.clone()),
        strict: args.strict,
    };
    let (from, to) = (src.describe(), dst.describe());
    let report = match copy(src.as_mut(), dst.as_mut(), &opts) {
        Ok(report) => report,
        Err(CopyError::Diverged { chain, seq, detail }) => {
            println!("copying {from} -> {to}");
            println!(
                "DIVERGED: chain `{chain}` differs at seq {seq}: {detail}. Nothing more was copied into this \
                 chain: the two stores hold different chains under one key, so one of them was altered or \
                 they are not copies of each other."
            );
            return Ok(ExitCode::from(EXIT_DAMAGE));
        }
        Err(e) => return Err(e.into()),
    };
    for chain in &args.chains {
        if !report.chains.iter().any(|c| &c.chain == chain) {
            eprintln!("warning: {from} has no chain `{chain}`");
        }
    }
    let mut out = io::BufWriter::new(io::stdout().lock());
    if let Err(e) = write_report(&mut out, &from, &to, &report).and_then(|()| out.flush())
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

/// One line per chain (and its damage, if any), the seals, then the verdict.
fn write_report(out: &mut impl Write, from: &str, to: &str, report: &CopyReport) -> io::Result<()> {
    writeln!(out, "copying {from} -> {to}")?;
    for chain in &report.chains {
        writeln!(out, "{}", chain_line(chain))?;
        let damage = report
            .verify
            .chains
            .iter()
            .find(|c| c.chain == chain.chain)
            .and_then(|c| c.damage.as_ref());
        if let Some(damage) = damage {
            writeln!(out, "  {}", describe(damage))?;
            writeln!(
                out,
                "  (copied up to the record before the damage; the rest stays behind)"
            )?;
        }
    }
    for damage in &report.verify.malformed {
        writeln!(out, "{}", describe(damage))?;
    }
    writeln!(out, "seals: {} added", report.seals_added)?;
    let copied = report.copied();
    let chains = plural(report.chains.len() as u64, "chain");
    if report.is_ok() {
        writeln!(
            out,
            "OK: copied {} in {chains}, every record verified",
            plural(copied, "record")
        )
    } else {
        let problems = report.verify.damages().count() as u64;
        writeln!(
            out,
            "FAILED: {} in the source; copied {} in {chains}",
            plural(problems, "problem"),
            plural(copied, "record")
        )
    }
}

/// What happened to one chain, in words.
fn chain_line(c: &ChainCopy) -> String {
    let mut line = format!("chain `{}`: ", c.chain);
    if c.copied == 0 {
        line.push_str("nothing to copy");
        if c.already > 0 {
            line.push_str(&format!(
                ", the destination has {} already",
                plural(c.already, "record")
            ));
        }
    } else {
        let first = c.head_seq + 1 - c.copied;
        line.push_str(&format!(
            "copied {}, seq {first}..={}",
            plural(c.copied, "record"),
            c.head_seq
        ));
        if c.already > 0 {
            line.push_str(&format!(", after the {} already there", plural(c.already, "record")));
        }
    }
    line.push_str(&format!("; destination head at seq {}", c.head_seq));
    line
}
