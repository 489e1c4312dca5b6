use audit::audited;

#[derive(Debug)]
struct BillingError;

#[audited(action = "billing.update")]
fn update_billing() -> Result<(), BillingError> {
    Ok(())
}

fn main() {}
