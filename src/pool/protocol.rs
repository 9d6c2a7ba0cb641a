//! The frames between a pool and its workers, on a Unix socket of their own
//! (never the worker's stdout, which user code may write to).
//!
//! ```text
//! frame := [len: u32 LE][tag: u8][fields, fixed-width LE][payload]   (len counts tag + fields + payload)
//! items := [count: u32][len: u32][codec bytes] * count        (arguments, parent to worker)
//! ```
//!
//! Headers are fixed-width so that they cost nothing to read; arguments,
//! results and functions inside them go through [`codec`](crate::codec),
//! the one place that knows the format. A worker runs frames strictly in
//! order, which is what lets the pool know that, when a worker dies, only
//! the oldest unanswered frame can have been running.
//!
//! # The CRC
//! Frames carry no checksum of their own, and arguments and results travel
//! as plain codec values, without the envelope's CRC-32: the socket is a
//! private, same-host Unix socket (in a 0700 directory), a kernel memory
//! copy that does not corrupt bytes the way disks and networks do, and a
//! per-item checksum would cost more than the rest of a small item's trip.
//! Bad bytes are still caught: every field and value is decoded under the
//! limits and checked against the task it answers. A function's envelope
//! (`LOAD`, `ONCE`) keeps its CRC: it is the same bytes that may be stored
//! or sent over a network, it is checked once per worker, not per item, and
//! at crc32fast's speed it is a small part of decoding even a large capture.

use std::io::{self, IoSlice, Read, Write};

use crate::error::Error;

/// Parent to worker: load a function under an id. `[id u64][envelope]`
pub(crate) const LOAD: u8 = 1;
/// Parent to worker: call a loaded `Fn` once per item. `[task u64][id u64][items]`
pub(crate) const BATCH: u8 = 2;
/// Parent to worker: call a loaded function as `FnMut` per item. Same layout as [`BATCH`].
pub(crate) const BATCH_MUT: u8 = 3;
/// Parent to worker: call a function once, consuming it. `[task u64][fn len u32][envelope][items]`
pub(crate) const ONCE: u8 = 4;
/// Parent to worker: send back a loaded function's state and forget it. `[task u64][id u64]`
pub(crate) const TAKE: u8 = 5;
/// Parent to worker: forget a loaded function. `[id u64]`
pub(crate) const FORGET: u8 = 6;
/// Parent to worker: call a loaded `Fn` on each element of a codec sequence,
/// in one typed pass. `[task u64][id u64][codec sequence of arguments]`
pub(crate) const BATCH_SEQ: u8 = 7;
/// Parent to worker: load a function from shared memory, a sealed memfd
/// attached to the frame (`SCM_RIGHTS`), see [`shm`](super::shm): its
/// envelope starts `skip` bytes in.
/// `[id u64][skip u64][envelope len u64]`
pub(crate) const LOAD_SHARED: u8 = 8;

/// Parent to worker: call a loaded `Async` function on each item, up to
/// `concurrency` at once on the worker's runtime, each within `timeout`
/// (0: none); answered as [`BATCH`] is, in item order.
/// `[task u64][id u64][timeout ns u64][concurrency u32][items]`
pub(crate) const ASYNC_BATCH: u8 = 9;

/// Parent to worker: write every answer held back so far before reading
/// on, so that a worker that dies in the next frame has answered all the
/// frames before it: sent around each item of a group that lost a worker
/// ([`singles`](super::singles)). `[]`
pub(crate) const FLUSH: u8 = 10;

/// Parent to worker: items of a group ([`singles`](super::singles)), each
/// its own task: item `i`'s task is `task + i`, and its `item` is what its
/// own [`BATCH`] (`seq` 0: an items block of one) or [`BATCH_SEQ`] (`seq`
/// 1: a codec sequence of one) frame would carry after the function id.
/// Answered in item order by [`ANSWERS`] frames, and a [`FAILED`] frame for
/// each item that fails on its own. Not sent when a timeout applies.
/// `[task u64][id u64][seq u8][count u32]([len u32][item]) * count`
pub(crate) const GROUP: u8 = 13;

