use audit::audited;

struct CustomerId(u64);

#[audited(action = "billing.update", resource = "customer", id = customer)]
fn update_billing(customer: CustomerId) {}

fn main() {}
