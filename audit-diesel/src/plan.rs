//! PostgreSQL with the outbox: the plan by which one statement builds an event's snapshots
//! from the rows it updates, so that the outbox row is written by the same statement as the
//! change (one round trip instead of `BEGIN`, update, outbox insert, `COMMIT`).
//!
//! A snapshot is what the model's [`AuditModel::audit_snapshot`] makes of a row, so the
//! database may build it only where it provably builds the same thing. That is established
//! once per model and table, before the first such statement, by a probe: the model is loaded
//! (through diesel, exactly as for a real row) from synthetic rows of the table in which every
//! selected column holds a value that no other column holds, and its snapshots and id are
//! compared with those values:
//!
//! - a redacted member (a keyed fingerprint, [`audit_runtime::fingerprint`]) must equal the
//!   fingerprint of the value of exactly one selected column in every probe, and is then
//!   computed by the database from that column: HMAC-SHA256 with PostgreSQL's `sha256(bytea)`
//!   (`sha256(K xor opad || sha256(K xor ipad || json))`, the two padded keys bound as
//!   parameters from [`audit_runtime::redact::hmac_pads`]) over the column's JSON text
//!   (`to_json(column)::text`, `null` for NULL), so the value itself is never read out of the
//!   database. A member that is the plain constant `"[redacted]"` in every probe (a
//!   hand-written model) is written as that constant. The padded keys reach the server as
//!   parameters of each such statement: the key can be derived from them, and PostgreSQL
//!   writes parameters to its log when it logs a statement (`log_min_duration_statement`,
//!   `log_statement`; `log_parameter_max_length = 0` for the application's role keeps them
//!   out). Whoever holds the key can test guesses against fingerprints in the audit log; the
//!   database holds the current values anyway, but not the past ones the log fingerprints;
//! - any other member must equal the value of exactly one selected column in every probe,
//!   and is then written from that column;
//! - the resource id must equal the text of exactly one column.
//!
//! Only the column types whose JSON text PostgreSQL writes byte for byte as serde_json writes
//! the Rust values diesel loads them as take part: `smallint`, `integer`, `bigint` (`i16`,
//! `i32`, `i64`: decimal digits), `boolean` (`true`/`false`), `text` and `character varying`
//! (`String`; both escape `"` and `\` with a backslash, `\b \f \n \r \t` by name, the other
//! control characters below U+0020 as `\u00xx` in lowercase hex, and write every other
//! character, U+007F and non-ASCII included, as its UTF-8 bytes), and NULL (`null`, an
//! `Option` that is `None`). Fingerprints of these agree with the ones the model computes
//! (tested with quotes, backslashes, every control character, non-ASCII text, the extreme
//! integers, booleans and NULL). They could differ for text in a database whose encoding is
//! not UTF-8 (`SQL_ASCII` keeps bytes as stored; the text is converted with
//! `convert_to(.., 'UTF8')`), and for a field of a wrapper type whose `Serialize` departs from
//! the plain one only for some values (the probe shows only a few): the statement's own check
//! below then fails that operation and turns the path off for the model, whose later updates
//! are captured in Rust.
//!
//! Anything else (another column type, a member computed from several columns, a renamed
//! field whose name matches no proof, a value that does not round-trip, a custom
//! `audit_resource`, a fingerprint of something other than one column's value) and the model
//! never takes this path: its outboxed updates run the statements of the general path, which
//! capture in Rust. Columns that back no proven member, which includes every skipped field,
//! are never read by the statement; a redacted column is read only inside the HMAC, so a raw
//! sensitive value cannot reach the outbox row. As a second line of defence each statement
//! returns the event it wrote, which is compared with the event the model makes of the same
//! rows; a difference fails the operation (rolling back an enclosing transaction) and
//! disables the plan for good.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use audit_runtime::redact::is_redacted;
use audit_runtime::{AuditModel, REDACTED, Resource, fingerprint};
use serde_json::{Map, Value};

/// Where a snapshot member comes from in the one-statement outboxed update.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The value of this column (of the old or the new row).
    Column(String),
    /// The keyed fingerprint of this column's value, computed by the database.
    Fingerprint(String),
    /// The constant `"[redacted]"`.
    Redacted,
}

