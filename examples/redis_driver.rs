//! The seed's job on a Redis fleet: the gradient descent of
//! `examples/gradient_descent.rs`, the same code, sent through Redis to
//! whatever `redis_worker`s are running, and checked against a local run.
//!
//! ```sh
//! cargo run --release --features redis --example redis_worker -- redis://HOST:6379   # on each machine
//! cargo run --release --features redis --example redis_driver -- redis://HOST:6379   # once
//! ```
//!
//! With `SERFN_KEY` set (the workers' secret), every task and result is signed.

#[path = "shared/descent.rs"]
mod descent;

use std::error::Error;
use std::time::Instant;

use descent::{make_descent, samples, starting_points, Fit};
use serfn::redis::RedisExecutor;

fn main() -> Result<(), Box<dyn Error>> {
    let url = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("SERFN_REDIS_URL").ok())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".into());
    let starts: usize = std::env::var("SERFN_STARTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    let mut builder = RedisExecutor::builder(&url);
    if let Ok(prefix) = std::env::var("SERFN_PREFIX") {
        builder = builder.prefix(prefix);
    }
    if let Ok(secret) = std::env::var("SERFN_KEY") {
        builder = builder.key(serfn::codec::Key::new(secret));
    }
    let fleet = builder.build()?;

    let (xs, ys) = samples(2_000);
    let descent = make_descent(xs, ys, 0.01, 300);
    let points = starting_points(starts);

    let clock = Instant::now();
    // The same call as on a pool.
    let fits = fleet
        .map(&descent, points.iter().copied())
        .collect::<serfn::Result<Vec<Fit>>>()?;
    let fleet_time = clock.elapsed();

    let clock = Instant::now();
    let local: Vec<Fit> = points.iter().map(|&p| descent.call(p)).collect();
    let local_time = clock.elapsed();
    assert_eq!(
        fits, local,
        "the fleet must compute exactly what a local call does"
    );

    let (best, worse) = descent::summary(&fits).ok_or("no starting points")?;
    println!(
        "fitted y = a·sin(b·x) + c to 2,000 points from {starts} starting points, through {url}"
    );
    println!(
        "best fit: a = {:.3}, b = {:.3}, c = {:.3}, loss = {:.5} (true: 2.5, 1.7, 0.3); {worse} ended worse",
        best.a, best.b, best.c, best.loss
    );
    println!(
        "local {:.3} s, fleet {:.3} s; {:?}",
        local_time.as_secs_f64(),
        fleet_time.as_secs_f64(),
        fleet.stats()
    );
    Ok(())
}
