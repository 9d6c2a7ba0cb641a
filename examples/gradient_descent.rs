//! The main job: a gradient-descent function built at run time as a closure
//! over data, run from many starting points across a pool of worker
//! processes, checked against a sequential run.
//!
//! `cargo run --release --example gradient_descent [-- --workers N --starts N]`
//!
//! The model is a curve `y = a·sin(b·x) + c` fitted by least squares: its
//! loss has many local minima in `b`, which is why one restarts from many
//! points and keeps the best (the seed's own case).

use std::error::Error;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serfn::{Pool, SerFn};

/// Where one descent ended.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
struct Fit {
    a: f64,
    b: f64,
    c: f64,
    loss: f64,
}

/// Builds the descent as a serializable closure over the data: the capture
/// (`xs`, `ys`, the step settings) travels to each worker once.
fn make_descent(xs: Vec<f64>, ys: Vec<f64>, rate: f64, steps: u32) -> SerFn<(f64, f64, f64), Fit> {
    serfn::closure!(
        "examples::gradient_descent::descend",
        [xs: Vec<f64>, ys: Vec<f64>, rate: f64, steps: u32],
        move |a: f64, b: f64, c: f64| -> Fit {
            let n = xs.len() as f64;
            let (mut a, mut b, mut c) = (a, b, c);
            let mut loss = f64::INFINITY;
            for _ in 0..*steps {
                let (mut ga, mut gb, mut gc, mut sum) = (0.0, 0.0, 0.0, 0.0);
                for (&x, &y) in xs.iter().zip(ys.iter()) {
                    let (s, co) = (b * x).sin_cos();
                    let r = a * s + c - y;
                    sum += r * r;
                    ga += r * s;
                    gb += r * a * x * co;
                    gc += r;
                }
                loss = sum / n;
                a -= *rate * 2.0 * ga / n;
                b -= *rate * 2.0 * gb / n;
                c -= *rate * 2.0 * gc / n;
            }
            Fit { a, b, c, loss }
        }
    )
}

/// Deterministic noisy samples of `2.5·sin(1.7·x) + 0.3` (a small LCG: no
/// dependency, same data on every run).
fn samples(n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut noise = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        ((state >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 0.2
    };
    let xs: Vec<f64> = (0..n).map(|i| i as f64 * 6.0 / n as f64).collect();
    let ys = xs
        .iter()
        .map(|x| 2.5 * (1.7 * x).sin() + 0.3 + noise())
        .collect();
    (xs, ys)
}

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
    // Starting points on a grid over the frequency `b`, where the local minima are.
    let points: Vec<(f64, f64, f64)> = (0..starts)
        .map(|i| (1.0, 0.2 + 3.0 * i as f64 / starts as f64, 0.0))
        .collect();

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
    let best = parallel
        .iter()
        .min_by(|x, y| x.loss.total_cmp(&y.loss))
        .ok_or("no starting points")?;
    let local_minima = parallel.iter().filter(|f| f.loss > 2.0 * best.loss).count();

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
