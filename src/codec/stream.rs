//! Envelopes written out as they are encoded, never held whole in memory:
//! for a function too large to copy, which the pool writes straight into
//! shared memory.
//!
//! An envelope's capture is a byte string whose length comes first, so the
//! capture is encoded twice: once into a [`CaptureWriter`] that only counts,
//! once into one that writes (through a buffer of [`BUFFER`] bytes, or
//! directly for a large piece such as a [`Bulk`](super::Bulk)'s bytes). The
//! bytes are those [`envelope_into`](super::envelope_into) appends for the
//! same header and capture.

use std::io::{self, Write};

use super::format;
use crate::error::{Error, Result};

/// Bytes gathered before they go to the sink; larger pieces go directly.
const BUFFER: usize = 256 << 10;

/// Where a capture's encoding goes: counted only, or written to a sink and
/// checksummed on the way.
#[doc(hidden)]
pub struct CaptureWriter<'a> {
    len: u64,
    out: Option<Out<'a>>,
}

struct Out<'a> {
    sink: &'a mut dyn Write,
    buffer: Vec<u8>,
    crc: crc32fast::Hasher,
}

impl<'a> CaptureWriter<'a> {
    /// Counts the bytes written, and keeps none.
    pub(crate) fn counting() -> Self {
        CaptureWriter { len: 0, out: None }
    }

    /// Writes to `sink`, continuing the checksum `crc`.
    fn writing(sink: &'a mut dyn Write, crc: crc32fast::Hasher) -> Self {
        CaptureWriter {
            len: 0,
            out: Some(Out {
                sink,
                buffer: Vec::with_capacity(BUFFER),
                crc,
            }),
        }
    }

    /// The bytes written so far.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Writes out what is buffered; returns the checksum's state (a fresh
    /// one for a counting writer).
    fn finish(self) -> io::Result<crc32fast::Hasher> {
        let Some(mut out) = self.out else {
            return Ok(super::fresh_crc());
        };
        out.drain()?;
        Ok(out.crc)
    }
}

impl Out<'_> {
    fn drain(&mut self) -> io::Result<()> {
        self.crc.update(&self.buffer);
        self.sink.write_all(&self.buffer)?;
        self.buffer.clear();
        Ok(())
    }

    #[cold]
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

    #[inline]
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.len += data.len() as u64;
        let Some(out) = &mut self.out else {
            return Ok(());
        };
        if data.len() <= out.buffer.capacity() - out.buffer.len() {
            out.buffer.extend_from_slice(data);
            return Ok(());
        }
        out.put_large(data)
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

/// An envelope's length and checksum, as [`open`](super::open) reads them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Written {
    pub(crate) len: u64,
    pub(crate) crc: u32,
}

/// How long the envelope of `header` (what follows the version byte before
/// the capture) and a capture of `capture_len` bytes is.
pub(crate) fn envelope_len(header: &[u8], capture_len: u64) -> u64 {
    let mut prefix = Vec::new();
    format::write_len(capture_len, &mut prefix);
    (1 + header.len() + prefix.len()) as u64 + capture_len + super::CHECKSUM_LEN as u64
}

/// Writes to `sink` the envelope of `header` and the capture that `capture`
/// writes, which must be `capture_len` bytes, as counted by a first pass.
///
/// # Errors
/// The sink's, as [`Error::Encode`]; the capture's own; or a capture that
/// wrote another length than it counted (a `Serialize` that is not
/// deterministic).
pub(crate) fn write_envelope(
    sink: &mut dyn Write,
    header: &[u8],
    capture_len: u64,
    capture: impl FnOnce(&mut CaptureWriter<'_>) -> Result<()>,
) -> Result<Written> {
    let mut head = vec![super::FORMAT_VERSION];
    head.extend_from_slice(header);
    format::write_len(capture_len, &mut head);
    let mut crc = super::fresh_crc();
    crc.update(&head);
    sink.write_all(&head).map_err(Error::encode)?;
    let mut writer = CaptureWriter::writing(sink, crc);
    capture(&mut writer)?;
    let written = writer.len();
    if written != capture_len {
        return Err(Error::encode(format!(
            "the capture encoded to {capture_len} bytes, then to {written}: \
             its `Serialize` is not deterministic"
        )));
    }
    let crc = writer.finish().map_err(Error::encode)?.finalize();
    sink.write_all(&crc.to_le_bytes()).map_err(Error::encode)?;
    Ok(Written {
        len: head.len() as u64 + capture_len + super::CHECKSUM_LEN as u64,
        crc,
    })
}
