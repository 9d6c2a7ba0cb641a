//! Workers that speak the protocol badly on purpose: this test binary,
//! started by a pool in a "hostile" role, connects and says hello properly,
//! then answers garbage, wrong task ids, the wrong kind of answer, too many
//! results, half a frame, or nothing at all. Each gives a typed error within
//! the configured bounds, and the parent never decodes more than it asked for.

serfn::test_support!();

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use serfn::{Error, Pool, SerFn};

const MODE: &str = "SERFN_TEST_HOSTILE";
const ROLE: &str = "hostile_worker_role";

/// Not a test on its own: the hostile worker, when a pool starts it.
#[test]
fn hostile_worker_role() {
    if let Ok(mode) = std::env::var(MODE) {
        serve_badly(&mode);
    }
}

fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = ((body.len() + 1) as u32).to_le_bytes().to_vec();
    out.push(tag);
    out.extend_from_slice(body);
    out
}

/// The results' length prefix, in the build's wire format.
fn varint(n: u64) -> Vec<u8> {
    serfn::codec::encode_value(&n).unwrap()
}

fn serve_badly(mode: &str) -> ! {
    let socket = std::env::var_os("SERFN_WORKER_SOCKET").unwrap();
    let token: u64 = std::env::var("SERFN_WORKER_TOKEN")
        .unwrap()
        .parse()
        .unwrap();
    let mut stream = UnixStream::connect(socket).unwrap();
    let hello = [
        token.to_le_bytes(),
        u64::from(std::process::id()).to_le_bytes(),
    ]
    .concat();
    stream.write_all(&frame(0x81, &hello[..12])).unwrap();
    loop {
        let mut len = [0; 4];
        if stream.read_exact(&mut len).is_err() {
            std::process::exit(0);
        }
        let mut body = vec![0; u32::from_le_bytes(len) as usize];
        stream.read_exact(&mut body).unwrap();
        let tag = body[0];
        if ![2, 3, 4, 5, 7, 13].contains(&tag) {
            continue; // LOAD, FORGET, FLUSH: nothing to answer
        }
        let task = u64::from_le_bytes(body[1..9].try_into().unwrap());
        let header = [task.to_le_bytes(), 0u64.to_le_bytes()].concat();
        let answer = match mode {
            // A group's items answered with forged counts, each item on its
            // own answered right (`BATCH_SEQ`, a `u8` back as it came).
            "group-overcount" | "group-uneven" if tag == 7 => {
                // A microsecond each: the pool then sends items in groups.
                let mut payload = [task.to_le_bytes(), 1000u64.to_le_bytes()].concat();
                payload.extend(varint(1));
                payload.push(*body.last().unwrap());
                payload.push(0); // no panics
                frame(0x82, &payload)
            }
            "group-overcount" | "group-uneven" if tag == 13 => {
                let items = u32::from_le_bytes(body[18..22].try_into().unwrap());
                let claimed = if mode == "group-overcount" {
                    items + 5
                } else {
                    items
                };
                let mut payload = header;
                payload.extend_from_slice(&claimed.to_le_bytes());
                // One answer short of the claim in "group-uneven".
                let written = if mode == "group-overcount" {
                    claimed
                } else {
                    items - 1
                };
                for _ in 0..written {
                    payload.extend_from_slice(&3u32.to_le_bytes());
                    payload.extend(varint(1));
                    payload.extend_from_slice(&[7, 0]);
                }
                frame(0x86, &payload)
            }
            "garbage" => vec![0x5a; 64],
            "wrong-id" => frame(
                0x82,
                &[(task + 7).to_le_bytes(), 0u64.to_le_bytes()].concat(),
            ),
            "wrong-kind" => frame(0x84, &task.to_le_bytes()), // a fold's state, for a map
            "short" => frame(0x82, &task.to_le_bytes()),      // no elapsed time, no results
            "huge-frame" => u32::MAX.to_le_bytes().to_vec(),
            "too-many" => {
                // 8 million `u8` results (and no panics) for a chunk of a few items.
                let many = 8_000_000;
                let mut payload = header;
                payload.extend(varint(many));
                payload.resize(payload.len() + many as usize, 0);
                payload.push(0);
                frame(0x82, &payload)
            }
            "header" => {
                // A frame's length and tag, then silence: a worker stuck mid-write.
                stream.write_all(&frame(0x82, &[0; 100])[..5]).unwrap();
                std::thread::sleep(Duration::from_secs(60));
                Vec::new()
            }
            _ => {
                // "silent": never answers, never beats.
                std::thread::sleep(Duration::from_secs(60));
                Vec::new()
            }
        };
        let _ = stream.write_all(&answer);
    }
}

