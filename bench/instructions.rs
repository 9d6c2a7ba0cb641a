//! One operation run N times, for counting instructions under callgrind:
//! `cargo bench -p serfn-bench --bench instructions -- --op NAME --iters N`; `--list` (or
//! no `--op`) prints the operations. `bench/instructions.sh` runs each op
//! at N and 2N iterations under `valgrind --tool=callgrind` and divides the
//! difference by N, so start-up and the warm-up call cancel.
//!
//! Each op runs once before its N iterations, so lazy set-up (the registry,
//! a pool's workers and the function they are sent) is in both counts.

use std::hint::black_box;

use serde::{Deserialize, Serialize};
use serfn::{Pool, SerFn};

mod common;
use common::{bincode_round_trip, Scale};

/// A large capture: `Vec<f64>` of 64 KiB or 1 MiB.
#[derive(Serialize, Deserialize, Clone)]
struct Weights {
    values: Vec<f64>,
}

impl serfn::Call<f64> for Weights {
    type Output = f64;
    fn call(&self, x: f64) -> f64 {
        x * self.values.len() as f64
    }
}

serfn::register_instance!(Weights as Call<f64>, name = "instructions::Weights");

/// The same numbers as a `serfn::codec::Bulk`: one byte string.
#[derive(Serialize, Deserialize, Clone)]
struct BulkWeights {
    values: serfn::codec::Bulk<f64>,
}

impl serfn::Call<f64> for BulkWeights {
    type Output = f64;
    fn call(&self, x: f64) -> f64 {
        x * self.values.len() as f64
    }
}

serfn::register_instance!(BulkWeights as Call<f64>, name = "instructions::BulkWeights");

const ELEMENTS_64K: usize = (64 << 10) / 8;
const ELEMENTS_1M: usize = (1 << 20) / 8;
/// Items per message in `pool_map`: fixed, since automatic chunking depends on time.
const POOL_CHUNK: usize = 1000;
/// Stages of the pipeline in `serfn_then_stage`.
const THEN_STAGES: usize = 8;
/// Items per chunk in `then_batch_stage`.
const THEN_CHUNK: usize = 100;

/// Name, what one iteration does, and what an iteration is divided into
/// (elements of a large capture; 1 otherwise), as `instructions.sh` reads it.
const OPS: &[(&str, &str, usize)] = &[
    (
        "serfn_round_trip",
        "to_bytes + from_bytes::<SerFn<f64, f64>> + call, closure over one f64",
        1,
    ),
    (
        "serfn_round_trip_into",
        "SerFn::to_bytes_into a reused buffer + SerFn::from_bytes + call: the handles' direct header",
        1,
    ),
    (
        "bincode_round_trip",
        "raw bincode encode + decode of the same capture struct + direct call",
        1,
    ),
    (
        "empty_loop",
        "the calls' loop and black_box with nothing called: subtracted from each call",
        1,
    ),
    ("serfn_call", "SerFn::call in process", 1),
    ("box_dyn_call", "Box<dyn Fn(f64) -> f64> call", 1),
    ("direct_call", "direct call of the impl", 1),
    (
        "serfn_then_stage",
        "SerFn call of a `then` pipeline of 8 stages, per stage",
        THEN_STAGES,
    ),
    (
        "then_batch_stage",
        "a chunk of 100 through the same pipeline as a pool's worker runs it, per item and stage",
        THEN_CHUNK * THEN_STAGES,
    ),
    (
        "serfn_large_64k",
        "to_bytes + from_bytes of a Vec<f64> capture of 64 KiB, per element",
        ELEMENTS_64K,
    ),
    (
        "bincode_large_64k",
        "raw bincode encode + decode of the same 64 KiB struct, per element",
        ELEMENTS_64K,
    ),
    (
        "serfn_bulk_large_64k",
        "to_bytes + from_bytes of the same 64 KiB as a Bulk<f64> capture, per element",
        ELEMENTS_64K,
    ),
    (
        "serfn_large_1m",
        "to_bytes + from_bytes of a Vec<f64> capture of 1 MiB, per element",
        ELEMENTS_1M,
    ),
    (
        "bincode_large_1m",
        "raw bincode encode + decode of the same 1 MiB struct, per element",
        ELEMENTS_1M,
    ),
    (
        "serfn_bulk_large_1m",
        "to_bytes + from_bytes of the same 1 MiB as a Bulk<f64> capture, per element",
        ELEMENTS_1M,
    ),
    (
        "pool_map",
        "the parent's cost per item of Pool::map, 2 workers, chunks of 1000",
        1,
    ),
    (
        "pool_map_single",
        "the parent's cost per item of Pool::map, 2 workers, one item per message",
        1,
    ),
    (
        "pool_map_collect",
        "pool_map's map collected as users write it, into a Result<Vec<f64>>",
        1,
    ),
    (
        "pool_map_unordered",
        "pool_map's map as map_unordered, each result put at its index",
        1,
    ),
];