/// How the database builds the snapshots and resource id of model `M` from table `T`.
#[doc(hidden)]
#[derive(Debug)]
pub struct SnapshotPlan {
    /// The snapshot members in the model's order.
    pub entries: Vec<(String, Source)>,
    /// The column whose text is the resource id.
    pub id_column: String,
    disabled: AtomicBool,
}

impl SnapshotPlan {
    /// Stops using this plan (after the database built an event the model disagrees with).
    pub fn disable(&self) {
        self.disabled.store(true, Ordering::Relaxed);
    }

    fn usable(&self) -> bool {
        !self.disabled.load(Ordering::Relaxed)
    }

    /// Whether a member is a fingerprint the database computes (and so needs the HMAC key).
    pub fn has_fingerprints(&self) -> bool {
        self.entries.iter().any(|(_, s)| matches!(s, Source::Fingerprint(_)))
    }
}

/// A model loaded from a synthetic row, and the values of that row by column.
pub(crate) struct Probe<M> {
    pub model: M,
    pub values: Map<String, Value>,
}

/// `json_build_object` takes at most 100 arguments: 50 members.
const MAX_ENTRIES: usize = 50;

type PlanCache = Mutex<HashMap<TypeId, Option<&'static SnapshotPlan>>>;

fn plans() -> std::sync::MutexGuard<'static, HashMap<TypeId, Option<&'static SnapshotPlan>>> {
    static CACHE: OnceLock<PlanCache> = OnceLock::new();
    CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// The plan of `(M, T)` if it was derived already: `Some(None)` when the model is not
/// eligible (for good) or its plan was disabled, `None` when it is still to be probed.
pub(crate) fn lookup<M: 'static, T: 'static>() -> Option<Option<&'static SnapshotPlan>> {
    let hit = plans().get(&TypeId::of::<(M, T)>()).copied();
    hit.map(|plan| plan.filter(|p| p.usable()))
}

/// Keeps the plan derived for `(M, T)` (`None`: not eligible) and returns the one in force:
/// the first one stored wins, when two connections probed at once.
pub(crate) fn store<M: 'static, T: 'static>(built: Option<SnapshotPlan>) -> Option<&'static SnapshotPlan> {
    let built: Option<&'static SnapshotPlan> = built.map(|p| &*Box::leak(Box::new(p)));
    let plan = *plans().entry(TypeId::of::<(M, T)>()).or_insert(built);
    plan.filter(|p| p.usable())
}

/// The plan of `(M, T)`, built by `build` the first time (`None`: not eligible, for good).
pub(crate) fn cached<M: 'static, T: 'static>(
    build: impl FnOnce() -> Option<SnapshotPlan>,
) -> Option<&'static SnapshotPlan> {
    match lookup::<M, T>() {
        Some(plan) => plan,
        // Built without the lock (it queries the database).
        None => store::<M, T>(build()),
    }
}

/// Derives the plan from probes of the selected `columns`: `probe(name)` loads the model
/// from a synthetic row in which boolean column `name` alone is true (`""`: none is).
pub(crate) fn derive<M: AuditModel, E>(
    columns: &[String],
    mut probe: impl FnMut(&str) -> Result<Probe<M>, E>,
) -> Result<Option<SnapshotPlan>, E> {
    let first = probe("")?;
    let Some(bools) = boolean_columns(columns, &first) else {
        return Ok(None);
    };
    let mut probes = vec![first];
    for column in &bools {
        probes.push(probe(column)?);
    }
    Ok(from_probes(columns, &probes))
}

/// The boolean columns among `columns`, from the first probe (`probe("")`): each needs a probe
/// of its own in which it alone is true. `None` when the selection cannot be eligible (a
/// column selected twice, or of a type the probe does not cover).
pub(crate) fn boolean_columns<M>(columns: &[String], first: &Probe<M>) -> Option<Vec<String>> {
    let mut bools = Vec::new();
    for (i, column) in columns.iter().enumerate() {
        if columns[..i].contains(column) {
            return None;
        }
        match first.values.get(column) {
            Some(Value::Bool(_)) => bools.push(column.clone()),
            Some(Value::Number(_) | Value::String(_)) => {}
            // NULL: a type the probe does not cover.
            _ => return None,
        }
    }
    Some(bools)
}

