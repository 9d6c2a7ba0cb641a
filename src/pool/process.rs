//! Starting worker processes and connecting to them.
//!
//! Each worker gets a Unix socket of its own, listened on in a directory
//! only this user can enter, and a random token it must send back: no other
//! process can pose as a worker. The child's stdin is `/dev/null`; its
//! stdout and stderr are the parent's (stdout through a copying thread when
//! the child may be a test binary: `forward_stdout`), so what user
//! code prints shows up and cannot touch the frames.

use std::ffi::OsString;
use std::io::{self, BufRead, ErrorKind, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::answer;
use super::protocol::{self as proto, Fields, FrameReader, Next};
use super::serve;
use super::Config;
use crate::codec::{self, Limits};
use crate::error::{Error, Result, WireError};

/// The task id of an initializer's call, which no pool task uses.
const INIT_TASK: u64 = u64::MAX;

/// A running worker with its socket.
pub(crate) struct Worker {
    pub(crate) stream: UnixStream,
    pub(crate) child: Child,
    pub(crate) pid: u32,
}

/// A worker process started but not yet connected.
pub(crate) struct Starting {
    listener: UnixListener,
    path: PathBuf,
    child: Child,
    token: u64,
    init: Option<(&'static str, Arc<[u8]>)>,
    limits: Limits,
}

/// The private directory of a pool's sockets (mode 0700, a random name),
/// removed with the pool.
pub(crate) struct SocketDir {
    dir: tempfile::TempDir,
    next: AtomicU64,
}

impl SocketDir {
    pub(crate) fn create() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("serfn-{}-", std::process::id()))
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir()
            .map_err(|error| start_error(format!("cannot create a socket directory: {error}")))?;
        Ok(SocketDir {
            dir,
            next: AtomicU64::new(0),
        })
    }

    fn socket_path(&self) -> PathBuf {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.dir.path().join(format!("w{n}.sock"))
    }
}

/// A worker's token: from the OS's random source, as it is all that stops
/// another local process from posing as the worker.
fn random_token() -> Result<u64> {
    getrandom::u64().map_err(|error| start_error(format!("no random token: {error}")))
}

fn start_error(reason: impl Into<String>) -> Error {
    Error::WorkerStart {
        reason: reason.into(),
    }
}

/// Starts one worker process, which connects back later: see [`Starting::connect`].
pub(crate) fn spawn(config: &Config, dir: &SocketDir) -> Result<Starting> {
    let path = dir.socket_path();
    let listener = UnixListener::bind(&path)
        .and_then(|listener| listener.set_nonblocking(true).map(|()| listener))
        .map_err(|error| start_error(format!("cannot listen on {}: {error}", path.display())))?;
    let token = random_token()?;
    let (program, args) = command_line(config)?;
    // Maybe a test binary, whose libtest header `forward_stdout` drops.
    let test_binary =
        config.program.is_none() && config.args.is_none() && may_be_test_binary(&program);
    let limits = format!(
        "{},{}",
        config.limits.get_max_bytes(),
        config.limits.get_max_depth()
    );
    let mut child = Command::new(&program)
        .args(&args)
        .envs(config.env.iter().map(|(k, v)| (k, v)))
        .env(serve::ENV_SOCKET, &path)
        .env(serve::ENV_TOKEN, token.to_string())
        .env(serve::ENV_LIMITS, limits)
        .stdin(Stdio::null())
        .stdout(if test_binary {
            Stdio::piped()
        } else {
            Stdio::inherit()
        })
        .spawn()
        .map_err(|error| start_error(format!("cannot run {}: {error}", program.display())))?;
    if let Some(stdout) = child.stdout.take() {
        forward_stdout(stdout);
    }
    // `build` refused an initializer that could not be encoded.
    let init = config
        .initializer
        .as_ref()
        .and_then(|init| Some((init.name, init.bytes.clone().ok()?)));
    Ok(Starting {
        listener,
        path,
        child,
        token,
        init,
        limits: config.limits,
    })
}