fn hostile(mode: &str) -> Pool {
    Pool::builder()
        .workers(1)
        .program(std::env::current_exe().unwrap())
        .args([ROLE, "--exact", "--nocapture", "--test-threads=1", "-q"])
        .env(MODE, mode)
        .liveness_timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

fn byte() -> SerFn<u8, u8> {
    serfn::closure!("hostile::byte", [], move |x: u8| -> u8 { x })
}

/// The error for one call to a hostile worker, and how long it took.
fn call(mode: &str) -> (Error, Duration) {
    let pool = hostile(mode);
    let started = Instant::now();
    let error = pool.call(&byte(), 1).unwrap_err();
    (error, started.elapsed())
}

fn assert_killed_for(mode: &str, why: &str) {
    match call(mode) {
        (Error::WorkerDied { status, .. }, _) => assert!(status.contains(why), "{mode}: {status}"),
        (other, _) => panic!("{mode}: {other:?}"),
    }
}

#[test]
fn a_broken_answer_kills_that_worker_and_fails_its_task() {
    assert_killed_for("garbage", "broken frame");
    assert_killed_for("wrong-id", "out of order");
    assert_killed_for("wrong-kind", "expects another");
    assert_killed_for("short", "frame ends");
    assert_killed_for("huge-frame", "limit");
}

#[test]
fn too_many_results_are_refused_before_they_are_decoded() {
    let pool = hostile("too-many");
    // Ten items in one chunk, answered with eight million results: the
    // count is checked as they are read, so the eleventh is where it stops.
    let results: Vec<serfn::Result<u8>> = pool.map(&byte(), 0..10).chunk_size(10).collect();
    assert_eq!(results.len(), 10);
    for result in results {
        match result {
            Err(Error::Decode { source }) => {
                assert!(
                    source.to_string().contains("answered 10 items with more"),
                    "{source}"
                )
            }
            other => panic!("{other:?}"),
        }
    }
    // A well-framed answer with bad content is that task's error: the worker lives.
    assert_eq!(pool.stats().restarts, 0);
}

#[test]
fn a_group_answered_with_forged_counts_is_refused_and_its_items_run_elsewhere() {
    for mode in ["group-overcount", "group-uneven"] {
        let pool = hostile(mode);
        // One item per message: first each in a frame of its own, until
        // timed, then in groups, whose answers are refused before any is
        // decoded; the worker is replaced, and the group's items run one a
        // frame, answered right.
        for _ in 0..3 {
            let results: Vec<u8> = pool
                .map(&byte(), 0..=255)
                .chunk_size(1)
                .collect::<serfn::Result<_>>()
                .unwrap_or_else(|error| panic!("{mode}: {error}"));
            assert_eq!(results, (0..=255).collect::<Vec<u8>>(), "{mode}");
        }
        assert!(pool.stats().restarts >= 1, "{mode}");
    }
}

#[test]
fn a_silent_worker_is_killed_after_the_liveness_timeout() {
    for mode in ["silent", "header"] {
        match call(mode) {
            (Error::WorkerDied { status, .. }, took) => {
                assert!(status.contains("sent nothing"), "{mode}: {status}");
                // The bound is the liveness timeout, plus a margin for a busy machine.
                assert!(took < Duration::from_secs(10), "{mode}: {took:?}");
            }
            (other, _) => panic!("{mode}: {other:?}"),
        }
    }
}
