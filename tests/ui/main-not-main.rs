#[serfn::main]
fn run() {}

fn main() {
    run();
}
