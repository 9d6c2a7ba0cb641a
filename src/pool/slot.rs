//! One worker slot: a thread that feeds one worker process and restarts it
//! when it dies. The process itself, its jobs in flight and its reader
//! thread are a [`Link`](super::link::Link).

use std::collections::VecDeque;
use std::io;
use std::os::unix::net::UnixStream;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use super::builder::Config;
use super::entry::FnEntry;
use super::exit::WorkerExit;
use super::job::{Job, Runner, Work};
use super::link::{self, Link, LinkState, Sent};
use super::process::{self, StartFailure, Worker};
use super::protocol as proto;
use super::Shared;
use crate::error::Error;
use crate::event::event;
use crate::sync::lock;

/// Functions a worker keeps loaded, at most.
const MAX_LOADED: usize = 64;
/// Bytes of loaded functions a worker keeps, at most (fold states aside).
const MAX_LOADED_BYTES: usize = 256 << 20;
/// Function bytes past which a `LOAD` frame is written from them, not copied.
const WRITE_DIRECT: usize = 1 << 20;
/// The estimate for a function not yet measured.
const UNKNOWN_NS: u64 = 1_000_000;
/// Failed starts in a row, with no worker of the pool running, after which
/// the queued jobs fail: for a set-up mistake (the worker exits by itself)
/// and for anything else that does not pass.
const GIVE_UP_SETUP: u32 = 3;
const GIVE_UP_TRANSIENT: u32 = 20;

