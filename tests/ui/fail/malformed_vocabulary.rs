use audit::audited;

#[audited(action = "billing.update", vocabulary = "vocab/malformed.toml")]
fn update_billing() {}

fn main() {}