/// The plan the probes prove (the first probe, then one per boolean column, in the order of
/// [`boolean_columns`]), or `None`.
pub(crate) fn from_probes<M: AuditModel>(columns: &[String], probes: &[Probe<M>]) -> Option<SnapshotPlan> {
    let mut snapshots = Vec::with_capacity(probes.len());
    for p in probes {
        let Value::Object(map) = p.model.audit_snapshot() else {
            return None;
        };
        let id = p.model.audit_id();
        if p.model.audit_resource() != Resource::new(M::RESOURCE_TYPE, &id) {
            return None;
        }
        snapshots.push((map, id));
    }
    let keys: Vec<&String> = snapshots[0].0.keys().collect();
    if keys.len() > MAX_ENTRIES || snapshots.iter().any(|(s, _)| !s.keys().eq(keys.iter().copied())) {
        return None;
    }
    let value_of = |p: &Probe<M>, column: &str| p.values.get(column).cloned().unwrap_or(Value::Null);
    let mut entries = Vec::with_capacity(keys.len());
    for key in keys {
        if M::SKIPPED_FIELDS.contains(&key.as_str()) {
            return None;
        }
        let constant = snapshots.iter().all(|(s, _)| s[key] == Value::String(REDACTED.into()));
        if constant {
            entries.push((key.clone(), Source::Redacted));
            continue;
        }
        let redacted = snapshots.iter().any(|(s, _)| is_redacted(&s[key]));
        if !redacted && M::REDACTED_FIELDS.contains(&key.as_str()) {
            return None;
        }
        // A redacted member is the fingerprint of one column's value; any other member is
        // the value itself.
        let shown = |p: &Probe<M>, column: &str| match redacted {
            true => fingerprint(&value_of(p, column)),
            false => value_of(p, column),
        };
        let mut matching = columns
            .iter()
            .filter(|c| probes.iter().zip(&snapshots).all(|(p, (s, _))| shown(p, c) == s[key]));
        match (matching.next(), matching.next(), redacted) {
            (Some(column), None, true) => entries.push((key.clone(), Source::Fingerprint(column.clone()))),
            (Some(column), None, false) => entries.push((key.clone(), Source::Column(column.clone()))),
            _ => return None,
        }
    }
    let text = |v: Value| match v {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    let mut ids = columns.iter().filter(|c| {
        probes
            .iter()
            .zip(&snapshots)
            .all(|(p, (_, id))| text(value_of(p, c)).as_ref() == Some(id))
    });
    let id_column = match (ids.next(), ids.next()) {
        (Some(column), None) => column.clone(),
        _ => return None,
    };
    Some(SnapshotPlan {
        entries,
        id_column,
        disabled: AtomicBool::new(false),
    })
}

/// The unqualified column names of a rendered selection if it is nothing but columns of the
/// table rendered as `from` (`"t"."a", "t"."b"`), else `None`.
pub(crate) fn selected_columns(select: &str, from: &str) -> Option<Vec<String>> {
    let mut columns = Vec::new();
    let mut rest = select;
    loop {
        rest = rest.strip_prefix(from)?.strip_prefix('.')?;
        let (name, after) = quoted_identifier(rest)?;
        columns.push(name);
        if after.is_empty() {
            return Some(columns);
        }
        rest = after.strip_prefix(", ")?;
    }
}

/// `"a""b"...` -> (`a"b`, the rest).
fn quoted_identifier(s: &str) -> Option<(String, &str)> {
    let mut chars = s.strip_prefix('"')?.char_indices().peekable();
    let mut name = String::new();
    while let Some((i, c)) = chars.next() {
        if c == '"' {
            if chars.peek().map(|&(_, c)| c) == Some('"') {
                chars.next();
                name.push('"');
            } else {
                return Some((name, &s[i + 2..]));
            }
        } else {
            name.push(c);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    struct Row {
        id: i64,
        name: String,
        // Redacted: only its fingerprint is shown.
        secret: String,
        on: bool,
        off: bool,
    }

    impl AuditModel for Row {
        const RESOURCE_TYPE: &'static str = "row";
        const REDACTED_FIELDS: &'static [&'static str] = &["secret"];
        fn audit_id(&self) -> String {
            self.id.to_string()
        }
        fn audit_snapshot(&self) -> Value {
            json!({
                "id": self.id, "label": self.name, "secret": fingerprint(&self.secret), "hidden": REDACTED,
                "on": self.on, "off": self.off,
            })
        }
    }

    /// Rows as the probe statement would load them: ids 1000 + position, texts `p<pos>`.
    fn probe(columns: &[&str], bool_true: &str, swap: bool) -> Probe<Row> {
        let mut values = Map::new();
        for (i, c) in columns.iter().enumerate() {
            let pos = i as i64 + 1;
            let v = match *c {
                "id" => json!(1000 + pos),
                "on" | "off" => json!(*c == bool_true),
                _ => json!(format!("p{pos}")),
            };
            values.insert((*c).to_owned(), v);
        }
        let s = |c: &str| values[c].as_str().unwrap().to_owned();
        let b = |c: &str| values[c].as_bool().unwrap();
        let model = Row {
            id: values["id"].as_i64().unwrap(),
            name: if swap { s("secret") } else { s("name") },
            secret: if swap { s("name") } else { s("secret") },
            on: b("on"),
            off: b("off"),
        };
        Probe { model, values }
    }

    #[test]
    fn members_map_to_the_one_column_that_explains_them() {
        let columns = ["id", "name", "secret", "on", "off"];
        let names: Vec<String> = columns.iter().map(|c| (*c).to_owned()).collect();
        let plan = derive(&names, |b| Ok::<_, ()>(probe(&columns, b, false)))
            .unwrap()
            .expect("eligible");
        let entries: HashMap<_, _> = plan.entries.iter().cloned().collect();
        assert_eq!(entries["label"], Source::Column("name".into()));
        assert_eq!(entries["secret"], Source::Fingerprint("secret".into()));
        assert_eq!(entries["hidden"], Source::Redacted);
        assert_eq!(entries["on"], Source::Column("on".into()));
        assert_eq!(entries["off"], Source::Column("off".into()));
        assert_eq!(plan.id_column, "id");
        assert!(plan.has_fingerprints());
        // A member backed by the secret column is written from it only if the model itself
        // shows that column's value (here: `label` shows the secret; nothing is hidden that
        // the model would show, and the redacted member is the fingerprint of what it hides).
        let plan = derive(&names, |b| Ok::<_, ()>(probe(&columns, b, true)))
            .unwrap()
            .unwrap();
        let entries: HashMap<_, _> = plan.entries.iter().cloned().collect();
        assert_eq!(entries["label"], Source::Column("secret".into()));
        assert_eq!(entries["secret"], Source::Fingerprint("name".into()));
    }

    #[test]
    fn unknown_types_and_foreign_selections_are_not_eligible() {
        let names: Vec<String> = ["id", "name"].iter().map(|c| (*c).to_owned()).collect();
        let plan = derive(&names, |_| {
            Ok::<_, ()>(Probe {
                model: Row {
                    id: 1001,
                    name: "p2".into(),
                    secret: String::new(),
                    on: false,
                    off: false,
                },
                values: serde_json::from_value(json!({"id": 1001, "name": null})).unwrap(),
            })
        })
        .unwrap();
        assert!(plan.is_none());
        assert_eq!(
            selected_columns(r#""t"."id", "t"."a""b""#, r#""t""#),
            Some(vec!["id".to_owned(), "a\"b".to_owned()])
        );
        assert_eq!(selected_columns(r#""t"."id", lower("t"."name")"#, r#""t""#), None);
        assert_eq!(selected_columns(r#""u"."id""#, r#""t""#), None);
    }
}
