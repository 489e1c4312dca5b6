//! The statements that capture before/after state, built from a diesel target (table + `WHERE`
//! clause) and changeset, walked as diesel query fragments so binds and prepared-statement
//! caching work as for diesel's own statements.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use audit_runtime::REDACTED;
use diesel::backend::Backend;
use diesel::dsl::AsSelect as SelectBy;
use diesel::expression::SelectableHelper;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Binary, Text};
use diesel::{QueryResult, RunQueryDsl, Selectable, Table};

use crate::plan::{SnapshotPlan, Source};

/// Which SQL the capture statements are written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL: data-modifying CTEs, `FOR UPDATE`, `RETURNING`.
    Postgres,
    /// SQLite: `RETURNING` (3.35+), no data-modifying CTEs; isolation from `BEGIN IMMEDIATE`.
    Sqlite,
}

/// A backend the capture statements can be written for.
pub trait AuditBackend: Backend {
    /// The dialect.
    const DIALECT: Dialect;
}

#[cfg(any(feature = "postgres", feature = "async"))]
impl AuditBackend for diesel::pg::Pg {
    const DIALECT: Dialect = Dialect::Postgres;
}

#[cfg(feature = "sqlite")]
impl AuditBackend for diesel::sqlite::Sqlite {
    const DIALECT: Dialect = Dialect::Sqlite;
}

/// The alias of the CTE holding the locked before-images on PostgreSQL.
const OLD: &str = "__audit_old";
/// The alias of the CTE of the update that also writes the outbox.
const NEW: &str = "__audit_new";
/// The event column of that update.
const EVENT: &str = "__audit_event";
/// The probe's synthetic values and row.
const VALUES: &str = "__audit_values";
const PROBED: &str = "__audit_probe";

fn missing_parts() -> diesel::result::Error {
    diesel::result::Error::QueryBuilderError("audit capture statement built without its parts".into())
}

/// The event of one updated row as the outbox stores it, built along the plan from the old
/// row (`__audit_old`) and the new one (the table): the prefix the caller serialized, then
/// `"resource":{...},"changes":{"before":{...},"after":{...},"fields":[...]}}`. Only the
/// columns of the plan are read; redacted members are the keyed fingerprint of their column
/// (see [`walk_fingerprint`]), or the constant.
fn walk_event<'b, DB, F>(from: &'b F, parts: &'b OutboxParts, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()>
where
    DB: Backend,
    F: QueryFragment<DB>,
    str: diesel::serialize::ToSql<Text, DB>,
    [u8]: diesel::serialize::ToSql<Binary, DB>,
{
    let plan = parts.plan;
    out.push_sql("concat(");
    out.push_bind_param::<Text, str>(&parts.prefix)?;
    out.push_sql("::text, '\"resource\":', json_build_object('type', ");
    out.push_bind_param::<Text, str>(parts.resource_type)?;
    out.push_sql("::text, 'id', (");
    from.walk_ast(out.reborrow())?;
    out.push_sql(".");
    out.push_identifier(&plan.id_column)?;
    out.push_sql(")::text)::text, ',\"changes\":', json_build_object(");
    for (side, old) in [("'before'", true), ("'after'", false)] {
        out.push_sql(side);
        out.push_sql(", json_build_object(");
        for (i, (key, source)) in plan.entries.iter().enumerate() {
            if i > 0 {
                out.push_sql(", ");
            }
            out.push_bind_param::<Text, str>(key)?;
            out.push_sql("::text, ");
            match source {
                Source::Redacted => {
                    out.push_bind_param::<Text, str>(REDACTED)?;
                    out.push_sql("::text");
                }
                Source::Column(column) => {
                    if old {
                        out.push_identifier(OLD)?;
                    } else {
                        from.walk_ast(out.reborrow())?;
                    }
                    out.push_sql(".");
                    out.push_identifier(column)?;
                }
                Source::Fingerprint(column) => {
                    let Some(pads) = parts.pads.as_deref() else {
                        return Err(missing_parts());
                    };
                    walk_fingerprint(from, old, column, pads, out.reborrow())?;
                }
            }
        }
        out.push_sql("), ");
    }
    // The members whose JSON differs, in snapshot order, without the ignored ones: what
    // `changed_fields` computes from the two snapshots.
    out.push_sql("'fields', array_remove(ARRAY[");
    let mut first = true;
    for (key, source) in &plan.entries {
        // A fingerprint changes exactly when the JSON of its column does.
        let (Source::Column(column) | Source::Fingerprint(column)) = source else {
            continue;
        };
        if parts.ignore.contains(&key.as_str()) {
            continue;
        }
        if !first {
            out.push_sql(", ");
        }
        first = false;
        out.push_sql("CASE WHEN to_jsonb(");
        out.push_identifier(OLD)?;
        out.push_sql(".");
        out.push_identifier(column)?;
        out.push_sql(") IS DISTINCT FROM to_jsonb(");
        from.walk_ast(out.reborrow())?;
        out.push_sql(".");
        out.push_identifier(column)?;
        out.push_sql(") THEN ");
        out.push_bind_param::<Text, str>(key)?;
        out.push_sql("::text END");
    }
    out.push_sql("]::text[], NULL))::text, '}')");
    Ok(())
}

