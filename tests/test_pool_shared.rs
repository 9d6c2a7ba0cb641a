//! A large capture reaches Linux workers through shared memory: a sealed
//! memfd, written once by the pool and mapped read-only by each worker,
//! not bytes through their sockets. Checked from outside: the pool's byte
//! counters, the workers' resident memory in /proc, and, after a worker is
//! killed while it maps the capture, no process left holding the memory.
#![cfg(target_os = "linux")]

serfn::test_support!();

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serfn::{Error, Limits, Pool, SerFn};
use support::{alive, eventually};

/// 100 MiB: a capture past the default limits, as in the performance table.
const LEN: usize = 100 << 20;

/// Limits that admit the capture.
fn limits() -> Limits {
    Limits::new().max_bytes(LEN + (1 << 20))
}

/// A closure over `LEN` bytes of text (a `String` is cheap to encode and
/// decode in a debug build; the transport does not look at the type).
fn big(pause_ms: u64) -> SerFn<u64, u64> {
    let text = "a".repeat(LEN);
    serfn::closure!("test_pool_shared::big", [text: String, pause_ms: u64], move |x: u64| -> u64 {
        std::thread::sleep(Duration::from_millis(*pause_ms));
        x + text.len() as u64
    })
}

/// The same shape over a few bytes: what a map costs on the sockets without the capture.
fn small(pause_ms: u64) -> SerFn<u64, u64> {
    let text = "a".to_owned();
    serfn::closure!("test_pool_shared::small", [text: String, pause_ms: u64], move |x: u64| -> u64 {
        std::thread::sleep(Duration::from_millis(*pause_ms));
        x + text.len() as u64
    })
}

/// A `kB` field of /proc/PID/status, in bytes.
fn status_bytes(pid: u32, field: &str) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    let kb: usize = line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kb << 10
}

/// Runs 8 slow items one per chunk, so that both workers take some.
fn run(pool: &Pool, f: &SerFn<u64, u64>, add: u64) {
    let got: Vec<u64> = pool
        .map(f, 0..8)
        .chunk_size(1)
        .collect::<serfn::Result<_>>()
        .unwrap();
    assert_eq!(got, (0..8).map(|x| x + add).collect::<Vec<_>>());
}

#[test]
fn a_large_capture_reaches_each_worker_once_through_shared_memory() {
    let pool = Pool::builder().workers(2).limits(limits()).build().unwrap();
    let pids = pool.worker_pids();
    // The same map over a small capture: its socket bytes are the baseline.
    run(&pool, &small(20), 1);
    let before = pool.stats();
    let rss_before: Vec<usize> = pids.iter().map(|&p| status_bytes(p, "VmRSS:")).collect();

    let f = big(20);
    run(&pool, &f, LEN as u64);
    let after = pool.stats();
    assert_eq!(pool.worker_pids(), pids, "no worker was replaced");
    assert_eq!(
        after.functions_shipped - before.functions_shipped,
        2,
        "once per worker"
    );
    assert!(after.bytes_shared - before.bytes_shared >= 2 * LEN as u64);
    let small_map = before.bytes_sent;
    let big_map = after.bytes_sent - before.bytes_sent;
    assert!(
        big_map < small_map + 2 * 1024,
        "the capture's map wrote {big_map} bytes to the sockets (a small one's: {small_map})"
    );

    for (&pid, &was) in pids.iter().zip(&rss_before) {
        // The mapping goes on a thread of its own once the decode is done:
        // soon after the first call, never kept.
        let unmapped = eventually(|| status_bytes(pid, "RssShmem:") < LEN / 10);
        let shmem = status_bytes(pid, "RssShmem:");
        assert!(unmapped, "worker {pid} still maps {shmem} bytes");
        let rss = status_bytes(pid, "VmRSS:");
        let grown = rss.saturating_sub(was);
        // One copy: the decoded capture. Two would be a frame buffer or a
        // mapping kept beside it.
        assert!(
            grown > LEN * 9 / 10 && grown < LEN * 3 / 2,
            "worker {pid} grew by {grown} bytes for a capture of {LEN}"
        );
    }

    // Held by both workers: never sent again.
    run(&pool, &f, LEN as u64);
    let again = pool.stats();
    assert_eq!(again.functions_shipped, after.functions_shipped);
    assert_eq!(again.bytes_shared, after.bytes_shared);
}

/// A capture field that decodes slowly in one process, the worker to be
/// killed, after the text before it: that worker holds the capture mapped
/// long enough to be killed during it whatever the machine's load.
struct Slow(u32);

impl Serialize for Slow {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u32(self.0)
    }
}

impl<'de> Deserialize<'de> for Slow {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let pid = u32::deserialize(deserializer)?;
        if pid == std::process::id() {
            std::thread::sleep(Duration::from_secs(30));
        }
        Ok(Slow(pid))
    }
}

/// The processes whose descriptors or mappings name `label`.
fn holders(label: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|fd| std::fs::read_link(fd.path()).ok());
        if maps.contains(label) || fds.into_iter().any(|l| l.to_string_lossy().contains(label)) {
            found.push(pid);
        }
    }
    found
}

