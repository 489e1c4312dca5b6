//! `#[derive(AuditModel)]` on named, tuple and generic structs.

use audit::{AuditEvent, AuditModel, Category};
use serde::Serialize;

#[derive(AuditModel, Serialize, Clone)]
#[audit(resource = "customer")]
pub struct Customer {
    id: u64,
    #[audit(rename = "full_name")]
    name: String,
    #[audit(redact)]
    ssn: String,
    #[audit(skip)]
    cache: Vec<u8>,
    tags: Vec<String>,
}

/// Resource type from the name (`billing_plan`), id marked explicitly.
#[derive(AuditModel)]
pub struct BillingPlan {
    #[audit(id)]
    code: &'static str,
    price_cents: u32,
}

#[derive(AuditModel)]
#[audit(resource = "tag")]
pub struct Tag(#[audit(id)] u32, String);

#[derive(AuditModel)]
pub struct Versioned<T, Id> {
    id: Id,
    value: T,
    #[audit(redact)]
    secret: T,
}

fn main() {
    audit::set_fingerprint_key(b"a deployment key of enough bytes").unwrap();
    let before = Customer {
        id: 7,
        name: "Ada".into(),
        ssn: "078-05-1120".into(),
        cache: vec![1],
        tags: vec![],
    };
    let mut after = before.clone();
    after.tags.push("vip".into());
    assert_eq!(Customer::RESOURCE_TYPE, "customer");
    assert_eq!(Customer::REDACTED_FIELDS, &["ssn"]);
    assert_eq!(Customer::SKIPPED_FIELDS, &["cache"]);
    assert_eq!(after.audit_id(), "7");
    assert_eq!(
        after.audit_snapshot(),
        serde_json::json!({"id": 7, "full_name": "Ada", "ssn": audit::fingerprint("078-05-1120"), "tags": ["vip"]})
    );
    assert!(!after.audit_snapshot().to_string().contains("078-05-1120"));
    // The default actions, found in the vocabulary at compile time.
    assert_eq!(
        Customer::CREATE_ACTION,
        audit::ModelAction::Checked(audit::action!("customer.create"))
    );
    assert_eq!(BillingPlan::CREATE_ACTION, audit::ModelAction::Missing("billing_plan.create"));
    let event = AuditEvent::new("customer.update", Category::Mutation).model_change(Some(&before), Some(&after));
    drop(event);

    let plan = BillingPlan {
        code: "pro",
        price_cents: 900,
    };
    assert_eq!(BillingPlan::RESOURCE_TYPE, "billing_plan");
    assert_eq!(plan.audit_resource().id, "pro");
    assert_eq!(
        plan.audit_snapshot(),
        serde_json::json!({"code": "pro", "price_cents": 900})
    );

    let tag = Tag(3, "vip".into());
    assert_eq!(tag.audit_id(), "3");
    assert_eq!(tag.audit_snapshot(), serde_json::json!({"0": 3, "1": "vip"}));

    let v = Versioned {
        id: "v1",
        value: 5u8,
        secret: 6u8,
    };
    assert_eq!(v.audit_id(), "v1");
    assert_eq!(
        v.audit_snapshot(),
        serde_json::json!({"id": "v1", "value": 5, "secret": audit::fingerprint(&6u8)})
    );
}
