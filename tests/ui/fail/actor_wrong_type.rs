use audit::audited;

#[audited(action = "billing.update", actor = user_id)]
fn update_billing(user_id: &str) {}

fn main() {}