/// Worker to parent, first frame: `[token u64][pid u32]`
pub(crate) const HELLO: u8 = 0x81;
/// Worker to parent: a task's results. `[task u64][elapsed ns u64][codec
/// sequence of Result<R, Panic>]`, decoded in one pass.
pub(crate) const DONE: u8 = 0x82;
/// Worker to parent: a task failed as a whole. `[task u64][codec WireError]`,
/// see [`WireError`](crate::error::WireError).
pub(crate) const FAILED: u8 = 0x83;
/// Worker to parent: a function's state, for [`TAKE`]. `[task u64][envelope]`
pub(crate) const STATE: u8 = 0x84;
/// Worker to parent: the answers to `count` items of a [`GROUP`] from
/// `task` on, each the payload its own [`DONE`] frame would carry, and the
/// time they took together. `[task u64][elapsed ns u64][count u32]([len
/// u32][payload]) * count`
pub(crate) const ANSWERS: u8 = 0x86;
/// Worker to parent: "alive", sent by a thread of its own whenever nothing
/// else was written for [`HEARTBEAT_EVERY`], even while a function runs. `[]`
pub(crate) const HEARTBEAT: u8 = 0x85;
/// How often an idle or busy worker says it is alive.
pub(crate) const HEARTBEAT_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// Bytes of a frame's length prefix.
pub(crate) const LEN_BYTES: usize = 4;

/// Starts a frame in `buf`; [`finish_frame`] fills in its length.
#[inline]
pub(crate) fn start_frame(buf: &mut Vec<u8>, tag: u8) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&[0; LEN_BYTES]);
    buf.push(tag);
    start
}

/// Writes the length of the frame begun at `start`.
#[inline]
pub(crate) fn finish_frame(buf: &mut [u8], start: usize) {
    finish_frame_before(buf, start, 0);
}

/// Writes the length of the frame begun at `start`, whose last `rest`
/// bytes are not in `buf`: they are written right after it.
#[inline]
pub(crate) fn finish_frame_before(buf: &mut [u8], start: usize, rest: usize) {
    let len = (buf.len() - start - LEN_BYTES + rest) as u32;
    buf[start..start + LEN_BYTES].copy_from_slice(&len.to_le_bytes());
}

/// Appends one item of an items block: its 4-byte length, then what `write` appends.
pub(crate) fn put_item<E>(
    out: &mut Vec<u8>,
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
) -> Result<(), E> {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    write(out)?;
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

#[cold]
fn ends_early(missing: usize) -> Error {
    Error::decode(format!("frame ends {missing} bytes early"))
}

/// Reads fixed-width fields off the front of a frame body.
pub(crate) struct Fields<'a>(pub(crate) &'a [u8]);

impl<'a> Fields<'a> {
    #[inline]
    pub(crate) fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }

    #[inline]
    pub(crate) fn u32(&mut self) -> Result<u32, Error> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    #[inline]
    pub(crate) fn u64(&mut self) -> Result<u64, Error> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    /// Inlined, the error apart: a call took 25 instructions of an answer's ~200.
    #[inline]
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let Some((head, rest)) = self.0.split_at_checked(n) else {
            return Err(ends_early(n - self.0.len()));
        };
        self.0 = rest;
        Ok(head)
    }

    /// A `[len u32][bytes]` field's bytes.
    #[inline]
    pub(crate) fn sized(&mut self) -> Result<&'a [u8], Error> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    pub(crate) fn rest(self) -> &'a [u8] {
        self.0
    }

    /// Splits an `items` block into its items.
    pub(crate) fn items(mut self) -> Result<Vec<&'a [u8]>, Error> {
        let count = self.u32()? as usize;
        // Each item takes at least its 4-byte length: bounds the allocation.
        if count > self.0.len() / 4 {
            return Err(Error::decode(format!(
                "{count} items claimed in {} bytes",
                self.0.len()
            )));
        }
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            let len = self.u32()? as usize;
            items.push(self.take(len)?);
        }
        if !self.0.is_empty() {
            return Err(Error::decode("bytes left over after the items"));
        }
        Ok(items)
    }
}

/// Reads whole frames from a stream into one reusable buffer.
pub(crate) struct FrameReader<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    max_frame: usize,
    read: u64,
}

/// What [`FrameReader::next_frame`] found.
pub(crate) enum Next {
    /// A frame's tag and the range of its body, for [`FrameReader::body`].
    Frame(u8, std::ops::Range<usize>),
    /// The stream ended cleanly between frames.
    Closed,
}

/// Frames past this size are read by [`FrameReader::read_large`].
const LARGE_FRAME: usize = 1 << 20;

impl<R: Read> FrameReader<R> {
    pub(crate) fn new(inner: R, max_frame: usize) -> Self {
        FrameReader {
            inner,
            buf: vec![0; 64 << 10],
            start: 0,
            end: 0,
            max_frame,
            read: 0,
        }
    }

