use audit::audited;

#[audited(action = "billing.update", vocabulary = "vocab/duplicate.toml")]
fn update_billing() {}

fn main() {}
