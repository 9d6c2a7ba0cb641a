//! A kill soak inside the project: 100,000 items through two workers while
//! 100 `SIGKILL`s land at random moments, on busy, idle and starting workers
//! alike. Nothing is lost, duplicated or wrong, and no process outlives the
//! pool: with no retries a killed item is `WorkerDied` (counted, not lost);
//! with 5 retries every item succeeds. Once with automatic chunks, once at
//! one item per message (where timed items go in groups).

serfn::test_support!();

use std::collections::HashSet;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serfn::{Error, Pool, SerFn};

const ITEMS: usize = 100_000;
const KILLS: u32 = 100;

fn affine() -> SerFn<u64, u64> {
    serfn::closure!("soak::affine", [], move |x: u64| -> u64 {
        x.wrapping_mul(3) + 1
    })
}

/// This process's children: (pid, whether a zombie, whether a pool started
/// it as a worker, connected or not yet).
fn children() -> Vec<(u32, bool, bool)> {
    let me = std::process::id();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`; comm may hold anything but `)`.
        let mut fields = stat.rsplit(')').next().unwrap_or("").split_whitespace();
        let zombie = fields.next() == Some("Z");
        if fields.next().and_then(|p| p.parse::<u32>().ok()) != Some(me) {
            continue;
        }
        // A fork not yet exec'd (or the `kill` below) has this process's environment.
        let worker = std::fs::read(format!("/proc/{pid}/environ"))
            .is_ok_and(|env| env.windows(20).any(|w| w == b"SERFN_WORKER_SOCKET="));
        found.push((pid, zombie, worker));
    }
    found
}

/// xorshift64: random enough for kill times, and reproducible from its seed.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Kills a random live worker process every 0 to 20 ms until `KILLS` landed.
fn killer(landed: Arc<AtomicU32>, stop: Arc<AtomicBool>, seed: u64) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut rng = seed;
        while landed.load(Ordering::SeqCst) < KILLS && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_micros(next(&mut rng) % 20_000));
            let targets: Vec<u32> = children()
                .into_iter()
                .filter(|&(_, zombie, worker)| worker && !zombie)
                .map(|(pid, ..)| pid)
                .collect();
            if targets.is_empty() {
                continue;
            }
            let pid = targets[next(&mut rng) as usize % targets.len()];
            let killed = Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status()
                .is_ok_and(|status| status.success());
            if killed {
                landed.fetch_add(1, Ordering::SeqCst);
            }
        }
    })
}

#[derive(Debug, Default)]
struct Tally {
    ok: usize,
    died: usize,
    lost: usize,
    duplicated: usize,
    wrong: usize,
}

/// The soak with `retries`, at `chunk_size` items per message (automatic
/// chunks with `None`).
fn soak(retries: u32, seed: u64, chunk_size: Option<usize>) -> Tally {
    let started = Instant::now();
    let mut builder = Pool::builder().workers(2).retries(retries);
    if let Some(items) = chunk_size {
        builder = builder.chunk_size(items);
    }
    let pool = builder.build().unwrap();
    let (landed, stop) = (
        Arc::new(AtomicU32::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let killing = killer(Arc::clone(&landed), Arc::clone(&stop), seed);
    // Item i is taken only after its share of the kills landed, so that the
    // kills spread over the whole map and all land before it ends.
    let gate = Arc::clone(&landed);
    let items = (0..ITEMS as u64).inspect(move |&i| {
        let need = ((i as usize + 1) * KILLS as usize).div_ceil(ITEMS) as u32;
        while gate.load(Ordering::SeqCst) < need {
            std::thread::sleep(Duration::from_micros(200));
        }
    });
    let mut tally = Tally::default();
    let mut seen = HashSet::with_capacity(ITEMS);
    for (index, result) in pool.map_unordered(&affine(), items) {
        if !seen.insert(index) {
            tally.duplicated += 1;
            continue;
        }
        match result {
            Ok(y) if y == (index as u64).wrapping_mul(3) + 1 => tally.ok += 1,
            Err(Error::WorkerDied { status, .. }) if status.contains("signal 9") => tally.died += 1,
            other => {
                eprintln!("item {index}: {other:?}");
                tally.wrong += 1;
            }
        }
    }
    tally.lost = ITEMS - seen.len();
    stop.store(true, Ordering::SeqCst);
    killing.join().unwrap();
    let stats = pool.stats();
    drop(pool);
    let left = children();
    assert!(left.is_empty(), "processes left behind: {left:?}");
    eprintln!(
        "soak, retries {retries}, chunks {chunk_size:?}, seed {seed:#x}: {ITEMS} items, {} kills, {tally:?}, \
         {} restarts, {} retried, {:?}",
        landed.load(Ordering::SeqCst),
        stats.restarts,
        stats.retries,
        started.elapsed()
    );
    assert_eq!(landed.load(Ordering::SeqCst), KILLS);
    tally
}

/// A seed for the kill times from the clock, odd (xorshift needs one not 0):
/// each run kills at other times, and prints its seed to replay them.
fn seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1
}

#[test]
fn a_hundred_kills_lose_duplicate_and_corrupt_nothing() {
    let seed = seed();
    // One after the other: each pool's killer targets every worker of this process.
    let plain = soak(0, seed, None);
    assert_eq!((plain.lost, plain.duplicated, plain.wrong), (0, 0, 0));
    assert_eq!(plain.ok + plain.died, ITEMS);

    let retried = soak(5, seed.rotate_left(17) | 1, None);
    assert_eq!((retried.lost, retried.duplicated, retried.wrong), (0, 0, 0));
    assert_eq!(retried.ok, ITEMS, "with retries every item succeeds");

    // At one item per message, timed items go in groups: a kill leaves open
    // which item ran, and the worker's unanswered items run again one by
    // one to find it.
    let plain = soak(0, seed.rotate_left(29) | 1, Some(1));
    assert_eq!((plain.lost, plain.duplicated, plain.wrong), (0, 0, 0));
    assert_eq!(plain.ok + plain.died, ITEMS);

    let retried = soak(5, seed.rotate_left(41) | 1, Some(1));
    assert_eq!((retried.lost, retried.duplicated, retried.wrong), (0, 0, 0));
    assert_eq!(retried.ok, ITEMS, "with retries every item succeeds");
}
