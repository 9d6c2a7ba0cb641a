//! The pool bench's `pipeline` and `capture_100m` workloads (see `bench/pool.rs`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use serfn::{Pool, SerFn};

use super::{check_same, collect_map, median, peers, Args, Report};

/// Stages in the long pipeline of the `pipeline` workload.
const STAGES: usize = 8;
/// The capture of `capture_100m`: 100 MiB of `f64`.
const CAPTURE_ELEMENTS: usize = (100 << 20) / 8;
/// Untimed pause after each run of [`alternate_ms`]: a dropped pool's
/// processes may still be giving their memory back (a worker that held a
/// 100 MiB capture, ~20 ms of the kernel's time), which the next library's
/// run would otherwise pay for.
const SETTLE: Duration = Duration::from_millis(100);

/// `pipeline`: `x + d` as one stage and as [`STAGES`] stages joined by `then`,
/// through the pool's chunked path and in process; the difference per item and
/// extra stage is the cost of a stage. The pool's is wall time times workers,
/// i.e. the workers' time per stage. Each round times the two back to back, in
/// turns, and the median is of the rounds' differences: a change in the
/// machine's load between two blocks of runs would otherwise be most of a
/// difference this small.
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
    let in_pool = |f: &SerFn<f64, f64>| {
        let got = collect_map(pool.map(f, items.iter().copied()).chunk_size(chunk));
        black_box(got)
    };
    let local =
        |f: &SerFn<f64, f64>| -> Vec<f64> { items.iter().map(|&x| f.call(black_box(x))).collect() };
    // Warm-up, checked: the workers hold both functions before any round.
    check_same("pipeline", &in_pool(&one), &want1);
    check_same("pipeline", &in_pool(&long), &want_long);
    let per_stage = |run: &dyn Fn(&SerFn<f64, f64>) -> Vec<f64>, scale: f64| {
        let time = |f: &SerFn<f64, f64>, want: &[f64]| {
            let start = Instant::now();
            let got = run(f);
            let elapsed = start.elapsed();
            check_same("pipeline", &got, want);
            elapsed.as_secs_f64()
        };
        let mut rounds: Vec<f64> = (0..args.runs)
            .map(|round| {
                let (t1, tn) = if round % 2 == 0 {
                    let t1 = time(&one, &want1);
                    (t1, time(&long, &want_long))
                } else {
                    let tn = time(&long, &want_long);
                    (time(&one, &want1), tn)
                };
                (tn - t1).max(0.0) * scale * 1e9 / (items.len() * (STAGES - 1)) as f64
            })
            .collect();
        rounds.sort_by(f64::total_cmp);
        rounds
    };
    let workers = args.workers as f64;
    let pooled = per_stage(&in_pool, workers);
    let in_process = per_stage(&local, 1.0);
    let middle = |xs: &[f64]| match xs.len() {
        0 => 0.0,
        n if n % 2 == 1 => xs[n / 2],
        n => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    };
    report.record(
        "pipeline",
        middle(&pooled),
        "ns/stage",
        vec![
            ("stages", STAGES.to_string()),
            ("chunk_size", chunk.to_string()),
            ("runs", args.runs.to_string()),
            (
                "min",
                format!("{:.3}", pooled.first().copied().unwrap_or(0.0)),
            ),
            (
                "max",
                format!("{:.3}", pooled.last().copied().unwrap_or(0.0)),
            ),
            ("in_process_ns", format!("{:.3}", middle(&in_process))),
        ],
    );
}

/// A library and one run of it, returning the time it measured.
type Timed<'a> = (&'static str, Box<dyn FnMut() -> Duration + 'a>);

/// Runs each contender `runs` times, taking turns in a rotated order so that
/// a change in the machine's load falls on all alike, and records each one's
/// median with its range (`min`, `max`) in ms, [`SETTLE`] after each run. A
/// contender returns the time it measured itself (what it must not count
/// stays out).
pub(super) fn alternate_ms(
    workload: &'static str,
    runs: usize,
    mut contenders: Vec<Timed<'_>>,
    report: &mut Report,
) {
    let mut times = vec![Vec::new(); contenders.len()];
    let mut retried = vec![0; contenders.len()];
    for round in 0..runs {
        for k in 0..contenders.len() {
            let at = (round + k) % contenders.len();
            let (library, run) = &mut contenders[at];
            // Each contender times itself: only its run that succeeded counts.
            let (time, _) = peers::timed(library, &mut retried[at], run);
            times[at].push(time);
            // The pool just dropped may still be tearing its processes
            // down: not in the next library's time.
            std::thread::sleep(SETTLE);
        }
    }
    for (((library, _), times), retried) in contenders.iter().zip(times).zip(retried) {
        let ms = |t: Option<&Duration>| t.map_or(0.0, |t| t.as_secs_f64() * 1e3);
        let mut extra = vec![
            ("runs", runs.to_string()),
            ("min", format!("{:.3}", ms(times.iter().min()))),
            ("max", format!("{:.3}", ms(times.iter().max()))),
        ];
        if retried > 0 {
            extra.push(("retried", retried.to_string()));
        }
        report.record_for(workload, library, ms(Some(&median(times))), "ms", extra);
    }
}

