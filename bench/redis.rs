//! Throughput through Redis with 2 workers, beside the local pool:
//! `cargo bench -p serfn-bench --features redis --bench redis [-- OPTIONS]`.
//!
//! The Rust side of `bench/python/celery/bench_celery.py`;
//! `bench/compare_redis.sh` runs both against one Redis and prints them
//! side by side. Workloads, mirrored in that script:
//!
//! - `tiny_one_per_entry`: `x * f` with a captured `f = 1.5` over `--items`
//!   floats `i / items` (default 20,000), `chunk_size(1)`: one task per stream
//!   entry; tasks/s.
//! - `tiny_batched`: the same over `--batched-items` floats (default
//!   1,000,000) with automatic chunking (`--batched-chunk N`: chunks of N);
//!   tasks/s (items per second).
//! - `pool_tiny_batched`: `tiny_batched` on a local `Pool` of the same number
//!   of workers, automatic chunking, for the ratio Redis / local.
//! - `capture_1mib`: a closure capturing 1 MiB of bytes, mapped over 10,000
//!   integers (automatic chunking); seconds. Each run captures other bytes,
//!   so each ships its function afresh (no run finds it stored or cached).
//!   Also the bytes through Redis (`INFO stats` deltas) and the executor's
//!   `stats()` deltas.
//!
//! The workers (2 by default) are this binary run again with
//! `SERFN_BENCH_REDIS_WORKER` set, serving a prefix unique to this run; they
//! are started and warmed up (one checked map) before anything is timed.
//! Each number is the median of `--runs` runs (default 5); every result is
//! checked against the same function called in this process.
//!
//! Redis is `--url`, or `SERFN_REDIS_URL`, or else a throwaway server started
//! with `.ci/redis-up.sh` and stopped at the end.
//!
//! Options: `--url URL`, `--runs N`, `--workers N`, `--items N`,
//! `--batched-items N`, `--batched-chunk N`, `--capture-items N`, `--only w1,w2`, `--json PATH`
//! (default the repository's `target/redisbench.json`; a relative PATH starts in
//! `bench/`). Other arguments (cargo's `--bench`) are ignored. The JSON has `bench/pool.rs`'s flat schema.

#[path = "common/args.rs"]
mod args;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serfn::redis::{RedisExecutor, RedisStats, RedisWorker};
use serfn::{Pool, SerFn};

/// Set in a worker process: the Redis URL, then `SERFN_BENCH_REDIS_PREFIX`.
const ENV_WORKER: &str = "SERFN_BENCH_REDIS_WORKER";
const ENV_PREFIX: &str = "SERFN_BENCH_REDIS_PREFIX";
/// The tiny task's captured factor.
const FACTOR: f64 = 1.5;
/// The size of `capture_1mib`'s capture.
const CAPTURE_BYTES: usize = 1 << 20;

struct Args {
    url: Option<String>,
    runs: usize,
    workers: usize,
    items: usize,
    batched_items: usize,
    /// `--batched-chunk N`: a fixed chunk size for `tiny_batched` instead of automatic.
    batched_chunk: Option<usize>,
    capture_items: usize,
    json: String,
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
    let mut parsed = Args {
        url: std::env::var("SERFN_REDIS_URL").ok(),
        runs: 5,
        workers: 2,
        items: 20_000,
        batched_items: 1_000_000,
        batched_chunk: None,
        capture_items: 10_000,
        json: repo().join("target/redisbench.json").display().to_string(),
        only: None,
    };
    let mut flags = args::Flags::new();
    while let Some((flag, inline)) = flags.next_flag() {
        let mut value = || flags.value(inline.clone());
        match flag.as_str() {
            "--url" => parsed.url = Some(value().expect("--url needs a URL")),
            "--runs" => parsed.runs = args::number("--runs", value()),
            "--workers" => parsed.workers = args::number("--workers", value()),
            "--items" => parsed.items = args::number("--items", value()),
            "--batched-items" => parsed.batched_items = args::number("--batched-items", value()),
            "--batched-chunk" => {
                parsed.batched_chunk = Some(args::number("--batched-chunk", value()))
            }
            "--capture-items" => parsed.capture_items = args::number("--capture-items", value()),
            "--json" => parsed.json = value().expect("--json needs a path"),
            "--only" => parsed.only = Some(args::names("--only", value())),
            _ => {} // cargo's --bench and the like
        }
    }
    parsed
}

// -- the fleet: Redis and worker processes --------------------------------------

