use std::collections::HashSet;
use std::path::PathBuf;
use std::str::FromStr;

use audit_runtime::StoreError;
use audit_runtime::query::StoredRecord;
use postgres::types::ToSql;
use postgres::{Client, NoTls, Statement};

use crate::config::{PgConfig, check_schema_name, describe};
use crate::decode::record_from_row;
use crate::migrate::migrate;
use crate::months::partition_month;
use crate::schema::SCHEMA_VERSION;

/// A readable message for a PostgreSQL error (the crate's `Display` omits the server's).
pub(crate) fn pg_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut m = format!("{}: {} (SQLSTATE {})", db.severity(), db.message(), db.code().code());
            if let Some(d) = db.detail() {
                m.push_str(&format!("; {d}"));
            }
            if let Some(h) = db.hint() {
                m.push_str(&format!("; hint: {h}"));
            }
            m
        }
        None => {
            let mut m = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                m.push_str(&format!(": {s}"));
                source = s.source();
            }
            m
        }
    }
}

/// Whether the database refuses a value it was given (a record's content, not a passing
/// fault): SQLSTATE classes 22 (data exception: bad encoding, a value too long, a line that
/// is not the record its columns say) and 54 (program limit exceeded: an index entry or a
/// JSON nesting too large). Retrying cannot help such a record.
pub(crate) fn refuses_content(e: &postgres::Error) -> bool {
    e.code().is_some_and(|c| {
        let code = c.code();
        code.starts_with("22") || code.starts_with("54")
    })
}

pub(crate) struct Statements {
    pub(crate) lock_chain: Statement,
    pub(crate) insert: Statement,
    pub(crate) head: Statement,
    pub(crate) insert_seal: Statement,
}

/// A PostgreSQL audit store: a [`Store`] for the writer thread, and a [`RecordSource`],
/// [`RecordSink`] and [`RetentionTarget`] for readers, copies and retention. Each value is
/// one connection; open one per use. A lost connection is re-opened on the next call.
///
/// [`Store`]: audit_runtime::store::Store
/// [`RecordSource`]: audit_runtime::query::RecordSource
/// [`RecordSink`]: audit_runtime::copy::RecordSink
/// [`RetentionTarget`]: audit_runtime::retention::RetentionTarget
pub struct PgStore {
    pub(crate) config: PgConfig,
    pub(crate) client: OwnThreadClient,
    pub(crate) statements: Statements,
    pub(crate) partitions: HashSet<i32>,
    /// Whether this connection acts as the schema owner, who creates partitions for any
    /// month (the application may only through `audit_ensure_partition`, for months near now).
    pub(crate) owner: bool,
}

/// The synchronous client, closed on a thread of its own when dropped: closing runs the
/// client's own runtime, which tokio refuses to start on a thread that drives async tasks (see
/// [`PgStore::with_config`]).
pub(crate) struct OwnThreadClient(Option<Client>);

impl std::ops::Deref for OwnThreadClient {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.0.as_ref().expect("the client is taken only on drop")
    }
}

impl std::ops::DerefMut for OwnThreadClient {
    fn deref_mut(&mut self) -> &mut Client {
        self.0.as_mut().expect("the client is taken only on drop")
    }
}

