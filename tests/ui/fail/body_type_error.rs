use audit::audited;

#[audited(action = "billing.update")]
fn plan_length(plan: &str) -> u32 {
    if plan.is_empty() {
        return "none";
    }
    plan.len()
}

#[audited(action = "billing.update")]
async fn update_plan(plan: &str) -> usize {
    plan
}

fn main() {}
