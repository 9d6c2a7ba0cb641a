//! Pool throughput, speed-up and start-up: `cargo bench -p serfn-bench --bench pool [-- OPTIONS]`.
//!
//! The Rust side of `bench/python/bench_pool.py`; `bench/compare.sh` runs
//! both and prints them side by side. Workloads, mirrored from that script:
//!
//! - `tiny_chunk1`, `tiny_chunked`, `tiny_auto`: `x * f` with a captured
//!   `f = 1.5` over `items` floats `i / items` (default 100,000): one item per
//!   message, chunks of `items / 8` (12,500), and automatic chunking; tasks/s.
//!   The pool is started and warmed up (one full, checked map) first; the time
//!   covers only collecting the map. The chunked row's map takes under a
//!   millisecond: it runs [`CHUNKED_ROUNDS`] times `--runs` rounds.
//! - `direct_call`: the same closure called in this process (`f.call`), tasks/s.
//! - `cpu_speedup`: [`CPU_TASKS`] starting points `-2 + 4 i / tasks`, each a
//!   fixed-step gradient descent on `x^4 - 3x^2 + x` (`lr` = [`CPU_LR`]) for
//!   [`CPU_ITERS`] iterations (the Python script's `descend`), run in a loop in
//!   this process vs `pool.map` with automatic chunking; unit "x", with
//!   `sequential_s` and `parallel_s`. `--quick`: [`QUICK_CPU_TASKS`] x
//!   [`QUICK_CPU_ITERS`], as the Python script does.
//! - `startup`: `Pool::builder().workers(w).build()` through the result of one
//!   trivial `pool.call`, against a new procspawn pool through one trivial
//!   call, taking turns; ms. Dropping the pools is not timed, and each run
//!   is followed by an untimed 100 ms pause, as in `capture_100m`.
//! - `pipeline`: `x + d` as one stage and as 8 stages joined by `then`, mapped
//!   in chunks of `items / 8` and called in process; the extra time per item
//!   and stage, times the workers for the pool (their time); ns/stage, the
//!   median of rounds that time both back to back, in turns.
//! - `capture_100m`: a closure over 100 MiB of `f64`, from a new pool to its
//!   first result (limits raised to 256 MiB), the capture a `Vec<f64>`
//!   (`serfn`) and a `Bulk<f64>` (`serfn-bulk`), against a new procspawn
//!   pool sent the same `Vec` as one call's argument, taking turns, with an
//!   untimed 100 ms pause after each run (a dropped pool's processes may
//!   still be giving their memory back); ms.
//!
//! References, in the same run: a raw Unix-socket pipeline of the same items
//! to child processes (`bench/common/raw.rs`: `raw_batched` for both `tiny_*`
//! rows, `raw_socket` (a system call per item) and `raw_buffered` (one item at
//! a time through 8 KiB buffers) for `tiny_chunk1`).
//!
//! Peers, in the same run (`bench/common/peers.rs`): procspawn (fn pointers;
//! `tiny_chunk1` one call per item on a fifth of the items, `tiny_chunked`
//! with hand-made `Vec` chunks, `cpu_speedup`, `capture_100m` sending the same
//! `Vec`) and rayon (`tiny_*` and `cpu_speedup` on threads: the in-process limit).
//!
//! Each number is the median of `--runs` runs (default 5; the chunked row's,
//! of [`CHUNKED_ROUNDS`] times as many, its JSON's `rounds`). Every result the
//! pool returns is compared with the sequential, in-process answer, so no
//! number is reported for a wrong result.
//!
//! Options: `--runs N`, `--workers N` (default 2), `--items N`, `--cpu-iters N`, `--quick`
//! (1 run, 10,000 items, small CPU load), `--json PATH` (default
//! the repository's `target/rustbench.json`; cargo runs a bench in `bench/`, so a
//! relative PATH starts there), `--only w1,w2` (just these workloads, e.g. to
//! profile one under callgrind). Other arguments (cargo's `--bench`) are ignored.
//! The JSON has the Python script's flat schema:
//! `{"workers", "runs", "items", "results": [{"workload", "library", "value", "unit", ...}]}`.

