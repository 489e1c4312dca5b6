//! Every argument of `#[audited]`, in the forms the documentation gives.

use audit::{Actor, AuditError, AuthMethod, audited};

#[path = "sink/mod.rs"]
mod sink;

#[derive(Debug)]
pub enum PaymentError {
    Declined { card_last4: String },
    Audit(AuditError),
}

impl PaymentError {
    fn code(&self) -> &'static str {
        match self {
            PaymentError::Declined { .. } => "declined",
            PaymentError::Audit(_) => "audit",
        }
    }
}

impl std::fmt::Display for PaymentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PaymentError::Declined { card_last4 } => write!(f, "card ending {card_last4} declined"),
            PaymentError::Audit(e) => e.fmt(f),
        }
    }
}

impl From<AuditError> for PaymentError {
    fn from(e: AuditError) -> Self {
        PaymentError::Audit(e)
    }
}

fn safe_reason(e: &PaymentError) -> String {
    format!("payment failed: {}", e.code())
}

pub struct Request {
    tenant_id: u32,
    customer: Customer,
    request_id: String,
}

pub struct Customer {
    id: String,
}

impl Customer {
    fn id(&self) -> &str {
        &self.id
    }
}

pub struct Session {
    user: String,
}

pub struct LoginResult {
    actor: Actor,
}

#[audited(
    action = "billing.update",
    resource = "customer",
    id = req.customer.id(),
    tenant = req.tenant_id,
    context(request_id = req.request_id, "plan" = plan, ip = "203.0.113.7"),
    reason = |e: &PaymentError| e.code(),
)]
fn update_billing(req: &Request, plan: &str) -> Result<(), PaymentError> {
    if plan == "free" {
        return Err(PaymentError::Declined {
            card_last4: "4242".into(),
        });
    }
    Ok(())
}

#[audited(action = "billing.update", reason = "payment declined")]
fn charge_text() -> Result<(), PaymentError> {
    Err(PaymentError::Declined {
        card_last4: "4242".into(),
    })
}

#[audited(action = "billing.update", reason = safe_reason)]
fn charge_fn() -> Result<(), PaymentError> {
    Err(PaymentError::Declined {
        card_last4: "4242".into(),
    })
}

#[audited(action = "settings.update", actor = Actor::user(&session.user, AuthMethod::Session))]
fn change_setting(session: &Session, value: u32) -> u32 {
    value
}

#[audited(action = "user.login", actor = return.actor, resource = "user", id = return.actor.id)]
fn login(user: &str) -> Result<LoginResult, PaymentError> {
    Ok(LoginResult {
        actor: Actor::user(user, AuthMethod::Password),
    })
}

#[audited(action = "customer.create", resource = "customer", id = return.id, tenant = return.id.len())]
fn create_customer(id: String) -> Customer {
    Customer { id }
}

#[audited(action = "invoice.delete", resource = "invoice", id = invoice_id, fail_closed)]
fn delete_invoice(invoice_id: u64) -> Result<(), PaymentError> {
    let _ = invoice_id;
    Ok(())
}

#[audited(action = "data.export", fail_open)]
fn health_export() -> usize {
    0
}

#[audited(action = "warehouse.restock", vocabulary = "vocab/other.toml")]
fn restock() {}

#[allow(deprecated)]
#[audited(action = "billing.legacy_update")]
fn legacy_update() {}

fn main() {
    let ((), count) = sink::with_sink(|| {
        let req = Request {
            tenant_id: 7,
            customer: Customer { id: "cust_1".into() },
            request_id: "req_1".into(),
        };
        update_billing(&req, "pro").unwrap();
        assert_eq!(update_billing(&req, "free").unwrap_err().code(), "declined");
        assert!(charge_text().is_err());
        assert!(charge_fn().is_err());
        assert_eq!(change_setting(&Session { user: "usr_1".into() }, 3), 3);
        assert_eq!(login("usr_2").unwrap().actor.id, "usr_2");
        assert_eq!(create_customer("cust_2".into()).id, "cust_2");
        delete_invoice(9).unwrap();
        assert_eq!(health_export(), 0);
        restock();
        legacy_update();
    });
    assert_eq!(count, 11);
}
