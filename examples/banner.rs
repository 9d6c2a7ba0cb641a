//! `#[serfn::main]`: the pool's workers run this same program, yet the
//! banner prints once, because the attribute calls `serfn::worker::init()`
//! before the body. `tests/test_main.rs` runs it and checks its output.

#[serfn::main]
fn main() -> Result<(), serfn::Error> {
    println!("banner: printed once");
    let pool = serfn::Pool::builder().workers(2).build()?;
    let pid = serfn::closure!("pid", [], move |x: u64| -> (u64, u32) {
        (2 * x, std::process::id())
    });
    let results: Vec<(u64, u32)> = pool.map(&pid, 1..=8).collect::<serfn::Result<_>>()?;
    let doubled: Vec<u64> = results.iter().map(|(x, _)| *x).collect();
    let in_workers = results.iter().all(|(_, pid)| *pid != std::process::id());
    println!("doubled: {doubled:?}, all in workers: {in_workers}");
    Ok(())
}
