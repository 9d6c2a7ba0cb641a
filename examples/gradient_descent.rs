//! The main job: a gradient-descent function built at run time as a closure
//! over data, run from many starting points across a pool of worker
//! processes, checked against a sequential run.
//!
//! `cargo run --release --example gradient_descent [-- --workers N --starts N]`
//!
//! The model is a curve `y = a·sin(b·x) + c` fitted by least squares: its
//! loss has many local minima in `b`, which is why one restarts from many
//! points and keeps the best (the seed's own case).

#[path = "shared/descent.rs"]
mod descent;

use std::error::Error;
use std::time::Instant;

use descent::{make_descent, samples, starting_points, Fit};
use serfn::Pool;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> Result<(), Box<dyn Error>> {
    serfn::worker::init(); // first: a process the pool starts turns into a worker here

    let workers = arg(
        "--workers",
        std::thread::available_parallelism().map_or(2, usize::from),
    );
    let starts = arg("--starts", 64);
    let (xs, ys) = samples(2_000);
    let descent = make_descent(xs, ys, 0.01, 300);
    let points = starting_points(starts);

    let clock = Instant::now();
    let pool = Pool::builder().workers(workers).build()?;
    let started = clock.elapsed();

    let clock = Instant::now();
    let parallel = pool
        .map(&descent, points.iter().copied())
        .on_progress(|p| eprint!("\r{}/{} starting points", p.done, p.total.unwrap_or(0)))
        .collect::<serfn::Result<Vec<Fit>>>()?;
    let parallel_time = clock.elapsed();
    eprintln!();

    let clock = Instant::now();
    let sequential: Vec<Fit> = points.iter().map(|&p| descent.call(p)).collect();
    let sequential_time = clock.elapsed();

    assert_eq!(
        parallel, sequential,
        "the pool must compute exactly what a local call does"
    );
    let (best, local_minima) = descent::summary(&parallel).ok_or("no starting points")?;

    println!("fitted y = a·sin(b·x) + c to 2,000 points from {starts} starting points");
    println!(
        "best fit: a = {:.3}, b = {:.3}, c = {:.3}, loss = {:.5} (true: 2.5, 1.7, 0.3)",
        best.a, best.b, best.c, best.loss
    );
    println!("{local_minima} of {starts} descents ended in a worse local minimum");
    println!(
        "pool of {workers} workers started in {:.1} ms; {:?}",
        started.as_secs_f64() * 1e3,
        pool.stats()
    );
    println!(
        "sequential {:.3} s, pool {:.3} s: speed-up {:.2}x",
        sequential_time.as_secs_f64(),
        parallel_time.as_secs_f64(),
        sequential_time.as_secs_f64() / parallel_time.as_secs_f64()
    );
    Ok(())
}
