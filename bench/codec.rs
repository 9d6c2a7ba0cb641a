//! Encode + decode + call of a small closure (one captured `f64`), side by
//! side with raw bincode of the same capture struct, a direct call, and
//! `serde_closure`'s `Fn!`; and encode + decode of captures of 8 B to
//! 16 MiB (`capture_size`), in MB/s beside raw bincode of the same struct.
//! `bench/report.py` turns the run into ratios.

#![allow(
    missing_docs,
    reason = "criterion_group! generates undocumented functions"
)]

use std::hint::black_box;

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde::{Deserialize, Serialize};
use serde_closure::traits::Fn as _;
use serfn::SerFn;

mod common;
use common::{bincode_round_trip, Scale};

fn sizes() {
    let capture = Scale { factor: 1.5 };
    let raw = bincode::serde::encode_to_vec(&capture, bincode::config::standard()).unwrap();
    let serfn = SerFn::new(capture).to_bytes().unwrap();
    let factor = 1.5f64;
    let peer = serde_closure::Fn!(move |x: f64| x * factor);
    let peer = bincode::serde::encode_to_vec(peer, bincode::config::standard()).unwrap();
    eprintln!(
        "encoded sizes: serfn {} B (capture {} B + name {} B + {} B envelope), raw bincode {} B, serde_closure {} B",
        serfn.len(),
        raw.len(),
        "bench::Scale".len(),
        serfn.len() - raw.len() - "bench::Scale".len(),
        raw.len(),
        peer.len()
    );
}

fn round_trip(c: &mut Criterion) {
    sizes();
    let mut group = c.benchmark_group("round_trip");
    let f = SerFn::new(Scale { factor: 1.5 });
    group.bench_function("serfn", |b| {
        b.iter(|| {
            let bytes = serfn::to_bytes(black_box(&f)).unwrap();
            let g: SerFn<f64, f64> = serfn::from_bytes(&bytes).unwrap();
            g.call(black_box(2.0))
        })
    });
    let mut buf = Vec::new();
    group.bench_function("serfn_handle", |b| {
        b.iter(|| {
            buf.clear();
            black_box(&f).to_bytes_into(&mut buf).unwrap();
            let g = SerFn::<f64, f64>::from_bytes(&buf).unwrap();
            g.call(black_box(2.0))
        })
    });
    let capture = Scale { factor: 1.5 };
    group.bench_function("raw_bincode", |b| {
        b.iter(|| {
            let decoded = bincode_round_trip(black_box(&capture));
            serfn::Call::call(&decoded, black_box(2.0))
        })
    });
    let factor = 1.5f64;
    let peer = serde_closure::Fn!(move |x: f64| x * factor);
    group.bench_function("serde_closure", |b| {
        b.iter(|| {
            let decoded = bincode_round_trip(black_box(&peer));
            decoded.call((black_box(2.0),))
        })
    });
    group.finish();
}

fn call(c: &mut Criterion) {
    let mut group = c.benchmark_group("call");
    let capture = Scale { factor: 1.5 };
    group.bench_function("direct", |b| {
        b.iter(|| serfn::Call::call(black_box(&capture), black_box(2.0)))
    });
    let f = SerFn::new(Scale { factor: 1.5 });
    group.bench_function("serfn", |b| b.iter(|| black_box(&f).call(black_box(2.0))));
    let factor = 1.5f64;
    let boxed: Box<dyn Fn(f64) -> f64> = Box::new(move |x| x * factor);
    group.bench_function("box_dyn", |b| b.iter(|| black_box(&boxed)(black_box(2.0))));
    let factor = 1.5f64;
    let peer = serde_closure::Fn!(move |x: f64| x * factor);
    group.bench_function("serde_closure", |b| {
        b.iter(|| black_box(&peer).call((black_box(2.0),)))
    });
    group.finish();
}

/// A `then` pipeline of 8 stages beside 8 direct calls of the same impl.
fn then(c: &mut Criterion) {
    const STAGES: usize = 8;
    let mut group = c.benchmark_group("then_8_stages");
    let stage = || SerFn::new(Scale { factor: 1.5 });
    let f = (1..STAGES).fold(stage(), |f, _| f.then(stage()));
    group.bench_function("serfn", |b| b.iter(|| black_box(&f).call(black_box(2.0))));
    let capture = Scale { factor: 1.5 };
    group.bench_function("direct", |b| {
        b.iter(|| {
            let capture = black_box(&capture);
            (0..STAGES).fold(black_box(2.0), |x, _| serfn::Call::call(capture, x))
        })
    });
    group.finish();
}

/// A capture of `values.len() * 8` bytes.
#[derive(Serialize, Deserialize)]
struct Weights {
    values: Vec<f64>,
}

impl serfn::Call<f64> for Weights {
    type Output = f64;
    fn call(&self, x: f64) -> f64 {
        x * self.values.len() as f64
    }
}

serfn::register_instance!(Weights as Call<f64>, name = "bench::Weights");

/// Encode + decode of a `Vec<f64>` capture: serfn through the handle (one
/// reused buffer), and raw bincode of the same struct.
fn capture_size(c: &mut Criterion) {
    let mut group = c.benchmark_group("capture_size");
    for (label, bytes) in [
        ("8B", 8usize),
        ("1KiB", 1 << 10),
        ("64KiB", 64 << 10),
        ("1MiB", 1 << 20),
        ("16MiB", 16 << 20),
    ] {
        let values: Vec<f64> = (0..bytes / 8).map(|i| i as f64 * 0.5).collect();
        group.throughput(Throughput::Bytes(bytes as u64));
        if bytes >= 1 << 20 {
            group.sample_size(10);
            group.measurement_time(Duration::from_secs(3));
        }
        let f = SerFn::new(Weights {
            values: values.clone(),
        });
        let mut buf = Vec::new();
        group.bench_function(BenchmarkId::new("serfn", label), |b| {
            b.iter(|| {
                buf.clear();
                black_box(&f).to_bytes_into(&mut buf).unwrap();
                SerFn::<f64, f64>::from_bytes(black_box(&buf)).unwrap()
            })
        });
        let capture = Weights { values };
        group.bench_function(BenchmarkId::new("raw_bincode", label), |b| {
            b.iter(|| bincode_round_trip(black_box(&capture)))
        });
    }
    group.finish();
}

criterion_group!(benches, round_trip, call, then, capture_size);
criterion_main!(benches);
