//! One worker slot: a thread that feeds one worker process and restarts it
//! when it dies, and a reader thread per process that takes its answers.
//!
//! Jobs sent to a worker wait in its `in_flight` queue, oldest first. The
//! worker runs frames in order, so when it dies only the oldest job can have
//! been running: that one fails (or is retried), and the others go back to
//! the front of the pool's queue untouched.

use std::collections::VecDeque;
use std::io::{self, ErrorKind};
use std::os::unix::net::UnixStream;
use std::process::Child;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::job::{lock, FnEntry, Job, Work};
use super::process::{self, Worker};
use super::protocol::{self as proto, Fields, FrameReader, Next};
use super::Shared;
use crate::codec;
use crate::error::{Error, WireError};

/// Functions a worker keeps loaded, at most.
const MAX_LOADED: usize = 64;
/// Bytes of loaded functions a worker keeps, at most (fold states aside).
const MAX_LOADED_BYTES: usize = 256 << 20;
/// Estimated work a worker is given ahead: enough to hide a round trip.
const WINDOW_NS: u64 = 2_000_000;
/// Jobs a worker is given ahead, at most.
const MAX_IN_FLIGHT: usize = 1024;
/// The estimate for a function not yet measured.
const UNKNOWN_NS: u64 = 1_000_000;

/// A job sent to the worker and not yet answered.
struct Sent {
    job: Job,
    task: u64,
    estimate_ns: u64,
    /// When it became the oldest: when the worker started it, at the latest.
    started: Option<Instant>,
    timed_out: bool,
}

/// The state one worker process's writer and reader share.
struct Link {
    state: Mutex<LinkState>,
    space: Condvar,
    child: Mutex<Child>,
    pid: u32,
}

struct LinkState {
    in_flight: VecDeque<Sent>,
    estimate_ns: u64,
    dead: bool,
    writer_waiting: bool,
}

impl LinkState {
    fn has_space(&self) -> bool {
        self.in_flight.len() < 2
            || (self.in_flight.len() < MAX_IN_FLIGHT && self.estimate_ns < WINDOW_NS)
    }
}

/// Runs slot `index` until the pool closes: feeds its worker, and starts a
/// new one each time it dies.
pub(crate) fn run(shared: Arc<Shared>, index: usize, mut first: Option<Worker>) {
    let mut failures = 0u32;
    loop {
        let worker = match first.take() {
            Some(worker) => worker,
            None => match start(&shared) {
                Ok(worker) => {
                    shared.stats.restarts.fetch_add(1, Ordering::Relaxed);
                    failures = 0;
                    worker
                }
                Err(error) => {
                    failures += 1;
                    // A program that cannot start must not leave callers waiting forever.
                    shared.queue.fail_waiting(index, failures >= 3, &error);
                    if shared.queue.is_closed() {
                        return;
                    }
                    eprintln!("serfn: {error}");
                    std::thread::sleep(Duration::from_millis(50 << failures.min(5)));
                    continue;
                }
            },
        };
        lock(&shared.pids)[index] = Some(worker.pid);
        let closing = serve(&shared, index, worker);
        lock(&shared.pids)[index] = None;
        if closing {
            return;
        }
    }
}

fn start(shared: &Shared) -> crate::Result<Worker> {
    let deadline = Instant::now() + shared.config.start_timeout;
    process::spawn(&shared.config, &shared.dir)?.connect(deadline)
}

