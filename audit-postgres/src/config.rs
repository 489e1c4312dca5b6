use audit_runtime::StoreError;

/// Where a store lives: a connection URL and a schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgConfig {
    /// A `postgres://` URL (or key=value connection string) accepted by the `postgres` crate.
    pub url: String,
    /// The schema (default `audit`): lowercase letters, digits and `_`.
    pub schema: String,
    /// Run pending migrations on connect (default true; needs the owner's rights when the
    /// schema is behind).
    pub migrate: bool,
}

impl PgConfig {
    /// `url` and `schema`.
    pub fn new(url: impl Into<String>, schema: impl Into<String>) -> Self {
        PgConfig {
            url: url.into(),
            schema: schema.into(),
            migrate: true,
        }
    }

    /// Parses a store URL: `postgres://user@host:port/db?schema=audit` (the `schema`
    /// parameter is this crate's; every other one goes to the connection).
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(StoreError::Config(format!("`{url}` is not a postgres:// URL")));
        }
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut schema = "audit".to_owned();
        let mut rest = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("schema", v)) => schema = v.to_owned(),
                _ => rest.push(pair),
            }
        }
        let url = if rest.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", rest.join("&"))
        };
        Ok(PgConfig::new(url, schema))
    }
}

pub(crate) fn check_schema_name(schema: &str) -> Result<(), StoreError> {
    let ok = !schema.is_empty()
        && schema.len() <= 48
        && schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !schema.as_bytes()[0].is_ascii_digit();
    if ok {
        Ok(())
    } else {
        Err(StoreError::Config(format!(
            "schema name `{schema}`: use lowercase letters, digits and `_` (at most 48)"
        )))
    }
}

pub(crate) fn describe(config: &PgConfig) -> String {
    // Never show a password.
    let base = config.url.split('?').next().unwrap_or_default();
    let shown = match (base.find("://"), base.rfind('@')) {
        (Some(i), Some(at)) if at > i => {
            let creds = &base[i + 3..at];
            let user = creds.split(':').next().unwrap_or_default();
            format!("{}{}{}", &base[..i + 3], user, &base[at..])
        }
        _ => base.to_owned(),
    };
    format!("{shown}?schema={}", config.schema)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_the_schema_apart_and_hide_passwords() {
        let c = PgConfig::from_url("postgres://app:secret@db:5432/main?schema=audit_x&sslmode=disable").unwrap();
        assert_eq!(c.schema, "audit_x");
        assert_eq!(c.url, "postgres://app:secret@db:5432/main?sslmode=disable");
        assert_eq!(describe(&c), "postgres://app@db:5432/main?schema=audit_x");
        assert_eq!(PgConfig::from_url("postgres://db/main").unwrap().schema, "audit");
        assert!(PgConfig::from_url("mysql://x").is_err());
        assert!(check_schema_name("Audit").is_err());
        assert!(check_schema_name("audit; drop").is_err());
    }
}
