use audit::audited;

trait Billing {
    #[audited(action = "billing.update")]
    fn update(&self) -> Result<(), String>;
}

fn main() {}