/// Serves one worker process until it dies (`false`) or the pool closes (`true`).
fn serve(shared: &Arc<Shared>, index: usize, worker: Worker) -> bool {
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
            .spawn(move || read(&shared, &link, read_half))
    });
    let mut loaded = Vec::new();
    let closing = match reader {
        Ok(Ok(_)) => write(shared, index, &link, &stream, &mut loaded),
        _ => false,
    };
    let busy = !lock(&link.state).in_flight.is_empty();
    let _ = stream.shutdown(std::net::Shutdown::Both);
    if let Ok(Ok(reader)) = reader {
        let _ = reader.join();
    } else {
        die(
            shared,
            &link,
            Err(io::Error::other("cannot start a reader thread")),
        );
    }
    let status = {
        let mut child = lock(&link.child);
        // An idle worker exits by itself on end-of-file; a busy one is killed.
        let grace = if closing && !busy {
            Duration::from_millis(500)
        } else {
            Duration::ZERO
        };
        process::reap(&mut child, grace)
    };
    // Fold states on this worker are gone with it.
    for function in loaded.iter().filter(|f: &&Arc<FnEntry>| f.mutable) {
        function.mark_lost(Error::WorkerDied {
            name: function.name.into(),
            pid,
            status: status.clone(),
        });
    }
    closing
}

/// Sends jobs to the worker, loading functions first, while it has room.
/// Returns whether the pool is closing (else the worker died).
fn write(
    shared: &Shared,
    index: usize,
    link: &Link,
    stream: &UnixStream,
    loaded: &mut Vec<Arc<FnEntry>>,
) -> bool {
    let mut out = Vec::with_capacity(64 << 10);
    let mut writer = stream;
    loop {
        // Wait for room, sending what is buffered first.
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
            state.writer_waiting = true;
            // Timed, to notice the pool closing while the worker is busy.
            state = link
                .space
                .wait_timeout(state, Duration::from_millis(20))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            state.writer_waiting = false;
        }
        if state.dead {
            return shared.queue.is_closed();
        }
        drop(state);

        let job = match shared.queue.try_pop(index) {
            Some(job) => job,
            None => {
                if proto::flush(&mut writer, &mut out).is_err() {
                    return shared.queue.is_closed();
                }
                match shared.queue.pop(index, || lock(&link.state).dead) {
                    Some(job) => job,
                    None => return shared.queue.is_closed(),
                }
            }
        };
        if let Some(error) = job.work.needs().and_then(|f| f.lost()) {
            job.fail(error);
            continue;
        }
        let frame_start = out.len();
        if let Some(function) = job.work.needs() {
            ensure_loaded(shared, function, loaded, &mut out);
        }
        if let Work::Take { function } = &job.work {
            // The worker forgets a fold's state once it sends it back.
            loaded.retain(|f| !Arc::ptr_eq(f, function));
        }
        let task = shared.next_task.fetch_add(1, Ordering::Relaxed);
        encode(&job.work, task, &mut out);
        shared
            .stats
            .bytes_sent
            .fetch_add((out.len() - frame_start) as u64, Ordering::Relaxed);

        let estimate_ns = match job.work.needs().map(|f| f.ns_per_item()) {
            Some(0) | None => UNKNOWN_NS,
            Some(ns) => ns.saturating_mul(u64::from(job.work.count())),
        };
        let mut state = lock(&link.state);
        if state.dead {
            drop(state);
            shared.queue.push_front(vec![job]);
            return shared.queue.is_closed();
        }
        let started = state.in_flight.is_empty().then(Instant::now);
        state.estimate_ns += estimate_ns;
        state.in_flight.push_back(Sent {
            job,
            task,
            estimate_ns,
            started,
            timed_out: false,
        });
        drop(state);
        if out.len() >= 256 << 10 && proto::flush(&mut writer, &mut out).is_err() {
            return shared.queue.is_closed();
        }
    }
}