/// A redis-server of this run's own, stopped on drop.
struct OwnRedis {
    dir: std::path::PathBuf,
}

/// The repository (this package is its `bench/`): `.ci/` and `target/` are there.
fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

impl OwnRedis {
    fn start() -> (OwnRedis, String) {
        let dir = std::env::temp_dir().join(format!("serfn-bench-redis-{}", std::process::id()));
        let output = Command::new("bash")
            .arg(repo().join(".ci/redis-up.sh"))
            .arg(&dir)
            .stderr(Stdio::inherit())
            .output()
            .expect("cannot run .ci/redis-up.sh");
        assert!(output.status.success(), ".ci/redis-up.sh failed");
        let url = String::from_utf8_lossy(&output.stdout)
            .lines()
            .last()
            .expect(".ci/redis-up.sh printed no URL")
            .to_owned();
        (OwnRedis { dir }, url)
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repo().join(".ci/redis-down.sh"))
            .arg(&self.dir)
            .status();
    }
}

/// Worker processes, killed on drop (also when the bench panics).
struct Workers(Vec<Child>);

impl Workers {
    fn start(url: &str, prefix: &str, n: usize) -> Workers {
        let exe = std::env::current_exe().expect("cannot find this bench binary");
        Workers(
            (0..n)
                .map(|_| {
                    Command::new(&exe)
                        .env(ENV_WORKER, url)
                        .env(ENV_PREFIX, prefix)
                        .stdin(Stdio::null())
                        .spawn()
                        .expect("cannot start a worker")
                })
                .collect(),
        )
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// In a worker process: serves the prefix until the bench (its parent) is gone.
fn serve_if_worker() {
    let Ok(url) = std::env::var(ENV_WORKER) else {
        return;
    };
    let prefix = std::env::var(ENV_PREFIX).expect("a worker needs its prefix");
    let worker = RedisWorker::new(&url).prefix(prefix);
    // A bench killed with SIGKILL cannot kill its workers: they notice.
    let parent = std::os::unix::process::parent_id();
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(200));
        if std::os::unix::process::parent_id() != parent {
            std::process::exit(0);
        }
    });
    let code = match worker.run() {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("bench worker: {error}");
            1
        }
    };
    std::process::exit(code);
}

/// `INFO stats`: bytes the server has read and written so far.
fn net_bytes(connection: &mut redis::Connection) -> (u64, u64) {
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query(connection)
        .expect("INFO stats failed");
    let field = |name: &str| -> u64 {
        info.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("INFO stats has no {name}"))
    };
    (
        field("total_net_input_bytes"),
        field("total_net_output_bytes"),
    )
}

/// Deletes every key of this run's prefix.
fn clean_up(connection: &mut redis::Connection, prefix: &str) -> usize {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query(connection)
        .unwrap_or_default();
    if !keys.is_empty() {
        let _: redis::RedisResult<()> = redis::cmd("DEL").arg(&keys).query(connection);
    }
    keys.len()
}

// -- numbers --------------------------------------------------------------------

struct Record {
    workload: &'static str,
    value: f64,
    unit: &'static str,
    extra: Vec<(&'static str, String)>,
}

fn record(
    results: &mut Vec<Record>,
    workload: &'static str,
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
        "{workload:<18} {:<12} {value:>14.3} {unit:<8} {shown}",
        "serfn"
    );
    results.push(Record {
        workload,
        value,
        unit,
        extra,
    });
}

fn json(args: &Args, redis_version: &str, results: &[Record]) -> String {
    let rows = results
        .iter()
        .map(|r| {
            assert!(r.value.is_finite(), "not a finite number: {}", r.value);
            let mut fields = vec![
                format!("\"workload\": \"{}\"", r.workload),
                "\"library\": \"serfn\"".to_string(),
                format!("\"value\": {}", (r.value * 1000.0).round() / 1000.0),
                format!("\"unit\": \"{}\"", r.unit),
            ];
            fields.extend(r.extra.iter().map(|(k, v)| format!("\"{k}\": {v}")));
            format!("    {{{}}}", fields.join(", "))
        })
        .collect::<Vec<_>>()
        .join(",\n");
    format!(
        "{{\n  \"serfn\": \"{}\",\n  \"redis\": \"{redis_version}\",\n  \"workers\": {},\n  \"runs\": {},\n  \"items\": {},\n  \"batched_items\": {},\n  \"capture_items\": {},\n  \"cpus\": {},\n  \"results\": [\n{rows}\n  ]\n}}\n",
        env!("CARGO_PKG_VERSION"),
        args.workers,
        args.runs,
        args.items,
        args.batched_items,
        args.capture_items,
        std::thread::available_parallelism().map_or(1, usize::from),
    )
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// Panics unless `got` is exactly `want` (same binary, same operations).
fn check_same<T: PartialEq + std::fmt::Debug>(what: &str, got: &[T], want: &[T]) {
    assert_eq!(got.len(), want.len(), "{what}: wrong number of results");
    if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
        panic!("{what}: item {i} is {:?} instead of {:?}", got[i], want[i]);
    }
}

