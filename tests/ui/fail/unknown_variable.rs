use audit::audited;

#[audited(action = "billing.update", resource = "customer", id = custmer_id)]
fn update_billing(customer_id: &str) {}

fn main() {}
