use audit::audited;

#[audited(action = "billing.update", resorce = "customer", id = customer_id)]
fn update_billing(customer_id: &str) {}

fn main() {}