/// The keyed fingerprint of a column of the old row (`old`) or the new one, as
/// [`audit_runtime::fingerprint`] writes it for the same value:
/// `'[redacted:hmac-sha256:' || hex(first 16 bytes of HMAC-SHA256(key, json)) || ']'` where
/// `json` is the UTF-8 of the value's JSON text (`null` for NULL), and the HMAC is computed
/// with `sha256(bytea)` from the two padded keys (bound parameters, never the key itself in
/// the statement text): `sha256(K xor opad || sha256(K xor ipad || json))`. See
/// [`crate::plan`] for the column types whose JSON text is serde_json's.
fn walk_fingerprint<'b, DB, F>(
    from: &'b F,
    old: bool,
    column: &str,
    pads: &'b ([u8; 64], [u8; 64]),
    mut out: AstPass<'_, 'b, DB>,
) -> QueryResult<()>
where
    DB: Backend,
    F: QueryFragment<DB>,
    [u8]: diesel::serialize::ToSql<Binary, DB>,
{
    let (ipad, opad) = pads;
    out.push_sql("concat('[redacted:hmac-sha256:', encode(substring(sha256(");
    out.push_bind_param::<Binary, [u8]>(&opad[..])?;
    out.push_sql("::bytea || sha256(");
    out.push_bind_param::<Binary, [u8]>(&ipad[..])?;
    out.push_sql("::bytea || convert_to(coalesce(to_json(");
    if old {
        out.push_identifier(OLD)?;
    } else {
        from.walk_ast(out.reborrow())?;
    }
    out.push_sql(".");
    out.push_identifier(column)?;
    out.push_sql(")::text, 'null'), 'UTF8'))) FROM 1 FOR 16), 'hex'), ']')");
    Ok(())
}

/// Unqualified primary key column names of table `T`, rendered once per table type.
///
/// Diesel only exposes column names per column (`Column::NAME`), not for a table's primary key
/// (which may be a tuple), so the key expression is rendered once per backend and
/// the last identifier of each item is kept.
pub(crate) fn primary_key_names<T, DB>(table: &T) -> &'static [String]
where
    T: Table + 'static,
    T::PrimaryKey: QueryFragment<DB>,
    DB: Backend + Default + 'static,
    DB::QueryBuilder: Default,
{
    static CACHE: OnceLock<Mutex<HashMap<TypeId, &'static [String]>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut map = cache.lock().unwrap_or_else(|e| e.into_inner());
    map.entry(TypeId::of::<(T, DB)>()).or_insert_with(|| {
        let key = table.primary_key();
        let sql = diesel::debug_query::<DB, _>(&key).to_string();
        let sql = sql.split(" -- binds").next().unwrap_or_default();
        Vec::leak(parse_key_names(sql))
    })
}

