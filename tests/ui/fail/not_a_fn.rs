use audit::audited;

#[audited(action = "billing.update")]
struct Billing {
    plan: String,
}

#[audited(action = "billing.update")]
impl Billing {
    fn update(&mut self) {}
}

fn main() {}
