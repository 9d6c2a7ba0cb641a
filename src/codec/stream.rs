//! Envelopes written out as they are encoded, never held whole in memory:
//! for a function too large to copy, which the pool writes straight into
//! shared memory (and a worker reads back, its checksum computed beside
//! the decode: [`from_bytes_checked_beside`]).
//!
//! An envelope's capture is a byte string whose length comes first. So the
//! capture is written after room for the longest length prefix, through a
//! [`CaptureWriter`] (a buffer of [`BUFFER`] bytes, or directly for a large
//! piece such as a [`Bulk`](super::Bulk)'s bytes), and the version byte,
//! header and length go right before it once its length is known: the
//! envelope starts a few bytes into the sink ([`Written::skip`]). Its bytes
//! are those [`envelope_into`](super::envelope_into) appends for the same
//! header and capture; the checksum of the capture, taken as it is written,
//! is combined with the head's.

// The type is every registered function's (`__serfn_write_capture`); what
// writes and reads envelopes here, only the pool's shared memory (Linux).
#![cfg_attr(not(target_os = "linux"), allow(dead_code))]

use std::io::{self, Seek, SeekFrom, Write};

use super::format;
#[cfg(target_os = "linux")]
use super::Limits;
use crate::error::{Error, Result};

/// Bytes gathered before they go to the sink; larger pieces go directly.
pub(crate) const BUFFER: usize = 1 << 20;

/// Where an envelope is written: a file, or anything written and seeked.
pub(crate) trait Sink: Write + Seek {
    /// Writes `chunk` (a [`CaptureWriter`]'s full buffer) and leaves it
    /// empty: a sink that writes elsewhere takes it, and leaves a spare.
    fn write_chunk(&mut self, chunk: &mut Vec<u8>) -> io::Result<()> {
        self.write_all(chunk)?;
        chunk.clear();
        Ok(())
    }
}

impl<T: AsRef<[u8]>> Sink for std::io::Cursor<T> where std::io::Cursor<T>: Write {}

/// Where a capture's encoding goes: counted only, or written to a sink and
/// checksummed on the way.
#[doc(hidden)]
pub struct CaptureWriter<'a> {
    len: u64,
    /// Counting only: the most bytes counted before writes fail.
    cap: u64,
    out: Option<Out<'a>>,
}

struct Out<'a> {
    sink: &'a mut dyn Sink,
    buffer: Vec<u8>,
    /// The checksum of what was written.
    crc: crc32fast::Hasher,
}

impl<'a> CaptureWriter<'a> {
    /// Counts the bytes written, and keeps none; fails a write once past
    /// `cap` bytes (the count then says so), so that a large encoding is
    /// not counted to its end.
    pub(crate) fn counting_up_to(cap: u64) -> Self {
        CaptureWriter {
            len: 0,
            cap,
            out: None,
        }
    }

    /// Writes to `sink`, checksumming what it writes.
    fn writing(sink: &'a mut dyn Sink) -> Self {
        CaptureWriter {
            len: 0,
            cap: u64::MAX,
            out: Some(Out {
                crc: super::fresh_crc(),
                sink,
                buffer: Vec::with_capacity(BUFFER),
            }),
        }
    }

    /// The bytes written so far.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Writes out what is buffered; returns the checksum's state of what
    /// it wrote (a fresh one for a counting writer).
    fn finish(self) -> io::Result<crc32fast::Hasher> {
        let Some(mut out) = self.out else {
            return Ok(super::fresh_crc());
        };
        out.drain()?;
        Ok(out.crc)
    }
}

impl CaptureWriter<'_> {
    /// Counting, or past the buffer's room.
    #[cold]
    #[inline(never)]
    fn write_slow(&mut self, data: &[u8]) -> io::Result<()> {
        match &mut self.out {
            Some(out) => out.put_large(data),
            None if self.len > self.cap => Err(io::Error::other("past the count's cap")),
            None => Ok(()),
        }
    }
}

impl Out<'_> {
    fn drain(&mut self) -> io::Result<()> {
        self.crc.update(&self.buffer);
        self.sink.write_chunk(&mut self.buffer)?;
        if self.buffer.capacity() < BUFFER {
            self.buffer.reserve_exact(BUFFER);
        }
        Ok(())
    }

    fn put_large(&mut self, data: &[u8]) -> io::Result<()> {
        self.drain()?;
        if data.len() >= BUFFER / 2 {
            self.crc.update(data);
            return self.sink.write_all(data);
        }
        self.buffer.extend_from_slice(data);
        Ok(())
    }
}

impl Write for CaptureWriter<'_> {
    #[inline]
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.write_all(data)?;
        Ok(data.len())
    }

    // Always inlined: a sequence's elements each come here, and a call
    // per element cost more than the copy.
    #[inline(always)]
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.len += data.len() as u64;
        if let Some(out) = &mut self.out {
            if data.len() <= out.buffer.capacity() - out.buffer.len() {
                out.buffer.extend_from_slice(data);
                return Ok(());
            }
        }
        self.write_slow(data)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Encodes `value` into `out`, as the format appends it to a `Vec`.
pub(crate) fn write_value<T: serde::Serialize + ?Sized>(
    value: &T,
    out: &mut CaptureWriter<'_>,
) -> Result<()> {
    format::encode_to(value, out)
}

/// Where an envelope lies in its sink, and its checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Written {
    /// Bytes before the envelope (fewer than [`MAX_LEN_BYTES`]).
    pub(crate) skip: u64,
    pub(crate) len: u64,
    pub(crate) crc: u32,
}

/// The longest length prefix of a byte string in either format (a `u64`
/// as a bincode varint: 9, as LEB128: 10).
pub(crate) const MAX_LEN_BYTES: usize = 10;