fn command_line(config: &Config) -> Result<(PathBuf, Vec<OsString>)> {
    if let Some(program) = &config.program {
        return Ok((program.clone(), config.args.clone().unwrap_or_default()));
    }
    let program = std::env::current_exe()
        .map_err(|error| start_error(format!("cannot find the current executable: {error}")))?;
    // A test binary runs only the test `test_support!` defines, which calls
    // `init()`; any other binary calls `init()` first and never reads these.
    let args = config.args.clone().unwrap_or_else(|| {
        [serve::TEST_ENTRY, "--nocapture", "--test-threads=1", "-q"]
            .map(OsString::from)
            .to_vec()
    });
    Ok((program, args))
}

/// Starts `workers` processes and connects them, each on a thread of its
/// own: a spawn waits until its child has exec'd (a millisecond or more for
/// a large binary on a busy machine), and one after another those waits, and
/// the initializers' runs, would add up. Results in worker order.
pub(crate) fn start_all(
    config: &Config,
    dir: &SocketDir,
    workers: usize,
    deadline: Instant,
) -> Vec<Result<Worker>> {
    let start = || {
        spawn(config, dir)
            .and_then(|starting| starting.connect(deadline).map_err(|failure| failure.error))
    };
    if workers <= 1 {
        return (0..workers).map(|_| start()).collect();
    }
    std::thread::scope(|scope| {
        // The last worker starts on this thread, the others beside it.
        let threads: Vec<_> = (1..workers)
            .map(|_| {
                std::thread::Builder::new()
                    .name("serfn-start".into())
                    .spawn_scoped(scope, start)
            })
            .collect();
        let last = start();
        threads
            .into_iter()
            .map(|thread| match thread {
                Ok(thread) => thread
                    .join()
                    .unwrap_or_else(|_| Err(start_error("a thread starting a worker panicked"))),
                // No thread: start it here, after the others.
                Err(_) => start(),
            })
            .chain(std::iter::once(last))
            .collect()
    })
}

/// Why a worker did not start, and whether trying again may help.
pub(crate) struct StartFailure {
    pub(crate) error: Error,
    /// It was killed from outside (by a signal) while it started: not a
    /// mistake in the set-up, and the next start may well succeed.
    pub(crate) transient: bool,
}

impl StartFailure {
    pub(crate) fn setup(error: Error) -> Self {
        StartFailure {
            error,
            transient: false,
        }
    }
}

/// What went wrong before the handshake was done.
enum Refused {
    Exited(ExitStatus),
    Late,
    Other(Error),
}

impl Starting {
    /// Waits for the worker to connect and prove its token.
    pub(crate) fn connect(mut self, deadline: Instant) -> Result<Worker, StartFailure> {
        let result = self.accept(deadline);
        let _ = std::fs::remove_file(&self.path);
        let pid = self.child.id();
        let refused = match result {
            Ok(stream) => {
                return Ok(Worker {
                    stream,
                    pid,
                    child: self.child,
                })
            }
            Err(refused) => refused,
        };
        // Ended by a signal before it was done: someone killed it.
        let ended = match &refused {
            Refused::Exited(status) => Some(*status),
            _ => self.child.try_wait().ok().flatten(),
        };
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(signal) = ended.and_then(|status| status.signal()) {
            return Err(StartFailure {
                error: start_error(format!(
                    "worker process {pid} was killed by signal {signal} while it started"
                )),
                transient: true,
            });
        }
        let error = match refused {
            Refused::Exited(status) => start_error(format!(
                "worker process {pid} exited ({}) before connecting. Is `serfn::worker::init()` \
                 the first call in its `main`, or `serfn::test_support!()` in its test crate?",
                describe(status)
            )),
            Refused::Late => start_error(format!(
                "worker process {pid} did not connect in time (a program that never calls \
                 `serfn::worker::init()` first looks like this, and so does one too slow to start)"
            )),
            Refused::Other(error) => error,
        };
        Err(StartFailure::setup(error))
    }

