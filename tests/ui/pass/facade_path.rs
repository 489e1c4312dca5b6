//! The attribute used by path, with nothing imported from `audit` (Contract 4 of DESIGN.md).

#[audit::audited(action = "customer_record.read", resource = "customer", id = id)]
fn show(id: u64) -> Option<u64> {
    Some(id)
}

#[derive(audit::AuditModel)]
struct Invoice {
    id: u64,
}

#[path = "sink/mod.rs"]
mod sink;

fn main() {
    let (shown, count) = sink::with_sink(|| show(3));
    assert_eq!((shown, count), (Some(3), 1));
    let invoice = Invoice { id: 1 };
    assert_eq!(audit::AuditModel::audit_id(&invoice), "1");
    assert_eq!(<Invoice as audit::AuditModel>::RESOURCE_TYPE, "invoice");
}
