use audit::audited;

#[audited(action = billing.update)]
fn update_billing() {}

#[audited(action = "billing.update", resource = customer, id = 1)]
fn update_customer() {}

fn main() {}
