//! The pool features Python's pools have, run for real: an initializer per
//! worker, recycling, a cancelled task, a per-call timeout, borrowed items,
//! and `join` reporting how the workers ended.
//!
//! `cargo run --example pool_features`

use std::sync::OnceLock;
use std::time::Duration;

use serfn::pool::Cancelled;
use serfn::{Error, Pool, SerFn};

/// The "model" each worker loads once, in its initializer.
static MODEL: OnceLock<Vec<f64>> = OnceLock::new();

fn main() -> serfn::Result<()> {
    serfn::worker::init(); // first: a process the pool starts turns into a worker here

    let load = serfn::closure!("load", [size: usize = 1_000], move || -> () {
        MODEL.get_or_init(|| (0..*size).map(|i| i as f64).collect());
    });
    let score: SerFn<f64, f64> = serfn::closure!("score", [], move |x: f64| -> f64 {
        MODEL
            .get()
            .map_or(f64::NAN, |model| model.iter().map(|w| w * x).sum())
    });
    let nap: SerFn<u64, u64> = serfn::closure!("nap", [], move |ms: u64| -> u64 {
        std::thread::sleep(Duration::from_millis(ms));
        ms
    });

    let pool = Pool::builder()
        .workers(2)
        .initializer(load)
        .max_tasks_per_worker(50)
        .build()?;

    let inputs: Vec<f64> = (0..200).map(f64::from).collect();
    let scores: Vec<f64> = pool.map(&score, &inputs).collect::<serfn::Result<_>>()?;
    assert_eq!(scores[2], 2.0 * 499_500.0);
    println!(
        "200 scores from borrowed inputs; {} workers recycled",
        pool.stats().recycled
    );

    let late = pool.call_timeout(&nap, 60_000, Duration::from_millis(500));
    assert!(matches!(late, Err(Error::Timeout { .. })));
    println!("a call past its own timeout: {}", late.unwrap_err());

    let long = pool.submit(&nap, 60_000);
    let waiting: Vec<_> = (0..6).map(|_| pool.submit(&nap, 100)).collect();
    std::thread::sleep(Duration::from_millis(300));
    println!("cancelled while running: {:?}", long.cancel());
    let mut waiting = waiting;
    let last = waiting.pop().expect("six tasks");
    assert_eq!(last.cancel(), Cancelled::NotStarted);
    println!("cancelled while waiting: never runs");

    pool.close();
    for exit in pool.join() {
        let status = exit
            .status
            .map_or("unknown".into(), |status| status.to_string());
        println!("worker {} (slot {}) ended: {status}", exit.pid, exit.slot);
        assert!(exit.is_clean());
    }
    for task in waiting {
        assert_eq!(task.wait()?, 100);
    }
    Ok(())
}
