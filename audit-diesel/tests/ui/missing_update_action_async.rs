// `card.update` is not in audit.toml: an async update of a card without an explicit action
// does not compile either.
use audit::AuditModel;
use audit_diesel::AsyncAuditedExt;
use diesel::prelude::*;
use diesel_async::AsyncPgConnection;

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

async fn expire(conn: &mut AsyncPgConnection) {
    let _ = conn
        .audited()
        .update::<Card, _, _>(cards::table.find(1), cards::last4.eq("0000"))
        .await;
}

fn main() {
    // Never run: `expire` has to be compiled, and a future's body is compiled where it is
    // polled (as every application's is, by its runtime).
    let conn: Option<&mut AsyncPgConnection> = None;
    if let Some(conn) = conn {
        let mut future = std::pin::pin!(expire(conn));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let _ = std::future::Future::poll(future.as_mut(), &mut cx);
    }
}
