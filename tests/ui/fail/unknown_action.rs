use audit::audited;

#[audited(action = "biling.update")]
fn update_billing() {}

fn main() {}