#[path = "common/args.rs"]
mod args;
#[path = "common/peers.rs"]
mod peers;
#[path = "common/pool_modes.rs"]
mod pool_modes;
#[path = "common/raw.rs"]
mod raw;

use std::hint::black_box;
use std::time::{Duration, Instant};

use serfn::{Pool, SerFn};

/// The tiny task's captured factor.
const FACTOR: f64 = 1.5;
/// Rounds of the chunked row per `--runs`: one of its maps takes under a
/// millisecond, where a wake-up's delay on a loaded machine is a tenth of
/// the time. With 5 rounds, the fastest of a set's three runs put serfn
/// 1.36x to 1.74x further ahead of procspawn than the slowest (three sets);
/// with 40, 1.07x to 1.28x (seven sets).
const CHUNKED_ROUNDS: usize = 8;
/// The CPU task's step size.
const CPU_LR: f64 = 0.01;
/// CPU-bound starting points and iterations per point (the Python script's defaults).
const CPU_TASKS: usize = 200;
const CPU_ITERS: u32 = 200_000;
/// The same under `--quick`.
const QUICK_CPU_TASKS: usize = 20;
const QUICK_CPU_ITERS: u32 = 50_000;

struct Args {
    runs: usize,
    workers: usize,
    items: usize,
    cpu_tasks: usize,
    cpu_iters: u32,
    json: String,
    /// `--only a,b`: run just these workloads (for profiling).
    only: Option<Vec<String>>,
}

impl Args {
    fn wants(&self, workload: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|w| w == workload))
    }
}

fn parse_args() -> Args {
    let mut runs = None;
    let mut workers = 2;
    let mut items = None;
    let mut quick = false;
    let mut json = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/rustbench.json").to_string();
    let mut only = None;
    let mut cpu_iters_given = None;
    let mut flags = args::Flags::new();
    while let Some((flag, inline)) = flags.next_flag() {
        let mut value = || flags.value(inline.clone());
        match flag.as_str() {
            "--runs" => runs = Some(args::number("--runs", value())),
            "--workers" => workers = args::number("--workers", value()),
            "--items" => items = Some(args::number("--items", value())),
            "--json" => json = value().expect("--json needs a path"),
            "--quick" => quick = true,
            "--cpu-iters" => cpu_iters_given = Some(args::number("--cpu-iters", value()) as u32),
            "--only" => only = Some(args::names("--only", value())),
            _ => {} // cargo's --bench, filters and the like
        }
    }
    let (cpu_tasks, cpu_iters) = if quick {
        (QUICK_CPU_TASKS, QUICK_CPU_ITERS)
    } else {
        (CPU_TASKS, CPU_ITERS)
    };
    // Rust runs the descent ~10x faster than Python: `--cpu-iters` makes each
    // task as long as Python's, to compare speed-ups at equal task lengths.
    let cpu_iters = cpu_iters_given.unwrap_or(cpu_iters);
    Args {
        runs: runs.unwrap_or(if quick { 1 } else { 5 }),
        workers,
        items: items.unwrap_or(if quick { 10_000 } else { 100_000 }),
        cpu_tasks,
        cpu_iters,
        json,
        only,
    }
}

