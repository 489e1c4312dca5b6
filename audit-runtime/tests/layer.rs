//! The tracing layer: composition with other layers and filters, span context, async scopes.

mod common;

use audit_runtime::{Actor, AuditEvent, AuditScope, AuthMethod, Category, FailureMode, WithAuditScope};
use tracing::instrument::WithSubscriber;
use tracing_subscriber::prelude::*;
use tracing_subscriber::{EnvFilter, fmt};

#[test]
fn application_filter_per_layer_does_not_drop_audit_events() {
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = common::file_layer(dir.path());
    let app_logs = fmt::layer()
        .with_writer(std::io::sink)
        .with_filter(EnvFilter::new("warn"));
    let subscriber = tracing_subscriber::registry().with(app_logs).with(layer);
    tracing::subscriber::with_default(subscriber, || {
        AuditEvent::new("user.login", Category::Authentication)
            .actor(Actor::user("usr_1", AuthMethod::Password))
            .emit_with(FailureMode::Refuse)
            .expect("delivered despite RUST_LOG=warn on the app layer");
    });
    guard.flush().unwrap();
    let records = common::records(dir.path(), "default");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].action, "user.login");
    assert_eq!(records[0].category, Category::Authentication);
}

#[test]
fn a_global_filter_that_hides_the_audit_target_is_reported_not_silent() {
    let dir = tempfile::tempdir().unwrap();
    let (layer, _guard) = common::file_layer(dir.path());
    // A global (not per-layer) filter disables the callsite for every layer.
    let subscriber = tracing_subscriber::registry().with(EnvFilter::new("warn")).with(layer);
    let before = audit_runtime::undelivered_count();
    let result = tracing::subscriber::with_default(subscriber, || {
        AuditEvent::new("user.login", Category::Authentication).emit_with(FailureMode::Refuse)
    });
    assert!(matches!(result, Err(audit_runtime::AuditError::Undelivered { ref action, .. }) if action == "user.login"));
    assert!(audit_runtime::undelivered_count() > before);
}

#[test]
fn context_comes_from_scope_spans_and_explicit_values_in_that_order() {
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = common::file_layer(dir.path());
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!(
            "request",
            request_id = "req_span",
            trace_id = "4bf92f3577b34da6",
            tenant = "from_span",
            user_agent = tracing::field::Empty
        );
        let _entered = span.enter();
        span.record("user_agent", "curl/8.5");
        let scope = AuditScope::new()
            .actor(Actor::user("usr_scope", AuthMethod::Sso))
            .tenant("acme")
            .context("ip", "203.0.113.7")
            .context("request_id", "req_scope");
        scope.in_scope(|| {
            AuditEvent::new("customer_record.read", Category::DataAccess)
                .resource("customer", "cust_1")
                .emit_with(FailureMode::Refuse)
                .unwrap();
            AuditEvent::new("customer_record.read", Category::DataAccess)
                .actor(Actor::service("svc_batch", AuthMethod::ApiKey))
                .tenant("globex")
                .context("request_id", "req_explicit")
                .emit_with(FailureMode::Refuse)
                .unwrap();
        });
    });
    guard.flush().unwrap();
    let acme = common::records(dir.path(), "acme");
    assert_eq!(acme.len(), 1);
    let ctx = acme[0].context.clone().unwrap();
    assert_eq!(acme[0].actor.id, "usr_scope");
    assert_eq!(
        acme[0].tenant.as_deref(),
        Some("acme"),
        "the scope's tenant beats the span's"
    );
    assert_eq!(ctx.request_id.as_deref(), Some("req_scope"));
    assert_eq!(ctx.ip.as_deref(), Some("203.0.113.7"));
    assert_eq!(
        ctx.trace_id.as_deref(),
        Some("4bf92f3577b34da6"),
        "trace id from the span"
    );
    assert_eq!(
        ctx.user_agent.as_deref(),
        Some("curl/8.5"),
        "recorded later on the span"
    );
    assert!(ctx.extra.contains_key("span_id"), "links to the application's span");

    let globex = common::records(dir.path(), "globex");
    assert_eq!(globex[0].actor.id, "svc_batch");
    assert_eq!(
        globex[0].context.as_ref().unwrap().request_id.as_deref(),
        Some("req_explicit")
    );
    common::assert_verifies(dir.path());
}

