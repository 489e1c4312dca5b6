//! Free sync fns of every shape.

use audit::audited;
use std::fmt::Display;

#[path = "sink/mod.rs"]
mod sink;

#[derive(Debug)]
pub struct BillingError(String);

impl Display for BillingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BillingError {}

/// Returns nothing.
#[audited(action = "billing.update")]
fn unit() {}

/// Returns a value: always a success.
#[must_use]
#[audited(action = "billing.update")]
fn value(x: u32) -> u32 {
    x + 1
}

/// Returns a `Result`, with `?` and an early `return`.
#[audited(action = "billing.update", resource = "customer", id = customer_id)]
fn result(customer_id: &str, plan: &str) -> Result<usize, BillingError> {
    if plan.is_empty() {
        return Err(BillingError("no plan".into()));
    }
    let n: usize = plan
        .len()
        .to_string()
        .parse()
        .map_err(|_| BillingError("not a number".into()))?;
    Ok(n)
}

/// A `Result` alias and a boxed error, converted by `?`.
#[audited(action = "billing.update")]
fn io_result(path: &str) -> std::io::Result<()> {
    if path.is_empty() {
        return Err(std::io::Error::other("empty path"));
    }
    Ok(())
}

#[audited(action = "billing.update")]
fn boxed_error(text: &str) -> Result<u64, Box<dyn std::error::Error + Send + Sync>> {
    Ok(text.parse::<u64>()?)
}

/// Generic, with a where clause.
#[audited(action = "billing.update", resource = "customer", id = id)]
fn generic<I, T>(id: I, items: Vec<T>) -> Option<T>
where
    I: Display,
    T: Clone,
{
    items.first().cloned()
}

/// Lifetimes, explicit and elided.
#[audited(action = "customer_record.read")]
fn first_word<'a>(text: &'a str) -> &'a str {
    text.split(' ').next().unwrap_or(text)
}

#[audited(action = "customer_record.read")]
fn elided(text: &str) -> &str {
    text.trim()
}

/// `impl Trait` in return position, alone and in a `Result`.
#[audited(action = "report.generate")]
fn rows(n: u32) -> impl Iterator<Item = u32> + Clone {
    0..n
}

#[audited(action = "report.generate")]
fn rows_checked(n: u32) -> Result<impl Iterator<Item = u32>, BillingError> {
    if n > 100 {
        return Err(BillingError("too many".into()));
    }
    Ok((0..n).map(|i| i * 2))
}

/// `impl Trait` arguments, patterns and `mut` bindings.
#[audited(action = "billing.update", context(total = total))]
fn patterns((a, b): (u32, u32), mut total: u32, label: impl Display) -> String {
    total += a + b;
    format!("{label}: {total}")
}

/// `unsafe` and `extern "C"` fns.
///
/// # Safety
/// None needed; only the shape matters.
#[audited(action = "settings.update")]
unsafe fn dangerous(x: u8) -> u8 {
    x
}

#[audited(action = "settings.update")]
extern "C" fn callback(x: i32) -> i32 {
    x * 2
}

fn main() {
    let ((), count) = sink::with_sink(|| {
        unit();
        assert_eq!(value(1), 2);
        assert_eq!(result("cust_1", "pro").unwrap(), 3);
        assert_eq!(result("cust_1", "").unwrap_err().0, "no plan");
        assert!(io_result("").is_err());
        assert_eq!(boxed_error("12").unwrap(), 12);
        assert!(boxed_error("x").is_err());
        assert_eq!(generic("cust_1", vec![1, 2]), Some(1));
        assert_eq!(first_word("hello world"), "hello");
        assert_eq!(elided(" x "), "x");
        assert_eq!(rows(3).clone().sum::<u32>(), 3);
        assert_eq!(rows_checked(3).unwrap().sum::<u32>(), 6);
        assert!(rows_checked(300).is_err());
        assert_eq!(patterns((1, 2), 3, "sum"), "sum: 6");
        assert_eq!(unsafe { dangerous(7) }, 7);
        assert_eq!(callback(2), 4);
    });
    assert_eq!(count, 16);
}
