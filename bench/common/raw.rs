//! The pool bench's floor: a raw Unix-socket pipeline to child processes, no
//! serialization library, no tasks, no errors, no retries. Each child is this
//! bench binary run again with [`ENV_ROLE`] set; its socket (one end of a
//! `UnixStream::pair`) is its stdin. It reads `u64`s (the bits of an `f64`)
//! and answers each with the bits of `x * factor`, in order.
//!
//! Three variants ([`Mode`]): `unbatched` writes and reads one item (8 bytes)
//! per system call on both sides, as a one-message-per-item protocol must
//! without batching; `buffered` writes and reads one item at a time through
//! std's 8 KiB `BufWriter`/`BufReader` on both sides (the child flushes before
//! it waits for more), the plain way to pipeline one message per item;
//! `batched` writes a chunk of items per call and reads whatever has arrived.

use std::io::{BufReader, BufWriter, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};

/// Set in a child's environment: the [`Mode`]'s name.
pub const ENV_ROLE: &str = "SERFN_BENCH_RAW_ECHO";

/// How the parent and the children write and read items.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A write and a read system call per item, both sides.
    Unbatched,
    /// One item at a time through 8 KiB buffers, both sides.
    Buffered,
    /// [`BATCH`] items per write; reads of whatever has arrived.
    Batched,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Unbatched => "unbatched",
            Mode::Buffered => "buffered",
            Mode::Batched => "batched",
        }
    }
}

/// Items per write in the batched variant (and the reader's buffer).
const BATCH: usize = 12_500;

/// Runs the child's loop and exits, if this process is a raw child.
pub fn child_if_asked() {
    let Ok(role) = std::env::var(ENV_ROLE) else {
        return;
    };
    let factor: f64 = std::env::var("SERFN_BENCH_RAW_FACTOR")
        .expect("the factor")
        .parse()
        .expect("a number");
    let fd = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .expect("stdin");
    let mut sock = UnixStream::from(fd);
    let answer = |bytes: &[u8]| -> [u8; 8] {
        let x = f64::from_bits(u64::from_le_bytes(bytes.try_into().expect("8 bytes")));
        (x * factor).to_bits().to_le_bytes()
    };
    if role == "unbatched" {
        let mut item = [0u8; 8];
        while sock.read_exact(&mut item).is_ok() {
            if sock.write_all(&answer(&item)).is_err() {
                break;
            }
        }
    } else if role == "buffered" {
        let mut reader = BufReader::new(sock.try_clone().expect("a socket clone"));
        let mut writer = BufWriter::new(sock);
        let mut item = [0u8; 8];
        loop {
            // Answers go out before the child waits for more items.
            if reader.buffer().is_empty() && writer.flush().is_err() {
                break;
            }
            if reader.read_exact(&mut item).is_err() || writer.write_all(&answer(&item)).is_err() {
                break;
            }
        }
    } else {
        let mut buf = vec![0u8; BATCH * 8];
        let mut out = Vec::with_capacity(BATCH * 8);
        let mut have = 0;
        loop {
            match sock.read(&mut buf[have..]) {
                Ok(0) | Err(_) => break,
                Ok(n) => have += n,
            }
            let whole = have / 8 * 8;
            out.clear();
            for item in buf[..whole].chunks_exact(8) {
                out.extend_from_slice(&answer(item));
            }
            buf.copy_within(whole..have, 0);
            have -= whole;
            if sock.write_all(&out).is_err() {
                break;
            }
        }
    }
    std::process::exit(0);
}

/// Running children and their sockets.
pub struct RawPool {
    children: Vec<(Child, UnixStream)>,
    mode: Mode,
}

impl RawPool {
    /// `workers` children of the given variant.
    pub fn new(workers: usize, mode: Mode, factor: f64) -> RawPool {
        let exe = std::env::current_exe().expect("the bench's path");
        let children = (0..workers)
            .map(|_| {
                let (ours, theirs) = UnixStream::pair().expect("a socket pair");
                let child = Command::new(&exe)
                    .env(ENV_ROLE, mode.name())
                    .env("SERFN_BENCH_RAW_FACTOR", factor.to_string())
                    .stdin(Stdio::from(OwnedFd::from(theirs)))
                    .spawn()
                    .expect("cannot start a raw child");
                (child, ours)
            })
            .collect();
        RawPool { children, mode }
    }

    /// `x * factor` of each item: contiguous shares, one per child, written
    /// by one thread per child while another reads the answers.
    pub fn map(&mut self, items: &[f64]) -> Vec<f64> {
        let share = items.len().div_ceil(self.children.len()).max(1);
        let mode = self.mode;
        let mut out = vec![0.0; items.len()];
        std::thread::scope(|s| {
            for ((_, sock), (part, dest)) in self
                .children
                .iter_mut()
                .zip(items.chunks(share).zip(out.chunks_mut(share)))
            {
                let mut writer = sock.try_clone().expect("a socket clone");
                s.spawn(move || send(&mut writer, part, mode));
                s.spawn(move || receive(sock, dest, mode));
            }
        });
        out
    }
}

fn send(sock: &mut UnixStream, items: &[f64], mode: Mode) {
    match mode {
        Mode::Unbatched => {
            for x in items {
                sock.write_all(&x.to_bits().to_le_bytes()).expect("a write");
            }
            return;
        }
        Mode::Buffered => {
            let mut writer = BufWriter::new(sock);
            for x in items {
                writer
                    .write_all(&x.to_bits().to_le_bytes())
                    .expect("a write");
            }
            writer.flush().expect("a write");
            return;
        }
        Mode::Batched => {}
    }
    let mut buf = Vec::with_capacity(BATCH * 8);
    for chunk in items.chunks(BATCH) {
        buf.clear();
        for x in chunk {
            buf.extend_from_slice(&x.to_bits().to_le_bytes());
        }
        sock.write_all(&buf).expect("a write");
    }
}

fn receive(sock: &mut UnixStream, dest: &mut [f64], mode: Mode) {
    let decode = |b: &[u8]| f64::from_bits(u64::from_le_bytes(b.try_into().expect("8 bytes")));
    let mut item = [0u8; 8];
    match mode {
        Mode::Unbatched => {
            for slot in dest {
                sock.read_exact(&mut item).expect("an answer");
                *slot = decode(&item);
            }
            return;
        }
        Mode::Buffered => {
            let mut reader = BufReader::new(sock);
            for slot in dest {
                reader.read_exact(&mut item).expect("an answer");
                *slot = decode(&item);
            }
            return;
        }
        Mode::Batched => {}
    }
    let mut buf = vec![0u8; BATCH * 8];
    let (mut have, mut done) = (0, 0);
    while done < dest.len() {
        let n = sock.read(&mut buf[have..]).expect("an answer");
        assert!(n > 0, "a raw child closed its socket");
        have += n;
        let whole = (have / 8).min(dest.len() - done);
        for (slot, b) in dest[done..done + whole]
            .iter_mut()
            .zip(buf[..whole * 8].chunks_exact(8))
        {
            *slot = decode(b);
        }
        done += whole;
        buf.copy_within(whole * 8..have, 0);
        have -= whole * 8;
    }
}

impl Drop for RawPool {
    fn drop(&mut self) {
        for (mut child, sock) in self.children.drain(..) {
            drop(sock); // end of input: the child exits
            let _ = child.wait();
        }
    }
}
