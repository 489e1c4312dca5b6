//! Opening a store named on the command line: a file store directory (or, for `verify` and
//! `export`, any file or directory of JSONL), `sqlite://PATH`, or `postgres://...`.
//!
//! Reading never creates anything: a SQLite file that does not exist and a PostgreSQL schema
//! that was never migrated are errors, not new empty stores that would "verify" with nothing
//! in them. Writing (`copy`'s destination) creates the store when it is not there yet.

use std::path::{Path, PathBuf};

use audit_postgres::{PgConfig, PgStore};
use audit_runtime::copy::{FileSink, RecordSink};
use audit_runtime::query::{FileSource, RecordSource, StoreLocation};
use audit_runtime::retention::{FileRetention, RetentionTarget};
use audit_runtime::{FileStore, Store};
use audit_sqlite::SqliteStore;

use crate::Error;

/// Reads a location from a command-line argument: `sqlite://`, `postgres://` and
/// `postgresql://` URLs name SQL stores, anything else is a path.
pub fn location(arg: &Path) -> Result<StoreLocation, Error> {
    match arg.to_str() {
        Some(text) => Ok(StoreLocation::parse(text)?),
        // Not UTF-8: cannot be a URL.
        None => Ok(StoreLocation::Files(arg.to_path_buf())),
    }
}

/// How a location is named in messages (never with a password).
pub fn describe(location: &StoreLocation) -> String {
    match location {
        StoreLocation::Files(dir) => dir.display().to_string(),
        StoreLocation::Sqlite(path) => format!("sqlite://{}", path.display()),
        StoreLocation::Postgres(url) => match PgConfig::from_url(url) {
            Ok(config) => hide_password(&config.url, &config.schema),
            Err(_) => "postgres://...".to_owned(),
        },
    }
}

fn hide_password(url: &str, schema: &str) -> String {
    let base = url.split('?').next().unwrap_or_default();
    let shown = match (base.find("://"), base.rfind('@')) {
        (Some(i), Some(at)) if at > i => {
            let user = base[i + 3..at].split(':').next().unwrap_or_default();
            format!("{}{user}{}", &base[..i + 3], &base[at..])
        }
        _ => base.to_owned(),
    };
    format!("{shown}?schema={schema}")
}

/// A SQLite file that must already exist (reading never creates one).
fn existing_sqlite(path: &Path) -> Result<SqliteStore, Error> {
    if !path.is_file() {
        return Err(format!("sqlite://{}: no such SQLite database file", path.display()).into());
    }
    Ok(SqliteStore::open(path)?)
}

/// A PostgreSQL store that must already exist: connects without running migrations.
fn existing_postgres(url: &str) -> Result<PgStore, Error> {
    let config = PgConfig {
        migrate: false,
        ..PgConfig::from_url(url)?
    };
    let name = hide_password(&config.url, &config.schema);
    PgStore::with_config(config).map_err(|e| {
        let text = e.to_string();
        if text.contains("audit_schema_version") && text.contains("does not exist") {
            let detail = text.strip_prefix(&format!("{name}: ")).unwrap_or(&text);
            format!("{name}: no audit store in this schema (check `?schema=`): {detail}").into()
        } else {
            e.into()
        }
    })
}

/// Opens a store to read from.
pub fn open_source(location: &StoreLocation) -> Result<Box<dyn RecordSource>, Error> {
    Ok(match location {
        StoreLocation::Files(dir) => {
            if !dir.exists() {
                return Err(format!("{}: no such directory", dir.display()).into());
            }
            Box::new(FileSource::open(dir)?)
        }
        StoreLocation::Sqlite(path) => Box::new(existing_sqlite(path)?),
        StoreLocation::Postgres(url) => Box::new(existing_postgres(url)?),
    })
}

/// Opens a store to copy into, creating it (a directory, a SQLite file, a PostgreSQL schema
/// with its tables) when it does not exist yet.
pub fn open_sink(location: &StoreLocation) -> Result<Box<dyn RecordSink>, Error> {
    Ok(match location {
        StoreLocation::Files(dir) => Box::new(FileSink::open(dir)?),
        StoreLocation::Sqlite(path) => Box::new(SqliteStore::open(path)?),
        StoreLocation::Postgres(url) => Box::new(PgStore::connect_url(url)?),
    })
}

/// A store's retention side, its reader (to name every chain) and, unless `read_only`, a
/// writer to record the purge events with.
pub struct RetentionStore {
    /// What plans and purges.
    pub target: Box<dyn RetentionTarget>,
    /// The same store, read.
    pub source: Box<dyn RecordSource>,
    /// The same store, written (`None` when opened read-only, for a dry run).
    pub recorder: Option<Box<dyn Store>>,
}

/// Opens an existing store for retention. A file store's writer side takes the store's lock,
/// so a purge fails while an application is writing to the directory; a dry run reads only.
pub fn open_retention(location: &StoreLocation, read_only: bool) -> Result<RetentionStore, Error> {
    Ok(match location {
        StoreLocation::Files(dir) => {
            if !dir.exists() {
                return Err(format!("{}: no such directory", dir.display()).into());
            }
            let target = FileRetention::open(dir)?;
            let source = FileSource::open(dir)?;
            let recorder: Option<Box<dyn Store>> = if read_only {
                None
            } else {
                Some(Box::new(FileStore::open(dir)?))
            };
            RetentionStore {
                target: Box::new(target),
                source: Box::new(source),
                recorder,
            }
        }
        StoreLocation::Sqlite(path) => RetentionStore {
            target: Box::new(existing_sqlite(path)?),
            source: Box::new(existing_sqlite(path)?),
            recorder: if read_only {
                None
            } else {
                Some(Box::new(existing_sqlite(path)?))
            },
        },
        StoreLocation::Postgres(url) => RetentionStore {
            target: Box::new(existing_postgres(url)?),
            source: Box::new(existing_postgres(url)?),
            recorder: if read_only {
                None
            } else {
                Some(Box::new(existing_postgres(url)?))
            },
        },
    })
}

/// Splits command-line locations into plain paths (files and directories, read as JSONL)
/// and SQL stores, keeping the order of each.
pub fn split(args: &[PathBuf]) -> Result<(Vec<PathBuf>, Vec<StoreLocation>), Error> {
    let mut paths = Vec::new();
    let mut stores = Vec::new();
    for arg in args {
        match location(arg)? {
            StoreLocation::Files(path) => paths.push(path),
            sql => stores.push(sql),
        }
    }
    Ok((paths, stores))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_and_their_names() {
        assert_eq!(
            location(Path::new("sqlite:///tmp/a.db")).unwrap(),
            StoreLocation::Sqlite("/tmp/a.db".into())
        );
        assert_eq!(
            location(Path::new("./logs")).unwrap(),
            StoreLocation::Files("./logs".into())
        );
        assert!(location(Path::new("mysql://h/db")).is_err());
        let pg = StoreLocation::Postgres("postgres://app:secret@db:5432/main?schema=audit_x".into());
        assert_eq!(describe(&pg), "postgres://app@db:5432/main?schema=audit_x");
        let pg = StoreLocation::Postgres("postgresql://db/main".into());
        assert_eq!(describe(&pg), "postgresql://db/main?schema=audit");
    }
}
