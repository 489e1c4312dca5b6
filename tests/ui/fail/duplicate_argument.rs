use audit::audited;

#[audited(action = "billing.update", action = "invoice.send")]
fn update_billing() {}

fn main() {}