/// Runs slot `index` until the pool closes: feeds its worker, and starts a
/// new one each time it dies or is recycled. Returns how its last worker ended.
pub(crate) fn run(
    shared: Arc<Shared>,
    index: usize,
    mut first: Option<Worker>,
) -> Option<WorkerExit> {
    let mut failures = 0u32;
    let mut last = None;
    let mut recycled = false;
    loop {
        let worker = match first.take() {
            Some(worker) => worker,
            None => match start(&shared) {
                Ok(worker) => {
                    event!(
                        info,
                        slot = index,
                        pid = worker.pid,
                        recycled,
                        "worker started"
                    );
                    let counter = if recycled {
                        &shared.stats.recycled
                    } else {
                        &shared.stats.restarts
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    failures = 0;
                    worker
                }
                Err(StartFailure { error, transient }) => {
                    failures += 1;
                    // Only this slot's own jobs (a fold's) need this worker;
                    // the rest wait for any worker, unless none is left.
                    let limit = if transient {
                        GIVE_UP_TRANSIENT
                    } else {
                        GIVE_UP_SETUP
                    };
                    let stranded =
                        failures >= limit && lock(&shared.pids).iter().all(Option::is_none);
                    shared.queue.fail_waiting(index, stranded, &error);
                    // Joined, with nothing left to run: no worker is needed.
                    if stranded && shared.queue.is_sealed() {
                        return last;
                    }
                    if !transient || failures >= 3 {
                        event!(warn, slot = index, failures, "{error}");
                    }
                    // A killed start is retried at once, then less and less often.
                    let backoff = Duration::from_millis(10 << (failures - 1).min(7));
                    if pause(&shared, backoff) {
                        return last;
                    }
                    continue;
                }
            },
        };
        lock(&shared.pids)[index] = Some(worker.pid);
        let ended = serve(&shared, index, worker);
        lock(&shared.pids)[index] = None;
        recycled = ended.retired;
        last = Some(ended.exit);
        if ended.closing {
            return last;
        }
    }
}

/// How serving one worker process ended.
struct Ended {
    /// The pool is closing: no new worker.
    closing: bool,
    /// It had run its [`max_tasks`](super::Config::max_tasks) and was let go.
    retired: bool,
    exit: WorkerExit,
}

/// What a worker has been given, for recycling it after `max_tasks` items.
#[derive(Default)]
struct Sending {
    items: u64,
    retired: bool,
}

/// Sleeps up to `time`; returns early, with `true`, once the pool closes.
fn pause(shared: &Shared, time: Duration) -> bool {
    let until = Instant::now() + time;
    loop {
        if shared.queue.is_closed() {
            return true;
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        std::thread::sleep(left.min(Duration::from_millis(20)));
    }
}

fn start(shared: &Shared) -> Result<Worker, StartFailure> {
    let deadline = Instant::now() + shared.config.start_timeout;
    process::spawn(&shared.config, &shared.dir)
        .map_err(StartFailure::setup)?
        .connect(deadline)
}

/// Serves one worker process until it dies, is recycled, or the pool closes.
fn serve(shared: &Arc<Shared>, index: usize, worker: Worker) -> Ended {
    let Worker { stream, child, pid } = worker;
    let link = Arc::new(Link {
        state: Mutex::new(LinkState {
            in_flight: VecDeque::new(),
            estimate_ns: 0,
            dead: false,
            writer_waiting: false,
        }),
        space: Condvar::new(),
        child: Mutex::new(child),
        pid,
    });
    let reader = stream.try_clone().map(|read_half| {
        let (shared, link) = (Arc::clone(shared), Arc::clone(&link));
        std::thread::Builder::new()
            .name(format!("serfn-read-{index}"))
            .spawn(move || link::read(&shared, &link, read_half))
    });
    let mut loaded = Vec::new();
    let mut sending = Sending::default();
    let closing = match reader {
        Ok(Ok(_)) => write(shared, index, &link, &stream, &mut loaded, &mut sending),
        _ => false,
    };
    let busy = !lock(&link.state).in_flight.is_empty();
    let _ = stream.shutdown(std::net::Shutdown::Both);
    if let Ok(Ok(reader)) = reader {
        let _ = reader.join();
    } else {
        link::die(
            shared,
            &link,
            Err(io::Error::other("cannot start a reader thread")),
        );
    }
    let exit_status = {
        let mut child = lock(&link.child);
        // An idle worker exits by itself on end-of-file; a busy one is killed.
        // Let go on purpose (joined, recycled), it is given longer.
        let grace = match (closing || sending.retired, busy) {
            (true, false) if sending.retired || shared.queue.is_sealed() => Duration::from_secs(5),
            (true, false) => Duration::from_millis(500),
            _ => Duration::ZERO,
        };
        process::reap_status(&mut child, grace)
    };
    let status = exit_status
        .as_ref()
        .map_or_else(ToString::to_string, |status| process::describe(*status));
    if sending.retired {
        event!(
            info,
            slot = index,
            pid,
            items = sending.items,
            status = %status,
            "worker recycled"
        );
    } else if !closing {
        event!(warn, slot = index, pid, status = %status, "worker died; starting another");
    }
    // Fold states on this worker are gone with it.
    for function in loaded.iter().filter(|f: &&Arc<FnEntry>| f.mutable) {
        function.mark_lost(Error::WorkerDied {
            name: function.name.into(),
            pid,
            status: status.clone(),
        });
    }
    Ended {
        closing,
        retired: sending.retired,
        exit: WorkerExit {
            slot: index,
            pid,
            status: exit_status.ok(),
        },
    }
}

/// Whether the worker has had its share of items and may be let go: not
/// while it holds a fold's state, which would die with it.
fn spent(shared: &Shared, sending: &Sending, loaded: &[Arc<FnEntry>], next: u64) -> bool {
    shared.config.max_tasks.is_some_and(|max| {
        sending.items > 0 && sending.items + next > max && !loaded.iter().any(|f| f.mutable)
    })
}

/// Waits once for the reader to free room in `link`'s window, marked as
/// waiting so that it is woken; at most 20 ms, so that callers notice the
/// pool closing while the worker is busy.
fn wait_for_space<'a>(
    link: &'a Link,
    mut state: std::sync::MutexGuard<'a, LinkState>,
) -> std::sync::MutexGuard<'a, LinkState> {
    state.writer_waiting = true;
    let mut state = link
        .space
        .wait_timeout(state, Duration::from_millis(20))
        .unwrap_or_else(PoisonError::into_inner)
        .0;
    state.writer_waiting = false;
    state
}

/// Waits until the worker has answered everything it was sent; `false` if
/// it died first or the pool closed.
fn drain(shared: &Shared, link: &Link) -> bool {
    let mut state = lock(&link.state);
    while !state.dead && !state.in_flight.is_empty() {
        if shared.queue.is_closed() {
            return false;
        }
        state = wait_for_space(link, state);
    }
    !state.dead
}

/// Sends jobs to the worker, loading functions first, while it has room.
/// Returns whether the pool is closing (else the worker died).
fn write(
    shared: &Shared,
    index: usize,
    link: &Arc<Link>,
    stream: &UnixStream,
    loaded: &mut Vec<Arc<FnEntry>>,
    sending: &mut Sending,
) -> bool {
    let mut taken = VecDeque::new();
    let closing = write_jobs(shared, index, link, stream, loaded, sending, &mut taken);
    // Taken from the queue but never sent: back for another worker.
    if !taken.is_empty() {
        shared.queue.push_front(taken.into());
    }
    closing
}

/// Jobs taken from the queue in one go, at most: one lock for many.
const TAKE_AT_ONCE: usize = 64;

