use audit::audited;

#[audited(action = "billing.update", fail_closed, fail_open)]
fn update_billing() {}

fn main() {}
