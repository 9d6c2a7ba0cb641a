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

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

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

/// Worker to parent, first frame: `[token u64][pid u32]`
pub(crate) const HELLO: u8 = 0x81;
/// Worker to parent: a task's results. `[task u64][elapsed ns u64][codec
/// sequence of Result<R, Panic>]`, decoded in one pass.
pub(crate) const DONE: u8 = 0x82;
/// Worker to parent: a task failed as a whole. `[task u64][codec WireError]`
pub(crate) const FAILED: u8 = 0x83;
/// Worker to parent: a function's state, for [`TAKE`]. `[task u64][envelope]`
pub(crate) const STATE: u8 = 0x84;

/// Bytes of a frame's length prefix.
pub(crate) const LEN_BYTES: usize = 4;

/// Starts a frame in `buf`; [`finish_frame`] fills in its length.
pub(crate) fn start_frame(buf: &mut Vec<u8>, tag: u8) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&[0; LEN_BYTES]);
    buf.push(tag);
    start
}

/// Writes the length of the frame begun at `start`.
pub(crate) fn finish_frame(buf: &mut [u8], start: usize) {
    let len = (buf.len() - start - LEN_BYTES) as u32;
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

/// Reads fixed-width fields off the front of a frame body.
pub(crate) struct Fields<'a>(pub(crate) &'a [u8]);

impl<'a> Fields<'a> {
    pub(crate) fn u32(&mut self) -> Result<u32, Error> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, Error> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if self.0.len() < n {
            return Err(Error::decode(format!(
                "frame ends {} bytes early",
                n - self.0.len()
            )));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
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
}

/// What [`FrameReader::next_frame`] found.
pub(crate) enum Next {
    /// A frame's tag and the range of its body, for [`FrameReader::body`].
    Frame(u8, std::ops::Range<usize>),
    /// The stream ended cleanly between frames.
    Closed,
}

impl<R: Read> FrameReader<R> {
    pub(crate) fn new(inner: R, max_frame: usize) -> Self {
        FrameReader {
            inner,
            buf: vec![0; 64 << 10],
            start: 0,
            end: 0,
            max_frame,
        }
    }

    pub(crate) fn get_ref(&self) -> &R {
        &self.inner
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
            if self.buf.len() < need {
                self.buf.resize(need, 0);
            }
            match self.inner.read(&mut self.buf[self.end..])? {
                0 if self.start == self.end => return Ok(Next::Closed),
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                read => self.end += read,
            }
        }
    }
}

/// An I/O error for a frame that breaks the protocol.
pub(crate) fn invalid(error: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error.to_string())
}

/// Writes `buf` and clears it.
pub(crate) fn flush(writer: &mut impl Write, buf: &mut Vec<u8>) -> io::Result<()> {
    if !buf.is_empty() {
        writer.write_all(buf)?;
        buf.clear();
    }
    Ok(())
}

/// The errors a worker reports for a whole task, carried as data.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) enum WireError {
    UnknownFunction {
        name: String,
    },
    SignatureMismatch {
        name: String,
        expected: String,
        found: String,
    },
    VersionMismatch {
        name: String,
        registered: u32,
        found: u32,
    },
    TooLarge {
        len: u64,
        limit: u64,
    },
    TooDeep {
        limit: u64,
    },
    Other {
        message: String,
    },
}

impl From<&Error> for WireError {
    fn from(error: &Error) -> Self {
        match error {
            Error::UnknownFunction { name } => WireError::UnknownFunction { name: name.clone() },
            Error::SignatureMismatch {
                name,
                expected,
                found,
            } => WireError::SignatureMismatch {
                name: name.clone(),
                expected: expected.clone(),
                found: found.clone(),
            },
            Error::VersionMismatch {
                name,
                registered,
                found,
            } => WireError::VersionMismatch {
                name: name.clone(),
                registered: *registered,
                found: *found,
            },
            Error::TooLarge { len, limit } => WireError::TooLarge {
                len: *len,
                limit: *limit as u64,
            },
            Error::TooDeep { limit } => WireError::TooDeep {
                limit: *limit as u64,
            },
            other => WireError::Other {
                message: other.to_string(),
            },
        }
    }
}

impl From<WireError> for Error {
    fn from(error: WireError) -> Self {
        match error {
            WireError::UnknownFunction { name } => Error::UnknownFunction { name },
            WireError::SignatureMismatch {
                name,
                expected,
                found,
            } => Error::SignatureMismatch {
                name,
                expected,
                found,
            },
            WireError::VersionMismatch {
                name,
                registered,
                found,
            } => Error::VersionMismatch {
                name,
                registered,
                found,
            },
            WireError::TooLarge { len, limit } => Error::TooLarge {
                len,
                limit: usize::try_from(limit).unwrap_or(usize::MAX),
            },
            WireError::TooDeep { limit } => Error::TooDeep {
                limit: usize::try_from(limit).unwrap_or(usize::MAX),
            },
            WireError::Other { message } => Error::decode(format!("in the worker: {message}")),
        }
    }
}