/// [`write`], with `taken` the jobs taken from the queue and not yet sent.
fn write_jobs(
    shared: &Shared,
    index: usize,
    link: &Arc<Link>,
    stream: &UnixStream,
    loaded: &mut Vec<Arc<FnEntry>>,
    sending: &mut Sending,
    taken: &mut VecDeque<Job>,
) -> bool {
    let mut out = Vec::with_capacity(64 << 10);
    let mut writer = stream;
    let mut room = false;
    let mut depth = 0;
    loop {
        // Wait for room, sending what is buffered first; not looked at
        // again while the job sent last left room (its lock saw `dead`).
        if !room {
            let mut state = lock(&link.state);
            while !state.dead && !state.has_space() {
                if !out.is_empty() {
                    drop(state);
                    if proto::flush(&mut writer, &mut out).is_err() {
                        return shared.queue.is_closed();
                    }
                    state = lock(&link.state);
                    continue;
                }
                if shared.queue.is_closed() {
                    return true;
                }
                state = wait_for_space(link, state);
            }
            if state.dead {
                return shared.queue.is_closed();
            }
            depth = state.in_flight.len();
            drop(state);
        }

        if taken.is_empty() {
            // As many as are in flight already: many for small items, one
            // or two for slow ones, which other workers should share.
            shared
                .queue
                .try_pop_many(index, depth.clamp(1, TAKE_AT_ONCE), taken);
        }
        let job = match taken.pop_front() {
            Some(job) => job,
            None => {
                if proto::flush(&mut writer, &mut out).is_err() {
                    return shared.queue.is_closed();
                }
                match shared.queue.pop(index, || lock(&link.state).dead) {
                    Some(job) => job,
                    // Joined: done once what was sent is answered.
                    None if shared.queue.is_sealed() && !lock(&link.state).dead => {
                        return drain(shared, link) || shared.queue.is_closed();
                    }
                    None => return shared.queue.is_closed(),
                }
            }
        };
        // Only a fold's state is ever lost: no lock for other functions.
        if let Some(error) = job
            .work
            .needs()
            .filter(|f| f.mutable)
            .and_then(|f| f.lost())
        {
            job.fail(error);
            continue;
        }
        if job.is_cancelled() {
            continue; // its `Task` is gone, or its map dropped
        }
        let count = u64::from(job.work.count());
        if job.pin.is_none() && spent(shared, sending, loaded, count) {
            // Recycled: the job waits for another worker, this one finishes.
            taken.push_front(job);
            shared.queue.push_front(taken.drain(..).collect());
            if proto::flush(&mut writer, &mut out).is_ok() && drain(shared, link) {
                sending.retired = true;
            }
            return shared.queue.is_closed();
        }
        let mut frame_start = out.len();
        if let Some(function) = job.work.needs() {
            match ensure_loaded(shared, function, loaded, &mut out, stream) {
                // `out` was flushed, the LOAD frame counted.
                Ok(true) => frame_start = 0,
                Ok(false) => {}
                Err(_) => {
                    taken.push_front(job);
                    shared.queue.push_front(taken.drain(..).collect());
                    return shared.queue.is_closed();
                }
            }
        }
        if let Work::Take { function } = &job.work {
            // The worker forgets a fold's state once it sends it back.
            loaded.retain(|f| !Arc::ptr_eq(f, function));
        }
        // A task id per frame: a group has a frame per item.
        let frames = match &job.work {
            Work::Singles(singles) => u64::from(singles.left()),
            _ => 1,
        };
        let task = shared.next_task.fetch_add(frames, Ordering::Relaxed);
        let job_frame = out.len();
        let items_apart = job
            .work
            .encode(task, async_fields(&job, &shared.config), &mut out);
        let apart_len = items_apart.as_ref().map_or(0, |items| items.len());
        shared.stats.bytes_sent.fetch_add(
            (out.len() - frame_start + apart_len) as u64,
            Ordering::Relaxed,
        );

        let estimate_ns = match job.work.needs().map(|f| f.ns_per_item()) {
            Some(0) | None => UNKNOWN_NS,
            Some(ns) => ns.saturating_mul(u64::from(job.work.count())),
        };
        let mut state = lock(&link.state);
        if state.dead {
            drop(state);
            taken.push_front(job);
            shared.queue.push_front(taken.drain(..).collect());
            return shared.queue.is_closed();
        }
        if let Some(cell) = job.cell() {
            // Cancelled since it was taken: unsent, it never runs. Else a
            // cancel from now on finds it in this worker.
            let mut cell = lock(&cell.state);
            if cell.cancelled {
                drop(cell);
                out.truncate(job_frame);
                continue;
            }
            let runner: Weak<dyn Runner> = Arc::downgrade(link) as Weak<Link>;
            cell.running = Some((runner, task));
        }
        sending.items += count;
        let started = state.in_flight.is_empty().then(Instant::now);
        state.estimate_ns += estimate_ns;
        state.in_flight.push_back(Sent {
            job,
            task,
            estimate_ns,
            started,
            killed: None,
            cancelled: false,
        });
        room = state.has_space();
        depth = state.in_flight.len();
        drop(state);
        // Written once the job is in flight, where its answer finds it.
        let written = match &items_apart {
            Some(items) => proto::flush_with(&mut writer, &mut out, items),
            None if out.len() >= 256 << 10 => proto::flush(&mut writer, &mut out),
            None => Ok(()),
        };
        if written.is_err() {
            return shared.queue.is_closed();
        }
        if spent(shared, sending, loaded, 1) {
            if proto::flush(&mut writer, &mut out).is_ok() && drain(shared, link) {
                sending.retired = true;
            }
            return shared.queue.is_closed();
        }
    }
}

