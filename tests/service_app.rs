//! An axum service outside the workspace, depending on the facade alone (features `axum` and
//! `diesel-async`), gets a correct audit trail with no glue of its own: the HTTP layer, an
//! `#[audited]` handler and an audited diesel-async update on a pooled connection
//! (`tests/fixtures/service-app`). This test builds it with cargo, as a user would, runs it
//! against the test PostgreSQL server (it serves on loopback and sends itself requests with a
//! real HTTP client), then checks every record it left: one record per change, carrying the
//! change; refusals and rollbacks as failures without one; the log verifies.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use audit::query::{Query, RecordSource};
use audit::{FileSource, Record};

fn database_url() -> String {
    std::env::var("AUDIT_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A superuser connection, or `None` with a loud note; under `CI=true` an unreachable server
/// fails the test.
fn admin(url: &str) -> Option<postgres::Client> {
    match postgres::Client::connect(url, postgres::NoTls) {
        Ok(client) => Some(client),
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("PostgreSQL is unreachable at {url} and CI=true: {e}")
        }
        Err(e) => {
            eprintln!("\n*** SKIPPED: PostgreSQL is unreachable at {url} ({e}); set AUDIT_TEST_DATABASE_URL.\n");
            None
        }
    }
}

/// Drops the fixture's schema however the test ends.
struct Schema<'a> {
    client: &'a mut postgres::Client,
    name: String,
}

impl Drop for Schema<'_> {
    fn drop(&mut self) {
        let _ = self
            .client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
    }
}