/// `"s"."t"."a", "s"."t"."b"` (possibly in parentheses, or quoted with backticks) ->
/// `["a", "b"]`.
fn parse_key_names(sql: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut last = String::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '`' => {
                let quote = c;
                last.clear();
                while let Some(c) = chars.next() {
                    if c == quote {
                        if chars.peek() == Some(&quote) {
                            chars.next();
                            last.push(quote);
                        } else {
                            break;
                        }
                    } else {
                        last.push(c);
                    }
                }
            }
            ',' => names.push(std::mem::take(&mut last)),
            _ => {}
        }
    }
    if !last.is_empty() {
        names.push(last);
    }
    names
}

fn walk_pk_join<'b, DB: Backend, F: QueryFragment<DB>>(
    from: &'b F,
    keys: &'static [String],
    mut out: AstPass<'_, 'b, DB>,
) -> QueryResult<()> {
    for (i, key) in keys.iter().enumerate() {
        if i > 0 {
            out.push_sql(" AND ");
        }
        from.walk_ast(out.reborrow())?;
        out.push_sql(".");
        out.push_identifier(key)?;
        out.push_sql(" = ");
        out.push_identifier(OLD)?;
        out.push_sql(".");
        out.push_identifier(key)?;
    }
    Ok(())
}

/// The kind of statement, part of the prepared-statement cache key.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Kind {
    /// `SELECT <model> ... [LIMIT n FOR UPDATE]`: the before-images (on SQLite the caller reads
    /// at most `n` rows).
    Select,
    /// PostgreSQL: lock the before-images and update them in one statement, returning both.
    UpdateCte,
    /// SQLite: `UPDATE ... RETURNING <model>`.
    UpdateReturning,
    /// PostgreSQL: lock and delete in one statement, returning the deleted rows.
    DeleteCte,
    /// SQLite: `DELETE ... RETURNING <model>`.
    DeleteReturning,
    /// `SELECT count(*)` of at most `n` matching rows, to explain an empty result.
    Count,
    /// PostgreSQL with the outbox: [`Kind::UpdateCte`] that also inserts the event of each row
    /// into the outbox, built by the database along a [`SnapshotPlan`], and returns it.
    UpdateOutbox,
    /// PostgreSQL: the model loaded from a synthetic row of the table (see [`crate::plan`]).
    Probe,
}

/// What the outbox-writing update needs besides the target and changeset.
#[doc(hidden)]
pub struct OutboxParts {
    pub plan: &'static SnapshotPlan,
    /// Members that never count as changed.
    pub ignore: &'static [&'static str],
    pub event_id: String,
    /// The event's JSON up to the resource and changes: `{"id":...,...,` (see
    /// [`crate::outbox`]).
    pub prefix: String,
    pub resource_type: &'static str,
    /// The HMAC key of redaction fingerprints, padded (`K xor ipad`, `K xor opad`), when the
    /// plan has fingerprints to compute.
    pub pads: Option<Box<([u8; 64], [u8; 64])>>,
}

/// What the probe needs: the selected columns, the table as `to_regclass` takes it, and the
/// boolean column that is true (`""`: none).
pub(crate) struct ProbeParts {
    pub columns: Vec<String>,
    pub table: String,
    pub true_column: String,
}

/// The parts of the statement kinds that have more than a target and a changeset.
#[derive(Default)]
pub(crate) enum Extra {
    #[default]
    None,
    Outbox(Box<OutboxParts>),
    Probe(ProbeParts),
}

/// One capture statement over table `T` (rendered as `F`) with `WHERE` clause `W`, changeset
/// `V` (or `()`), selecting model `M`.
pub(crate) struct Capture<T, F, W, V, M: Selectable<DB>, DB: Backend, const K: u8> {
    /// The table (its type is part of the static query id; `from` is its rendering).
    pub table: std::marker::PhantomData<T>,
    pub from: F,
    pub where_clause: W,
    pub values: V,
    pub select: SelectBy<M, DB>,
    /// Most rows the statement may touch (`LIMIT`, and the check against it).
    pub cap: i64,
    /// `cap + 1`: the `LIMIT` of the locking read (PostgreSQL) or the most rows read of it
    /// (SQLite), so that exceeding the cap is seen.
    pub limit: i64,
    pub keys: &'static [String],
    pub extra: Extra,
}