#[test]
fn a_worker_killed_while_it_maps_a_capture_leaves_no_segment_behind() {
    let pool = Pool::builder().workers(1).limits(limits()).build().unwrap();
    let victim = pool.worker_pids()[0];
    // The pool names its memfds after itself and the function.
    let label = format!("memfd:serfn {} ", std::process::id());
    let (text, slow) = ("a".repeat(LEN), Slow(victim));
    let f = serfn::closure!("test_pool_shared::mapped", [text: String, slow: Slow], move |x: u64| -> u64 {
        let _ = slow;
        x + text.len() as u64
    });
    let label = format!("{label}{}", f.name());
    let task = pool.submit(&f, 1);

    let deadline = Instant::now() + Duration::from_secs(120);
    let maps = format!("/proc/{victim}/maps");
    while !std::fs::read_to_string(&maps)
        .unwrap_or_default()
        .contains(&label)
    {
        assert!(
            Instant::now() < deadline,
            "the worker never mapped the capture"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let status = Command::new("kill")
        .args(["-9", &victim.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    match task.wait() {
        Err(Error::WorkerDied { pid, .. }) => assert_eq!(pid, victim),
        // Killed before the task itself was written to it: run elsewhere.
        Ok(got) => assert_eq!(got, LEN as u64 + 1),
        other => panic!("expected WorkerDied or the result, got {other:?}"),
    }
    assert!(eventually(|| !alive(victim)));
    // Only the pool holds the memfd now, to ship it to other workers: once
    // the replacement, if the task went to it, has decoded it and let go.
    assert!(!holders(&label).contains(&victim));
    assert!(
        eventually(|| holders(&label) == vec![std::process::id()]),
        "still held by {:?}",
        holders(&label)
    );
    // The replacement maps the same memfd, decodes it and lets it go.
    assert_eq!(pool.call(&f, 2).unwrap(), LEN as u64 + 2);
    assert_eq!(pool.stats().functions_shipped, 2);
    assert_eq!(holders(&label), vec![std::process::id()]);

    drop(pool);
    assert!(
        eventually(|| holders(&label).is_empty()),
        "still held by {:?}",
        holders(&label)
    );
}

/// Past the pool's shared-memory threshold (1 MiB), small enough for a debug build.
const MID: usize = 2 << 20;

/// Whatever a capture holds, the worker gets the function the parent
/// encoded: a `Bulk` (written to the memfd in one piece), numbers that all
/// differ (through the writer's buffer), a pipeline (through a `Vec`, as a
/// combinator is), each checked against the same call in this process, and
/// each shipped as many bytes as its envelope has.
#[test]
fn a_capture_written_straight_into_shared_memory_decodes_as_it_was() {
    let pool = Pool::builder().workers(1).build().unwrap();
    let weights: serfn::codec::Bulk<f64> = (0..MID / 8)
        .map(|i| i as f64 * 0.25)
        .collect::<Vec<_>>()
        .into();
    let dot = serfn::closure!("test_pool_shared::dot", [weights: serfn::codec::Bulk<f64>], move |x: f64| -> f64 {
        weights.iter().map(|w| w * x).sum()
    });
    let steps: Vec<u64> = (0..MID as u64 / 4)
        .map(|i| i.wrapping_mul(2_654_435_761))
        .collect();
    let fold = serfn::closure!("test_pool_shared::fold", [steps: Vec<u64>], move |x: u64| -> u64 {
        steps.iter().fold(x, |acc, s| acc.rotate_left(5) ^ s)
    });
    let offset = 7u64;
    let pipeline = fold.clone().then(
        serfn::closure!("test_pool_shared::add", [offset: u64], move |x: u64| -> u64 {
            x + offset
        }),
    );

    let mut shared = pool.stats().bytes_shared;
    let mut check_shipped = |envelope: Vec<u8>| {
        let now = pool.stats().bytes_shared;
        assert_eq!(
            now - shared,
            envelope.len() as u64,
            "bytes shared for one function"
        );
        shared = now;
    };
    assert_eq!(pool.call(&dot, 2.0).unwrap(), dot.call(2.0));
    check_shipped(dot.to_bytes().unwrap());
    assert_eq!(pool.call(&fold, 3).unwrap(), fold.call(3));
    check_shipped(fold.to_bytes().unwrap());
    assert_eq!(pool.call(&pipeline, 3).unwrap(), pipeline.call(3));
    check_shipped(pipeline.to_bytes().unwrap());
    // Encoded again for each call, found the same, not shipped again.
    assert_eq!(pool.call(&dot, 1.0).unwrap(), dot.call(1.0));
    assert_eq!(pool.stats().bytes_shared, shared);
    assert_eq!(pool.stats().functions_shipped, 3);
}

/// A field whose encoding grows by a byte each time it is encoded; decoded,
/// it is the length it was encoded with.
struct Drifting(usize);

static ENCODED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Serialize for Drifting {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let times = ENCODED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        serializer.serialize_bytes(&vec![1; MID + times])
    }
}

impl<'de> Deserialize<'de> for Drifting {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Length;
        impl serde::de::Visitor<'_> for Length {
            type Value = Drifting;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<Drifting, E> {
                Ok(Drifting(bytes.len()))
            }
        }
        deserializer.deserialize_bytes(Length)
    }
}

/// A function not seen before is counted only until it is known to be
/// large, then written to shared memory as it is encoded; one whose name
/// was large last time is not counted at all. The worker gets what was
/// written: here a capture that grows by a byte at each encoding.
#[test]
fn a_large_capture_is_counted_up_to_the_threshold_then_written_once() {
    let pool = Pool::builder().workers(1).build().unwrap();
    let drifting = Drifting(0);
    let f = serfn::closure!("test_pool_shared::drifting", [drifting: Drifting], move || -> u64 {
        drifting.0 as u64
    });
    // Counted past the threshold (MID), then written (MID + 1).
    assert_eq!(pool.call(&f, ()).unwrap(), MID as u64 + 1);
    // Written at once (MID + 2): other bytes, shipped again.
    assert_eq!(pool.call(&f, ()).unwrap(), MID as u64 + 2);
    let stats = pool.stats();
    assert_eq!(stats.functions_shipped, 2);
    assert!(stats.bytes_shared > 2 * MID as u64, "{stats:?}");
}