/// Appends a `LOAD` frame unless the worker has `function`; evicts the least
/// recently used functions past the limits. A large function goes through
/// shared memory where it can ([`shm`](super::shm)), else is written
/// straight from its bytes, after what `out` holds: copying a 100 MiB
/// capture into `out` cost a copy, page faults, and a buffer kept that large.
/// Returns whether it did so (`out` is then flushed and the frame counted).
fn ensure_loaded(
    shared: &Shared,
    function: &Arc<FnEntry>,
    loaded: &mut Vec<Arc<FnEntry>>,
    out: &mut Vec<u8>,
    stream: &UnixStream,
) -> io::Result<bool> {
    if loaded.last().is_some_and(|f| Arc::ptr_eq(f, function)) {
        return Ok(false); // the most recent already: each item of a map
    }
    if let Some(at) = loaded.iter().position(|f| Arc::ptr_eq(f, function)) {
        let recent = loaded.remove(at);
        loaded.push(recent);
        return Ok(false);
    }
    let mut writer = stream;
    let segment = function.segment();
    let direct = segment.is_some() || function.len() >= WRITE_DIRECT;
    if let Some(segment) = segment {
        proto::flush(&mut writer, out)?;
        let frame = proto::start_frame(out, proto::LOAD_SHARED);
        out.extend_from_slice(&function.id.to_le_bytes());
        out.extend_from_slice(&(segment.skip() as u64).to_le_bytes());
        out.extend_from_slice(&(segment.len() as u64).to_le_bytes());
        proto::finish_frame(out, frame);
        segment.send(stream, out)?;
        shared
            .stats
            .bytes_sent
            .fetch_add(out.len() as u64, Ordering::Relaxed);
        shared
            .stats
            .bytes_shared
            .fetch_add(segment.len() as u64, Ordering::Relaxed);
        out.clear();
    } else {
        let frame = proto::start_frame(out, proto::LOAD);
        out.extend_from_slice(&function.id.to_le_bytes());
        if function.bytes.len() < WRITE_DIRECT {
            out.extend_from_slice(&function.bytes);
            proto::finish_frame(out, frame);
        } else {
            let sent = out.len() - frame + function.bytes.len();
            u32::try_from(sent - proto::LEN_BYTES).map_err(io::Error::other)?;
            proto::finish_frame_before(out, frame, function.bytes.len());
            proto::flush_with(&mut writer, out, &function.bytes)?;
            shared
                .stats
                .bytes_sent
                .fetch_add(sent as u64, Ordering::Relaxed);
        }
    }
    shared
        .stats
        .functions_shipped
        .fetch_add(1, Ordering::Relaxed);
    event!(
        debug,
        function = function.name,
        bytes = function.len(),
        "function shipped"
    );
    loaded.push(Arc::clone(function));

    let shareable = |f: &Arc<FnEntry>| !f.mutable;
    let mut bytes: usize = loaded
        .iter()
        .filter(|f| shareable(f))
        .map(|f| f.len())
        .sum();
    while loaded.iter().filter(|f| shareable(f)).count() > MAX_LOADED || bytes > MAX_LOADED_BYTES {
        let Some(at) = loaded[..loaded.len() - 1].iter().position(shareable) else {
            break;
        };
        let evicted = loaded.remove(at);
        bytes -= evicted.len();
        let frame = proto::start_frame(out, proto::FORGET);
        out.extend_from_slice(&evicted.id.to_le_bytes());
        proto::finish_frame(out, frame);
    }
    Ok(direct)
}

/// An async chunk's fields: each item's timeout in ns (0: none), and how
/// many items run at once; `None` for any other job.
fn async_fields(job: &Job, config: &Config) -> Option<(u64, u32)> {
    match &job.work {
        Work::Batch { function, .. } if function.is_async => {
            let timeout = job.timeout.or(config.timeout).map_or(0, |timeout| {
                u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX).max(1)
            });
            let concurrency = u32::try_from(config.max_concurrent).unwrap_or(u32::MAX);
            Some((timeout, concurrency))
        }
        _ => None,
    }
}
