use audit::audited;

#[audited(action = "billing.update", reason = "declined")]
fn update_billing() -> bool {
    true
}

fn main() {}
