//! What `#[audited]` records at run time: each outcome (ok, err, panic, cancelled), ambient
//! and explicit actor and tenant, the resource from arguments, their fields or the returned
//! value, context, and that arguments are never recorded unless named. Every test reads the
//! records back from a real file store and verifies the chains.

mod macro_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use audit::{Actor, AuditScope, AuthMethod, WithAuditScope, audited};
use macro_support::{record, record_async};

#[derive(Debug, PartialEq)]
struct BillingError {
    code: &'static str,
    detail: String,
}

impl std::fmt::Display for BillingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

fn declined() -> BillingError {
    BillingError {
        code: "declined",
        detail: "card 4242 declined".into(),
    }
}

#[audited(action = "billing.update", resource = "customer", id = customer_id)]
fn update_billing(customer_id: &str, plan: &str) -> Result<u32, BillingError> {
    if plan == "bad" {
        return Err(declined());
    }
    Ok(7)
}

#[test]
fn ok_is_a_success_with_the_category_of_the_vocabulary() {
    let (result, recorded) = record(|| update_billing("cust_1", "pro"));
    assert_eq!(result, Ok(7));
    let r = recorded.one("billing.update");
    assert_eq!(r["category"], "mutation");
    assert_eq!(r["outcome"], serde_json::json!({"status": "success"}));
    assert_eq!(r["resource"], serde_json::json!({"type": "customer", "id": "cust_1"}));
    assert_eq!(
        r["actor"],
        serde_json::json!({"type": "system", "id": "unknown", "auth": "none"})
    );
}

#[test]
fn err_is_a_failure_with_the_display_of_the_error() {
    let (result, recorded) = record(|| update_billing("cust_1", "bad"));
    assert_eq!(result, Err(declined()));
    let r = recorded.one("billing.update");
    assert_eq!(
        r["outcome"],
        serde_json::json!({"status": "failure", "reason": "declined: card 4242 declined"})
    );
}

#[audited(action = "billing.update", reason = "payment declined")]
fn charge_with_text() -> Result<(), BillingError> {
    Err(declined())
}

#[audited(action = "invoice.send", reason = |e: &BillingError| e.code)]
fn charge_with_fn() -> Result<(), BillingError> {
    Err(declined())
}

#[test]
fn a_safer_reason_replaces_the_display() {
    let (_, recorded) = record(|| {
        let _ = charge_with_text();
        let _ = charge_with_fn();
    });
    assert_eq!(recorded.one("billing.update")["outcome"]["reason"], "payment declined");
    assert_eq!(recorded.one("invoice.send")["outcome"]["reason"], "declined");
    assert!(
        !recorded.lines.iter().any(|l| l.contains("4242")),
        "the unsafe detail must not be recorded"
    );
}

static BODY_RUNS: AtomicUsize = AtomicUsize::new(0);

#[audited(action = "invoice.delete", resource = "invoice", id = invoice_id)]
fn delete_invoice(invoice_id: u64) -> Result<(), BillingError> {
    BODY_RUNS.fetch_add(1, Ordering::SeqCst);
    if invoice_id == 0 {
        panic!("invoice 0 is special");
    }
    Ok(())
}

#[test]
fn a_panic_is_recorded_as_a_failure_and_unwinds_on() {
    let (caught, recorded) = record(|| std::panic::catch_unwind(|| delete_invoice(0)));
    let payload = caught.expect_err("the panic continues past the audited fn");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"invoice 0 is special"));
    let r = recorded.one("invoice.delete");
    assert_eq!(
        r["outcome"],
        serde_json::json!({"status": "failure", "reason": "panicked"})
    );
    assert_eq!(r["resource"]["id"], "0");
    assert!(
        !recorded.lines.iter().any(|l| l.contains("special")),
        "the panic message is not recorded"
    );
}

#[audited(action = "customer_record.read", resource = "customer", id = id)]
async fn read_customer(id: String, delay_ms: u64) -> Result<String, BillingError> {
    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    if id.is_empty() {
        return Err(BillingError {
            code: "missing",
            detail: "no id".into(),
        });
    }
    Ok(format!("record of {id}"))
}

#[test]
fn async_outcomes() {
    let (results, recorded) = record_async(async {
        (
            read_customer("cust_1".into(), 1).await,
            read_customer(String::new(), 1).await,
        )
    });
    assert_eq!(results.0.as_deref(), Ok("record of cust_1"));
    assert!(results.1.is_err());
    let outcomes: Vec<&serde_json::Value> = recorded.records.iter().map(|r| &r["outcome"]).collect();
    assert_eq!(recorded.records.len(), 2);
    assert!(outcomes.contains(&&serde_json::json!({"status": "success"})));
    assert!(outcomes.contains(&&serde_json::json!({"status": "failure", "reason": "missing: no id"})));
}

#[test]
fn a_dropped_future_is_recorded_as_cancelled_in_the_scope_it_started_in() {
    let scope = AuditScope::new()
        .actor(Actor::user("usr_1", AuthMethod::Sso))
        .tenant("acme");
    let (timed_out, recorded) = record_async(async {
        // The timeout drops the scoped future from outside the scope.
        tokio::time::timeout(
            Duration::from_millis(20),
            read_customer("cust_9".into(), 10_000).with_audit_scope(scope),
        )
        .await
        .is_err()
    });
    assert!(timed_out);
    let r = recorded.one("customer_record.read");
    assert_eq!(r["outcome"]["status"], "failure");
    assert_eq!(
        r["outcome"]["reason"],
        "cancelled: the future was dropped before it completed"
    );
    assert_eq!(r["tenant"], "acme");
    assert_eq!(r["chain"], "acme");
    assert_eq!(r["actor"]["id"], "usr_1");
    assert_eq!(r["resource"]["id"], "cust_9");
}

