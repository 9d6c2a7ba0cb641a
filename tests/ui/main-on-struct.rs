#[serfn::main]
struct App;

fn main() {}