    fn accept(&mut self, deadline: Instant) -> Result<UnixStream, Refused> {
        let stream = loop {
            match self.listener.accept() {
                Ok((stream, _)) => break stream,
                Err(error) if error.kind() == ErrorKind::WouldBlock => {}
                Err(error) => {
                    return Err(Refused::Other(start_error(format!(
                        "accept failed: {error}"
                    ))))
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(Refused::Exited(status));
            }
            if Instant::now() >= deadline {
                return Err(Refused::Late);
            }
            wait_for_connection(&self.listener, deadline);
        };
        self.handshake(&stream, deadline).map_err(Refused::Other)?;
        Ok(stream)
    }

    fn handshake(&self, stream: &UnixStream, deadline: Instant) -> Result<()> {
        let io_error = |error: io::Error| start_error(format!("handshake failed: {error}"));
        stream.set_nonblocking(false).map_err(io_error)?;
        let wait = deadline.saturating_duration_since(Instant::now());
        stream
            .set_read_timeout(Some(wait.max(Duration::from_millis(1))))
            .map_err(io_error)?;
        let mut reader = FrameReader::new(stream, serve::frame_limit(&self.limits));
        match reader.next_frame().map_err(io_error)? {
            Next::Frame(proto::HELLO, body) => {
                let mut fields = Fields(reader.body(body));
                if fields.u64()? != self.token {
                    return Err(start_error("a process connected with the wrong token"));
                }
            }
            _ => return Err(start_error("the worker did not say hello")),
        }
        if let Some((name, function)) = &self.init {
            self.initialize(&mut reader, name, function, deadline)
                .map_err(|error| {
                    start_error(format!(
                        "the initializer `{name}` failed in worker process {}: {error}",
                        self.child.id()
                    ))
                })?;
        }
        stream.set_read_timeout(None).map_err(io_error)?;
        Ok(())
    }

    /// Runs the pool's initializer as a call-once task, the worker's first,
    /// and waits for its answer (heartbeats aside) within the start deadline.
    fn initialize(
        &self,
        reader: &mut FrameReader<&UnixStream>,
        name: &str,
        function: &[u8],
        deadline: Instant,
    ) -> Result<()> {
        let mut frame = Vec::with_capacity(function.len() + 32);
        let start = proto::start_frame(&mut frame, proto::ONCE);
        frame.extend_from_slice(&INIT_TASK.to_le_bytes());
        frame.extend_from_slice(&(function.len() as u32).to_le_bytes());
        frame.extend_from_slice(function);
        frame.extend_from_slice(&1u32.to_le_bytes());
        proto::put_item(&mut frame, |out| codec::encode_value_into(&(), out))?;
        proto::finish_frame(&mut frame, start);
        let mut writer = *reader.get_ref();
        proto::flush(&mut writer, &mut frame).map_err(Error::io)?;
        loop {
            // Heartbeats come while it runs: the deadline is the whole wait's.
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(start_error("it did not return within the start timeout"));
            }
            reader
                .get_ref()
                .set_read_timeout(Some(left))
                .map_err(Error::io)?;
            let next = match reader.next_frame() {
                Err(error)
                    if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                {
                    continue; // the deadline, checked above
                }
                next => next.map_err(Error::io)?,
            };
            let (tag, body) = match next {
                Next::Frame(proto::HEARTBEAT, _) => continue,
                Next::Frame(tag, body) => (tag, reader.body(body)),
                Next::Closed => {
                    return Err(Error::io(std::io::ErrorKind::UnexpectedEof.into()));
                }
            };
            let mut fields = Fields(body);
            if fields.u64()? != INIT_TASK {
                return Err(Error::decode(format!("{name}: an answer to another task")));
            }
            return match tag {
                proto::DONE => {
                    fields.u64()?; // the time it took
                    answer::decode_one::<()>(fields.rest().to_vec(), &self.limits)
                }
                proto::FAILED => Err(
                    match codec::decode_value::<WireError>(fields.rest(), &self.limits) {
                        Ok(error) => error.into_error(None),
                        Err(error) => error,
                    },
                ),
                other => Err(Error::decode(format!("an answer of kind {other:#04x}"))),
            };
        }
    }
}