/// Appends a `LOAD` frame unless the worker has `function`; evicts the least
/// recently used functions past the limits.
fn ensure_loaded(
    shared: &Shared,
    function: &Arc<FnEntry>,
    loaded: &mut Vec<Arc<FnEntry>>,
    out: &mut Vec<u8>,
) {
    if let Some(at) = loaded.iter().position(|f| Arc::ptr_eq(f, function)) {
        let recent = loaded.remove(at);
        loaded.push(recent);
        return;
    }
    let frame = proto::start_frame(out, proto::LOAD);
    out.extend_from_slice(&function.id.to_le_bytes());
    out.extend_from_slice(&function.bytes);
    proto::finish_frame(out, frame);
    shared
        .stats
        .functions_shipped
        .fetch_add(1, Ordering::Relaxed);
    loaded.push(Arc::clone(function));

    let shareable = |f: &Arc<FnEntry>| !f.mutable;
    let mut bytes: usize = loaded
        .iter()
        .filter(|f| shareable(f))
        .map(|f| f.bytes.len())
        .sum();
    while loaded.iter().filter(|f| shareable(f)).count() > MAX_LOADED || bytes > MAX_LOADED_BYTES {
        let Some(at) = loaded[..loaded.len() - 1].iter().position(shareable) else {
            break;
        };
        let evicted = loaded.remove(at);
        bytes -= evicted.bytes.len();
        let frame = proto::start_frame(out, proto::FORGET);
        out.extend_from_slice(&evicted.id.to_le_bytes());
        proto::finish_frame(out, frame);
    }
}

fn encode(work: &Work, task: u64, out: &mut Vec<u8>) {
    let (tag, id) = match work {
        Work::Batch { function, .. } if function.mutable => (proto::BATCH_MUT, function.id),
        Work::Batch { function, .. } if function.batches => (proto::BATCH_SEQ, function.id),
        Work::Batch { function, .. } => (proto::BATCH, function.id),
        Work::Once { .. } => (proto::ONCE, 0),
        Work::Take { function } => (proto::TAKE, function.id),
    };
    let frame = proto::start_frame(out, tag);
    out.extend_from_slice(&task.to_le_bytes());
    match work {
        Work::Batch { items, .. } => {
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(items);
        }
        Work::Once {
            function, items, ..
        } => {
            out.extend_from_slice(&(function.len() as u32).to_le_bytes());
            out.extend_from_slice(function);
            out.extend_from_slice(items);
        }
        Work::Take { .. } => out.extend_from_slice(&id.to_le_bytes()),
    }
    proto::finish_frame(out, frame);
}

/// Takes the worker's answers until its socket closes, then settles what was in flight.
fn read(shared: &Shared, link: &Link, stream: UnixStream) {
    let timeout = shared.config.timeout;
    let mut reader = FrameReader::new(stream, crate::worker::frame_limit(&shared.config.limits));
    let end = loop {
        if let Some(timeout) = timeout {
            let wait = next_deadline(link, timeout)
                .map_or(timeout, |at| at.saturating_duration_since(Instant::now()));
            let _ = reader
                .get_ref()
                .set_read_timeout(Some(wait.max(Duration::from_millis(1))));
        }
        match reader.next_frame() {
            Ok(Next::Frame(tag, body)) => {
                let len = body.len() as u64;
                shared
                    .stats
                    .bytes_received
                    .fetch_add(len, Ordering::Relaxed);
                if let Err(error) = answer(shared, link, tag, reader.body(body)) {
                    break Err(error);
                }
            }
            Ok(Next::Closed) => break Ok(()),
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if let Some(timeout) = timeout {
                    expire(link, timeout);
                }
            }
            Err(error) => break Err(error),
        }
    };
    die(shared, link, end);
}

/// When the oldest job in flight runs out of time.
fn next_deadline(link: &Link, timeout: Duration) -> Option<Instant> {
    let state = lock(&link.state);
    state
        .in_flight
        .front()
        .and_then(|sent| sent.started)
        .map(|at| at + timeout)
}

/// Kills the worker if its oldest job ran past `timeout`.
fn expire(link: &Link, timeout: Duration) {
    let mut state = lock(&link.state);
    if let Some(head) = state.in_flight.front_mut() {
        if head.started.is_some_and(|at| at.elapsed() >= timeout) && !head.timed_out {
            head.timed_out = true;
            drop(state);
            let _ = lock(&link.child).kill();
        }
    }
}

