use audit::AuditModel;

struct Secret(String);

#[derive(AuditModel)]
struct Customer {
    id: u64,
    secret: Secret,
}

fn main() {}