/// Kind numbers for the const parameter (enums cannot be const generics on stable).
pub(crate) const SELECT: u8 = 0;
pub(crate) const UPDATE_CTE: u8 = 1;
pub(crate) const UPDATE_RETURNING: u8 = 2;
pub(crate) const DELETE_CTE: u8 = 3;
pub(crate) const DELETE_RETURNING: u8 = 4;
pub(crate) const COUNT: u8 = 5;
pub(crate) const UPDATE_OUTBOX: u8 = 6;
pub(crate) const PROBE: u8 = 7;

impl<T, F, W, V, M, DB, const K: u8> Capture<T, F, W, V, M, DB, K>
where
    M: Selectable<DB>,
    DB: Backend,
{
    pub fn new(from: F, where_clause: W, values: V, cap: usize, keys: &'static [String]) -> Self {
        let cap = i64::try_from(cap).unwrap_or(i64::MAX - 1);
        Capture {
            table: std::marker::PhantomData,
            from,
            where_clause,
            values,
            select: M::as_select(),
            cap,
            limit: cap + 1,
            keys,
            extra: Extra::None,
        }
    }

    /// With the parts of [`UPDATE_OUTBOX`] or [`PROBE`].
    pub fn with(mut self, extra: Extra) -> Self {
        self.extra = extra;
        self
    }

    fn kind() -> Kind {
        match K {
            SELECT => Kind::Select,
            UPDATE_CTE => Kind::UpdateCte,
            UPDATE_RETURNING => Kind::UpdateReturning,
            DELETE_CTE => Kind::DeleteCte,
            DELETE_RETURNING => Kind::DeleteReturning,
            UPDATE_OUTBOX => Kind::UpdateOutbox,
            PROBE => Kind::Probe,
            _ => Kind::Count,
        }
    }
}

/// The static query id of a [`Capture`].
///
/// The SQL text of a capture statement is a function of the types of its table, `WHERE`
/// clause, model and kind (the rendered primary key names depend only on the table type, and
/// the cap is a bound parameter, or on SQLite not in the text at all) -- except for its
/// changeset, and the snapshot plan and ignored fields of [`UPDATE_OUTBOX`]: diesel's update
/// assignments have no query id (which is why diesel's own update statements have none
/// either), so the kinds with a changeset are cached by SQL text like diesel's updates, and
/// the others (the before-image read, the deletes, the count) by type, which skips building
/// their SQL.
pub(crate) struct CaptureId<T, W, S, const K: u8>(std::marker::PhantomData<(T, W, S)>);

impl<T, F, W, V, M, DB, const K: u8> QueryId for Capture<T, F, W, V, M, DB, K>
where
    T: QueryId,
    W: QueryId,
    M: Selectable<DB>,
    SelectBy<M, DB>: QueryId,
    DB: Backend,
{
    type QueryId = CaptureId<T::QueryId, W::QueryId, <SelectBy<M, DB> as QueryId>::QueryId, K>;
    const HAS_STATIC_QUERY_ID: bool = !matches!(K, UPDATE_CTE | UPDATE_RETURNING | UPDATE_OUTBOX | PROBE)
        && T::HAS_STATIC_QUERY_ID
        && W::HAS_STATIC_QUERY_ID
        && <SelectBy<M, DB> as QueryId>::HAS_STATIC_QUERY_ID;
}

