//! Locations named on the command line: a file store directory (or, for `verify` and
//! `export`, any file or directory of JSONL), `sqlite://PATH`, or `postgres://...`. Stores are
//! opened through the facade's [`audit::location`] functions, which know every store; this
//! command knows none of them.

use std::path::{Path, PathBuf};

use audit::location::StoreLocation;
pub use audit::location::{open_retention, open_sink, open_source};

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
    fn locations() {
        assert_eq!(
            location(Path::new("sqlite:///tmp/a.db")).unwrap(),
            StoreLocation::Sqlite("/tmp/a.db".into())
        );
        assert_eq!(
            location(Path::new("./logs")).unwrap(),
            StoreLocation::Files("./logs".into())
        );
        assert!(location(Path::new("mysql://h/db")).is_err());
    }
}