/// The fixture's manifest names no crate of the toolkit but the facade.
fn assert_facade_only(manifest: &str) {
    let toolkit_deps: Vec<&str> = manifest
        .lines()
        .filter(|l| l.contains("path = ") || l.trim_start().starts_with("audit"))
        .collect();
    assert_eq!(
        toolkit_deps,
        [r#"audit = { package = "audit-log", path = "../../..", features = ["axum", "diesel-async"] }"#],
        "the fixture depends on the facade and on no other crate of the toolkit"
    );
}

/// A copy of the fixture outside the workspace, as an application would be, its path
/// dependency pointed at this repository, with the workspace's lock file (the same versions).
fn copy_fixture(root: &Path, fixture: &Path, to: &Path) {
    for file in ["Cargo.toml", "audit.toml", "src/main.rs"] {
        let target = to.join(file);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        let text = std::fs::read_to_string(fixture.join(file)).unwrap();
        let text = text.replace(
            "path = \"../../..\"",
            &format!("path = {:?}", root.display().to_string()),
        );
        std::fs::write(target, text).unwrap();
    }
    std::fs::copy(root.join("Cargo.lock"), to.join("Cargo.lock")).unwrap();
}

fn changes(record: &Record) -> &audit::Changes {
    record
        .changes
        .as_ref()
        .unwrap_or_else(|| panic!("{} (seq {}) has no changes", record.action, record.seq))
}

fn failure_reason(record: &Record) -> &str {
    match &record.outcome {
        audit::Outcome::Failure { reason, .. } => reason,
        audit::Outcome::Success => panic!("{} (seq {}) is recorded as a success", record.action, record.seq),
    }
}

#[test]
fn a_service_depending_on_the_facade_alone_records_one_record_per_change() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixture = root.join("tests/fixtures/service-app");
    assert_facade_only(&std::fs::read_to_string(fixture.join("Cargo.toml")).unwrap());

    let url = database_url();
    let Some(mut client) = admin(&url) else { return };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let schema = format!("service_app_{}_{nanos}", std::process::id());
    client.batch_execute(&format!("CREATE SCHEMA {schema}")).unwrap();
    let schema = Schema {
        client: &mut client,
        name: schema,
    };
    // Every pooled connection of the fixture works in the schema (a connection option that
    // tokio-postgres passes to the server).
    let sep = if url.contains('?') { '&' } else { '?' };
    let app_url = format!("{url}{sep}options=-c%20search_path%3D{}", schema.name);

    let app = tempfile::tempdir().unwrap();
    copy_fixture(root, &fixture, app.path());
    let log = tempfile::tempdir().unwrap();
    // Offline: every crate the fixture needs is in the workspace's lock and downloaded by the
    // workspace's own build (the root's dev-dependencies include the fixture's). Built in the
    // workspace's target directory, where most of it is built already.
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| root.join("target").display().to_string());
    let out = Command::new(env!("CARGO"))
        .args(["run", "--quiet", "--offline", "--manifest-path"])
        .arg(app.path().join("Cargo.toml"))
        .arg("--")
        .arg(log.path())
        .arg(&app_url)
        .env("CARGO_TARGET_DIR", target)
        .output()
        .expect("run cargo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the fixture failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("service app: done"), "{stdout}");

    // What the client got.
    let statuses: HashMap<&str, &str> = stdout.lines().filter_map(|l| l.split_once(' ')).collect();
    for (request, status) in [
        ("req-plan", "204"),
        ("req-card", "204"),
        ("req-retired", "422"),
        ("req-missing", "404"),
        ("req-anonymous", "401"),
    ] {
        assert_eq!(statuses.get(request), Some(&status), "{request}: {stdout}");
    }

    // What the database holds: the two committed changes, not the rolled-back one.
    let row = schema
        .client
        .query_one(
            &format!("SELECT plan, card_number FROM {}.customers WHERE id = 1", schema.name),
            &[],
        )
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, String>(1)),
        ("pro".to_owned(), "5500005555555559".to_owned())
    );

    // What the audit log holds: exactly one record per request, by request id.
    let mut by_request: HashMap<String, Record> = HashMap::new();
    let mut lines = Vec::new();
    for line in FileSource::open(log.path()).unwrap().query(&Query::new()).unwrap() {
        let line = line.unwrap().line;
        let record = Record::parse(&line).unwrap();
        let request = record
            .context
            .as_ref()
            .and_then(|c| c.request_id.clone())
            .unwrap_or_else(|| panic!("seq {} of chain {} has no request id", record.seq, record.chain));
        assert!(
            by_request.insert(request.clone(), record).is_none(),
            "two records for {request}"
        );
        lines.push(String::from_utf8(line).unwrap());
    }
    assert_eq!(by_request.len(), 5, "one record per request: {lines:#?}");

    let billing = ["req-plan", "req-card", "req-retired", "req-missing"];
    for request in billing {
        let r = &by_request[request];
        assert_eq!(r.action, "billing.update", "{request}");
        assert_eq!(r.actor.id, "usr_42", "{request}");
        assert_eq!(r.tenant.as_deref(), Some("acme"), "{request}");
        let resource = r.resource.as_ref().expect("the call's resource");
        assert_eq!(resource.kind, "customer", "{request}");
        let context = r.context.as_ref().unwrap();
        assert_eq!(context.ip.as_deref(), Some("127.0.0.1"), "{request}");
        assert_eq!(context.user_agent.as_deref(), Some("service-app-client/1"), "{request}");
    }

    // The plan change: the call's record carries the update's before, after and fields.
    let plan = &by_request["req-plan"];
    assert!(plan.outcome.is_success());
    assert_eq!(plan.resource.as_ref().unwrap().id, "1");
    let c = changes(plan);
    assert_eq!(c.fields, ["plan"]);
    let (before, after) = (c.before.as_ref().unwrap(), c.after.as_ref().unwrap());
    assert_eq!((&before["plan"], &after["plan"]), (&"free".into(), &"pro".into()));
    assert_eq!(before["card_number"], after["card_number"], "the card did not change");

    // A change of the redacted card only: named, its fingerprint changes, its value is never
    // written.
    let card = &by_request["req-card"];
    assert!(card.outcome.is_success());
    let c = changes(card);
    assert_eq!(c.fields, ["card_number"]);
    let (before, after) = (c.before.as_ref().unwrap(), c.after.as_ref().unwrap());
    for fingerprint in [&before["card_number"], &after["card_number"]] {
        assert!(
            fingerprint
                .as_str()
                .is_some_and(|f| f.starts_with("[redacted:hmac-sha256:")),
            "{fingerprint}"
        );
    }
    assert_ne!(before["card_number"], after["card_number"]);
    let log_text = lines.concat();
    assert!(
        !log_text.contains("4111111111111111") && !log_text.contains("5500005555555559"),
        "a card number reached the log"
    );

    // Rolled back (refused on the changed row) and not found: failures without a change.
    let retired = &by_request["req-retired"];
    let reason = failure_reason(retired);
    assert!(
        reason.contains("legacy plan is retired") && reason.contains("422"),
        "{reason}"
    );
    assert!(retired.changes.is_none(), "a rolled-back change is never recorded");
    let missing = &by_request["req-missing"];
    assert_eq!(missing.resource.as_ref().unwrap().id, "999");
    let reason = failure_reason(missing);
    assert!(
        reason.contains("no such customer") && reason.contains("404"),
        "{reason}"
    );
    assert!(missing.changes.is_none());

    // The refusal at the edge (no credentials): recorded by the layer as the standard action.
    let anonymous = &by_request["req-anonymous"];
    assert_eq!(anonymous.action, "access.unauthenticated");
    failure_reason(anonymous);
    assert!(anonymous.changes.is_none());

    let report = audit::verify::verify_paths(&[log.path()], &Default::default()).unwrap();
    assert!(report.is_ok(), "{:?}", report.damages().collect::<Vec<_>>());
    assert_eq!(report.chains.iter().map(|c| c.count).sum::<u64>(), 5);
}
