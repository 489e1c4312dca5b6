//! Every kind of record the writer produces validates against the published JSON Schema.

use audit::{
    Actor, ActorType, AuditEvent, AuditLayer, AuditScope, AuthMethod, Category, FailureMode, FileStore, REDACTED,
};
use serde_json::json;
use tracing_subscriber::prelude::*;

fn schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schema/audit-event.v1.schema.json"
    ))
    .unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).expect("the schema compiles")
}

#[test]
fn every_record_shape_validates_against_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = AuditLayer::builder(FileStore::open(dir.path()).unwrap())
        .build()
        .unwrap();
    let subscriber = tracing_subscriber::registry().with(layer);
    let actors = [
        Actor::user("usr_1", AuthMethod::Password),
        Actor::user("usr_2", AuthMethod::Sso).with_name("Ada"),
        Actor::user("usr_3", AuthMethod::Mfa).impersonated_by(ActorType::User, "usr_admin"),
        Actor::service("svc_1", AuthMethod::ApiKey),
        Actor::service("svc_2", AuthMethod::Token),
        Actor::user("usr_4", AuthMethod::Session),
        Actor::system("retention"),
    ];
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("request", trace_id = "4bf92f3577b34da6a3ce929d0e0e4736");
        let _entered = span.enter();
        for (i, actor) in actors.iter().enumerate() {
            for category in Category::ALL {
                let event = AuditEvent::new(format!("test.action_{i}"), category).actor(actor.clone());
                let event = match i % 4 {
                    0 => event,
                    1 => event.resource("customer", "cust_1").failure("denied"),
                    2 => event
                        .tenant("acme")
                        .context("ip", "2001:db8::1")
                        .context("region", "eu-west-1"),
                    _ => event.tenant("globex").resource("invoice", 42).changes(
                        Some(json!({"amount": 10, "card": REDACTED})),
                        Some(json!({"amount": 12, "card": REDACTED})),
                    ),
                };
                event.emit_with(FailureMode::Refuse).unwrap();
            }
        }
        // Ambient scope with every context member, and an empty `changes`.
        AuditScope::new()
            .actor(Actor::user("usr_5", AuthMethod::None))
            .context("user_agent", "curl/8")
            .context("request_id", "r")
            .context("session_id", "s")
            .in_scope(|| {
                AuditEvent::new("user.logout", Category::Authentication)
                    .changes(None, None)
                    .emit_with(FailureMode::Refuse)
            })
            .unwrap();
        // No actor at all.
        AuditEvent::new("system.start", Category::Admin)
            .emit_with(FailureMode::Refuse)
            .unwrap();
    });
    guard.shutdown().unwrap();

    let validator = schema();
    let mut checked = 0;
    for (_, files) in audit::store::file::store_files(dir.path()).unwrap().chains {
        for file in files {
            for (n, line) in std::fs::read_to_string(&file).unwrap().lines().enumerate() {
                let value: serde_json::Value = serde_json::from_str(line).unwrap();
                let errors: Vec<String> = validator
                    .iter_errors(&value)
                    .map(|e| format!("{e} at {}", e.instance_path()))
                    .collect();
                assert!(errors.is_empty(), "{}:{}: {errors:?}\n{line}", file.display(), n + 1);
                checked += 1;
            }
        }
    }
    assert_eq!(checked, actors.len() * 5 + 2);
}

#[test]
fn the_schema_rejects_what_the_contract_forbids() {
    let validator = schema();
    let good = json!({
        "v": 1, "id": "01a21708-37e1-7058-9526-a0d4e0d6b972", "chain": "acme", "seq": 1,
        "timestamp": "2026-11-26T07:16:51.123456Z",
        "actor": {"type": "user", "id": "usr_1", "auth": "password"},
        "action": "user.login", "category": "authentication", "outcome": {"status": "success"},
        "prev_hash": "0".repeat(64), "hash": "a".repeat(64)
    });
    assert!(validator.is_valid(&good));
    for (member, bad) in [
        ("timestamp", json!("2026-11-26T07:16:51.123Z")),
        ("action", json!("Billing.Update")),
        ("action", json!("login")),
        ("category", json!("other")),
        ("tenant", serde_json::Value::Null),
        ("hash", json!("A".repeat(64))),
        ("outcome", json!({"status": "failure"})),
    ] {
        let mut record = good.clone();
        record[member] = bad.clone();
        assert!(!validator.is_valid(&record), "{member} = {bad} should be rejected");
    }
}
