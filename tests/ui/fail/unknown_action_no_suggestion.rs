use audit::audited;

#[audited(action = "warehouse.restock")]
fn restock() {}

fn main() {}
