use postgres::Client;
use sha2::{Digest, Sha256};

use crate::schema;

/// Applies every migration not yet applied to `schema`, in order, under an advisory lock so
/// that concurrent starts do not race; after applying any, grants the roles named after the
/// schema what they need (`audit_grant_access()`, see [`role_setup_sql`](crate::role_setup_sql)).
/// Returns the schema version.
///
/// The schema is created only when it does not exist: `CREATE SCHEMA IF NOT EXISTS` needs
/// the right to create schemas in the database even when the schema is there, which the
/// owner of a schema a DBA created does not have.
pub fn migrate(client: &mut Client, schema: &str) -> Result<i32, postgres::Error> {
    let current = |c: &mut Client| -> Result<Option<i32>, postgres::Error> {
        let exists: bool = c
            .query_one(
                "SELECT to_regclass(format('%I.audit_schema_version', $1::text)) IS NOT NULL",
                &[&schema],
            )?
            .get(0);
        if !exists {
            return Ok(None);
        }
        Ok(c.query_one(
            &format!("SELECT max(version) FROM \"{schema}\".audit_schema_version"),
            &[],
        )?
        .get(0))
    };
    let latest = schema::MIGRATIONS.last().map_or(0, |m| m.version);
    if current(client)?.is_some_and(|v| v >= latest) {
        return Ok(current(client)?.unwrap_or(0));
    }
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&lock_key(schema, "\0migrations")])?;
    let schema_exists: bool = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
            &[&schema],
        )?
        .get(0);
    if !schema_exists {
        tx.batch_execute(&format!("CREATE SCHEMA \"{schema}\""))?;
    }
    tx.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS \"{schema}\".audit_schema_version (
             version int PRIMARY KEY, description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
    ))?;
    let mut applied = false;
    for m in schema::MIGRATIONS {
        let done: bool = tx
            .query_one(
                &format!("SELECT EXISTS (SELECT 1 FROM \"{schema}\".audit_schema_version WHERE version = $1)"),
                &[&m.version],
            )?
            .get(0);
        if !done {
            tx.batch_execute(&m.sql.replace("{s}", &format!("\"{schema}\"")))?;
            tx.execute(
                &format!("INSERT INTO \"{schema}\".audit_schema_version (version, description) VALUES ($1, $2)"),
                &[&m.version, &m.description],
            )?;
            applied = true;
        }
    }
    if applied {
        tx.execute(&format!("SELECT \"{schema}\".audit_grant_access()"), &[])?;
    }
    tx.commit()?;
    Ok(current(client)?.unwrap_or(0))
}

/// The advisory lock key of a chain: 64 bits of SHA-256 over schema and chain, so that
/// different chains (and stores) practically never share a lock.
pub fn lock_key(schema: &str, chain: &str) -> i64 {
    let digest = Sha256::new()
        .chain_update(schema.as_bytes())
        .chain_update([0])
        .chain_update(chain.as_bytes())
        .finalize();
    i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}
