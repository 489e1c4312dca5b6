use audit::audited;

#[audited(action = "billing.update", resource = "customer")]
fn update_billing(customer_id: &str) {}

#[audited(action = "billing.update", id = customer_id)]
fn update_plan(customer_id: &str) {}

fn main() {}