#[test]
fn scope_survives_await_on_a_multi_thread_runtime_and_into_spawned_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = common::file_layer(dir.path());
    let subscriber = tracing_subscriber::registry().with(layer);
    let dispatch = tracing::Dispatch::new(subscriber);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _default = tracing::dispatcher::set_default(&dispatch);
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..20 {
            let scope = AuditScope::new()
                .actor(Actor::user(format!("usr_{i}"), AuthMethod::Token))
                .tenant("acme");
            let dispatch = dispatch.clone();
            let request = async move {
                tokio::task::yield_now().await;
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                let child = tokio::spawn(
                    async move {
                        tokio::task::yield_now().await;
                        AuditEvent::new("report.generate", Category::DataAccess).emit_with(FailureMode::Refuse)
                    }
                    .in_current_audit_scope()
                    .with_current_subscriber(),
                );
                let spawned = child.await.unwrap();
                let own = AuditEvent::new("report.view", Category::DataAccess).emit_with(FailureMode::Refuse);
                (i, spawned, own)
            }
            .with_audit_scope(scope);
            // Worker threads have no default subscriber: carry it like the scope.
            tasks.push(tokio::spawn(request.with_subscriber(dispatch)));
        }
        for t in tasks {
            let (_, spawned, own) = t.await.unwrap();
            spawned.unwrap();
            own.unwrap();
        }
    });
    guard.flush().unwrap();
    let records = common::records(dir.path(), "acme");
    assert_eq!(records.len(), 40);
    for i in 0..20 {
        let actor = format!("usr_{i}");
        let of_actor: Vec<_> = records
            .iter()
            .filter(|r| r.actor.id == actor)
            .map(|r| r.action.as_str())
            .collect();
        assert_eq!(of_actor.len(), 2, "{actor}: {of_actor:?}");
        assert!(of_actor.contains(&"report.generate") && of_actor.contains(&"report.view"));
    }
    assert!(records.iter().all(|r| r.tenant.as_deref() == Some("acme")));
}

#[test]
fn hostile_text_is_escaped_truncated_and_never_breaks_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = common::file_layer(dir.path());
    let subscriber = tracing_subscriber::registry().with(layer);
    let huge = "x".repeat(10_000);
    tracing::subscriber::with_default(subscriber, || {
        AuditEvent::new("user.login", Category::Authentication)
            .actor(Actor::user("usr_\n\"1\"\u{0}\u{1b}[31m", AuthMethod::Password))
            .resource("user", &huge)
            .context_bytes("user_agent", b"Mozilla\xff\xfe/5.0\r\n")
            .failure("bad\npassword\u{2028}")
            .emit_with(FailureMode::Refuse)
            .unwrap();
    });
    guard.flush().unwrap();
    let lines = common::lines(dir.path(), "default");
    assert_eq!(lines.len(), 1, "control characters are escaped, never raw newlines");
    assert!(lines[0].contains(r#""usr_\n\"1\"\u0000\u001b[31m""#), "{}", lines[0]);
    let record = audit_runtime::Record::parse(lines[0].as_bytes()).unwrap();
    let id = &record.resource.unwrap().id;
    assert!(
        id.len() < 4200 && id.ends_with("…[truncated 5904 bytes]"),
        "{}",
        &id[4000..]
    );
    assert_eq!(
        record.context.unwrap().user_agent.as_deref(),
        Some("Mozilla\u{fffd}\u{fffd}/5.0\r\n")
    );
    common::assert_verifies(dir.path());
}

#[test]
fn an_oversized_diff_is_replaced_by_a_marker_and_the_event_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = common::file_layer(dir.path());
    let subscriber = tracing_subscriber::registry().with(layer);
    let big = serde_json::json!({ "blob": "b".repeat(300 << 10) });
    tracing::subscriber::with_default(subscriber, || {
        AuditEvent::new("document.update", Category::Mutation)
            .changes(Some(big.clone()), Some(big))
            .emit_with(FailureMode::Refuse)
            .unwrap();
        AuditEvent::new("document.update", Category::Mutation)
            .changes(None, None)
            .emit_with(FailureMode::Refuse)
            .unwrap();
    });
    guard.flush().unwrap();
    let records = common::records(dir.path(), "default");
    let changes = records[0].changes.as_ref().expect("changes kept, as a marker");
    assert_eq!(changes.before.as_ref().unwrap()["truncated"], true);
    assert!(changes.after.as_ref().unwrap()["bytes"].as_u64().unwrap() > 600 << 10);
    assert!(records[1].changes.is_none(), "an empty diff is left out");
    common::assert_verifies(dir.path());
}
