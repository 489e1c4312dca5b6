use audit::AuditModel;

#[derive(AuditModel)]
#[audit(resource = "customer", table = "customers")]
struct Customer {
    #[audit(id)]
    id: u64,
    #[audit(id)]
    number: u64,
    #[audit(redact, skip)]
    ssn: String,
    #[audit(redcat)]
    email: String,
}

#[derive(AuditModel)]
enum Status {
    Active,
}

fn main() {}
