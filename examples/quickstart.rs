//! Records a realistic session of audit events into a chained file store, then verifies it.
//!
//! ```text
//! cargo run --example quickstart [-- DIR]      # DIR defaults to ./audit-log
//! ```

use std::error::Error;
use std::fmt;
use std::path::PathBuf;

use audit::{
    Actor, ActorType, AuditEvent, AuditLayer, AuditModel, AuditScope, AuthMethod, Category, FileStore, audited,
};
use tracing_subscriber::prelude::*;
use tracing_subscriber::{EnvFilter, fmt as log_fmt};

fn main() -> Result<(), Box<dyn Error>> {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "audit-log".into()));

    // Once, at start-up: the application's own logs keep their own filter (RUST_LOG), and
    // the audit layer sits beside them, so `RUST_LOG=warn` can never drop an audit event.
    let (audit_layer, audit_guard) = AuditLayer::builder(FileStore::open(&dir)?).build()?;
    tracing_subscriber::registry()
        .with(
            log_fmt::layer().with_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"))),
        )
        .with(audit_layer)
        .init();
    // Refuse to run audited actions rather than lose their events if the sink goes away.
    audit::set_failure_mode(audit::FailureMode::Refuse);

    acme_session()?;
    globex_session()?;

    // Durable and sealed from here on; dropping the guard would also drain, sync and seal.
    audit_guard.seal()?;
    drop(audit_guard);

    let report = audit::verify::verify_paths(&[&dir], &Default::default())?;
    if let Some(damage) = report.damages().next() {
        return Err(format!("the log does not verify: {damage}").into());
    }
    println!("Audit log written to {}/", dir.display());
    for chain in &report.chains {
        println!(
            "  chain {:<8} {:>4} records, head {}",
            chain.chain, chain.count, chain.head
        );
    }
    println!();
    println!(
        "Verify it:            cargo run -p audit-log-cli -- verify {}",
        dir.display()
    );
    println!(
        "Export one tenant:    cargo run -p audit-log-cli -- export {} --tenant acme --from 2020-01-01 --format csv",
        dir.display()
    );
    println!("Look at the records:  cat {}/chains/acme/*.jsonl", dir.display());
    Ok(())
}

// ---- The application: handlers annotated with the actions they perform. ----

#[derive(Debug)]
struct AppError(&'static str);

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl Error for AppError {}

/// Signs a user in. The password is an argument, and arguments are never recorded unless
/// named in the attribute: it cannot leak into the log.
#[audited(action = "user.login", resource = "user", id = user_id)]
fn login(user_id: &str, password: &str) -> Result<(), AppError> {
    if password == "correct horse battery staple" {
        Ok(())
    } else {
        Err(AppError("invalid password"))
    }
}

#[audited(action = "role.grant", resource = "user", id = user_id, context(role = role))]
fn grant_role(user_id: &str, role: &str) -> Result<(), AppError> {
    let _ = (user_id, role);
    Ok(())
}

#[audited(action = "customer_record.read", resource = "customer", id = customer.id)]
fn show_customer(customer: &Customer) -> String {
    format!("{} ({})", customer.name, customer.plan)
}

#[audited(action = "user.impersonate", resource = "user", id = target_user)]
fn impersonate(target_user: &str) -> Result<(), AppError> {
    let _ = target_user;
    Ok(())
}

/// The report's id is only known once it exists: taken from the return value.
#[audited(action = "data.export", resource = "report", id = return.id)]
fn export_invoices(quarter: &str) -> Result<Report, AppError> {
    Ok(Report {
        id: format!("rpt_{quarter}_invoices"),
    })
}

#[audited(action = "invoice.delete", resource = "invoice", id = invoice_id, reason = "invoices are immutable after issue")]
fn delete_invoice(invoice_id: &str) -> Result<(), AppError> {
    let _ = invoice_id;
    Err(AppError("permission denied"))
}

struct Report {
    id: String,
}

/// A model whose changes are audited with before/after state; the card number is redacted at
/// capture and never reaches the log.
#[derive(Clone, AuditModel, serde::Serialize)]
#[audit(resource = "customer")]
struct Customer {
    id: String,
    name: String,
    plan: String,
    seats: u32,
    #[audit(redact)]
    card_number: String,
}

fn change_plan(customer: &mut Customer, plan: &str, seats: u32) -> Result<(), audit::AuditError> {
    let before = customer.clone();
    customer.plan = plan.into();
    customer.seats = seats;
    AuditEvent::new("billing.update", Category::Mutation)
        .model_change(Some(&before), Some(&*customer))
        .emit()
}

// ---- Requests, each with the scope that authentication middleware would set. ----

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
    let failed = request_scope("acme", anonymous, "203.0.113.7", "req_0001").in_scope(|| login("usr_alice", "hunter2"));
    assert!(failed.is_err());
    let alice = Actor::user("usr_alice", AuthMethod::Mfa).with_name("Alice Martin");
    request_scope("acme", alice.clone(), "203.0.113.7", "req_0002")
        .in_scope(|| login("usr_alice", "correct horse battery staple"))?;

    // Alice (an admin) grants a role, reads a customer record with PII, changes a plan.
    request_scope("acme", alice.clone(), "203.0.113.7", "req_0003")
        .in_scope(|| grant_role("usr_bob", "billing_admin"))?;
    let mut customer = Customer {
        id: "cust_abc123".into(),
        name: "Initech GmbH".into(),
        plan: "starter".into(),
        seats: 5,
        card_number: "4111 1111 1111 1111".into(),
    };
    request_scope("acme", alice.clone(), "203.0.113.7", "req_0004").in_scope(|| show_customer(&customer));
    request_scope("acme", alice, "203.0.113.7", "req_0005").in_scope(|| change_plan(&mut customer, "business", 25))?;
    Ok(())
}

fn globex_session() -> Result<(), Box<dyn Error>> {
    // A support engineer impersonates a customer's user, who then exports data.
    let support = Actor::user("usr_carol", AuthMethod::Sso).impersonated_by(ActorType::User, "usr_support_dan");
    request_scope("globex", support, "198.51.100.23", "req_0100").in_scope(|| -> Result<(), AppError> {
        impersonate("usr_carol")?;
        export_invoices("2026q3")?;
        Ok(())
    })?;
    // A service account's API call is refused: recorded as a failure with a safe reason.
    let billing_bot = Actor::service("svc_billing_sync", AuthMethod::ApiKey);
    let refused =
        request_scope("globex", billing_bot, "10.0.4.17", "req_0101").in_scope(|| delete_invoice("inv_2025_0042"));
    assert!(refused.is_err());
    Ok(())
}
