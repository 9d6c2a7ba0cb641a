//! The pool bench's `pipeline` and `capture_100m` workloads (see `bench/pool.rs`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use serfn::{Pool, SerFn};

use super::{check_same, collect_map, median, median_time, peers, Args, Report};

/// Stages in the long pipeline of the `pipeline` workload.
const STAGES: usize = 8;
/// The capture of `capture_100m`: 100 MiB of `f64`.
const CAPTURE_ELEMENTS: usize = (100 << 20) / 8;

/// `pipeline`: `x + d` as one stage and as [`STAGES`] stages joined by `then`,
/// through the pool's chunked path and in process; the difference per item and
/// extra stage is the cost of a stage. The pool's is wall time times workers,
/// i.e. the workers' time per stage.
pub(super) fn pipeline(args: &Args, pool: &Pool, items: &[f64], report: &mut Report) {
    let d = 0.5;
    let add = || serfn::closure!("benches::pool::add", [d: f64], move |x: f64| -> f64 { x + d });
    let long = (1..STAGES).fold(add(), |f, _| f.then(add()));
    let one = add();
    let want = |stages: usize| -> Vec<f64> {
        items
            .iter()
            .map(|&x| (0..stages).fold(x, |x, _| x + d))
            .collect()
    };
    let (want1, want_long) = (want(1), want(STAGES));
    let chunk = (items.len() / 8).max(1);
    let time = |f: &SerFn<f64, f64>, want: &[f64]| {
        let run = || collect_map(pool.map(f, items.iter().copied()).chunk_size(chunk));
        check_same("pipeline", &run(), want);
        median_time(args.runs, run, |got| check_same("pipeline", &got, want))
    };
    let (pool1, pool_long) = (time(&one, &want1), time(&long, &want_long));
    let local = |f: &SerFn<f64, f64>, want: &[f64]| {
        let run = || {
            items
                .iter()
                .map(|&x| f.call(black_box(x)))
                .collect::<Vec<f64>>()
        };
        median_time(args.runs, run, |got| check_same("pipeline", &got, want))
    };
    let (local1, local_long) = (local(&one, &want1), local(&long, &want_long));
    let per_stage = |t1: Duration, tn: Duration, scale: f64| {
        let extra = (tn.as_secs_f64() - t1.as_secs_f64()).max(0.0);
        extra * scale * 1e9 / (items.len() * (STAGES - 1)) as f64
    };
    let workers = args.workers as f64;
    report.record(
        "pipeline",
        per_stage(pool1, pool_long, workers),
        "ns/stage",
        vec![
            ("stages", STAGES.to_string()),
            ("chunk_size", chunk.to_string()),
            (
                "in_process_ns",
                format!("{:.3}", per_stage(local1, local_long, 1.0)),
            ),
        ],
    );
}

/// `capture_100m`: a closure over 100 MiB of `f64`, sent to a started pool, to
/// its first result: encoding, the socket, the worker's decode and the call.
/// procspawn sends the same `Vec` as its call's argument. Each run changes one
/// element, so that no run finds the function already loaded.
pub(super) fn capture(args: &Args, spawn_pool: &procspawn::Pool, report: &mut Report) {
    let limits = serfn::Limits::new().max_bytes(256 << 20);
    let pool = Pool::builder()
        .workers(args.workers)
        .limits(limits)
        .build()
        .expect("cannot start the pool");
    let runs = args.runs.min(3);
    let base: Vec<f64> = (0..CAPTURE_ELEMENTS).map(|i| i as f64).collect();
    let mut serfn_times = Vec::new();
    let mut spawn_times = Vec::new();
    for run in 0..runs {
        let mut values = base.clone();
        values[0] = run as f64;
        let start = Instant::now();
        let weights = serfn::closure!("benches::pool::weights", [values: Vec<f64>], move |x: f64| -> f64 {
            x * values.len() as f64
        });
        let got = pool.call(&weights, 1.0).expect("the capture call failed");
        serfn_times.push(start.elapsed());
        assert_eq!(got, CAPTURE_ELEMENTS as f64, "capture_100m: wrong answer");
        drop(weights);

        let mut values = base.clone();
        values[0] = run as f64;
        let start = Instant::now();
        let got = peers::procspawn_capture(spawn_pool, values);
        spawn_times.push(start.elapsed());
        assert_eq!(
            got, CAPTURE_ELEMENTS as f64,
            "capture_100m: wrong answer (procspawn)"
        );
    }
    for (library, times) in [("serfn", serfn_times), ("procspawn", spawn_times)] {
        let time = median(times).as_secs_f64();
        report.record_for(
            "capture_100m",
            library,
            time * 1e3,
            "ms",
            vec![("runs", runs.to_string())],
        );
    }
}