/// Hands one answer to the job it answers: always the oldest in flight.
fn answer(shared: &Shared, link: &Link, tag: u8, body: &[u8]) -> io::Result<()> {
    let mut fields = Fields(body);
    let task = fields.u64().map_err(proto::invalid)?;
    let mut state = lock(&link.state);
    let Some(sent) = state.in_flight.pop_front() else {
        return Err(proto::invalid(format!(
            "an answer to task {task}, which nothing waits for"
        )));
    };
    if sent.task != task {
        state.in_flight.push_front(sent);
        return Err(proto::invalid(format!(
            "an answer to task {task} out of order"
        )));
    }
    state.estimate_ns -= sent.estimate_ns;
    if let Some(next) = state.in_flight.front_mut() {
        next.started.get_or_insert_with(Instant::now);
    }
    let wake = state.writer_waiting;
    drop(state);
    if wake {
        link.space.notify_one();
    }

    let job = sent.job;
    let result = match tag {
        proto::DONE => {
            let elapsed = fields.u64().map_err(proto::invalid)?;
            let count = job.work.count();
            if let Some(function) = job.work.needs() {
                function.record(elapsed, count);
            }
            shared
                .stats
                .tasks
                .fetch_add(u64::from(count), Ordering::Relaxed);
            Ok(fields.rest().to_vec())
        }
        proto::STATE => Ok(fields.rest().to_vec()),
        proto::FAILED => Err(failed_error(fields.rest(), &shared.config.limits, link.pid)),
        other => return Err(proto::invalid(format!("unknown frame tag {other:#04x}"))),
    };
    job.reply.send(result);
    Ok(())
}

/// The error a FAILED frame from worker `pid` carries, or why it cannot be read.
pub(crate) fn failed_error(bytes: &[u8], limits: &codec::Limits, pid: u32) -> Error {
    match codec::decode_value::<WireError>(bytes, limits) {
        Ok(error) => error.into_error(Some(pid)),
        Err(error) => error,
    }
}

/// The worker is gone: fails or retries the job it was running, and puts
/// the jobs it never started back in the queue.
fn die(shared: &Shared, link: &Link, end: io::Result<()>) {
    let mut state = lock(&link.state);
    state.dead = true;
    let in_flight: Vec<Sent> = state.in_flight.drain(..).collect();
    state.estimate_ns = 0;
    drop(state);
    link.space.notify_all();
    shared.queue.wake_all();
    if shared.queue.is_closed() {
        in_flight
            .into_iter()
            .for_each(|sent| sent.job.fail(Error::PoolClosed));
        return;
    }
    let status = {
        let mut child = lock(&link.child);
        let grace = if end.is_ok() {
            Duration::from_millis(100)
        } else {
            Duration::ZERO
        };
        process::reap(&mut child, grace)
    };
    let status = match end {
        Err(error) if error.kind() != ErrorKind::UnexpectedEof => {
            format!("{status}, after a broken frame: {error}")
        }
        _ => status,
    };
    let mut requeue = Vec::new();
    for (position, sent) in in_flight.into_iter().enumerate() {
        let Sent {
            mut job, timed_out, ..
        } = sent;
        let name = job.work.name().to_owned();
        if position > 0 && job.pin.is_none() {
            requeue.push(job); // never started
        } else if timed_out {
            job.fail(Error::Timeout {
                name,
                timeout: shared.config.timeout.unwrap_or_default(),
            });
        } else if job.pin.is_none() && job.work.retryable() && job.attempts < shared.config.retries
        {
            job.attempts += 1;
            shared.stats.retries.fetch_add(1, Ordering::Relaxed);
            requeue.push(job);
        } else {
            job.fail(Error::WorkerDied {
                name,
                pid: link.pid,
                status: status.clone(),
            });
        }
    }
    shared.queue.push_front(requeue);
}