fn collect<T>(map: impl Iterator<Item = serfn::Result<T>>) -> Vec<T> {
    map.collect::<serfn::Result<Vec<T>>>()
        .expect("a map failed")
}

/// Seconds of each of `runs` timed calls of `run`, each result checked untimed.
fn times<T>(runs: usize, mut run: impl FnMut(usize) -> T, mut check: impl FnMut(T)) -> Vec<f64> {
    (0..runs)
        .map(|i| {
            let start = Instant::now();
            let out = run(i);
            let elapsed = start.elapsed().as_secs_f64();
            check(out);
            elapsed
        })
        .collect()
}

fn spread(secs: &[f64]) -> String {
    let shown: Vec<String> = secs.iter().map(|s| format!("{s:.4}")).collect();
    format!("[{}]", shown.join(", "))
}

/// The 1 MiB capture of run `run`: other bytes each run, so another hash.
fn capture_data(run: usize) -> Vec<u8> {
    (0..CAPTURE_BYTES)
        .map(|i| (i.wrapping_mul(31) ^ run.wrapping_mul(977)) as u8)
        .collect()
}

fn capture_fn(data: Vec<u8>) -> SerFn<u64, u64> {
    serfn::closure!("benches::redis::capture", [data: Vec<u8>], move |i: u64| -> u64 {
        i * 3 + u64::from(data[(i as usize * 4099) % data.len()])
    })
}