/// How a process ended, for error messages.
pub(crate) fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => status.to_string(),
    }
}

/// Waits until `listener` has a connection, for at most 2 ms (then the
/// caller checks whether the child exited) and not past `deadline`.
#[cfg(target_os = "linux")]
fn wait_for_connection(listener: &UnixListener, deadline: Instant) {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let wait = deadline
        .saturating_duration_since(Instant::now())
        .min(Duration::from_millis(2));
    let timeout = Timespec {
        tv_sec: 0,
        tv_nsec: wait.subsec_nanos().into(),
    };
    let mut fds = [PollFd::new(listener, PollFlags::IN)];
    let _ = poll(&mut fds, Some(&timeout)); // an error: the caller's accept says which
}

/// Elsewhere: a short sleep between attempts.
#[cfg(not(target_os = "linux"))]
fn wait_for_connection(_: &UnixListener, _: Instant) {
    std::thread::sleep(Duration::from_micros(100));
}

/// Waits up to `grace` for `child` to exit by itself, then kills it; reaps it.
pub(crate) fn reap(child: &mut Child, grace: Duration) -> String {
    reap_status(child, grace).map_or_else(|error| error.to_string(), describe)
}

/// [`reap`], giving the status itself. Reaping twice gives the same status.
pub(crate) fn reap_status(child: &mut Child, grace: Duration) -> io::Result<ExitStatus> {
    let until = Instant::now() + grace;
    loop {
        match child.try_wait()? {
            Some(status) => return Ok(status),
            None if Instant::now() < until => std::thread::sleep(Duration::from_millis(1)),
            None => {
                let _ = child.kill();
                return child.wait();
            }
        }
    }
}

/// Copies a worker's stdout to this process's on a thread of its own,
/// without the header libtest prints before it runs the entry of
/// [`test_support!`](crate::test_support) (`"\nrunning 1 test\n"`): that
/// would show up in the user's `cargo test` output once per worker. The
/// bytes go to the same stdout as before, unbuffered and uncaptured.
pub(crate) fn forward_stdout(stdout: ChildStdout) {
    let forward = move || {
        let mut reader = io::BufReader::new(stdout);
        let mut out = io::stdout();
        let mut head = Vec::new();
        // The header is the first two lines, if they are exactly these.
        for expected in [&b"\n"[..], b"running 1 test\n"] {
            let start = head.len();
            if !matches!(reader.read_until(b'\n', &mut head), Ok(n) if n > 0)
                || head[start..] != *expected
            {
                let _ = out.write_all(&head).and_then(|()| out.flush());
                head.clear();
                break;
            }
        }
        let _ = io::copy(&mut reader, &mut out);
    };
    // Without the thread the pipe closes and the worker's prints fail; the
    // pool still works.
    let _ = std::thread::Builder::new()
        .name("serfn-worker-stdout".into())
        .spawn(forward);
}

/// Whether `program` may be a `cargo test` binary, whose workers print
/// libtest's header: cargo puts those in `target/<profile>/deps/`, where no
/// program a user runs lives. Only their stdout goes through
/// [`forward_stdout`], so that other programs keep the worker's stdout as
/// it is, with nothing in flight when the program exits.
pub(crate) fn may_be_test_binary(program: &std::path::Path) -> bool {
    program
        .parent()
        .and_then(std::path::Path::file_name)
        .is_some_and(|dir| dir == "deps")
}
