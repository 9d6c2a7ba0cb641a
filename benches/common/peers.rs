//! The pool bench's peers, run in the same process and the same run as serfn:
//! procspawn (a process pool that sends fn pointers; chunks are `Vec`s made
//! by hand, as its users do) and rayon (threads in this process: the limit
//! without any serialization).

use rayon::prelude::*;

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
pub fn procspawn_map(pool: &procspawn::Pool, items: &[f64], factor: f64, chunk: usize) -> Vec<f64> {
    if chunk == 1 {
        // Each call holds two IPC channels (file descriptors) until joined:
        // at most WINDOW calls in flight, as a user would have to do.
        let mut out = Vec::with_capacity(items.len());
        let mut in_flight = std::collections::VecDeque::new();
        for &x in items {
            if in_flight.len() == WINDOW {
                out.push(join(in_flight.pop_front()));
            }
            in_flight.push_back(pool.spawn((x, factor), scale_one as fn(_) -> _));
        }
        out.extend(in_flight.into_iter().map(|h| join(Some(h))));
        return out;
    }
    let handles: Vec<_> = items
        .chunks(chunk)
        .map(|c| pool.spawn((c.to_vec(), factor), scale_chunk as fn(_) -> _))
        .collect();
    handles
        .into_iter()
        .flat_map(|h| h.join().expect("a procspawn chunk failed"))
        .collect()
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