/// Writes to `sink`, from its start, the envelope of `header` (what follows
/// the version byte before the capture) and the capture that `capture`
/// writes, a few bytes in: see the [module](self).
///
/// # Errors
/// The sink's, as [`Error::Encode`], or the capture's own.
pub(crate) fn write_envelope<S: Sink>(
    sink: &mut S,
    header: &[u8],
    capture: impl FnOnce(&mut CaptureWriter<'_>) -> Result<()>,
) -> Result<Written> {
    let room = (1 + header.len() + MAX_LEN_BYTES) as u64;
    sink.seek(SeekFrom::Start(room)).map_err(Error::encode)?;
    let mut writer = CaptureWriter::writing(&mut *sink);
    capture(&mut writer)?;
    let capture_len = writer.len();
    let capture_crc = writer.finish().map_err(Error::encode)?;

    let mut head = vec![super::FORMAT_VERSION];
    head.extend_from_slice(header);
    format::write_len(capture_len, &mut head);
    let skip = room - head.len() as u64;
    let mut crc = super::fresh_crc();
    crc.update(&head);
    crc.combine(&capture_crc);
    let crc = crc.finalize();
    let mut put = |at: SeekFrom, bytes: &[u8]| {
        sink.seek(at)?;
        sink.write_all(bytes)
    };
    put(SeekFrom::Start(skip), &head).map_err(Error::encode)?;
    put(SeekFrom::End(0), &crc.to_le_bytes()).map_err(Error::encode)?;
    Ok(Written {
        skip,
        len: head.len() as u64 + capture_len + super::CHECKSUM_LEN as u64,
        crc,
    })
}

/// [`Limits::from_bytes`] for a large envelope on two cores: its checksum is
/// computed on a thread of its own while the body decodes, and the value
/// is returned only if the checksum holds (a wrong one is
/// [`Error::Checksum`], whatever the decode gave). Decoding bytes before
/// their checksum is checked is what forged bytes with a recomputed
/// checksum get anyway: bounded, typed errors, no panic.
#[cfg(target_os = "linux")] // the pool's shared memory
pub(crate) fn from_bytes_checked_beside<T: serde::de::DeserializeOwned>(
    limits: &Limits,
    bytes: &[u8],
) -> Result<T> {
    limits.check_len(bytes.len() as u64)?;
    if bytes.first() != Some(&super::FORMAT_VERSION) {
        // Signed, another version, or empty: refused as the plain path does.
        return limits.from_bytes(bytes);
    }
    let (content, stored) = super::split_envelope(bytes, super::FORMAT_VERSION)?;
    std::thread::scope(|scope| {
        let checking = scope.spawn(|| super::check_crc(content, stored));
        let decoded = super::decode_value(&content[1..], limits);
        checking
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
        decoded
    })
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    /// Against the envelope `envelope_into` appends for the same header and
    /// capture, at every length prefix width: one byte, a `u16`, a `u32`;
    /// through the buffer in small writes and directly in one large one.
    #[test]
    fn the_envelope_is_the_one_written_in_memory_a_few_bytes_in() {
        let header = b"header bytes".to_vec();
        for len in [0usize, 3, 250, 251, 300, 65_535, 65_536, 1 << 20] {
            let capture: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let mut want = Vec::new();
            super::super::envelope_into(&mut want, |out| {
                out.extend_from_slice(&header);
                format::write_bytes(&capture, out);
                Ok(())
            })
            .unwrap();
            for piece in [1, 8, 1000, BUFFER, len.max(1)] {
                let mut sink = Cursor::new(Vec::new());
                let written = write_envelope(&mut sink, &header, |out| {
                    for chunk in capture.chunks(piece) {
                        out.write_all(chunk).map_err(Error::encode)?;
                    }
                    Ok(())
                })
                .unwrap();
                let got = sink.into_inner();
                let skip = written.skip as usize;
                assert!(skip < MAX_LEN_BYTES, "skip {skip}");
                assert_eq!(got.len(), skip + written.len as usize);
                assert_eq!(&got[skip..], &want[..], "len {len}, pieces of {piece}");
                assert_eq!(written.crc.to_le_bytes(), want[want.len() - 4..]);
            }
        }
    }

    #[test]
    fn a_count_stops_past_its_cap_and_says_so() {
        let mut counter = CaptureWriter::counting_up_to(10);
        assert!(counter.write_all(&[0; 10]).is_ok());
        assert!(counter.write_all(&[0; 1]).is_err());
        assert_eq!(counter.len(), 11);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_checksum_checked_beside_the_decode_still_refuses_a_changed_byte() {
        let limits = Limits::default();
        let value: Vec<u64> = (0..10_000).collect();
        let bytes = super::super::to_bytes(&value).unwrap();
        let back: Vec<u64> = from_bytes_checked_beside(&limits, &bytes).unwrap();
        assert_eq!(back, value);
        // A changed element still decodes; the checksum refuses it.
        let mut changed = bytes.clone();
        changed[bytes.len() / 2] ^= 1;
        let result = from_bytes_checked_beside::<Vec<u64>>(&limits, &changed);
        assert!(matches!(result, Err(Error::Checksum { .. })), "{result:?}");
        // What the plain path refuses before decoding, it refuses the same.
        for bad in [&bytes[..3], &[0xff; 64][..]] {
            let plain = limits.from_bytes::<Vec<u64>>(bad).unwrap_err().to_string();
            let beside = from_bytes_checked_beside::<Vec<u64>>(&limits, bad)
                .unwrap_err()
                .to_string();
            assert_eq!(beside, plain);
        }
        let tight = Limits::new().max_bytes(64);
        let result = from_bytes_checked_beside::<Vec<u64>>(&tight, &bytes);
        assert!(matches!(result, Err(Error::TooLarge { .. })), "{result:?}");
    }
}
