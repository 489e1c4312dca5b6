//! Records a realistic session of audit events into a chained file store, then verifies it.
//!
//! ```text
//! cargo run --example quickstart [-- DIR]      # DIR defaults to ./audit-log
//! ```

use std::error::Error;
use std::path::PathBuf;

use audit::{Actor, ActorType, AuditEvent, AuditLayer, AuditScope, AuthMethod, Category, FileStore, REDACTED};
use serde_json::json;
use tracing_subscriber::prelude::*;
use tracing_subscriber::{EnvFilter, fmt};

fn main() -> Result<(), Box<dyn Error>> {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "audit-log".into()));

    // Once, at start-up: the application's own logs keep their own filter (RUST_LOG), and
    // the audit layer sits beside them, so `RUST_LOG=warn` can never drop an audit event.
    let (audit_layer, audit_guard) = AuditLayer::builder(FileStore::open(&dir)?).build()?;
    tracing_subscriber::registry()
        .with(fmt::layer().with_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"))))
        .with(audit_layer)
        .init();
    // Refuse to run audited actions rather than lose their events if the sink goes away.
    audit::set_failure_mode(audit::FailureMode::Refuse);

    acme_session()?;
    globex_session()?;

    // Durable from here on; dropping the guard would also drain, sync and seal.
    audit_guard.seal()?;
    drop(audit_guard);

    let report = audit::verify::verify_paths(&[&dir], &Default::default())?;
    if let Some(damage) = report.damages().next() {
        return Err(format!("the log does not verify: {damage}").into());
    }
    println!("Audit log written to {}/", dir.display());
    for chain in &report.chains {
        println!("  chain {:<8} {:>4} records, head {}", chain.chain, chain.count, chain.head);
    }
    println!();
    println!("Verify it:            cargo run -p audit-cli -- verify {}", dir.display());
    println!(
        "Export one tenant:    cargo run -p audit-cli -- export {} --tenant acme --from 2020-01-01 --format csv",
        dir.display()
    );
    println!("Look at the records:  cat {}/chains/acme/*.jsonl", dir.display());
    Ok(())
}

/// A request handler would get this scope from authentication middleware.
fn request_scope(tenant: &str, actor: Actor, ip: &str, request_id: &str) -> AuditScope {
    AuditScope::new()
        .tenant(tenant)
        .actor(actor)
        .context("ip", ip)
        .context("user_agent", "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0")
        .context("request_id", request_id)
        .context("session_id", "sess_7c1d")
}

fn acme_session() -> Result<(), Box<dyn Error>> {
    // A failed login (wrong password), then a successful one with MFA.
    let anonymous = Actor::user("usr_alice", AuthMethod::None);
    request_scope("acme", anonymous, "203.0.113.7", "req_0001").in_scope(|| {
        AuditEvent::new("user.login", Category::Authentication)
            .resource("user", "usr_alice")
            .failure("invalid password")
            .emit()
    })?;
    let alice = Actor::user("usr_alice", AuthMethod::Mfa).with_name("Alice Martin");
    request_scope("acme", alice.clone(), "203.0.113.7", "req_0002").in_scope(|| {
        AuditEvent::new("user.login", Category::Authentication).resource("user", "usr_alice").emit()
    })?;

    // Alice (an admin) grants a role, then reads a customer record with PII.
    request_scope("acme", alice.clone(), "203.0.113.7", "req_0003").in_scope(|| {
        AuditEvent::new("role.grant", Category::Authorization)
            .resource("user", "usr_bob")
            .changes(Some(json!({ "roles": ["viewer"] })), Some(json!({ "roles": ["viewer", "billing_admin"] })))
            .emit()
    })?;
    request_scope("acme", alice.clone(), "203.0.113.7", "req_0004").in_scope(|| {
        AuditEvent::new("customer_record.read", Category::DataAccess).resource("customer", "cust_abc123").emit()
    })?;

    // A mutation with before/after state; the card number is redacted at capture.
    request_scope("acme", alice, "203.0.113.7", "req_0005").in_scope(|| {
        AuditEvent::new("billing.update", Category::Mutation)
            .resource("customer", "cust_abc123")
            .changes(
                Some(json!({ "plan": "starter", "seats": 5, "card_number": REDACTED })),
                Some(json!({ "plan": "business", "seats": 25, "card_number": REDACTED })),
            )
            .emit()
    })?;
    Ok(())
}

fn globex_session() -> Result<(), Box<dyn Error>> {
    // A support engineer impersonates a customer's user, who then exports data.
    let impersonated = Actor::user("usr_carol", AuthMethod::Sso).impersonated_by(ActorType::User, "usr_support_dan");
    request_scope("globex", impersonated, "198.51.100.23", "req_0100").in_scope(|| {
        AuditEvent::new("user.impersonate", Category::Admin).resource("user", "usr_carol").emit()?;
        AuditEvent::new("data.export", Category::Admin).resource("report", "rpt_q3_invoices").emit()
    })?;
    // A service account's API call fails authorization.
    let billing_bot = Actor::service("svc_billing_sync", AuthMethod::ApiKey);
    request_scope("globex", billing_bot, "10.0.4.17", "req_0101").in_scope(|| {
        AuditEvent::new("invoice.delete", Category::Mutation)
            .resource("invoice", "inv_2025_0042")
            .failure("permission denied: invoices are immutable after issue")
            .emit()
    })?;
    Ok(())
}
