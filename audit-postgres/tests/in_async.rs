//! Issue 11: `PgStore` construction panicked inside a tokio runtime ("Cannot start a runtime
//! from within a runtime"), so an async service could not open its store from `main`.

mod common;

use audit_postgres::PgStore;
use audit_runtime::query::{RecordSource, verify_source};
use audit_runtime::{AuditEvent, AuditLayer, Category};
use common::TestDb;
use tracing_subscriber::prelude::*;

#[test]
fn pg_store_inside_tokio() {
    let Some(db) = TestDb::new() else { return };
    let url = common::url_with_role(&db.url, &db.owner());
    let schema = db.schema.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // Opened, handed to the writer, and a second one opened and dropped, all on a
        // thread that drives async tasks.
        let store = PgStore::connect(&url, &schema).expect("connects inside the runtime");
        drop(PgStore::connect(&url, &schema).expect("connects again"));
        let (layer, guard) = AuditLayer::builder(store).build().expect("writer");
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..3 {
                AuditEvent::new("user.login", Category::Authentication)
                    .tenant("acme")
                    .context("request_id", format!("r{i}"))
                    .emit()
                    .expect("emitted");
            }
        });
        guard.flush().expect("flushed");
        guard.shutdown().expect("shut down");
        // Reading is blocking I/O: it belongs on the blocking pool, as with every store.
        let url2 = url.clone();
        let schema2 = schema.clone();
        let (chains, ok) = tokio::task::spawn_blocking(move || {
            let mut store = PgStore::connect(&url2, &schema2).unwrap();
            let chains = store.chains().unwrap();
            let ok = verify_source(&mut store, &Default::default()).unwrap().is_ok();
            (chains, ok)
        })
        .await
        .unwrap();
        assert_eq!(chains, ["acme"]);
        assert!(ok);
    });
}