impl Drop for OwnThreadClient {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            std::thread::scope(|s| {
                s.spawn(move || drop(client));
            });
        }
    }
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("schema", &self.config.schema)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to `url` and uses (creating or upgrading if needed) `schema`.
    pub fn connect(url: &str, schema: &str) -> Result<Self, StoreError> {
        Self::with_config(PgConfig::new(url, schema))
    }

    /// Connects to a store URL, `postgres://user@host/db?schema=audit`.
    pub fn connect_url(url: &str) -> Result<Self, StoreError> {
        Self::with_config(PgConfig::from_url(url)?)
    }

    /// Connects to the existing store at a store URL without running migrations, for reading
    /// or retention: a schema that holds no audit store is an error that says so (reading
    /// never creates an empty store).
    pub fn open_existing(url: &str) -> Result<Self, StoreError> {
        let config = PgConfig {
            migrate: false,
            ..PgConfig::from_url(url)?
        };
        let name = describe(&config);
        Self::with_config(config).map_err(|e| {
            let text = e.to_string();
            if text.contains("audit_schema_version") && text.contains("does not exist") {
                let detail = text.strip_prefix(&format!("{name}: ")).unwrap_or(&text);
                StoreError::Config(format!(
                    "{name}: no audit store in this schema (check `?schema=`): {detail}"
                ))
            } else {
                e
            }
        })
    }

    /// Connects with `config`. Works from any thread, async code included.
    pub fn with_config(config: PgConfig) -> Result<Self, StoreError> {
        // The synchronous client drives its connection on a runtime of its own, which tokio
        // refuses to start on a thread that runs async tasks: an async `main` opening its
        // store would panic. Connecting on a thread of its own works from anywhere; after
        // that the store lives on the writer thread (or the blocking pool, for reads).
        std::thread::scope(|s| {
            s.spawn(move || Self::connect_on_this_thread(config))
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    fn connect_on_this_thread(config: PgConfig) -> Result<Self, StoreError> {
        check_schema_name(&config.schema)?;
        let name = describe(&config);
        let err = |e: postgres::Error| StoreError::Io {
            path: PathBuf::from(&name),
            source: std::io::Error::other(pg_message(&e)),
        };
        let pg_config =
            postgres::Config::from_str(&config.url).map_err(|e| StoreError::Config(format!("{name}: {e}")))?;
        let mut client = pg_config.connect(NoTls).map_err(err)?;
        let encoding: String = client.query_one("SHOW server_encoding", &[]).map_err(err)?.get(0);
        if encoding != "UTF8" && encoding != "SQL_ASCII" {
            // Another encoding would transcode the stored lines: their bytes must not change.
            return Err(StoreError::Config(format!(
                "{name}: the database encoding is {encoding}; audit stores need UTF8"
            )));
        }
        client.batch_execute("SET TIME ZONE 'UTC'").map_err(err)?;
        let version = if config.migrate {
            migrate(&mut client, &config.schema).map_err(err)?
        } else {
            client
                .query_one(
                    &format!("SELECT max(version) FROM \"{}\".audit_schema_version", config.schema),
                    &[],
                )
                .map_err(err)?
                .get::<_, Option<i32>>(0)
                .unwrap_or(0)
        };
        if version != SCHEMA_VERSION {
            return Err(StoreError::Config(format!(
                "{name}: schema version {version}, this program needs {SCHEMA_VERSION}: run the migrations as the schema owner"
            )));
        }
        let s = &config.schema;
        let statements = Statements {
            lock_chain: client.prepare(&format!("SELECT seq, hash, ts FROM \"{s}\".audit_lock_chain($1, $2)")).map_err(err)?,
            insert: client
                .prepare(&format!(
                    "INSERT INTO \"{s}\".audit_records (chain, seq, ts, tenant, action, category, actor_id, resource_type,
                                                       resource_id, outcome, id, line, hash, prev_hash)
                     SELECT $1, * FROM unnest($2::bigint[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::text[],
                                              $8::text[], $9::text[], $10::text[], $11::uuid[], $12::text[], $13::bytea[], $14::bytea[])"
                ))
                .map_err(err)?,
            head: client
                .prepare(&format!(
                    "SELECT seq, hash, nullif(ts, '-infinity') FROM \"{s}\".audit_heads
                     WHERE \"{s}\".audit_key(chain) = \"{s}\".audit_key($1) AND chain = $1 AND seq > 0"
                ))
                .map_err(err)?,
            insert_seal: client
                .prepare(&format!(
                    "INSERT INTO \"{s}\".audit_seals (chain, seq, hash, sealed_at, purged) VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT DO NOTHING"
                ))
                .map_err(err)?,
        };
        let owner: bool = client
            .query_one(
                "SELECT coalesce((SELECT pg_has_role(c.relowner, 'USAGE') FROM pg_class c
                                  WHERE c.oid = to_regclass(format('%I.audit_records', $1::text))), false)",
                &[&config.schema],
            )
            .map_err(err)?
            .get(0);
        let mut store = PgStore {
            config,
            client: OwnThreadClient(Some(client)),
            statements,
            partitions: HashSet::new(),
            owner,
        };
        store.load_partitions()?;
        Ok(store)
    }

    /// The configuration.
    pub fn config(&self) -> &PgConfig {
        &self.config
    }

    /// The schema.
    pub fn schema(&self) -> &str {
        &self.config.schema
    }

    /// The connection, for inspection and administration.
    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    pub(crate) fn err(&self) -> impl Fn(postgres::Error) -> StoreError + use<> {
        let name = describe(&self.config);
        move |e| StoreError::Io {
            path: PathBuf::from(&name),
            source: std::io::Error::other(pg_message(&e)),
        }
    }

    pub(crate) fn reconnect_if_closed(&mut self) -> Result<(), StoreError> {
        if self.client.is_closed() {
            *self = PgStore::with_config(PgConfig {
                migrate: false,
                ..self.config.clone()
            })?;
        }
        Ok(())
    }

    pub(crate) fn load_partitions(&mut self) -> Result<(), StoreError> {
        let names = self.partition_names()?;
        self.partitions = names.iter().filter_map(|n| partition_month(n)).collect();
        Ok(())
    }

    /// The partitions of `audit_records`, oldest first.
    pub fn partition_names(&mut self) -> Result<Vec<String>, StoreError> {
        let err = self.err();
        let rows = self
            .client
            .query(
                "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                 WHERE i.inhparent = to_regclass(format('%I.audit_records', $1::text)) ORDER BY c.relname",
                &[&self.config.schema],
            )
            .map_err(err)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    pub(crate) fn fetch(&mut self, sql: &str, args: &[&(dyn ToSql + Sync)]) -> Result<Vec<StoredRecord>, StoreError> {
        let err = self.err();
        let rows = self.client.query(sql, args).map_err(&err)?;
        rows.iter().map(record_from_row).collect()
    }
}
