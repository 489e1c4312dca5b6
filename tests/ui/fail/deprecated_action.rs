#![deny(deprecated)]

use audit::audited;

#[audited(action = "billing.legacy_update")]
fn update_billing() {}

fn main() {}
