use audit::audited;

fn main() {
    // A typed action is checked at compile time.
    let _ = audit::action!("acess.denied");
}

// A near miss of a standard context key would hide the value from searches for it.
#[audited(action = "billing.update", context(reqest_id = id, requestId = id))]
fn update(id: &str) {}
