//! Opening a store from a location string, the same syntax as the `audit` command: a file
//! store directory, `sqlite://PATH` or `postgres://USER@HOST[:PORT]/DB[?schema=NAME]`.
//!
//! The SQL stores are behind the `sqlite` and `postgres` features; a location naming a store
//! this build does not include is an error that says which feature to enable.
//!
//! ```
//! use audit::{AuditLayer, StoreLocation, open_source, open_store};
//! use audit::query::{Query, RecordSource};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let location = dir.path().join("audit").display().to_string();
//! // From configuration: "/var/lib/myapp/audit", "sqlite://audit.db", "postgres://app@db/app".
//! let location: StoreLocation = location.parse()?;
//! let (layer, guard) = AuditLayer::builder(open_store(&location)?).build()?;
//! # drop(layer);
//! guard.shutdown()?;
//!
//! let mut source = open_source(&location)?; // reading never creates a store
//! assert_eq!(source.query(&Query::new())?.count(), 0);
//! # Ok(()) }
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use audit_runtime::copy::RecordSink;
use audit_runtime::query::RecordSource;
use audit_runtime::retention::RetentionTarget;
use audit_runtime::store::file::{FileRetention, FileSink};
use audit_runtime::{FileSource, FileStore, Store, StoreError};

/// Where a store is: `sqlite://PATH`, `postgres://...` (or `postgresql://...`), or a file
/// store directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreLocation {
    /// A file store directory.
    Files(PathBuf),
    /// A SQLite database file.
    Sqlite(PathBuf),
    /// A PostgreSQL URL, `?schema=NAME` included when given.
    Postgres(String),
}

impl StoreLocation {
    /// Reads a location; anything that is not a known URL scheme is a directory path.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Some(path) = text.strip_prefix("sqlite://") {
            let path = path.split('?').next().unwrap_or_default();
            if path.is_empty() {
                return Err(format!("`{text}`: no database file after sqlite://"));
            }
            return Ok(StoreLocation::Sqlite(PathBuf::from(path)));
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Ok(StoreLocation::Postgres(text.to_owned()));
        }
        if let Some((scheme, _)) = text.split_once("://") {
            return Err(format!(
                "`{text}`: unknown store scheme `{scheme}` (use sqlite://, postgres:// or a directory)"
            ));
        }
        Ok(StoreLocation::Files(PathBuf::from(text)))
    }
}

impl FromStr for StoreLocation {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        StoreLocation::parse(text)
    }
}

/// The location as written, without any password (`postgres://app@db/main`).
impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::Files(dir) => write!(f, "{}", dir.display()),
            StoreLocation::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            StoreLocation::Postgres(url) => {
                let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
                let rest = match rest.split_once('@') {
                    Some((credentials, host)) if !credentials.contains('/') => {
                        let user = credentials.split(':').next().unwrap_or_default();
                        format!("{user}@{host}")
                    }
                    _ => rest.to_owned(),
                };
                write!(f, "{scheme}://{rest}")
            }
        }
    }
}

/// Opens a store for the writer ([`AuditLayer::builder`](crate::AuditLayer::builder)),
/// creating it when it does not exist yet: the directory, the SQLite file, or the
/// PostgreSQL schema with its tables (which needs the owner's rights).
pub fn open_store(location: &StoreLocation) -> Result<Box<dyn Store>, StoreError> {
    match location {
        StoreLocation::Files(dir) => Ok(Box::new(FileStore::open(dir)?)),
        StoreLocation::Sqlite(path) => sqlite::store(path),
        StoreLocation::Postgres(url) => postgres::store(url),
    }
}

/// Opens a store to read from (query, verify, export). Reading never creates anything: a
/// directory, SQLite file or PostgreSQL schema that is not there is an error, not an empty
/// store that would "verify" with nothing in it.
pub fn open_source(location: &StoreLocation) -> Result<Box<dyn RecordSource>, StoreError> {
    match location {
        StoreLocation::Files(dir) => Ok(Box::new(FileSource::open(existing_dir(dir)?)?)),
        StoreLocation::Sqlite(path) => sqlite::source(path),
        StoreLocation::Postgres(url) => postgres::source(url),
    }
}

/// Opens a store to copy records into ([`copy`](crate::copy::copy)), creating it when it
/// does not exist yet.
pub fn open_sink(location: &StoreLocation) -> Result<Box<dyn RecordSink>, StoreError> {
    match location {
        StoreLocation::Files(dir) => Ok(Box::new(FileSink::open(dir)?)),
        StoreLocation::Sqlite(path) => sqlite::sink(path),
        StoreLocation::Postgres(url) => postgres::sink(url),
    }
}

/// A store's retention side, its reader (to name every chain) and, unless opened read-only,
/// a writer to record the purge events with.
pub struct RetentionStore {
    /// What plans and purges.
    pub target: Box<dyn RetentionTarget>,
    /// The same store, read.
    pub source: Box<dyn RecordSource>,
    /// The same store, written (`None` when opened read-only, for a dry run).
    pub recorder: Option<Box<dyn Store>>,
}