    pub(crate) fn get_ref(&self) -> &R {
        &self.inner
    }

    /// Bytes read so far, whole frames or not: a sign of life.
    pub(crate) fn bytes_read(&self) -> u64 {
        self.read
    }

    fn frame_len(&self) -> Option<usize> {
        let head = self.buf.get(self.start..self.start + LEN_BYTES)?;
        (self.end - self.start >= LEN_BYTES)
            .then(|| u32::from_le_bytes(head.try_into().expect("4 bytes")) as usize)
    }

    /// Whether a whole frame is already buffered: if not, the next call reads.
    pub(crate) fn has_frame(&self) -> bool {
        self.frame_len()
            .is_some_and(|len| self.end - self.start >= LEN_BYTES + len)
    }

    /// The body of the frame that [`next_frame`](Self::next_frame) returned.
    pub(crate) fn body(&self, range: std::ops::Range<usize>) -> &[u8] {
        &self.buf[range]
    }

    /// Reads until a whole frame is buffered. A read that times out returns
    /// its error with the partial frame kept, so the caller may call again.
    pub(crate) fn next_frame(&mut self) -> io::Result<Next> {
        loop {
            let need = match self.frame_len() {
                Some(len) if len == 0 || len > self.max_frame => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("frame of {len} bytes (limit {})", self.max_frame),
                    ));
                }
                Some(len) if self.end - self.start >= LEN_BYTES + len => {
                    let tag = self.buf[self.start + LEN_BYTES];
                    let body = self.start + LEN_BYTES + 1..self.start + LEN_BYTES + len;
                    self.start = body.end;
                    return Ok(Next::Frame(tag, body));
                }
                Some(len) => LEN_BYTES + len,
                None => LEN_BYTES,
            };
            if self.start == self.end {
                (self.start, self.end) = (0, 0);
            } else if self.buf.len() - self.start < need {
                self.buf.copy_within(self.start..self.end, 0);
                (self.start, self.end) = (0, self.end - self.start);
            }
            if need > self.buf.len().max(LARGE_FRAME) {
                self.read_large(need)?;
                continue;
            }
            if self.buf.len() < need {
                self.buf.resize(need, 0);
            }
            match self.inner.read(&mut self.buf[self.end..])? {
                0 if self.start == self.end => return Ok(Next::Closed),
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                read => {
                    self.end += read;
                    self.read += read as u64;
                }
            }
        }
    }
}

impl<R: Read> FrameReader<R> {
    /// Reads the rest of a frame of `need` bytes into spare capacity:
    /// `read_to_end` does not zero-fill it first, as `resize` did (a
    /// 100 MiB capture's `LOAD` frame paid for that, and for its page faults twice).
    fn read_large(&mut self, need: usize) -> io::Result<()> {
        self.buf.truncate(self.end);
        self.buf.reserve_exact(need - self.end);
        let want = (need - self.end) as u64;
        // On a timeout, what was read is kept and the caller may call again.
        let result = (&mut self.inner).take(want).read_to_end(&mut self.buf);
        let read = self.buf.len() - self.end;
        self.end = self.buf.len();
        self.read += read as u64;
        match result? {
            0 => Err(io::ErrorKind::UnexpectedEof.into()),
            _ => Ok(()),
        }
    }
}

/// An I/O error for a frame that breaks the protocol.
pub(crate) fn invalid(error: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error.to_string())
}

/// Writes `buf`, then `tail`, in as few system calls as the socket takes,
/// and clears `buf`.
pub(crate) fn flush_with(
    writer: &mut impl Write,
    buf: &mut Vec<u8>,
    tail: &[u8],
) -> io::Result<()> {
    let mut slices = [IoSlice::new(buf), IoSlice::new(tail)];
    let mut left = &mut slices[..];
    IoSlice::advance_slices(&mut left, 0);
    while !left.is_empty() {
        match writer.write_vectored(left) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(written) => IoSlice::advance_slices(&mut left, written),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    buf.clear();
    Ok(())
}

/// Writes `buf` and clears it.
pub(crate) fn flush(writer: &mut impl Write, buf: &mut Vec<u8>) -> io::Result<()> {
    if !buf.is_empty() {
        writer.write_all(buf)?;
        buf.clear();
    }
    Ok(())
}

#[cfg(test)]
mod tests;
