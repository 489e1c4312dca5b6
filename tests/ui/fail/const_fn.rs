use audit::audited;

#[audited(action = "billing.update")]
const fn update_billing() -> u32 {
    1
}

fn main() {}