fn main() {
    serfn::worker::init();
    serve_if_worker();
    let args = parse_args();

    let (_own_redis, url) = match &args.url {
        Some(url) => (None, url.clone()),
        None => {
            let (own, url) = OwnRedis::start();
            (Some(own), url)
        }
    };
    let mut connection = redis::Client::open(url.as_str())
        .and_then(|client| client.get_connection())
        .expect("cannot connect to Redis");
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query(&mut connection)
        .expect("INFO server failed");
    let redis_version = info
        .lines()
        .find_map(|line| line.strip_prefix("redis_version:"))
        .unwrap_or("?")
        .trim()
        .to_owned();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let prefix = format!("serfn-bench-{}-{nanos}", std::process::id());
    println!(
        "serfn redis bench: redis {redis_version} at {url}, prefix {prefix}, workers={}, runs={}, cpus={}",
        args.workers,
        args.runs,
        std::thread::available_parallelism().map_or(1, usize::from),
    );
    println!(
        "{:<18} {:<12} {:>14} {:<8} extra",
        "workload", "library", "value", "unit"
    );
    let mut results = Vec::new();

    let workers = Workers::start(&url, &prefix, args.workers);
    let build = |chunk: Option<usize>| {
        let builder = RedisExecutor::builder(&url)
            .prefix(prefix.as_str())
            .result_ttl(Duration::from_secs(600));
        match chunk {
            Some(size) => builder.chunk_size(size),
            None => builder,
        }
        .build()
        .expect("cannot reach Redis")
    };

    let factor = FACTOR;
    let scale: SerFn<f64, f64> = serfn::closure!("benches::redis::scale", [factor: f64], move |x: f64| -> f64 { x * factor });
    let floats = |n: usize| -> Vec<f64> { (0..n).map(|i| i as f64 / n as f64).collect() };

    // -- tiny tasks, one per entry and batched, then on the local pool -------
    for (workload, n, chunk) in [
        ("tiny_one_per_entry", args.items, Some(1)),
        ("tiny_batched", args.batched_items, args.batched_chunk),
    ] {
        if !args.wants(workload) {
            continue;
        }
        let fleet = build(chunk);
        let items = floats(n);
        let want: Vec<f64> = items.iter().map(|&x| scale.call(x)).collect();
        // Untimed, checked warm-up: both workers connected, the function cached.
        check_same(workload, &collect(fleet.map(&scale, items.clone())), &want);
        let before = fleet.stats();
        let secs = times(
            args.runs,
            |_| collect(fleet.map(&scale, items.iter().copied())),
            |got| check_same(workload, &got, &want),
        );
        let stats = fleet.stats();
        let tasks_per_run = (stats.tasks - before.tasks) as f64 / args.runs as f64;
        record(
            &mut results,
            workload,
            n as f64 / median(secs.clone()),
            "tasks/s",
            vec![
                ("items", n.to_string()),
                (
                    "chunk_size",
                    chunk.map_or("\"auto\"".into(), |c| c.to_string()),
                ),
                ("entries_per_run", format!("{tasks_per_run:.0}")),
                ("runs_s", spread(&secs)),
            ],
        );
    }
    if args.wants("pool_tiny_batched") {
        let pool = Pool::builder()
            .workers(args.workers)
            .build()
            .expect("cannot start the pool");
        let items = floats(args.batched_items);
        let want: Vec<f64> = items.iter().map(|&x| scale.call(x)).collect();
        check_same(
            "pool_tiny_batched",
            &collect(pool.map(&scale, items.iter().copied())),
            &want,
        );
        let secs = times(
            args.runs,
            |_| collect(pool.map(&scale, items.iter().copied())),
            |got| check_same("pool_tiny_batched", &got, &want),
        );
        record(
            &mut results,
            "pool_tiny_batched",
            args.batched_items as f64 / median(secs.clone()),
            "tasks/s",
            vec![
                ("items", args.batched_items.to_string()),
                ("chunk_size", "\"auto\"".into()),
                ("runs_s", spread(&secs)),
            ],
        );
    }

    // -- a 1 MiB capture, shipped afresh each run ----------------------------
    if args.wants("capture_1mib") {
        let fleet = build(None);
        let items: Vec<u64> = (0..args.capture_items as u64).collect();
        // Warm-up with a capture no timed run uses.
        let warm = capture_fn(capture_data(usize::MAX));
        let want: Vec<u64> = items.iter().map(|&i| warm.call(i)).collect();
        check_same(
            "capture_1mib",
            &collect(fleet.map(&warm, items.clone())),
            &want,
        );
        let mut net: Vec<(u64, u64)> = Vec::new();
        let mut stats: Vec<(RedisStats, RedisStats)> = Vec::new();
        let mut wants: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
        let functions: Vec<SerFn<u64, u64>> = (0..args.runs)
            .map(|run| {
                let f = capture_fn(capture_data(run));
                wants.insert(run, items.iter().map(|&i| f.call(i)).collect());
                f
            })
            .collect();
        let mut run_index = 0;
        let secs = times(
            args.runs,
            |run| {
                // Outside the map, but inside the timer: two small commands.
                let before = (net_bytes(&mut connection), fleet.stats());
                let got = collect(fleet.map(&functions[run], items.iter().copied()));
                let after = (net_bytes(&mut connection), fleet.stats());
                net.push((after.0 .0 - before.0 .0, after.0 .1 - before.0 .1));
                stats.push((before.1, after.1));
                got
            },
            |got| {
                check_same("capture_1mib", &got, &wants[&run_index]);
                run_index += 1;
            },
        );
        let delta = |f: fn(&RedisStats) -> u64| {
            median(stats.iter().map(|(b, a)| (f(a) - f(b)) as f64).collect())
        };
        let input = median(net.iter().map(|n| n.0 as f64).collect());
        let output = median(net.iter().map(|n| n.1 as f64).collect());
        let mib = |bytes: f64| format!("{:.3}", bytes / (1 << 20) as f64);
        record(
            &mut results,
            "capture_1mib",
            median(secs.clone()),
            "s",
            vec![
                ("items", args.capture_items.to_string()),
                ("capture_bytes", CAPTURE_BYTES.to_string()),
                ("chunk_size", "\"auto\"".into()),
                ("redis_in_mib", mib(input)),
                ("redis_out_mib", mib(output)),
                ("function_mib", mib(delta(|s| s.function_bytes))),
                ("tasks_mib", mib(delta(|s| s.bytes_sent))),
                ("results_mib", mib(delta(|s| s.bytes_received))),
                ("entries_per_run", format!("{:.0}", delta(|s| s.tasks))),
                ("runs_s", spread(&secs)),
            ],
        );
    }

    drop(workers);
    let removed = clean_up(&mut connection, &prefix);
    println!("removed {removed} keys of prefix {prefix}");
    let path = Path::new(&args.json);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).expect("cannot create the JSON file's directory");
    }
    std::fs::write(path, json(&args, &redis_version, &results)).expect("cannot write the JSON");
    println!("wrote {}", path.display());
}