#[test]
fn a_future_dropped_before_its_first_poll_ran_nothing_and_records_nothing() {
    let ((), recorded) = record(|| drop(read_customer("cust_1".into(), 1)));
    assert!(recorded.records.is_empty());
}

#[audited(action = "report.generate")]
async fn panicking_report(fail: bool) -> usize {
    tokio::task::yield_now().await;
    if fail {
        panic!("report failed");
    }
    1
}

#[test]
fn an_async_panic_is_recorded_once_as_a_panic() {
    let (joined, recorded) = record(|| {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        // The panic is caught by the task and the future dropped afterwards: one record.
        rt.block_on(async { tokio::task::spawn(panicking_report(true).in_current_audit_scope()).await })
    });
    assert!(joined.unwrap_err().is_panic());
    let r = recorded.one("report.generate");
    assert_eq!(
        r["outcome"],
        serde_json::json!({"status": "failure", "reason": "panicked"})
    );
}

#[audited(action = "settings.update", actor = Actor::system("config-sync"), tenant = tenant)]
fn sync_settings(tenant: &str) -> usize {
    3
}

#[audited(action = "settings.update")]
fn ambient_settings() -> usize {
    4
}

#[test]
fn ambient_and_explicit_actor_and_tenant() {
    let scope = AuditScope::new()
        .actor(Actor::user("usr_1", AuthMethod::Password))
        .tenant("acme")
        .context("request_id", "req_1");
    let ((), recorded) = record(|| {
        scope.in_scope(|| {
            ambient_settings();
            sync_settings("globex");
        })
    });
    let ambient = recorded.records.iter().find(|r| r["tenant"] == "acme").unwrap();
    assert_eq!(
        ambient["actor"],
        serde_json::json!({"type": "user", "id": "usr_1", "auth": "password"})
    );
    assert_eq!(ambient["context"]["request_id"], "req_1");
    let explicit = recorded.records.iter().find(|r| r["tenant"] == "globex").unwrap();
    assert_eq!(
        explicit["actor"],
        serde_json::json!({"type": "system", "id": "config-sync", "auth": "none"})
    );
    assert_eq!(explicit["chain"], "globex");
    assert_eq!(
        explicit["context"]["request_id"], "req_1",
        "ambient context still fills in"
    );
}

struct Request {
    customer: Customer,
    request_id: String,
    card_number: String,
}

#[derive(Clone)]
struct Customer {
    id: u64,
}

struct Session {
    actor: Actor,
    token: String,
}

#[audited(
    action = "customer_record.read",
    resource = "customer",
    id = req.customer.id,
    context(request_id = req.request_id, "reason" = why),
)]
fn show(req: &Request, why: &str) -> String {
    format!("{} {}", req.card_number, why)
}

#[audited(action = "customer.create", resource = "customer", id = return.id)]
fn create_customer(id: u64) -> Result<Customer, BillingError> {
    if id == 0 {
        return Err(BillingError {
            code: "invalid",
            detail: "id 0".into(),
        });
    }
    Ok(Customer { id })
}

#[audited(action = "user.login", actor = return.actor, resource = "session", id = return.token.len())]
fn login(user: &str) -> Result<Session, BillingError> {
    Ok(Session {
        actor: Actor::user(user, AuthMethod::Mfa),
        token: "tok_secret".into(),
    })
}

#[test]
fn resource_from_fields_and_from_the_returned_value() {
    let req = Request {
        customer: Customer { id: 42 },
        request_id: "req_7".into(),
        card_number: "4111111111111111".into(),
    };
    let ((), recorded) = record(|| {
        show(&req, "support ticket 12");
        create_customer(5).unwrap();
        login("usr_5").unwrap();
    });
    let shown = recorded.one("customer_record.read");
    assert_eq!(shown["resource"], serde_json::json!({"type": "customer", "id": "42"}));
    assert_eq!(shown["context"]["request_id"], "req_7");
    assert_eq!(shown["context"]["reason"], "support ticket 12");
    assert_eq!(
        recorded.one("customer.create")["resource"],
        serde_json::json!({"type": "customer", "id": "5"})
    );
    let login = recorded.one("user.login");
    assert_eq!(
        login["actor"],
        serde_json::json!({"type": "user", "id": "usr_5", "auth": "mfa"})
    );
    assert_eq!(login["category"], "authentication");
    assert_eq!(login["resource"]["id"], "10");
    for line in &recorded.lines {
        assert!(
            !line.contains("4111"),
            "arguments are never recorded unless named: {line}"
        );
        assert!(
            !line.contains("tok_secret"),
            "return values are never recorded unless named: {line}"
        );
    }
}

#[test]
fn a_failed_create_has_no_resource_id_to_record() {
    let (result, recorded) = record(|| create_customer(0));
    assert!(result.is_err());
    let r = recorded.one("customer.create");
    assert!(r.get("resource").is_none(), "{r}");
    assert_eq!(r["outcome"]["reason"], "invalid: id 0");
}

#[test]
fn the_event_is_stamped_when_the_call_ends() {
    #[audited(action = "report.generate")]
    fn slow() {
        std::thread::sleep(Duration::from_millis(30));
    }
    let start = audit::Timestamp::now();
    let ((), recorded) = record(slow);
    let stamped = audit::Timestamp::parse(recorded.one("report.generate")["timestamp"].as_str().unwrap()).unwrap();
    assert!(stamped.unix_micros() - start.unix_micros() >= 30_000);
}
