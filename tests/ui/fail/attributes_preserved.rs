#![deny(unused_must_use, missing_docs)]
//! The attributes and doc comments of an audited fn stay on it.

use audit::audited;

/// Documented: `missing_docs` is satisfied.
#[must_use = "the new balance should be checked"]
#[audited(action = "billing.update")]
pub fn deposit(amount: u64) -> u64 {
    amount
}

#[audited(action = "billing.update")]
pub fn undocumented() {}

fn main() {
    deposit(5);
}