/// One row of the output: a number plus extra `key: value` fields (already JSON).
struct Record {
    workload: &'static str,
    library: &'static str,
    value: f64,
    unit: &'static str,
    extra: Vec<(&'static str, String)>,
}

struct Report {
    results: Vec<Record>,
}

impl Report {
    fn record(
        &mut self,
        workload: &'static str,
        value: f64,
        unit: &'static str,
        extra: Vec<(&'static str, String)>,
    ) {
        self.record_for(workload, "serfn", value, unit, extra);
    }

    fn record_for(
        &mut self,
        workload: &'static str,
        library: &'static str,
        value: f64,
        unit: &'static str,
        extra: Vec<(&'static str, String)>,
    ) {
        let shown = extra
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        println!(
            "{workload:<13} {library:<9} {:>16} {unit:<8} {shown}",
            grouped(value)
        );
        self.results.push(Record {
            workload,
            library,
            value,
            unit,
            extra,
        });
    }

    fn json(&self, args: &Args) -> String {
        let rows = self
            .results
            .iter()
            .map(|r| {
                let mut fields = vec![
                    format!("\"workload\": \"{}\"", r.workload),
                    format!("\"library\": \"{}\"", r.library),
                    format!("\"value\": {}", json_number(r.value)),
                    format!("\"unit\": \"{}\"", r.unit),
                ];
                fields.extend(r.extra.iter().map(|(k, v)| format!("\"{k}\": {v}")));
                format!("    {{{}}}", fields.join(", "))
            })
            .collect::<Vec<_>>()
            .join(",\n");
        format!(
            "{{\n  \"serfn\": \"{}\",\n  \"workers\": {},\n  \"runs\": {},\n  \"items\": {},\n  \"cpus\": {},\n  \"results\": [\n{rows}\n  ]\n}}\n",
            env!("CARGO_PKG_VERSION"),
            args.workers,
            args.runs,
            args.items,
            std::thread::available_parallelism().map_or(1, usize::from),
        )
    }
}

/// A finite number rounded to 3 decimals, as JSON.
fn json_number(x: f64) -> String {
    assert!(x.is_finite(), "not a finite number: {x}");
    let rounded = (x * 1000.0).round() / 1000.0;
    format!("{rounded}")
}

/// `1234567.8` as `1,234,567.8`.
fn grouped(x: f64) -> String {
    let text = if x.abs() < 100.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.1}")
    };
    let (int, frac) = text.split_once('.').unwrap_or((&text, "0"));
    let (sign, digits) = int.strip_prefix('-').map_or(("", int), |d| ("-", d));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}.{frac}")
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    let n = xs.len();
    if n == 0 {
        Duration::ZERO
    } else if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2
    }
}

/// Median time of `runs` calls of `run`; each result is checked by `check`, untimed.
fn median_time<T>(runs: usize, mut run: impl FnMut() -> T, mut check: impl FnMut(T)) -> Duration {
    let times = (0..runs)
        .map(|_| {
            let start = Instant::now();
            let out = run();
            let elapsed = start.elapsed();
            check(out);
            elapsed
        })
        .collect();
    median(times)
}

/// Panics unless `got` is exactly `want` (same binary, same float operations).
fn check_same(what: &str, got: &[f64], want: &[f64]) {
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: {} results for {} items",
        got.len(),
        want.len()
    );
    if let Some(i) = (0..got.len()).find(|&i| got[i].to_bits() != want[i].to_bits()) {
        panic!("{what}: item {i} is {} instead of {}", got[i], want[i]);
    }
}

fn collect_map(map: impl Iterator<Item = serfn::Result<f64>>) -> Vec<f64> {
    map.collect::<serfn::Result<Vec<f64>>>()
        .expect("a map failed")
}

/// A library in a same-run comparison: its name, the items it maps, and one run.
type Contender<'a> = (&'static str, usize, Box<dyn FnMut() -> Vec<f64> + 'a>);

/// The CPU task as a procspawn fn pointer: everything it needs is its argument.
fn descend_fn((x0, lr, iters): (f64, f64, u32)) -> f64 {
    let mut x = x0;
    for _ in 0..iters {
        x -= lr * (4.0 * x * x * x - 6.0 * x + 1.0);
    }
    x
}

