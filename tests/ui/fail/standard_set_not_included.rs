use audit::audited;

#[audited(action = "user.login", vocabulary = "vocab/no_standard.toml")]
fn login() {}

fn main() {}
