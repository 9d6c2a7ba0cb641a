//! The pool bench's peers, run in the same process and the same run as serfn:
//! procspawn (a process pool that sends fn pointers; chunks are `Vec`s made
//! by hand, as its users do) and rayon (threads in this process: the limit
//! without any serialization).

use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use rayon::prelude::*;

/// One run of `library`, timed: serfn's as it is (a failure ends the
/// bench), a peer's through [`timed_retrying`].
pub fn timed<T>(library: &str, retried: &mut usize, mut run: impl FnMut() -> T) -> (T, Duration) {
    if library.starts_with("serfn") {
        let start = Instant::now();
        let got = run();
        return (got, start.elapsed());
    }
    timed_retrying(library, retried, run)
}

/// Attempts a peer's run gets before its failure fails the bench.
const ATTEMPTS: usize = 3;

/// Runs a reference library's `run` (not serfn's: its failures are never
/// retried) and times it, again after a panic, at most [`ATTEMPTS`] times:
/// procspawn's calls now and then fail with `IpcChannelClosed` ("remote
/// closed") from `join` under load, which used to end the whole bench. Only
/// the attempt that succeeded is timed; `retried` counts the failed ones,
/// which the report shows.
pub fn timed_retrying<T>(
    library: &str,
    retried: &mut usize,
    mut run: impl FnMut() -> T,
) -> (T, Duration) {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let start = Instant::now();
        match panic::catch_unwind(AssertUnwindSafe(&mut run)) {
            Ok(got) => return (got, start.elapsed()),
            Err(panic) if attempt < ATTEMPTS => {
                *retried += 1;
                let why = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("a panic");
                eprintln!("{library}: a run failed ({why}); running it again, untimed before");
            }
            Err(panic) => panic::resume_unwind(panic),
        }
    }
}

/// procspawn's fn pointers: nothing captured, the factor travels as an argument.
fn scale_one((x, factor): (f64, f64)) -> f64 {
    x * factor
}

fn scale_chunk((chunk, factor): (Vec<f64>, f64)) -> Vec<f64> {
    chunk.into_iter().map(|x| x * factor).collect()
}

fn sum_len(values: Vec<f64>) -> f64 {
    values.len() as f64
}

/// procspawn calls in flight at most, one item each.
const WINDOW: usize = 128;

fn join<T>(handle: Option<procspawn::JoinHandle<T>>) -> T
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let handle = handle.expect("a call in flight");
    handle.join().expect("a procspawn call failed")
}

/// `x * factor` for each item, `chunk` items per message; `chunk == 1` sends
/// each item as its own call.
///
/// Calls in flight are bounded, as a user must bound them: each holds two IPC
/// channels (file descriptors) until joined, and with more chunks queued than
/// workers, a chunk of about 1 MiB deadlocks (the parent blocks sending the
/// arguments of a queued call while the workers block sending their results).
/// Single items: [`WINDOW`] calls; chunks: one per worker.
pub fn procspawn_map(pool: &procspawn::Pool, items: &[f64], factor: f64, chunk: usize) -> Vec<f64> {
    if chunk == 1 {
        let calls = items
            .iter()
            .map(|&x| pool.spawn((x, factor), scale_one as fn(_) -> _));
        return windowed(calls, WINDOW);
    }
    let calls = items
        .chunks(chunk)
        .map(|c| pool.spawn((c.to_vec(), factor), scale_chunk as fn(_) -> _));
    windowed(calls, pool.size()).into_iter().flatten().collect()
}

/// The results of `calls`, started at most `window` ahead of the one joined.
fn windowed<T>(calls: impl Iterator<Item = procspawn::JoinHandle<T>>, window: usize) -> Vec<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let mut out = Vec::new();
    let mut in_flight = std::collections::VecDeque::new();
    for call in calls {
        if in_flight.len() == window {
            out.push(join(in_flight.pop_front()));
        }
        in_flight.push_back(call);
    }
    out.extend(in_flight.into_iter().map(|call| join(Some(call))));
    out
}

/// Each start point through `descend`, one call per item (the CPU workload).
pub fn procspawn_cpu(
    pool: &procspawn::Pool,
    starts: &[f64],
    lr: f64,
    iters: u32,
    descend: fn((f64, f64, u32)) -> f64,
) -> Vec<f64> {
    let handles: Vec<_> = starts
        .iter()
        .map(|&x| pool.spawn((x, lr, iters), descend))
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("a procspawn call failed"))
        .collect()
}

/// A large `Vec<f64>` sent with one call, to its (trivial) result.
pub fn procspawn_capture(pool: &procspawn::Pool, values: Vec<f64>) -> f64 {
    pool.spawn(values, sum_len as fn(_) -> _)
        .join()
        .expect("a procspawn call failed")
}

fn abs_one(x: i64) -> i64 {
    x.abs()
}

/// A trivial call's result (the start-up workload).
pub fn procspawn_abs(pool: &procspawn::Pool, x: i64) -> i64 {
    pool.spawn(x, abs_one as fn(_) -> _)
        .join()
        .expect("a procspawn call failed")
}

/// A rayon pool of `threads` threads.
pub fn rayon_pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("cannot start rayon's pool")
}

/// `f` over `items` on rayon's threads, in order.
pub fn rayon_map(
    pool: &rayon::ThreadPool,
    items: &[f64],
    f: impl Fn(f64) -> f64 + Sync + Send,
) -> Vec<f64> {
    pool.install(|| items.par_iter().map(|&x| f(x)).collect())
}
