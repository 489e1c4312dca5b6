use audit_runtime::StoreError;
use audit_runtime::query::{Cursor, Order, Paged, Query, RecordSource, Records, StoredSeal};
use audit_runtime::store::Seal;
use postgres::types::ToSql;

use crate::PgStore;
use crate::config::describe;
use crate::decode::hash_from;
use crate::months::{from_datetime, to_datetime};
use crate::text::{decode_owned, encode_text};

/// Records per page when streaming query results.
const PAGE: usize = 1000;

/// Arguments of a dynamically built query.
struct Args(Vec<Box<dyn ToSql + Sync>>);

impl Args {
    fn push(&mut self, v: impl ToSql + Sync + 'static) -> String {
        self.0.push(Box::new(v));
        format!("${}", self.0.len())
    }
}

/// `value` as its text column holds it.
fn column(value: &str) -> String {
    encode_text(value).into_owned()
}

/// ` AND audit_key(col) = audit_key($n) AND col = $n`: the key finds the index entries
/// (every index holds values through `audit_key`, see the schema), the value decides.
fn equals(schema: &str, col: &str, value: &str, args: &mut Args) -> String {
    let p = args.push(column(value));
    format!(" AND \"{schema}\".audit_key({col}) = \"{schema}\".audit_key({p}) AND {col} = {p}")
}

fn where_clause(schema: &str, q: &Query, args: &mut Args) -> String {
    let mut sql = String::from(" WHERE true");
    if let Some(t) = &q.tenant {
        sql.push_str(&equals(schema, "chain", t, args));
    }
    if let Some(f) = q.from {
        sql.push_str(&format!(" AND ts >= {}", args.push(to_datetime(f))));
    }
    if let Some(t) = q.to {
        sql.push_str(&format!(" AND ts < {}", args.push(to_datetime(t))));
    }
    match (q.action_prefix(), &q.action) {
        // The encoding keeps prefixes: `a` starts with `p` exactly when encoded `a` starts
        // with encoded `p`.
        (Some(prefix), _) => sql.push_str(&format!(" AND starts_with(action, {})", args.push(column(prefix)))),
        (None, Some(a)) => sql.push_str(&format!(" AND action = {}", args.push(column(a)))),
        (None, None) => {}
    }
    if let Some(a) = &q.actor {
        sql.push_str(&equals(schema, "actor_id", a, args));
    }
    if let Some(t) = &q.resource_type {
        sql.push_str(&equals(schema, "resource_type", t, args));
    }
    if let Some(i) = &q.resource_id {
        sql.push_str(&equals(schema, "resource_id", i, args));
    }
    if let Some(o) = q.outcome {
        sql.push_str(&format!(" AND outcome = {}", args.push(o.as_str())));
    }
    sql
}

fn cursor_clause(q: &Query, c: &Cursor, args: &mut Args) -> String {
    let op = match q.order {
        Order::OldestFirst => ">",
        Order::NewestFirst => "<",
    };
    let ts = args.push(to_datetime(c.timestamp));
    match q.tenant.as_deref() {
        Some(t) if t == c.chain => {
            format!(" AND (ts, seq) {op} ({ts}, {})", args.push(c.seq as i64))
        }
        Some(t) => {
            // Compared as stored, the order the database sorts by.
            let later = (column(t) > column(&c.chain)) == (q.order == Order::OldestFirst);
            format!(" AND ts {op}{} {ts}", if later { "=" } else { "" })
        }
        None => {
            let chain = args.push(column(&c.chain));
            format!(
                " AND (ts, chain, seq) {op} ({ts}, {chain}, {})",
                args.push(c.seq as i64)
            )
        }
    }
}

fn order_clause(q: &Query) -> &'static str {
    match (q.tenant.is_some(), q.order) {
        (true, Order::OldestFirst) => " ORDER BY ts, seq",
        (true, Order::NewestFirst) => " ORDER BY ts DESC, seq DESC",
        (false, Order::OldestFirst) => " ORDER BY ts, chain, seq",
        (false, Order::NewestFirst) => " ORDER BY ts DESC, chain DESC, seq DESC",
    }
}