impl fmt::Debug for RetentionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetentionStore")
            .field("store", &self.source.describe())
            .field("read_only", &self.recorder.is_none())
            .finish()
    }
}

/// Opens an existing store for retention ([`retention::run`](crate::retention::run)). A
/// file store's writer side takes the store's lock, so a purge fails while an application
/// is writing to the directory; `read_only` (a dry run) only reads.
pub fn open_retention(location: &StoreLocation, read_only: bool) -> Result<RetentionStore, StoreError> {
    match location {
        StoreLocation::Files(dir) => {
            let dir = existing_dir(dir)?;
            let recorder: Option<Box<dyn Store>> = if read_only {
                None
            } else {
                Some(Box::new(FileStore::open(dir)?))
            };
            Ok(RetentionStore {
                target: Box::new(FileRetention::open(dir)?),
                source: Box::new(FileSource::open(dir)?),
                recorder,
            })
        }
        StoreLocation::Sqlite(path) => sqlite::retention(path, read_only),
        StoreLocation::Postgres(url) => postgres::retention(url, read_only),
    }
}

fn existing_dir(dir: &Path) -> Result<&Path, StoreError> {
    if dir.exists() {
        Ok(dir)
    } else {
        Err(StoreError::Config(format!("{}: no such directory", dir.display())))
    }
}

/// Opens the SQL stores in each role; without its feature, each says which feature to enable.
macro_rules! sql_store {
    ($module:ident, $feature:literal, $arg:ty, $shown:expr, $open:path, $open_existing:path) => {
        #[cfg(feature = $feature)]
        mod $module {
            use super::*;

            pub fn store(at: &$arg) -> Result<Box<dyn Store>, StoreError> {
                Ok(Box::new($open(at)?))
            }

            pub fn source(at: &$arg) -> Result<Box<dyn RecordSource>, StoreError> {
                Ok(Box::new($open_existing(at)?))
            }

            pub fn sink(at: &$arg) -> Result<Box<dyn RecordSink>, StoreError> {
                Ok(Box::new($open(at)?))
            }

            pub fn retention(at: &$arg, read_only: bool) -> Result<RetentionStore, StoreError> {
                Ok(RetentionStore {
                    target: Box::new($open_existing(at)?),
                    source: Box::new($open_existing(at)?),
                    recorder: match read_only {
                        true => None,
                        false => Some(Box::new($open_existing(at)?)),
                    },
                })
            }
        }

        #[cfg(not(feature = $feature))]
        mod $module {
            use super::*;

            fn missing<T>(at: &$arg) -> Result<T, StoreError> {
                let shown: fn(&$arg) -> String = $shown;
                Err(StoreError::Config(format!(
                    "{}: this program was built without the {} store (enable the `{}` feature of audit-log)",
                    shown(at),
                    $feature,
                    $feature
                )))
            }

            pub fn store(at: &$arg) -> Result<Box<dyn Store>, StoreError> {
                missing(at)
            }

            pub fn source(at: &$arg) -> Result<Box<dyn RecordSource>, StoreError> {
                missing(at)
            }

            pub fn sink(at: &$arg) -> Result<Box<dyn RecordSink>, StoreError> {
                missing(at)
            }

            pub fn retention(at: &$arg, _read_only: bool) -> Result<RetentionStore, StoreError> {
                missing(at)
            }
        }
    };
}

sql_store!(
    sqlite,
    "sqlite",
    Path,
    |path| StoreLocation::Sqlite(path.to_path_buf()).to_string(),
    audit_sqlite::SqliteStore::open,
    audit_sqlite::SqliteStore::open_existing
);
sql_store!(
    postgres,
    "postgres",
    str,
    |url| StoreLocation::Postgres(url.to_owned()).to_string(),
    audit_postgres::PgStore::connect_url,
    audit_postgres::PgStore::open_existing
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_locations() {
        assert_eq!(
            StoreLocation::parse("sqlite:///var/a.db"),
            Ok(StoreLocation::Sqlite("/var/a.db".into()))
        );
        assert_eq!(
            StoreLocation::parse("sqlite://rel.db"),
            Ok(StoreLocation::Sqlite("rel.db".into()))
        );
        let pg = "postgres://u@h/db?schema=audit";
        assert_eq!(StoreLocation::parse(pg), Ok(StoreLocation::Postgres(pg.into())));
        assert_eq!(
            StoreLocation::parse("./logs"),
            Ok(StoreLocation::Files("./logs".into()))
        );
        assert!(StoreLocation::parse("mysql://x").is_err());
    }

    #[test]
    fn locations_are_shown_without_passwords() {
        let pg = StoreLocation::Postgres("postgres://app:secret@db:5432/main?schema=audit_x".into());
        assert_eq!(pg.to_string(), "postgres://app@db:5432/main?schema=audit_x");
        let pg = StoreLocation::Postgres("postgresql://db/main".into());
        assert_eq!(pg.to_string(), "postgresql://db/main");
        assert_eq!(StoreLocation::Sqlite("a.db".into()).to_string(), "sqlite://a.db");
    }
}
