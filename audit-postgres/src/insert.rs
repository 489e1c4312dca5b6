use std::collections::HashSet;

use audit_runtime::query::Indexed;
use audit_runtime::store::ChainHead;
use audit_runtime::{ChainHash, StoreError, Timestamp};
use chrono::{DateTime, Utc};

use crate::PgStore;
use crate::config::describe;
use crate::connection::{pg_message, refuses_content};
use crate::decode::head_from_row;
use crate::migrate::lock_key;
use crate::months::{from_datetime, month_index, month_start, to_datetime};
use crate::text::{encode_owned, encode_text};

impl PgStore {
    /// Appends `rows` of `chain` in one transaction under the chain's lock. `prepare` gets the
    /// stored head and returns the rows to insert (chaining them onto it). A refusal of the
    /// rows' content is [`StoreError::Rejected`], naming the chain and seqs.
    pub(crate) fn locked_append(
        &mut self,
        chain: &str,
        mut prepare: impl FnMut(Option<ChainHead>) -> Result<Rows, StoreError>,
    ) -> Result<(), StoreError> {
        self.reconnect_if_closed()?;
        let err = self.err();
        let key = lock_key(&self.config.schema, chain);
        let column = encode_text(chain);
        let name = describe(&self.config);
        let partition_fn = if self.owner {
            "audit_create_partition"
        } else {
            "audit_ensure_partition"
        };
        for attempt in 0..2 {
            let mut tx = self.client.transaction().map_err(&err)?;
            let head = tx
                .query_opt(&self.statements.lock_chain, &[&column, &key])
                .map_err(&err)?
                .map(|r| head_from_row(chain, &r))
                .transpose()?;
            let rows = prepare(head)?;
            let (Some(first), Some(last)) = (rows.seq.first().copied(), rows.seq.last().copied()) else {
                return Ok(());
            };
            let refused = |e: postgres::Error, what: &str| {
                if refuses_content(&e) {
                    StoreError::Rejected {
                        chain: chain.to_owned(),
                        reason: format!("{name}: {what} of seq {first} to {last}: {}", pg_message(&e)),
                    }
                } else {
                    err(e)
                }
            };
            for month in rows
                .ts
                .iter()
                .map(|t| month_index(from_datetime(*t)))
                .collect::<HashSet<_>>()
            {
                if !self.partitions.contains(&month) {
                    let first_day = month_start(month).date_naive();
                    tx.execute(
                        &format!("SELECT \"{}\".{partition_fn}($1)", self.config.schema),
                        &[&first_day],
                    )
                    .map_err(|e| refused(e, "the partition"))?;
                }
            }
            let result = if rows.seq.len() >= COPY_THRESHOLD {
                copy_rows(&mut tx, &self.config.schema, &column, &rows)
            } else {
                tx.execute(
                    &self.statements.insert,
                    &[
                        &column,
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
                // "no partition of relation found" (the message may be translated, so by its
                // code): retention dropped a month this process thought it had. Reload and
                // retry once.
                Err(e) if attempt == 0 && e.code() == Some(&postgres::error::SqlState::CHECK_VIOLATION) => {
                    drop(tx);
                    self.partitions.clear();
                    self.load_partitions()?;
                }
                Err(e) => return Err(refused(e, "audit_records")),
            }
        }
        unreachable!("the second attempt returns")
    }
}

/// From this many rows on, an append uses binary `COPY` (one more round trip than a
/// multi-row `INSERT`, but cheaper per row on the server).
const COPY_THRESHOLD: usize = 64;

/// The columns of `audit_records` a record is written to, in the order of
/// [`RECORD_COLUMN_TYPES`]: for bulk loaders that `COPY ... FROM STDIN BINARY` themselves
/// (text columns other than `line` in the encoding of [`encode_text`]).
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

/// Column arrays of one insert, text columns encoded ([`encode_text`]).
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
        chain: &str,
        ix: Indexed,
        seq: u64,
        ts: Timestamp,
        hash: ChainHash,
        prev: ChainHash,
        line: &[u8],
    ) -> Result<(), StoreError> {
        let line = std::str::from_utf8(line).map_err(|e| StoreError::Rejected {
            chain: chain.to_owned(),
            reason: format!("seq {seq}: the line is not UTF-8: {e}"),
        })?;
        self.seq.push(seq as i64);
        self.ts.push(to_datetime(ts));
        self.tenant.push(ix.tenant.map(encode_owned));
        self.action.push(encode_owned(ix.action));
        self.category.push(ix.category.as_str());
        self.actor_id.push(encode_owned(ix.actor_id));
        self.resource_type.push(ix.resource_type.map(encode_owned));
        self.resource_id.push(ix.resource_id.map(encode_owned));
        self.outcome.push(ix.outcome.as_str());
        self.id.push(ix.id);
        self.line.push(line.to_owned());
        self.hash.push(hash.0.to_vec());
        self.prev_hash.push(prev.0.to_vec());
        Ok(())
    }
}
