use audit::audited;

#[audited(action = "billing.update", vocabulary = "vocab/does-not-exist.toml")]
fn update_billing() {}

fn main() {}
