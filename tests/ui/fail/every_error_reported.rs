use audit::audited;

#[audited(
    action = "invoice.delet",
    resource = "invoice",
    fail_closed = true,
    tenant,
    context(request_id = request_id),
    reason = "deleted",
)]
fn delete_invoice(request_id: &str) {}

fn main() {}