fn serfn_round_trip(f: &SerFn<f64, f64>) -> SerFn<f64, f64> {
    let bytes = serfn::to_bytes(f).unwrap();
    serfn::from_bytes(&bytes).unwrap()
}

fn weights(elements: usize) -> Weights {
    Weights {
        values: (0..elements).map(|i| i as f64 * 0.5).collect(),
    }
}

/// Runs `body` once, then `iters` more times. Generic, so that it is
/// inlined: an indirect call per iteration would inflate the small references.
fn repeat(iters: usize, mut body: impl FnMut()) {
    for _ in 0..=iters {
        body();
    }
}

/// Runs `op` once, then `iters` more times.
fn run(op: &str, iters: usize) {
    match op {
        "serfn_round_trip" => {
            let f = SerFn::new(Scale { factor: 1.5 });
            repeat(iters, || {
                black_box(serfn_round_trip(black_box(&f)).call(black_box(2.0)));
            });
        }
        "serfn_round_trip_into" => {
            let f = SerFn::new(Scale { factor: 1.5 });
            let mut buf = Vec::new();
            repeat(iters, || {
                buf.clear();
                black_box(&f).to_bytes_into(&mut buf).unwrap();
                let g = SerFn::<f64, f64>::from_bytes(black_box(&buf)).unwrap();
                black_box(g.call(black_box(2.0)));
            });
        }
        "serfn_then_stage" => {
            let stage = || SerFn::new(Scale { factor: 1.5 });
            let f = (1..THEN_STAGES).fold(stage(), |f, _| f.then(stage()));
            repeat(iters, || {
                black_box(black_box(&f).call(black_box(2.0)));
            });
        }
        "then_batch_stage" => {
            let stage = || SerFn::new(Scale { factor: 1.5 });
            let f = (1..THEN_STAGES)
                .fold(stage(), |f, _| f.then(stage()))
                .into_dyn();
            let inputs: Vec<f64> = (0..THEN_CHUNK).map(|i| i as f64).collect();
            let args = serfn::codec::encode_value(&inputs).unwrap();
            let items: Vec<Vec<u8>> = inputs
                .iter()
                .map(|x| serfn::codec::encode_value(x).unwrap())
                .collect();
            let items: Vec<&[u8]> = items.iter().map(Vec::as_slice).collect();
            let limits = serfn::Limits::default();
            let mut out = Vec::new();
            repeat(iters, || {
                out.clear();
                serfn::__private::run_chunk(black_box(&f), &args, &items, &limits, &mut out)
                    .unwrap();
                black_box(&out);
            });
        }
        "bincode_round_trip" => {
            let capture = Scale { factor: 1.5 };
            repeat(iters, || {
                let decoded = bincode_round_trip(black_box(&capture));
                black_box(serfn::Call::call(&decoded, black_box(2.0)));
            });
        }
        "serfn_call" => {
            let f = SerFn::new(Scale { factor: 1.5 });
            repeat(iters, || {
                black_box(black_box(&f).call(black_box(2.0)));
            });
        }
        "box_dyn_call" => {
            let factor = 1.5f64;
            let f: Box<dyn Fn(f64) -> f64> = Box::new(move |x| x * factor);
            repeat(iters, || {
                black_box(black_box(&f)(black_box(2.0)));
            });
        }
        "empty_loop" => {
            repeat(iters, || {
                black_box(black_box(2.0f64));
            });
        }
        "direct_call" => {
            let capture = Scale { factor: 1.5 };
            repeat(iters, || {
                black_box(serfn::Call::call(black_box(&capture), black_box(2.0)));
            });
        }
        "serfn_large_64k" | "serfn_large_1m" => {
            let elements = elements_of(op);
            let f = SerFn::new(weights(elements));
            repeat(iters, || {
                black_box(serfn_round_trip(black_box(&f)));
            });
        }
        "serfn_bulk_large_64k" | "serfn_bulk_large_1m" => {
            let values = weights(elements_of(op)).values;
            let f = SerFn::new(BulkWeights {
                values: values.into(),
            });
            repeat(iters, || {
                black_box(serfn_round_trip(black_box(&f)));
            });
        }
        "bincode_large_64k" | "bincode_large_1m" => {
            let capture = weights(elements_of(op));
            repeat(iters, || {
                black_box(bincode_round_trip(black_box(&capture)));
            });
        }
        "pool_map" => pool_map(iters, POOL_CHUNK, Consume::Sum),
        "pool_map_single" => pool_map(iters, 1, Consume::Sum),
        "pool_map_collect" => pool_map(iters, POOL_CHUNK, Consume::Collect),
        "pool_map_unordered" => pool_map(iters, POOL_CHUNK, Consume::Unordered),
        _ => {
            eprintln!("unknown op {op:?}; --list prints the ops");
            std::process::exit(2);
        }
    }
}

