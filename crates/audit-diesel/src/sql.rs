//! The statements that capture before/after state, built from a diesel target (table + `WHERE`
//! clause) and changeset, walked as diesel query fragments so binds and prepared-statement
//! caching work as for diesel's own statements.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use diesel::backend::Backend;
use diesel::dsl::AsSelect as SelectBy;
use diesel::expression::SelectableHelper;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::BigInt;
use diesel::{QueryResult, RunQueryDsl, Selectable, Table};

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

#[cfg(feature = "postgres")]
impl AuditBackend for diesel::pg::Pg {
    const DIALECT: Dialect = Dialect::Postgres;
}

#[cfg(feature = "sqlite")]
impl AuditBackend for diesel::sqlite::Sqlite {
    const DIALECT: Dialect = Dialect::Sqlite;
}

/// The alias of the CTE holding the locked before-images on PostgreSQL.
const OLD: &str = "__audit_old";

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
    /// `SELECT <model> ... LIMIT n [FOR UPDATE]`: the before-images.
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
}

/// One capture statement over table `T` with `WHERE` clause `W`, changeset `V` (or `()`),
/// selecting model `M`.
pub(crate) struct Capture<F, W, V, M: Selectable<DB>, DB: Backend, const K: u8> {
    pub from: F,
    pub where_clause: W,
    pub values: V,
    pub select: SelectBy<M, DB>,
    /// Most rows the statement may touch (`LIMIT`, and the check against it).
    pub cap: i64,
    /// `cap + 1`: the `LIMIT` of the locking read, so that exceeding the cap is seen.
    pub limit: i64,
    pub keys: &'static [String],
}

/// Kind numbers for the const parameter (enums cannot be const generics on stable).
pub(crate) const SELECT: u8 = 0;
pub(crate) const UPDATE_CTE: u8 = 1;
pub(crate) const UPDATE_RETURNING: u8 = 2;
pub(crate) const DELETE_CTE: u8 = 3;
pub(crate) const DELETE_RETURNING: u8 = 4;
pub(crate) const COUNT: u8 = 5;

impl<F, W, V, M, DB, const K: u8> Capture<F, W, V, M, DB, K>
where
    M: Selectable<DB>,
    DB: Backend,
{
    pub fn new(from: F, where_clause: W, values: V, cap: usize, keys: &'static [String]) -> Self {
        let cap = i64::try_from(cap).unwrap_or(i64::MAX - 1);
        Capture {
            from,
            where_clause,
            values,
            select: M::as_select(),
            cap,
            limit: cap + 1,
            keys,
        }
    }

    fn kind() -> Kind {
        match K {
            SELECT => Kind::Select,
            UPDATE_CTE => Kind::UpdateCte,
            UPDATE_RETURNING => Kind::UpdateReturning,
            DELETE_CTE => Kind::DeleteCte,
            DELETE_RETURNING => Kind::DeleteReturning,
            _ => Kind::Count,
        }
    }
}

// Like diesel's own update and delete statements, these have no static query id (the table
// and changeset nodes have none): diesel caches their prepared statements by SQL text.
impl<F, W, V, M, DB, const K: u8> QueryId for Capture<F, W, V, M, DB, K>
where
    M: Selectable<DB>,
    DB: Backend,
{
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<F, W, V, M, DB, const K: u8> QueryFragment<DB> for Capture<F, W, V, M, DB, K>
where
    DB: AuditBackend,
    F: QueryFragment<DB>,
    W: QueryFragment<DB>,
    V: QueryFragment<DB>,
    M: Selectable<DB>,
    SelectBy<M, DB>: QueryFragment<DB>,
    i64: diesel::serialize::ToSql<BigInt, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        let pg = DB::DIALECT == Dialect::Postgres;
        let locked_read = |out: &mut AstPass<'_, 'b, DB>| -> QueryResult<()> {
            out.push_sql("SELECT ");
            self.select.walk_ast(out.reborrow())?;
            out.push_sql(" FROM ");
            self.from.walk_ast(out.reborrow())?;
            self.where_clause.walk_ast(out.reborrow())?;
            out.push_sql(" LIMIT ");
            out.push_bind_param::<BigInt, _>(&self.limit)?;
            if pg {
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

impl<F, W, V, M, DB> Query for Capture<F, W, V, M, DB, SELECT>
where
    M: Selectable<DB>,
    DB: Backend,
    SelectBy<M, DB>: diesel::Expression,
{
    type SqlType = <SelectBy<M, DB> as diesel::Expression>::SqlType;
}

impl<F, W, V, M, DB> Query for Capture<F, W, V, M, DB, UPDATE_RETURNING>
where
    M: Selectable<DB>,
    DB: Backend,
    SelectBy<M, DB>: diesel::Expression,
{
    type SqlType = <SelectBy<M, DB> as diesel::Expression>::SqlType;
}

impl<F, W, V, M, DB> Query for Capture<F, W, V, M, DB, DELETE_RETURNING>
where
    M: Selectable<DB>,
    DB: Backend,
    SelectBy<M, DB>: diesel::Expression,
{
    type SqlType = <SelectBy<M, DB> as diesel::Expression>::SqlType;
}

impl<F, W, V, M, DB> Query for Capture<F, W, V, M, DB, DELETE_CTE>
where
    M: Selectable<DB>,
    DB: Backend,
    SelectBy<M, DB>: diesel::Expression,
{
    type SqlType = <SelectBy<M, DB> as diesel::Expression>::SqlType;
}

impl<F, W, V, M, DB> Query for Capture<F, W, V, M, DB, UPDATE_CTE>
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

impl<F, W, V, M, DB> Query for Capture<F, W, V, M, DB, COUNT>
where
    M: Selectable<DB>,
    DB: Backend,
{
    type SqlType = BigInt;
}

impl<F, W, V, M, DB, Conn, const K: u8> RunQueryDsl<Conn> for Capture<F, W, V, M, DB, K>
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
