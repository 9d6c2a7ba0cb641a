//! Placeholder, being written.
fn main() {
    serfn::worker::init();
}
