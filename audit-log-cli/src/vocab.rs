//! `audit vocab`: the action catalogue of `audit.toml` (Contract 3), for an auditor.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use audit::vocab::Vocabulary;

use crate::{Error, is_broken_pipe};

/// Arguments of `audit vocab`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Without --file, `audit.toml` is looked for in the current directory and then in each parent
directory, as the #[audited] macro does from the crate's directory. A malformed file is an
error naming FILE:LINE:COLUMN of every problem (exit status 2).

Example:
  audit vocab --format csv > actions.csv")]
pub struct VocabArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = VocabFormat::Markdown)]
    format: VocabFormat,
    /// The vocabulary file to read, instead of searching for `audit.toml` upwards from the
    /// current directory.
    #[arg(long, value_name = "PATH")]
    file: Option<PathBuf>,
}

/// The `--format` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum VocabFormat {
    /// A document grouped by category, with one table per category.
    Markdown,
    /// One row per action: action,category,description,deprecated,replaced_by,standard.
    Csv,
    /// A JSON document with every action.
    Json,
}

/// Runs `audit vocab`.
pub fn run(args: &VocabArgs) -> Result<ExitCode, Error> {
    let vocab = match &args.file {
        Some(file) => Vocabulary::load(file)?,
        None => {
            let here = std::env::current_dir().map_err(|e| format!("the current directory: {e}"))?;
            Vocabulary::load_from(here)?
        }
    };
    let text = match args.format {
        VocabFormat::Markdown => vocab.render_markdown(),
        VocabFormat::Csv => vocab.render_csv(),
        VocabFormat::Json => vocab.render_json(),
    };
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush())
        && !is_broken_pipe(&e)
    {
        return Err(format!("writing the catalogue: {e}").into());
    }
    Ok(ExitCode::SUCCESS)
}
