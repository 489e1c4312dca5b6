use std::collections::HashSet;

use audit_runtime::query::Indexed;
use audit_runtime::store::ChainHead;
use audit_runtime::{ChainHash, StoreError, Timestamp};
use chrono::{DateTime, Utc};

use crate::PgStore;
use crate::decode::head_from_row;
use crate::migrate::lock_key;
use crate::months::{from_datetime, month_index, month_start, to_datetime};

impl PgStore {
    /// Appends `rows` of `chain` in one transaction under the chain's lock. `prepare` gets the
    /// stored head and returns the rows to insert (chaining them onto it).
    pub(crate) fn locked_append(
        &mut self,
        chain: &str,
        mut prepare: impl FnMut(Option<ChainHead>) -> Result<Rows, StoreError>,
    ) -> Result<(), StoreError> {
        self.reconnect_if_closed()?;
        let err = self.err();
        let key = lock_key(&self.config.schema, chain);
        for attempt in 0..2 {
            let mut tx = self.client.transaction().map_err(&err)?;
            let head = tx
                .query_opt(&self.statements.lock_chain, &[&chain, &key])
                .map_err(&err)?
                .map(|r| head_from_row(chain, &r))
                .transpose()?;
            let rows = prepare(head)?;
            if rows.seq.is_empty() {
                return Ok(());
            }
            for month in rows
                .ts
                .iter()
                .map(|t| month_index(from_datetime(*t)))
                .collect::<HashSet<_>>()
            {
                if !self.partitions.contains(&month) {
                    let first = month_start(month).date_naive();
                    tx.execute(
                        &format!("SELECT \"{}\".audit_ensure_partition($1)", self.config.schema),
                        &[&first],
                    )
                    .map_err(&err)?;
                }
            }
            let result = if rows.seq.len() >= COPY_THRESHOLD {
                copy_rows(&mut tx, &self.config.schema, chain, &rows)
            } else {
                tx.execute(
                    &self.statements.insert,
                    &[
                        &chain,
                        &rows.seq,
                        &rows.ts,
                        &rows.tenant,
                        &rows.action,
                        &rows.category,
                        &rows.actor_id,
                        &rows.resource_type,
                        &rows.resource_id,
                        &rows.outcome,
                        &rows.id,
                        &rows.line,
                        &rows.hash,
                        &rows.prev_hash,
                    ],
                )
                .map(drop)
            };
            match result {
                Ok(_) => {
                    tx.commit().map_err(&err)?;
                    for t in &rows.ts {
                        self.partitions.insert(month_index(from_datetime(*t)));
                    }
                    return Ok(());
                }
                // "no partition of relation found": retention dropped a month this process
                // thought it had. Reload and retry once.
                Err(e) if attempt == 0 && e.code() == Some(&postgres::error::SqlState::CHECK_VIOLATION) => {
                    drop(tx);
                    self.partitions.clear();
                    self.load_partitions()?;
                }
                Err(e) => return Err(err(e)),
            }
        }
        unreachable!("the second attempt returns")
    }
}

/// From this many rows on, an append uses binary `COPY` (one more round trip than a
/// multi-row `INSERT`, but cheaper per row on the server).
const COPY_THRESHOLD: usize = 64;

/// The columns of `audit_records` a record is written to, in the order of
/// [`RECORD_COLUMN_TYPES`]: for bulk loaders that `COPY ... FROM STDIN BINARY` themselves.
pub const RECORD_COLUMNS: &str = "chain, seq, ts, tenant, action, category, actor_id, resource_type, resource_id, outcome, id, line, hash, prev_hash";

/// The PostgreSQL types of [`RECORD_COLUMNS`], for `BinaryCopyInWriter`.
pub const RECORD_COLUMN_TYPES: [postgres::types::Type; 14] = {
    use postgres::types::Type;
    [
        Type::TEXT,
        Type::INT8,
        Type::TIMESTAMPTZ,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::UUID,
        Type::TEXT,
        Type::BYTEA,
        Type::BYTEA,
    ]
};

/// Binary `COPY` of `rows` (the statement trigger checks the chain as for an insert).
fn copy_rows(
    tx: &mut postgres::Transaction<'_>,
    schema: &str,
    chain: &str,
    rows: &Rows,
) -> Result<(), postgres::Error> {
    let sink = tx.copy_in(&format!(
        "COPY \"{schema}\".audit_records ({RECORD_COLUMNS}) FROM STDIN BINARY"
    ))?;
    let mut w = postgres::binary_copy::BinaryCopyInWriter::new(sink, &RECORD_COLUMN_TYPES);
    for k in 0..rows.seq.len() {
        w.write(&[
            &chain,
            &rows.seq[k],
            &rows.ts[k],
            &rows.tenant[k],
            &rows.action[k],
            &rows.category[k],
            &rows.actor_id[k],
            &rows.resource_type[k],
            &rows.resource_id[k],
            &rows.outcome[k],
            &rows.id[k],
            &rows.line[k],
            &rows.hash[k],
            &rows.prev_hash[k],
        ])?;
    }
    w.finish().map(drop)
}

/// Column arrays of one insert.
#[derive(Default)]
pub(crate) struct Rows {
    seq: Vec<i64>,
    ts: Vec<DateTime<Utc>>,
    tenant: Vec<Option<String>>,
    action: Vec<String>,
    category: Vec<&'static str>,
    actor_id: Vec<String>,
    resource_type: Vec<Option<String>>,
    resource_id: Vec<Option<String>>,
    outcome: Vec<&'static str>,
    id: Vec<uuid::Uuid>,
    line: Vec<String>,
    hash: Vec<Vec<u8>>,
    prev_hash: Vec<Vec<u8>>,
}

impl Rows {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Rows {
            seq: Vec::with_capacity(n),
            ts: Vec::with_capacity(n),
            tenant: Vec::with_capacity(n),
            action: Vec::with_capacity(n),
            category: Vec::with_capacity(n),
            actor_id: Vec::with_capacity(n),
            resource_type: Vec::with_capacity(n),
            resource_id: Vec::with_capacity(n),
            outcome: Vec::with_capacity(n),
            id: Vec::with_capacity(n),
            line: Vec::with_capacity(n),
            hash: Vec::with_capacity(n),
            prev_hash: Vec::with_capacity(n),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn push(
        &mut self,
        ix: Indexed,
        seq: u64,
        ts: Timestamp,
        hash: ChainHash,
        prev: ChainHash,
        line: &[u8],
    ) -> Result<(), StoreError> {
        let line =
            std::str::from_utf8(line).map_err(|e| StoreError::Config(format!("a record line is not UTF-8: {e}")))?;
        self.seq.push(seq as i64);
        self.ts.push(to_datetime(ts));
        self.tenant.push(ix.tenant);
        self.action.push(ix.action);
        self.category.push(ix.category.as_str());
        self.actor_id.push(ix.actor_id);
        self.resource_type.push(ix.resource_type);
        self.resource_id.push(ix.resource_id);
        self.outcome.push(ix.outcome.as_str());
        self.id.push(ix.id);
        self.line.push(line.to_owned());
        self.hash.push(hash.0.to_vec());
        self.prev_hash.push(prev.0.to_vec());
        Ok(())
    }
}