fn elements_of(op: &str) -> usize {
    OPS.iter().find(|(name, ..)| *name == op).map_or(1, |o| o.2)
}

/// How [`pool_map`] takes its results.
#[derive(Clone, Copy)]
enum Consume {
    /// `.map(Result::unwrap).sum()`: the map's own cost.
    Sum,
    /// `collect::<Result<Vec<_>>>()`, through std's `GenericShunt`, which
    /// calls `next` once per item: where a slow path inlined into `next`
    /// once cost every item a call and four registers saved.
    Collect,
    /// `map_unordered`, each result written at its index.
    Unordered,
}

/// One warm-up map (starts the workers, sends them the function), then one
/// map of `iters` items; only the parent is counted (`--trace-children=no`).
fn pool_map(iters: usize, chunk: usize, consume: Consume) {
    let pool = Pool::builder()
        .workers(2)
        .chunk_size(chunk)
        .build()
        .unwrap();
    let f = SerFn::new(Scale { factor: 1.5 });
    let map = |items: usize| {
        let inputs = (0..items).map(|i| i as f64);
        match consume {
            Consume::Sum => {
                black_box(pool.map(&f, inputs).map(Result::unwrap).sum::<f64>());
            }
            Consume::Collect => {
                let results = pool.map(&f, inputs);
                black_box(results.collect::<serfn::Result<Vec<f64>>>().unwrap());
            }
            Consume::Unordered => {
                let mut out = vec![0.0; items];
                for (index, result) in pool.map_unordered(&f, inputs) {
                    out[index] = result.unwrap();
                }
                black_box(out);
            }
        }
    };
    map(2 * POOL_CHUNK);
    map(iters);
}

fn main() {
    serfn::worker::init();
    let mut op = None;
    let mut iters = 1000;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--op" => op = args.next(),
            "--iters" => {
                iters = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("--iters takes a number")
            }
            // Cargo passes `--bench`; anything else is ignored likewise.
            _ => {}
        }
    }
    match op {
        Some(op) => run(&op, iters),
        // The list `instructions.sh` reads: name, divisor, description.
        None => {
            for (name, what, per) in OPS {
                println!("{name}\t{per}\t{what}");
            }
        }
    }
}
