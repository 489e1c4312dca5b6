// The same delete under an action audit.toml declares compiles.
use audit::AuditModel;
use audit_diesel::AuditedExt;
use diesel::prelude::*;

diesel::table! {
    cards (id) {
        id -> BigInt,
        last4 -> Text,
    }
}

#[derive(Queryable, Selectable, AuditModel)]
#[diesel(table_name = cards)]
#[audit(resource = "card")]
pub struct Card {
    pub id: i64,
    pub last4: String,
}

fn main() {
    let mut conn = SqliteConnection::establish(":memory:").unwrap();
    let _ = conn
        .audited()
        .action(audit::action!("billing.update"))
        .delete::<Card, _>(cards::table.find(1));
}