/// From a new pool of `workers` (limits raised to 256 MiB) to the result of
/// the function `make` makes, called on 1.0, which must be
/// [`CAPTURE_ELEMENTS`]; the capture is `kind`.
fn first_call(workers: usize, kind: &str, make: impl FnOnce() -> SerFn<f64, f64>) -> Duration {
    let start = Instant::now();
    let limits = serfn::Limits::new().max_bytes(256 << 20);
    let pool = Pool::builder()
        .workers(workers)
        .limits(limits)
        .build()
        .expect("cannot start the pool");
    let f = make();
    let got = pool.call(&f, 1.0).expect("the capture call failed");
    let elapsed = start.elapsed();
    assert_eq!(
        got, CAPTURE_ELEMENTS as f64,
        "capture_100m: wrong answer ({kind})"
    );
    drop((f, pool));
    elapsed
}

/// `capture_100m`: a closure over 100 MiB of `f64`, from a new pool to its
/// first result: the workers' start, encoding, the transfer, the worker's
/// decode and the call. serfn twice: the capture a `Vec<f64>` (serde, element
/// by element) and a `Bulk<f64>` (one byte string: `serfn-bulk`). procspawn,
/// from its new pool too, sends the same `Vec` as one call's argument.
/// Making the data and dropping the pools are not timed; each run changes
/// one element.
pub(super) fn capture(args: &Args, report: &mut Report) {
    let base: Vec<f64> = (0..CAPTURE_ELEMENTS).map(|i| i as f64).collect();
    let workers = args.workers;
    let serfn_run = |run: usize| {
        let mut values = base.clone();
        values[0] = run as f64;
        first_call(workers, "Vec", move || {
            serfn::closure!("benches::pool::weights", [values: Vec<f64>], move |x: f64| -> f64 {
                x * values.len() as f64
            })
        })
    };
    let bulk_run = |run: usize| {
        let mut values = base.clone();
        values[0] = run as f64;
        let values: serfn::codec::Bulk<f64> = values.into();
        first_call(workers, "Bulk", move || {
            serfn::closure!("benches::pool::bulk_weights", [values: serfn::codec::Bulk<f64>], move |x: f64| -> f64 {
                x * values.len() as f64
            })
        })
    };
    let spawn_run = |run: usize| {
        let mut values = base.clone();
        values[0] = run as f64;
        let start = Instant::now();
        let pool = procspawn::Pool::new(workers).expect("cannot start procspawn's pool");
        let got = peers::procspawn_capture(&pool, values);
        let elapsed = start.elapsed();
        assert_eq!(
            got, CAPTURE_ELEMENTS as f64,
            "capture_100m: wrong answer (procspawn)"
        );
        drop(pool);
        elapsed
    };
    let (mut a, mut b, mut c) = (0, 0, 0);
    alternate_ms(
        "capture_100m",
        args.runs,
        vec![
            (
                "serfn",
                Box::new(|| {
                    a += 1;
                    serfn_run(a)
                }),
            ),
            (
                "serfn-bulk",
                Box::new(|| {
                    c += 1;
                    bulk_run(c)
                }),
            ),
            (
                "procspawn",
                Box::new(|| {
                    b += 1;
                    spawn_run(b)
                }),
            ),
        ],
        report,
    );
}

/// `startup`: a new pool of `workers` to the result of one trivial call, for
/// serfn and procspawn, taking turns; dropping a pool is not timed.
pub(super) fn startup(args: &Args, report: &mut Report) {
    let trivial: SerFn<i64, i64> =
        serfn::closure!("benches::pool::abs", [], move |x: i64| -> i64 { x.abs() });
    let workers = args.workers;
    let serfn_run = || {
        let start = Instant::now();
        let pool = Pool::builder()
            .workers(workers)
            .build()
            .expect("cannot start the pool");
        let answer = pool.call(&trivial, -1).expect("the trivial call failed");
        let elapsed = start.elapsed();
        assert_eq!(answer, 1, "startup: wrong answer");
        drop(pool);
        elapsed
    };
    let spawn_run = || {
        let start = Instant::now();
        let pool = procspawn::Pool::new(workers).expect("cannot start procspawn's pool");
        let answer = peers::procspawn_abs(&pool, -1);
        let elapsed = start.elapsed();
        assert_eq!(answer, 1, "startup: wrong answer (procspawn)");
        drop(pool);
        elapsed
    };
    alternate_ms(
        "startup",
        args.runs,
        vec![
            ("serfn", Box::new(serfn_run)),
            ("procspawn", Box::new(spawn_run)),
        ],
        report,
    );
}