impl<T, F, W, V, M, DB, const K: u8> QueryFragment<DB> for Capture<T, F, W, V, M, DB, K>
where
    DB: AuditBackend,
    F: QueryFragment<DB>,
    W: QueryFragment<DB>,
    V: QueryFragment<DB>,
    M: Selectable<DB>,
    SelectBy<M, DB>: QueryFragment<DB>,
    i64: diesel::serialize::ToSql<BigInt, DB>,
    str: diesel::serialize::ToSql<Text, DB>,
    [u8]: diesel::serialize::ToSql<Binary, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        let pg = DB::DIALECT == Dialect::Postgres;
        let locked_read = |out: &mut AstPass<'_, 'b, DB>| -> QueryResult<()> {
            out.push_sql("SELECT ");
            self.select.walk_ast(out.reborrow())?;
            out.push_sql(" FROM ");
            self.from.walk_ast(out.reborrow())?;
            self.where_clause.walk_ast(out.reborrow())?;
            // SQLite re-prepares a statement whose `LIMIT` is a bound parameter on every run
            // (which doubled the cost of the read), and a literal would make the text depend
            // on the cap, which the static query id must not: there the caller stops reading
            // after `cap + 1` rows instead, which is the same inside `BEGIN IMMEDIATE`.
            if pg {
                out.push_sql(" LIMIT ");
                out.push_bind_param::<BigInt, _>(&self.limit)?;
                out.push_sql(" FOR UPDATE");
            }
            Ok(())
        };
        let cte = |out: &mut AstPass<'_, 'b, DB>| -> QueryResult<()> {
            out.push_sql("WITH ");
            out.push_identifier(OLD)?;
            out.push_sql(" AS (");
            locked_read(out)?;
            out.push_sql(") ");
            Ok(())
        };
        // Under the cap, the join on the primary key; past it nothing is changed (and the
        // caller reports the error), so a statement that is its own transaction stays atomic.
        let guarded_join = |out: &mut AstPass<'_, 'b, DB>| -> QueryResult<()> {
            out.push_sql(" WHERE ");
            walk_pk_join(&self.from, self.keys, out.reborrow())?;
            out.push_sql(" AND (SELECT count(*) FROM ");
            out.push_identifier(OLD)?;
            out.push_sql(") <= ");
            out.push_bind_param::<BigInt, _>(&self.cap)?;
            Ok(())
        };
        match Self::kind() {
            Kind::Select => locked_read(&mut out)?,
            Kind::Count => {
                out.push_sql("SELECT count(*) FROM (SELECT 1 FROM ");
                self.from.walk_ast(out.reborrow())?;
                self.where_clause.walk_ast(out.reborrow())?;
                out.push_sql(" LIMIT ");
                out.push_bind_param::<BigInt, _>(&self.limit)?;
                out.push_sql(") AS ");
                out.push_identifier("__audit_n")?;
            }
            Kind::UpdateCte => {
                cte(&mut out)?;
                out.push_sql("UPDATE ");
                self.from.walk_ast(out.reborrow())?;
                out.push_sql(" SET ");
                self.values.walk_ast(out.reborrow())?;
                out.push_sql(" FROM ");
                out.push_identifier(OLD)?;
                guarded_join(&mut out)?;
                out.push_sql(" RETURNING ");
                out.push_identifier(OLD)?;
                out.push_sql(".*, ");
                self.select.walk_ast(out.reborrow())?;
            }
            Kind::DeleteCte => {
                cte(&mut out)?;
                out.push_sql("DELETE FROM ");
                self.from.walk_ast(out.reborrow())?;
                out.push_sql(" USING ");
                out.push_identifier(OLD)?;
                guarded_join(&mut out)?;
                out.push_sql(" RETURNING ");
                self.select.walk_ast(out.reborrow())?;
            }
            Kind::UpdateReturning => {
                out.push_sql("UPDATE ");
                self.from.walk_ast(out.reborrow())?;
                out.push_sql(" SET ");
                self.values.walk_ast(out.reborrow())?;
                self.where_clause.walk_ast(out.reborrow())?;
                out.push_sql(" RETURNING ");
                self.select.walk_ast(out.reborrow())?;
            }
            Kind::UpdateOutbox => {
                let Extra::Outbox(parts) = &self.extra else {
                    return Err(missing_parts());
                };
                cte(&mut out)?;
                out.push_sql(", ");
                out.push_identifier(NEW)?;
                out.push_sql(" AS (UPDATE ");
                self.from.walk_ast(out.reborrow())?;
                out.push_sql(" SET ");
                self.values.walk_ast(out.reborrow())?;
                out.push_sql(" FROM ");
                out.push_identifier(OLD)?;
                guarded_join(&mut out)?;
                out.push_sql(" RETURNING ");
                out.push_identifier(OLD)?;
                out.push_sql(".*, ");
                self.select.walk_ast(out.reborrow())?;
                out.push_sql(", ");
                walk_event(&self.from, parts, out.reborrow())?;
                out.push_sql(" AS ");
                out.push_identifier(EVENT)?;
                out.push_sql("), ");
                out.push_identifier("__audit_outbox")?;
                out.push_sql(" AS (INSERT INTO ");
                out.push_identifier("audit_outbox")?;
                out.push_sql(" (");
                out.push_identifier("event_id")?;
                out.push_sql(", ");
                out.push_identifier("event")?;
                out.push_sql(") SELECT ");
                out.push_bind_param::<Text, str>(&parts.event_id)?;
                out.push_sql(", ");
                out.push_identifier(EVENT)?;
                out.push_sql(" FROM ");
                out.push_identifier(NEW)?;
                out.push_sql(") SELECT * FROM ");
                out.push_identifier(NEW)?;
            }
            Kind::Probe => {
                let Extra::Probe(parts) = &self.extra else {
                    return Err(missing_parts());
                };
                // One value per column that no other column has: integers 1000 + attnum,
                // texts 'p' || attnum, booleans false except the one named; NULL for the
                // types the probe does not cover (which makes the model ineligible).
                out.push_sql("WITH ");
                out.push_identifier(VALUES)?;
                out.push_sql(
                    " AS (SELECT jsonb_object_agg(a.attname::text, CASE format_type(a.atttypid, NULL) \
                     WHEN 'smallint' THEN to_jsonb(1000 + a.attnum) WHEN 'integer' THEN to_jsonb(1000 + a.attnum) \
                     WHEN 'bigint' THEN to_jsonb(1000 + a.attnum) WHEN 'text' THEN to_jsonb('p' || a.attnum) \
                     WHEN 'character varying' THEN to_jsonb('p' || a.attnum) \
                     WHEN 'boolean' THEN to_jsonb(a.attname::text = ",
                );
                out.push_bind_param::<Text, str>(&parts.true_column)?;
                out.push_sql(
                    ") END) AS v FROM pg_catalog.pg_attribute a \
                     WHERE a.attrelid = to_regclass(",
                );
                out.push_bind_param::<Text, str>(&parts.table)?;
                out.push_sql(") AND a.attnum > 0 AND NOT a.attisdropped) SELECT ");
                for column in &parts.columns {
                    out.push_identifier(PROBED)?;
                    out.push_sql(".");
                    out.push_identifier(column)?;
                    out.push_sql(", ");
                }
                out.push_identifier(VALUES)?;
                out.push_sql(".v::text FROM ");
                out.push_identifier(VALUES)?;
                out.push_sql(", jsonb_populate_record(NULL::");
                self.from.walk_ast(out.reborrow())?;
                out.push_sql(", ");
                out.push_identifier(VALUES)?;
                out.push_sql(".v) AS ");
                out.push_identifier(PROBED)?;
            }
            Kind::DeleteReturning => {
                out.push_sql("DELETE FROM ");
                self.from.walk_ast(out.reborrow())?;
                self.where_clause.walk_ast(out.reborrow())?;
                out.push_sql(" RETURNING ");
                self.select.walk_ast(out.reborrow())?;
            }
        }
        Ok(())
    }
}

