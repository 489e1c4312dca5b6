use std::path::PathBuf;

/// Where a store is, as written on a command line: `sqlite://PATH`, `postgres://...` (or
/// `postgresql://...`), or a file store directory. The SQL stores live in their own crates
/// (`audit-sqlite`, `audit-postgres`); a program that links them opens the right one by this.
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
}
