use audit::audited;

#[audited(resource = "customer", id = customer_id)]
fn update_billing(customer_id: &str) {}

#[audited]
fn bare() {}

fn main() {}