/// The SQL and arguments of one page of `q` after `after`: what [`RecordSource::query`]
/// runs (public so that the plan can be inspected with `EXPLAIN`).
pub fn page_sql(schema: &str, q: &Query, after: Option<&Cursor>, n: usize) -> (String, Vec<Box<dyn ToSql + Sync>>) {
    let mut args = Args(Vec::new());
    let mut sql = where_clause(schema, q, &mut args);
    if let Some(c) = after {
        sql.push_str(&cursor_clause(q, c, &mut args));
    }
    let limit = args.push(n as i64);
    let sql = format!(
        "SELECT chain, seq, ts, prev_hash, hash, line FROM \"{schema}\".audit_records{sql}{} LIMIT {limit}",
        order_clause(q)
    );
    (sql, args.0)
}

impl RecordSource for PgStore {
    fn describe(&self) -> String {
        describe(&self.config)
    }

    fn chains(&mut self) -> Result<Vec<String>, StoreError> {
        self.reconnect_if_closed()?;
        let err = self.err();
        // Chains with records: the heads (a chain whose records were all purged has none).
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT h.chain FROM \"{s}\".audit_heads h
                     WHERE h.seq > 0 AND EXISTS (SELECT 1 FROM \"{s}\".audit_records r
                                                 WHERE \"{s}\".audit_key(r.chain) = \"{s}\".audit_key(h.chain) AND r.chain = h.chain)
                     ORDER BY h.chain",
                    s = self.config.schema
                ),
                &[],
            )
            .map_err(err)?;
        Ok(rows.iter().map(|r| decode_owned(r.get(0))).collect())
    }

    fn chain_records(&mut self, chain: &str, after_seq: u64) -> Result<Records<'_>, StoreError> {
        self.reconnect_if_closed()?;
        let chain = column(chain);
        let schema = self.config.schema.clone();
        let this = &mut *self;
        // Along a chain time never decreases, so (ts, seq) order is seq order and the primary
        // key serves it; a record whose time was edited shows up out of place for verify.
        let fetch = move |after: Option<&Cursor>, n: usize| {
            match after {
            None => this.fetch(
                &format!(
                    "SELECT chain, seq, ts, prev_hash, hash, line FROM \"{schema}\".audit_records
                     WHERE \"{schema}\".audit_key(chain) = \"{schema}\".audit_key($1) AND chain = $1 AND seq > $2
                     ORDER BY ts, seq LIMIT $3"
                ),
                &[&chain, &(after_seq as i64), &(n as i64)],
            ),
            Some(c) => this.fetch(
                &format!(
                    "SELECT chain, seq, ts, prev_hash, hash, line FROM \"{schema}\".audit_records
                     WHERE \"{schema}\".audit_key(chain) = \"{schema}\".audit_key($1) AND chain = $1 AND (ts, seq) > ($2, $3)
                     ORDER BY ts, seq LIMIT $4"
                ),
                &[&chain, &to_datetime(c.timestamp), &(c.seq as i64), &(n as i64)],
            ),
        }
        };
        Ok(Box::new(Paged::new(fetch, None, None, PAGE)))
    }

    fn query(&mut self, query: &Query) -> Result<Records<'_>, StoreError> {
        self.reconnect_if_closed()?;
        let q = query.clone();
        let schema = self.config.schema.clone();
        let this = &mut *self;
        let fetch = move |after: Option<&Cursor>, n: usize| {
            let (sql, args) = page_sql(&schema, &q, after, n);
            let refs: Vec<&(dyn ToSql + Sync)> = args.iter().map(|b| b.as_ref()).collect();
            this.fetch(&sql, &refs)
        };
        Ok(Box::new(Paged::new(fetch, query.after.clone(), query.limit, PAGE)))
    }

    fn seals(&mut self) -> Result<Vec<StoredSeal>, StoreError> {
        self.reconnect_if_closed()?;
        let err = self.err();
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT chain, seq, hash, sealed_at, purged FROM \"{}\".audit_seals ORDER BY sealed_at, chain, seq",
                    self.config.schema
                ),
                &[],
            )
            .map_err(err)?;
        rows.iter()
            .map(|r| {
                Ok(StoredSeal {
                    seal: Seal {
                        chain: decode_owned(r.get(0)),
                        seq: r.get::<_, i64>(1) as u64,
                        hash: hash_from(r.get(2))?,
                        sealed_at: from_datetime(r.get(3)),
                    },
                    purged: r.get(4),
                })
            })
            .collect()
    }
}
