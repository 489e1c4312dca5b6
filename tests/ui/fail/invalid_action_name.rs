use audit::audited;

#[audited(action = "Billing-Update")]
fn update_billing() {}

fn main() {}