/// The kinds that return one model row per affected row.
macro_rules! returns_model_rows {
    ($($kind:ident),*) => {$(
        impl<T, F, W, V, M, DB> Query for Capture<T, F, W, V, M, DB, $kind>
        where
            M: Selectable<DB>,
            DB: Backend,
            SelectBy<M, DB>: diesel::Expression,
        {
            type SqlType = <SelectBy<M, DB> as diesel::Expression>::SqlType;
        }
    )*};
}

returns_model_rows!(SELECT, UPDATE_RETURNING, DELETE_RETURNING, DELETE_CTE);

impl<T, F, W, V, M, DB> Query for Capture<T, F, W, V, M, DB, UPDATE_CTE>
where
    M: Selectable<DB>,
    DB: Backend,
    SelectBy<M, DB>: diesel::Expression,
{
    type SqlType = (
        <SelectBy<M, DB> as diesel::Expression>::SqlType,
        <SelectBy<M, DB> as diesel::Expression>::SqlType,
    );
}

impl<T, F, W, V, M, DB> Query for Capture<T, F, W, V, M, DB, UPDATE_OUTBOX>
where
    M: Selectable<DB>,
    DB: Backend,
    SelectBy<M, DB>: diesel::Expression,
{
    type SqlType = (
        <SelectBy<M, DB> as diesel::Expression>::SqlType,
        <SelectBy<M, DB> as diesel::Expression>::SqlType,
        Text,
    );
}

