//! A dedicated worker program: a binary that links the functions it may be
//! sent (here `examples/shared/functions.rs`) and serves a pool.
//!
//! A pool uses it with `Pool::builder().program("path/to/worker")`. Run by
//! hand, it says what it is for and exits.

#[path = "shared/functions.rs"]
mod functions;

fn main() {
    serfn::worker::init(); // serves the pool that started this process, then exits
    eprintln!(
        "this is a serfn worker program: a pool starts it with Pool::builder().program(..); \
         it registers {} functions",
        serfn::registry::functions().len()
    );
    std::process::exit(2);
}