fn main() {
    raw::child_if_asked();
    serfn::worker::init();
    procspawn::init();
    let args = parse_args();
    let mut report = Report {
        results: Vec::new(),
    };
    println!(
        "serfn pool bench: workers={}, runs={}, items={}, cpu={}x{} iters, cpus={}",
        args.workers,
        args.runs,
        args.items,
        args.cpu_tasks,
        args.cpu_iters,
        std::thread::available_parallelism().map_or(1, usize::from),
    );
    println!(
        "{:<13} {:<8} {:>16} {:<8} extra",
        "workload", "library", "value", "unit"
    );

    // -- tiny tasks ------------------------------------------------------------
    let factor = FACTOR;
    let scale: SerFn<f64, f64> =
        serfn::closure!("benches::pool::scale", [factor: f64], move |x: f64| -> f64 { x * factor });
    let items: Vec<f64> = (0..args.items)
        .map(|i| i as f64 / args.items as f64)
        .collect();
    let want: Vec<f64> = items.iter().map(|x| x * FACTOR).collect();
    let n = items.len() as f64;

    let direct = median_time(
        if args.wants("direct_call") {
            args.runs
        } else {
            0
        },
        || {
            items
                .iter()
                .map(|&x| scale.call(black_box(x)))
                .collect::<Vec<f64>>()
        },
        |got| check_same("direct_call", &got, &want),
    );
    if args.wants("direct_call") {
        report.record("direct_call", n / direct.as_secs_f64(), "tasks/s", vec![]);
    }

    let pool = Pool::builder()
        .workers(args.workers)
        .build()
        .expect("cannot start the pool");
    let chunked = (args.items / 8).max(1);
    let spawn_pool = procspawn::Pool::new(args.workers).expect("cannot start procspawn's pool");
    let rayon_pool = peers::rayon_pool(args.workers);
    for (workload, chunk) in [("tiny_chunk1", 1), ("tiny_chunked", chunked)] {
        if !args.wants(workload) {
            continue;
        }
        // procspawn makes two IPC channels per call: a fifth of the items keeps its
        // one-item-per-message row within seconds.
        let some = if chunk == 1 {
            (items.len() / 5).max(1)
        } else {
            items.len()
        };
        let mut raw_unbatched = raw::RawPool::new(args.workers, raw::Mode::Unbatched, FACTOR);
        let mut raw_buffered = raw::RawPool::new(args.workers, raw::Mode::Buffered, FACTOR);
        let mut raw_batched = raw::RawPool::new(args.workers, raw::Mode::Batched, FACTOR);
        let mut runs: Vec<Contender<'_>> = vec![
            (
                "serfn",
                items.len(),
                Box::new(|| collect_map(pool.map(&scale, items.iter().copied()).chunk_size(chunk))),
            ),
            (
                "procspawn",
                some,
                Box::new(|| peers::procspawn_map(&spawn_pool, &items[..some], FACTOR, chunk)),
            ),
            (
                "raw_batched",
                items.len(),
                Box::new(|| raw_batched.map(&items)),
            ),
            (
                "rayon",
                items.len(),
                Box::new(|| peers::rayon_map(&rayon_pool, &items, |x| scale.call(x))),
            ),
        ];
        if chunk == 1 {
            runs.push((
                "raw_socket",
                items.len(),
                Box::new(|| raw_unbatched.map(&items)),
            ));
            runs.push((
                "raw_buffered",
                items.len(),
                Box::new(|| raw_buffered.map(&items)),
            ));
        }
        // Untimed, checked warm-up (ships the function); then the libraries take
        // turns, each run in a rotated order, so that a change in the machine's
        // load falls on all of them alike.
        let mut retried = vec![0; runs.len()];
        for ((library, len, run), retried) in runs.iter_mut().zip(&mut retried) {
            let (got, _) = peers::timed(library, retried, run);
            check_same(workload, &got, &want[..*len]);
        }
        let mut times = vec![Vec::new(); runs.len()];
        let rounds = if chunk == 1 {
            args.runs
        } else {
            args.runs * CHUNKED_ROUNDS
        };
        for round in 0..rounds {
            for k in 0..runs.len() {
                let at = (round + k) % runs.len();
                let (library, len, run) = &mut runs[at];
                let (got, time) = peers::timed(library, &mut retried[at], run);
                times[at].push(time);
                check_same(workload, &got, &want[..*len]);
            }
        }
        for (((library, len, _), times), retried) in runs.iter().zip(times).zip(retried) {
            let mut extra = vec![
                ("chunk_size", chunk.to_string()),
                ("rounds", rounds.to_string()),
            ];
            if retried > 0 {
                extra.push(("retried", retried.to_string()));
            }
            if *len != items.len() {
                extra.push(("items", len.to_string()));
            }
            let rate_of = |t: &Duration| *len as f64 / t.as_secs_f64();
            let slowest = times.iter().max().copied().unwrap_or_default();
            let fastest = times.iter().min().copied().unwrap_or_default();
            extra.push(("min", format!("{:.1}", rate_of(&slowest))));
            extra.push(("max", format!("{:.1}", rate_of(&fastest))));
            let rate = rate_of(&median(times));
            report.record_for(workload, library, rate, "tasks/s", extra);
        }
    }
    if args.wants("tiny_auto") {
        let run = || collect_map(pool.map(&scale, items.iter().copied()));
        // Untimed, checked warm-up: times the items for automatic chunking.
        check_same("tiny_auto", &run(), &want);
        let time = median_time(args.runs, run, |got| check_same("tiny_auto", &got, &want));
        let extra = vec![("chunk_size", "\"auto\"".to_string())];
        report.record("tiny_auto", n / time.as_secs_f64(), "tasks/s", extra);
    }

    // -- CPU-bound: sequential in-process vs the pool -------------------------
    let (lr, iters) = (CPU_LR, args.cpu_iters);
    let descend: SerFn<f64, f64> = serfn::closure!("benches::pool::descend", [lr: f64, iters: u32], move |x0: f64| -> f64 {
        // Gradient descent on x^4 - 3x^2 + x: the Python script's `descend`.
        let mut x = x0;
        for _ in 0..*iters {
            x -= lr * (4.0 * x * x * x - 6.0 * x + 1.0);
        }
        x
    });
    let starts: Vec<f64> = (0..args.cpu_tasks)
        .map(|i| -2.0 + 4.0 * i as f64 / args.cpu_tasks as f64)
        .collect();
    if args.wants("cpu_speedup") {
        let cpu_want: Vec<f64> = starts.iter().map(|&x| descend.call(x)).collect();
        let sequential = median_time(
            args.runs,
            || {
                starts
                    .iter()
                    .map(|&x| descend.call(black_box(x)))
                    .collect::<Vec<f64>>()
            },
            |got| check_same("cpu sequential", &got, &cpu_want),
        );
        check_same(
            "cpu_speedup",
            &collect_map(pool.map(&descend, starts.iter().copied())),
            &cpu_want,
        );
        let parallel = median_time(
            args.runs,
            || collect_map(pool.map(&descend, starts.iter().copied())),
            |got| check_same("cpu_speedup", &got, &cpu_want),
        );
        report.record(
            "cpu_speedup",
            sequential.as_secs_f64() / parallel.as_secs_f64(),
            "x",
            vec![
                ("sequential_s", format!("{:.6}", sequential.as_secs_f64())),
                ("parallel_s", format!("{:.6}", parallel.as_secs_f64())),
                ("tasks", args.cpu_tasks.to_string()),
                ("iters", args.cpu_iters.to_string()),
            ],
        );
        for library in ["procspawn", "rayon"] {
            let parallel = median_time(
                args.runs,
                || match library {
                    "procspawn" => {
                        peers::procspawn_cpu(&spawn_pool, &starts, lr, iters, descend_fn)
                    }
                    _ => peers::rayon_map(&rayon_pool, &starts, |x| descend.call(x)),
                },
                |got| check_same("cpu_speedup", &got, &cpu_want),
            );
            report.record_for(
                "cpu_speedup",
                library,
                sequential.as_secs_f64() / parallel.as_secs_f64(),
                "x",
                vec![("parallel_s", format!("{:.6}", parallel.as_secs_f64()))],
            );
        }
    }
    if args.wants("pipeline") {
        pool_modes::pipeline(&args, &pool, &items, &mut report);
    }
    let stats = pool.stats();
    drop(pool);
    drop(spawn_pool);
    if args.wants("capture_100m") {
        pool_modes::capture(&args, &mut report);
    }
    if args.wants("startup") {
        pool_modes::startup(&args, &mut report);
    }

    println!("{stats:?}");
    let path = std::path::Path::new(&args.json);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).expect("cannot create the JSON file's directory");
    }
    std::fs::write(path, report.json(&args)).expect("cannot write the JSON file");
    println!("wrote {}", path.display());
}
