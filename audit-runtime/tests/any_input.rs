//! No input to a public API crashes the host or spoils the log: arbitrary strings (any
//! script, control characters, NUL, huge), tenants, context keys and JSON values are
//! recorded, and every record reads back strictly and verifies.

mod common;

use audit_runtime::verify::{VerifyOptions, verify_paths};
use audit_runtime::{Actor, AuditEvent, AuthMethod, Category, FailureMode};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use tracing_subscriber::prelude::*;

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "\\PC{0,64}",
        Just(String::new()),
        Just("\0".to_owned()),
        Just("..".to_owned()),
        Just("/".to_owned()),
        Just("%zz".to_owned()),
        (1usize..20_000).prop_map(|n| "é\u{0}\u{1f}".repeat(n)),
    ]
}

fn json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        text().prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(48, 256, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            proptest::collection::btree_map(text(), inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

#[derive(Debug, Clone)]
struct Input {
    tenant: Option<String>,
    actor: String,
    resource: (String, String),
    reason: Option<String>,
    context: Vec<(String, String)>,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
}

fn input() -> impl Strategy<Value = Input> {
    (
        proptest::option::of(text()),
        text(),
        (text(), text()),
        proptest::option::of(text()),
        proptest::collection::vec((text(), text()), 0..6),
        proptest::option::of(json()),
        proptest::option::of(json()),
    )
        .prop_map(|(tenant, actor, resource, reason, context, before, after)| Input {
            tenant,
            actor,
            resource,
            reason,
            context,
            before,
            after,
        })
}

#[test]
fn no_input_to_the_event_api_crashes_or_spoils_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = common::file_layer(dir.path());
    let emitted = std::cell::Cell::new(0u64);
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        let mut runner = TestRunner::new(Config {
            cases: 300,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(&input(), |input| {
                let mut event = AuditEvent::new("invoice.update", Category::Mutation)
                    .actor(Actor::user(input.actor, AuthMethod::Sso))
                    .resource(input.resource.0, input.resource.1)
                    .changes(input.before, input.after);
                if let Some(tenant) = input.tenant {
                    event = event.tenant(tenant);
                }
                if let Some(reason) = input.reason {
                    event = event.failure(reason);
                }
                for (key, value) in &input.context {
                    event = event.context(key, value.as_str()).context_bytes(key, value.as_bytes());
                }
                prop_assert!(event.emit_with(FailureMode::Refuse).is_ok());
                emitted.set(emitted.get() + 1);
                Ok(())
            })
            .unwrap();
    });
    guard.flush().unwrap();
    guard.shutdown().unwrap();
    let strict = VerifyOptions {
        strict: true,
        ..Default::default()
    };
    let report = verify_paths(&[dir.path()], &strict).unwrap();
    assert!(report.is_ok(), "{:#?}", report.damages().collect::<Vec<_>>());
    let emitted = emitted.get();
    assert_eq!(report.chains.iter().map(|c| c.count).sum::<u64>(), emitted);
    // Every line is one JSON object a strict reader takes, and Python's `json` too.
    let mut files = Vec::new();
    for chain in &report.chains {
        let dir = dir
            .path()
            .join("chains")
            .join(audit_runtime::store::file::encode_chain(&chain.chain));
        files.extend(audit_runtime::store::file::segments(&dir).unwrap());
    }
    let python = std::process::Command::new("python3")
        .args([
            "-c",
            "import json,sys\nn=0\nfor f in sys.argv[1:]:\n for l in open(f,'rb'): json.loads(l); n+=1\nprint(n)",
        ])
        .args(&files)
        .output()
        .expect("python3 runs");
    assert_eq!(
        String::from_utf8_lossy(&python.stdout).trim(),
        emitted.to_string(),
        "{}",
        String::from_utf8_lossy(&python.stderr)
    );
}
