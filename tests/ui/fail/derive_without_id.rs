use audit::AuditModel;

#[derive(AuditModel)]
struct Customer {
    customer_number: u64,
    name: String,
}

fn main() {}
