//! The pool bench's floor: a raw Unix-socket pipeline to child processes, no
//! serialization library, no tasks, no errors, no retries. Each child is this
//! bench binary run again with [`ENV_ROLE`] set; its socket (one end of a
//! `UnixStream::pair`) is its stdin. It reads `u64`s (the bits of an `f64`)
//! and answers each with the bits of `x * factor`, in order.
//!
//! Two variants: `unbatched` writes and reads one item (8 bytes) per system
//! call on both sides, as a one-message-per-item protocol must without
//! batching; `batched` writes a chunk of items per call and reads whatever has
//! arrived.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};

/// Set in a child's environment: `unbatched` or `batched`.
pub const ENV_ROLE: &str = "SERFN_BENCH_RAW_ECHO";

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
    batched: bool,
}

impl RawPool {
    /// `workers` children of the `batched` or unbatched variant.
    pub fn new(workers: usize, batched: bool, factor: f64) -> RawPool {
        let exe = std::env::current_exe().expect("the bench's path");
        let children = (0..workers)
            .map(|_| {
                let (ours, theirs) = UnixStream::pair().expect("a socket pair");
                let child = Command::new(&exe)
                    .env(ENV_ROLE, if batched { "batched" } else { "unbatched" })
                    .env("SERFN_BENCH_RAW_FACTOR", factor.to_string())
                    .stdin(Stdio::from(OwnedFd::from(theirs)))
                    .spawn()
                    .expect("cannot start a raw child");
                (child, ours)
            })
            .collect();
        RawPool { children, batched }
    }

    /// `x * factor` of each item: contiguous shares, one per child, written
    /// by one thread per child while another reads the answers.
    pub fn map(&mut self, items: &[f64]) -> Vec<f64> {
        let share = items.len().div_ceil(self.children.len()).max(1);
        let batched = self.batched;
        let mut out = vec![0.0; items.len()];
        std::thread::scope(|s| {
            for ((_, sock), (part, dest)) in self
                .children
                .iter_mut()
                .zip(items.chunks(share).zip(out.chunks_mut(share)))
            {
                let mut writer = sock.try_clone().expect("a socket clone");
                s.spawn(move || send(&mut writer, part, batched));
                s.spawn(move || receive(sock, dest, batched));
            }
        });
        out
    }
}

fn send(sock: &mut UnixStream, items: &[f64], batched: bool) {
    if !batched {
        for x in items {
            sock.write_all(&x.to_bits().to_le_bytes()).expect("a write");
        }
        return;
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

fn receive(sock: &mut UnixStream, dest: &mut [f64], batched: bool) {
    let decode = |b: &[u8]| f64::from_bits(u64::from_le_bytes(b.try_into().expect("8 bytes")));
    if !batched {
        let mut item = [0u8; 8];
        for slot in dest {
            sock.read_exact(&mut item).expect("an answer");
            *slot = decode(&item);
        }
        return;
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