impl<T, F, W, V, M, DB> Query for Capture<T, F, W, V, M, DB, PROBE>
where
    M: Selectable<DB>,
    DB: Backend,
    SelectBy<M, DB>: diesel::Expression,
{
    type SqlType = (<SelectBy<M, DB> as diesel::Expression>::SqlType, Text);
}

impl<T, F, W, V, M, DB> Query for Capture<T, F, W, V, M, DB, COUNT>
where
    M: Selectable<DB>,
    DB: Backend,
{
    type SqlType = BigInt;
}

impl<T, F, W, V, M, DB, Conn, const K: u8> RunQueryDsl<Conn> for Capture<T, F, W, V, M, DB, K>
where
    M: Selectable<DB>,
    DB: Backend,
{
}

/// `INSERT INTO <table> <values> RETURNING <model>`: the after-image of an insert.
pub(crate) struct InsertReturning<F, U, M: Selectable<DB>, DB: Backend> {
    pub from: F,
    pub values: U,
    pub select: SelectBy<M, DB>,
}

impl<F, U, M: Selectable<DB>, DB: Backend> InsertReturning<F, U, M, DB> {
    pub fn new(from: F, values: U) -> Self {
        InsertReturning {
            from,
            values,
            select: M::as_select(),
        }
    }
}

impl<F, U, M, DB> QueryId for InsertReturning<F, U, M, DB>
where
    M: Selectable<DB>,
    DB: Backend,
{
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<F, U, M, DB> QueryFragment<DB> for InsertReturning<F, U, M, DB>
where
    DB: Backend,
    F: QueryFragment<DB>,
    U: QueryFragment<DB>,
    M: Selectable<DB>,
    SelectBy<M, DB>: QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("INSERT INTO ");
        self.from.walk_ast(out.reborrow())?;
        out.push_sql(" ");
        self.values.walk_ast(out.reborrow())?;
        out.push_sql(" RETURNING ");
        self.select.walk_ast(out.reborrow())
    }
}

impl<F, U, M, DB> Query for InsertReturning<F, U, M, DB>
where
    M: Selectable<DB>,
    DB: Backend,
    SelectBy<M, DB>: diesel::Expression,
{
    type SqlType = <SelectBy<M, DB> as diesel::Expression>::SqlType;
}

impl<F, U, M: Selectable<DB>, DB: Backend, Conn> RunQueryDsl<Conn> for InsertReturning<F, U, M, DB> {}

#[cfg(test)]
mod tests {
    use super::parse_key_names;

    #[test]
    fn key_names_are_the_last_identifier_of_each_item() {
        assert_eq!(parse_key_names(r#""customers"."id""#), ["id"]);
        assert_eq!(parse_key_names(r#"("s"."t"."a", "s"."t"."b""c")"#), ["a", "b\"c"]);
        assert_eq!(parse_key_names("`t`.`a`, `t`.`b`"), ["a", "b"]);
    }
}
