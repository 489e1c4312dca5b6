//! Errors of loading a vocabulary file.

use std::fmt;
use std::path::PathBuf;

/// One problem in a vocabulary file, at a 1-based line and column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// What is wrong, in words.
    pub message: String,
}

/// Why a vocabulary could not be loaded.
#[derive(Debug)]
#[non_exhaustive]
pub enum VocabError {
    /// No `audit.toml` was found searching upwards; `searched` lists the directories.
    NotFound {
        /// Directories looked in, nearest first.
        searched: Vec<PathBuf>,
    },
    /// The file that was named explicitly does not exist.
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// The file exists but could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file is malformed: every problem found, in file order.
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        problems: Vec<Problem>,
    },
}

impl fmt::Display for VocabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VocabError::Missing { path } => write!(f, "audit vocabulary file {} does not exist", path.display()),
            VocabError::NotFound { searched } => {
                write!(f, "no `{}` found; looked in ", crate::FILE_NAME)?;
                for (i, dir) in searched.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{}", dir.display())?;
                }
                Ok(())
            }
            VocabError::Io { path, source } => write!(f, "cannot read {}: {source}", path.display()),
            VocabError::Invalid { path, problems } => {
                let n = problems.len();
                write!(
                    f,
                    "malformed audit vocabulary {} ({n} problem{}):",
                    path.display(),
                    if n == 1 { "" } else { "s" }
                )?;
                for p in problems {
                    write!(f, "\n{}:{}:{}: {}", path.display(), p.line, p.column, p.message)?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for VocabError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            VocabError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
