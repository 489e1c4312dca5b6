use audit::audited;

#[audited(action = "customer.create", resource = "customer", id = return.id)]
fn create_customer(name: &str) {}

fn main() {}
