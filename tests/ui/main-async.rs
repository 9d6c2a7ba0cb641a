#[serfn::main]
async fn main() {}
