//! One item per message, sent in groups: each item is still its own task,
//! with its own error, timeout and retry, though the pool queues, sends and
//! hands over a group of them at a time. Real worker processes, really killed.

serfn::test_support!();

mod support;

use std::time::Duration;

use serfn::{Error, Pool, SerFn};
use support::eventually;

/// What an item does to its worker: 1 aborts it, 2 sleeps a minute, 3 panics.
fn faulty() -> SerFn<(u32, u32), u32> {
    serfn::closure!("groups::faulty", [], move |x: u32, fault: u32| -> u32 {
        match fault {
            1 => std::process::abort(),
            2 => std::thread::sleep(Duration::from_secs(60)),
            3 => panic!("item {x} panics"),
            _ => {}
        }
        x
    })
}

const ITEMS: u32 = 4_000;

fn kill_9(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Items `0..ITEMS`, each harmless but `at`, which does `fault`.
fn items_with(at: u32, fault: u32) -> impl Iterator<Item = (u32, u32)> {
    (0..ITEMS).map(move |x| (x, if x == at { fault } else { 0 }))
}

/// A map of harmless items first: the items are timed, so that later maps
/// at one item per message send them in groups.
fn timed(pool: &Pool, f: &SerFn<(u32, u32), u32>) {
    let got: Vec<u32> = pool
        .map(f, items_with(u32::MAX, 0))
        .collect::<serfn::Result<_>>()
        .unwrap();
    assert_eq!(got, (0..ITEMS).collect::<Vec<_>>());
}

/// The results of a map, with the indexes of those that failed.
fn failures(results: &[serfn::Result<u32>]) -> Vec<usize> {
    for (i, result) in results.iter().enumerate() {
        if let Ok(x) = result {
            assert_eq!(*x as usize, i, "item {i} answered with another's result");
        }
    }
    (0..results.len())
        .filter(|&i| results[i].is_err())
        .collect()
}

#[test]
fn timed_items_at_one_per_message_are_handed_over_in_groups() {
    let pool = Pool::builder().workers(2).chunk_size(1).build().unwrap();
    let f = faulty();
    timed(&pool, &f);
    let mut reports = 0;
    let got: Vec<u32> = pool
        .map(&f, items_with(u32::MAX, 0))
        .on_progress(|_| reports += 1)
        .collect::<serfn::Result<_>>()
        .unwrap();
    assert_eq!(got, (0..ITEMS).collect::<Vec<_>>());
    // Progress comes per chunk handed over: far fewer than one per item.
    assert!(reports < ITEMS as usize / 4, "{reports} reports");
    assert_eq!(pool.stats().tasks, 2 * u64::from(ITEMS));
}

/// A worker reads its clock once per several items of a group, and at the
/// group's last: the items' times still add up, so that slow items stay in
/// small groups.
#[test]
fn a_groups_times_add_up_so_slow_items_stay_in_small_groups() {
    let pool = Pool::builder().workers(2).chunk_size(1).build().unwrap();
    let nap = serfn::closure!("groups::nap", [], move |x: u32| -> u32 {
        std::thread::sleep(Duration::from_micros(250));
        x
    });
    let items = 400;
    let timing: Vec<u32> = pool
        .map(&nap, 0..items)
        .collect::<serfn::Result<_>>()
        .unwrap();
    assert_eq!(timing.len(), items as usize);
    let mut reports = 0;
    let got: Vec<u32> = pool
        .map(&nap, 0..items)
        .on_progress(|_| reports += 1)
        .collect::<serfn::Result<_>>()
        .unwrap();
    assert_eq!(got, (0..items).collect::<Vec<_>>());
    // A group takes a worker about 2 ms: 8 of these items at most, so 50
    // reports at least. Had the items that leave the clock to a later one
    // been counted as taking no time, the groups would have grown to a
    // quarter of a worker's share, 50 items: 8 reports.
    assert!(reports >= items as usize / 16, "{reports} reports");
}

#[test]
fn an_item_that_kills_its_worker_fails_alone_and_the_rest_of_its_group_runs() {
    let pool = Pool::builder().workers(2).chunk_size(1).build().unwrap();
    let f = faulty();
    timed(&pool, &f);
    let results: Vec<serfn::Result<u32>> = pool.map(&f, items_with(1_777, 1)).collect();
    assert_eq!(results.len(), ITEMS as usize);
    assert_eq!(failures(&results), [1_777]);
    match &results[1_777] {
        Err(Error::WorkerDied { status, .. }) => assert!(status.contains("signal 6"), "{status}"),
        other => panic!("{other:?}"),
    }
    // The first death leaves open which item ran (a worker holds answers
    // back): the items the worker had not answered run again one by one,
    // each after the answers before it are out, and the next death is
    // charged: two deaths in all.
    assert!(eventually(|| pool.stats().restarts >= 2));
    assert_eq!(pool.stats().restarts, 2, "{:?}", pool.stats());
    assert_eq!(pool.stats().retries, 0);
}

#[test]
fn retries_are_the_items_own_not_its_groups() {
    let pool = Pool::builder()
        .workers(2)
        .chunk_size(1)
        .retries(2)
        .build()
        .unwrap();
    let f = faulty();
    timed(&pool, &f);
    // Two items that kill every worker they run on, in the same stretch.
    let items = (0..ITEMS).map(|x| (x, u32::from(x == 1_500 || x == 1_510)));
    let results: Vec<serfn::Result<u32>> = pool.map(&f, items).collect();
    assert_eq!(failures(&results), [1_500, 1_510]);
    for at in [1_500, 1_510] {
        assert!(
            matches!(results[at], Err(Error::WorkerDied { .. })),
            "{:?}",
            results[at]
        );
    }
    // Each was charged three deaths (two retries), none the other's. Before
    // that, one death left open which item ran: one for each killer, or one
    // for both when the first's made the second's group suspect too (when
    // the two fell in different groups, both in flight).
    assert_eq!(pool.stats().retries, 4);
    assert!(eventually(|| pool.stats().restarts >= 7));
    let restarts = pool.stats().restarts;
    assert!((7..=8).contains(&restarts), "{:?}", pool.stats());
}

#[test]
fn an_item_past_its_timeout_fails_alone_in_its_group() {
    let pool = Pool::builder()
        .workers(2)
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let f = faulty();
    timed(&pool, &f);
    let results: Vec<serfn::Result<u32>> = pool.map(&f, items_with(2_222, 2)).collect();
    assert_eq!(failures(&results), [2_222]);
    assert!(
        matches!(results[2_222], Err(Error::Timeout { timeout, .. }) if timeout == Duration::from_secs(1)),
        "{:?}",
        results[2_222]
    );
    assert!(eventually(|| pool.stats().restarts == 1));
}

#[test]
fn a_panicking_item_is_its_own_error_and_kills_nothing() {
    let pool = Pool::builder().workers(2).chunk_size(1).build().unwrap();
    let f = faulty();
    timed(&pool, &f);
    let results: Vec<serfn::Result<u32>> = pool.map(&f, items_with(3_333, 3)).collect();
    assert_eq!(failures(&results), [3_333]);
    match &results[3_333] {
        Err(Error::Panicked { message, .. }) => assert_eq!(message, "item 3333 panics"),
        other => panic!("{other:?}"),
    }
    assert_eq!(pool.stats().restarts, 0);
}

#[test]
fn a_worker_killed_from_outside_mid_group_fails_no_item() {
    // No retries: what the killed worker had not answered is run again to
    // find the item it was running, which does not kill the next worker.
    let pool = Pool::builder().workers(2).chunk_size(1).build().unwrap();
    let f = faulty();
    timed(&pool, &f);
    let victim = pool.worker_pids()[0];
    let mut seen = vec![0u32; ITEMS as usize];
    for (n, (index, result)) in pool.map_unordered(&f, items_with(u32::MAX, 0)).enumerate() {
        if n == 500 {
            kill_9(victim);
        }
        assert_eq!(result.unwrap() as usize, index);
        seen[index] += 1;
    }
    assert!(seen.iter().all(|&n| n == 1));
    assert!(eventually(|| pool.stats().restarts == 1));
}

/// `n` bytes, for answers of a chosen size.
fn blob() -> SerFn<(u32, u32), Vec<u8>> {
    serfn::closure!("groups::blob", [], move |x: u32, n: u32| -> Vec<u8> {
        vec![x as u8; n as usize]
    })
}

#[test]
fn an_answer_past_the_limits_fails_its_item_alone_in_its_group() {
    let limit = 16 << 10;
    let pool = Pool::builder()
        .workers(2)
        .chunk_size(1)
        .limits(serfn::Limits::default().max_bytes(limit))
        .build()
        .unwrap();
    let f = blob();
    let small = |at: u32, big: u32| (0..ITEMS).map(move |x| (x, if x == at { big } else { 8 }));
    let timed: Vec<Vec<u8>> = pool
        .map(&f, small(u32::MAX, 0))
        .collect::<serfn::Result<_>>()
        .unwrap();
    assert_eq!(timed.len(), ITEMS as usize);
    // And answers of three quarters of the limit side by side: each fits,
    // two do not fit one frame, so each goes in a run of its own.
    let large = 3 * limit as u32 / 4;
    let sizes = |x: u32| {
        if (3_000..3_004).contains(&x) {
            large
        } else {
            8
        }
    };
    let items = small(2_500, 2 * limit as u32)
        .map(|(x, size)| (x, if size == 8 { sizes(x) } else { size }));
    let results: Vec<serfn::Result<Vec<u8>>> = pool.map(&f, items).collect();
    for (i, result) in results.iter().enumerate() {
        match result {
            Ok(bytes) => assert_eq!(bytes, &vec![i as u8; sizes(i as u32) as usize], "item {i}"),
            Err(Error::TooLarge { limit: l, .. }) if i == 2_500 => assert_eq!(*l, limit),
            Err(other) => panic!("item {i}: {other:?}"),
        }
    }
    assert!(results[2_500].is_err());
    assert_eq!(
        pool.stats().restarts,
        0,
        "a worker that refuses an answer lives on"
    );
}

#[test]
fn groups_fit_a_recycled_workers_share_and_no_item_is_lost_across_recycling() {
    let pool = Pool::builder()
        .workers(2)
        .chunk_size(1)
        .max_tasks_per_worker(1_000)
        .build()
        .unwrap();
    let f = faulty();
    timed(&pool, &f);
    let got: Vec<u32> = pool
        .map(&f, items_with(u32::MAX, 0))
        .collect::<serfn::Result<_>>()
        .unwrap();
    assert_eq!(got, (0..ITEMS).collect::<Vec<_>>());
    // 8,000 items at most 1,000 a worker: each worker recycled several times.
    assert!(
        eventually(|| pool.stats().recycled >= 6),
        "{:?}",
        pool.stats()
    );
    assert_eq!(pool.stats().restarts, 0);
}
