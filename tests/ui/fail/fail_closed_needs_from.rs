use audit::audited;

#[derive(Debug)]
struct BillingError;

impl std::fmt::Display for BillingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("billing failed")
    }
}

#[audited(action = "billing.update", fail_closed)]
fn update_billing() -> Result<(), BillingError> {
    Ok(())
}

fn main() {}
