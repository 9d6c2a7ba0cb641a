//! Helpers for tests that take envelopes apart and forge them, as an
//! attacker who recomputes the checksum would, and that watch processes.
#![allow(dead_code, reason = "each test crate uses its own part")]

use std::time::{Duration, Instant};

use serfn::Limits;

/// Wraps a body in a valid envelope: version byte in front, checksum behind.
pub fn seal(body: &[u8]) -> Vec<u8> {
    let mut out = vec![serfn::codec::FORMAT_VERSION];
    out.extend_from_slice(body);
    let checksum = crc32fast::hash(&out);
    out.extend_from_slice(&checksum.to_le_bytes());
    out
}

/// The body of a valid envelope.
pub fn body(bytes: &[u8]) -> Vec<u8> {
    bytes[1..bytes.len() - 4].to_vec()
}

/// The header of a function's wire form: name, registration version,
/// signature and layout fingerprints.
pub type Header = (String, u32, Vec<u8>, Vec<u8>);

/// A function's wire form: its header and the capture's bytes.
#[derive(Clone, Debug)]
pub struct Wire {
    pub header: Header,
    pub capture: Vec<u8>,
}

impl Wire {
    /// The function at the top of an envelope.
    pub fn parse(envelope: &[u8]) -> Wire {
        Wire::decode(&body(envelope))
    }

    /// A function's wire form on its own.
    pub fn decode(bytes: &[u8]) -> Wire {
        let (name, version, signature, layout, capture) =
            serfn::codec::decode_value(bytes, &Limits::default()).unwrap();
        let header = (name, version, signature, layout);
        Wire { header, capture }
    }

    /// Everything before the capture's bytes: the header and their length.
    pub fn head(&self, capture_len: usize) -> Vec<u8> {
        let mut out = serfn::codec::encode_value(&self.header).unwrap();
        out.extend(serfn::codec::encode_value(&(capture_len as u64)).unwrap());
        out
    }

    /// The wire form with another capture.
    pub fn with_capture(&self, capture: &[u8]) -> Vec<u8> {
        [self.head(capture.len()), capture.to_vec()].concat()
    }

    /// The wire form itself.
    pub fn encode(&self) -> Vec<u8> {
        self.with_capture(&self.capture)
    }

    /// A sealed envelope holding this function.
    pub fn seal(&self) -> Vec<u8> {
        seal(&self.encode())
    }
}

/// The cargo flags that build an example program with this test's wire
/// format (a worker of another format refuses the pool's bytes), and with
/// its other features, so that cargo reuses this test's build of serfn
/// instead of compiling it again.
pub fn format_flags() -> Vec<&'static str> {
    let mut flags = Vec::new();
    if !cfg!(feature = "bincode") {
        flags.push("--no-default-features");
    }
    if cfg!(feature = "postcard") {
        flags.extend(["--features", "postcard"]);
    }
    if cfg!(feature = "progress") {
        flags.extend(["--features", "progress"]);
    }
    if cfg!(feature = "tracing") {
        flags.extend(["--features", "tracing"]);
    }
    flags
}

/// Whether process `pid` is running.
pub fn alive(pid: u32) -> bool {
    // A zombie is dead too: only a running process counts.
    state(pid).is_some_and(|state| state != 'Z')
}

/// Whether process `pid` is stopped (`SIGSTOP`), as `/proc` says.
pub fn stopped(pid: u32) -> bool {
    state(pid) == Some('T')
}

/// The state letter of process `pid` in `/proc/<pid>/stat`, if it exists.
fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name, which may itself hold ')'.
    stat.rsplit(')').next()?.trim_start().chars().next()
}

/// Polls until `done()` holds; a bounded wait, not a timing assertion.
pub fn eventually(done: impl Fn() -> bool) -> bool {
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}
