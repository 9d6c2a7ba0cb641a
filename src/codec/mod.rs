//! Bytes in, bytes out: the envelope around every encoded function.
//!
//! ```text
//! [format version: 1 byte][body: format encoding of the value][CRC-32 of all before: 4 bytes LE]
//! ```
//!
//! A function's body is its name, its registration version, the
//! fingerprints of its signature and of its capture's layout, and then its
//! capture: decoding checks the first four against this binary's registry
//! before it decodes a single capture byte. The
//! checksum makes every corrupted byte a typed error rather than a wrong
//! capture. `to_writer` and `from_reader` add a 4-byte length in front, so
//! several envelopes can share one stream.
//!
//! With a shared [`Key`], [`to_bytes_signed`] appends an HMAC tag that binds
//! the envelope to the key and to a context, and [`from_bytes_signed`]
//! checks it before decoding anything; see [`Key`] for the format.
//!
//! [`to_bytes`] and [`from_bytes`] are re-exported at the crate root and
//! introduced on the [front page](crate#encoding-and-decoding).

pub mod bulk;
pub(crate) mod format;
mod guard;
mod limits;
#[cfg(unix)]
pub(crate) mod plain;
// What workers are sent and answer: the pool and the fleet are Unix-only.
#[cfg(unix)]
mod items;
#[cfg(unix)]
mod results;
mod sign;
mod stream;
mod value;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::sync::LazyLock;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use self::bulk::Bulk;
#[cfg(unix)]
pub(crate) use self::items::encode_seq_from;
pub use self::limits::Limits;
#[cfg(unix)]
pub(crate) use self::results::{decode_batch_results, decode_one_result, decode_results};
pub use self::sign::{sign, verify, Key, TAG_LEN};
pub(crate) use self::stream::write_value;
#[doc(hidden)]
pub use self::stream::CaptureWriter;
#[cfg(target_os = "linux")] // the pool's shared memory
pub(crate) use self::stream::{
    from_bytes_checked_beside, write_envelope, Sink, Written, BUFFER, MAX_LEN_BYTES,
};
#[cfg(feature = "redis")]
pub(crate) use self::value::decode_head;
#[cfg(unix)]
pub(crate) use self::value::Panic;
pub(crate) use self::value::{
    decode_fixed, decode_prefix, decode_seq, decode_seq_into, encode_len_into, encode_ok_into,
    encode_one_seq_into, encode_panic, encode_seq_into, encode_value_into, one_seq_element,
};
pub use self::value::{decode_result, decode_value, encode_value};
use crate::error::{Error, Result};

/// The envelope format this build writes and reads.
///
/// 2: fingerprints of the signature's and the capture's serde layouts
/// (8 bytes each) instead of a hash of Rust type names, and the capture as
/// a length-prefixed byte string. With the `postcard` feature, 66 (`0x40 | 2`):
/// the same envelope, postcard inside.
pub const FORMAT_VERSION: u8 = format::VERSION;

/// The first byte of a signed envelope: the format version, flagged.
const SIGNED_VERSION: u8 = FORMAT_VERSION | 0x80;

const CHECKSUM_LEN: usize = 4;
const MIN_ENVELOPE_LEN: usize = 1 + CHECKSUM_LEN;

thread_local! {
    static STASHED: RefCell<Option<Error>> = const { RefCell::new(None) };
}

/// Keeps a typed error while it travels through serde as a string, and
/// returns the serde error to raise.
pub(crate) fn stash<E: serde::de::Error>(error: Error) -> E {
    let serde_error = E::custom(&error);
    STASHED.with(|stashed| *stashed.borrow_mut() = Some(error));
    serde_error
}

/// Deserializes `seed` from any deserializer under `limits`' depth and budget.
pub(crate) fn guarded<'de, D, S>(
    deserializer: D,
    limits: &Limits,
    seed: S,
) -> Result<S::Value, D::Error>
where
    D: serde::Deserializer<'de>,
    S: serde::de::DeserializeSeed<'de>,
{
    guard::deserialize_seed(deserializer, limits, seed)
}

pub(crate) use self::guard::{active, refund_borrowed, within_level};

/// Drops what a decode that failed without taking its stashed error left:
/// on every decode's path, so only a check when there is none.
pub(crate) fn clear_stashed() {
    STASHED.with(|stashed| {
        if stashed.borrow().is_some() {
            stashed.borrow_mut().take();
        }
    });
}

/// Takes back the typed error [`stash`] kept, if any.
pub(crate) fn take_stashed() -> Option<Error> {
    STASHED.with(|stashed| stashed.borrow_mut().take())
}

/// Encodes a function, or any serde value holding functions, as bytes that
/// [`from_bytes`] decodes in any process linking the same definitions.
///
/// `value` is a [`SerFn`](crate::SerFn) (or another handle, or a
/// [`DynFn`](crate::DynFn)) or any serde value holding them. The envelope
/// carries the format version, each function's name, version and
/// fingerprints, the captures, and a CRC-32 (see the [module docs](self)).
/// For one function, [`SerFn::to_bytes`](crate::SerFn::to_bytes) does the
/// same on a faster path.
///
/// # Errors
/// [`Error::Encode`] if a `Serialize` impl fails.
///
/// # Example
/// ```
/// let f = serfn::closure!("double", [], move |x: i32| -> i32 { 2 * x });
/// let bytes = serfn::to_bytes(&f)?;
/// let g: serfn::SerFn<i32, i32> = serfn::from_bytes(&bytes)?;
/// assert_eq!(g.call(21), 42);
/// # Ok::<(), serfn::Error>(())
/// ```
pub fn to_bytes<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    envelope(value, FORMAT_VERSION)
}

/// [`to_bytes`], appended to `out`: a buffer reused across encodings saves
/// an allocation each. The handles' own
/// [`SerFn::to_bytes_into`](crate::SerFn::to_bytes_into) writes the same
/// bytes faster, without serde around the header.
///
/// # Errors
/// [`Error::Encode`] if a `Serialize` impl fails; `out` is then as it was.
///
/// # Example
/// ```
/// let mut buf = b"kept".to_vec();
/// serfn::codec::to_bytes_into(&(1u8, "x"), &mut buf)?;
/// assert_eq!(&buf[4..], serfn::to_bytes(&(1u8, "x"))?);
/// # Ok::<(), serfn::Error>(())
/// ```
pub fn to_bytes_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<()> {
    envelope_into(out, |out| format::encode_into(value, out))
}

fn envelope<T: Serialize + ?Sized>(value: &T, version: u8) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(64);
    sealed_into(&mut out, version, |out| format::encode_into(value, out))?;
    Ok(out)
}

/// Appends an unsigned envelope whose body `body` writes.
pub(crate) fn envelope_into(
    out: &mut Vec<u8>,
    body: impl FnOnce(&mut Vec<u8>) -> Result<()>,
) -> Result<()> {
    sealed_into(out, FORMAT_VERSION, body)
}

fn sealed_into(
    out: &mut Vec<u8>,
    version: u8,
    body: impl FnOnce(&mut Vec<u8>) -> Result<()>,
) -> Result<()> {
    let start = out.len();
    out.push(version);
    if let Err(error) = body(out) {
        out.truncate(start);
        return Err(error);
    }
    let checksum = crc32(&out[start..]);
    out.extend_from_slice(&checksum.to_le_bytes());
    Ok(())
}

/// The CRC-32 of `bytes`, as `crc32fast::hash` computes it, from a hasher
/// whose CPU feature detection ran once: per call it cost more than the
/// CRC of a small envelope.
fn crc32(bytes: &[u8]) -> u32 {
    let mut hasher = FRESH.clone();
    hasher.update(bytes);
    hasher.finalize()
}

/// The start of an unsigned envelope that many encodings share (a
/// function's version byte and header), with the checksum's state after it:
/// an envelope that starts with it is sealed and opened hashing only the
/// rest, the same CRC-32 over the same bytes.
pub(crate) struct Prefix {
    bytes: Box<[u8]>,
    crc: crc32fast::Hasher,
}

impl Prefix {
    /// The format version, then what `header` writes.
    pub(crate) fn new(header: impl FnOnce(&mut Vec<u8>)) -> Self {
        let mut bytes = vec![FORMAT_VERSION];
        header(&mut bytes);
        let mut crc = FRESH.clone();
        crc.update(&bytes);
        Prefix {
            bytes: bytes.into(),
            crc,
        }
    }

    /// Appends an envelope of this prefix and what `rest` writes: the bytes
    /// [`envelope_into`] appends for the same body.
    #[inline]
    pub(crate) fn seal_into(
        &self,
        out: &mut Vec<u8>,
        rest: impl FnOnce(&mut Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        let start = out.len();
        out.extend_from_slice(&self.bytes);
        if let Err(error) = rest(out) {
            out.truncate(start);
            return Err(error);
        }
        let mut crc = self.crc.clone();
        crc.update(&out[start + self.bytes.len()..]);
        out.extend_from_slice(&crc.finalize().to_le_bytes());
        Ok(())
    }

    /// What follows this prefix in `bytes`, if `bytes` is an envelope that
    /// [`open`] accepts and starts with it; `None` otherwise, for the full
    /// path to find out why.
    #[inline]
    pub(crate) fn open<'b>(&self, bytes: &'b [u8]) -> Option<&'b [u8]> {
        if bytes.len() > Limits::DEFAULT_MAX_BYTES {
            return None;
        }
        let (content, checksum) = bytes.split_last_chunk::<CHECKSUM_LEN>()?;
        let rest = content.strip_prefix(&*self.bytes)?;
        let mut crc = self.crc.clone();
        crc.update(rest);
        (crc.finalize() == u32::from_le_bytes(*checksum)).then_some(rest)
    }
}

/// A hasher whose CPU feature detection ran once.
static FRESH: LazyLock<crc32fast::Hasher> = LazyLock::new(crc32fast::Hasher::new);

/// A CRC-32 hasher in its initial state, from [`FRESH`].
#[cfg_attr(not(target_os = "linux"), allow(dead_code))] // `stream`'s
fn fresh_crc() -> crc32fast::Hasher {
    FRESH.clone()
}

/// Checks an unsigned envelope under the default limits; returns its body.
pub(crate) fn open(bytes: &[u8]) -> Result<&[u8]> {
    Limits::default().open_envelope(bytes)
}

/// [`to_bytes`], signed: the envelope with a tag that binds it to `key` and
/// `context` (such as `b"job:42/task:7"`), which the reader supplies again.
///
/// # Errors
/// [`Error::Encode`] if a `Serialize` impl fails.
///
/// # Example
/// ```
/// use serfn::codec::Key;
///
/// let key = Key::new([9u8; 32]);
/// let f = serfn::closure!("triple", [], move |x: i32| -> i32 { 3 * x });
/// let bytes = serfn::to_bytes_signed(&f, &key, b"job:1/task:0")?;
/// let g: serfn::SerFn<i32, i32> = serfn::from_bytes_signed(&bytes, &key, b"job:1/task:0")?;
/// assert_eq!(g.call(14), 42);
/// # Ok::<(), serfn::Error>(())
/// ```
pub fn to_bytes_signed<T: Serialize + ?Sized>(
    value: &T,
    key: &Key,
    context: &[u8],
) -> Result<Vec<u8>> {
    let mut out = envelope(value, SIGNED_VERSION)?;
    sign::append_tag(sign::ENVELOPE_LABEL, key, context, &mut out);
    Ok(out)
}

/// Decodes bytes made by [`to_bytes`], checking every function's name,
/// version, signature and layout before a byte of its capture is decoded.
///
/// Only functions this binary registers can come out; the signature asked
/// for (`T`'s handles) must be the one encoded. Decoding runs under the
/// default [`Limits`] ([`Limits::from_bytes`] sets others), so bad input is
/// a typed error, never a panic or an unbounded allocation. The first
/// decode of a function traces its layout (see
/// [`registry`](crate::registry#layout-tracing)).
///
/// # Errors
/// A typed error for every kind of bad input: [`Error::Truncated`],
/// [`Error::TooLarge`], [`Error::Version`], [`Error::Checksum`],
/// [`Error::UnknownFunction`], [`Error::VersionMismatch`],
/// [`Error::SignatureMismatch`], [`Error::TooDeep`], [`Error::Decode`];
/// [`Error::Unauthenticated`] for a signed envelope, which only
/// [`from_bytes_signed`] reads.
///
/// # Example
/// ```
/// use serfn::{Error, SerFn};
///
/// let f = serfn::closure!("double", [], move |x: i32| -> i32 { 2 * x });
/// let bytes = serfn::to_bytes(&vec![f.clone(), f])?; // any serde value holding functions
/// let fs: Vec<SerFn<i32, i32>> = serfn::from_bytes(&bytes)?;
/// assert_eq!(fs[1].call(21), 42);
///
/// // Every kind of bad input is a typed error, never a panic.
/// assert!(matches!(serfn::from_bytes::<Vec<SerFn<i32, i32>>>(&bytes[..3]), Err(Error::Truncated { .. })));
/// assert!(matches!(serfn::from_bytes::<Vec<SerFn<u8, u8>>>(&bytes), Err(Error::SignatureMismatch { .. })));
/// # Ok::<(), serfn::Error>(())
/// ```
pub fn from_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    Limits::default().from_bytes(bytes)
}

/// Decodes an envelope made by [`to_bytes_signed`] with the same `key` and
/// `context`, under the default [`Limits`]. The tag is checked before any
/// byte is decoded; an unsigned envelope is refused.
///
/// # Errors
/// [`Error::TooLarge`] before the tag is computed; [`Error::Unauthenticated`]
/// for unsigned bytes, or a tag that does not match (a changed byte, another
/// key, another context); then as [`from_bytes`].
///
/// # Example
/// ```
/// use serfn::codec::Key;
///
/// let key = Key::new([9u8; 32]);
/// let f = serfn::closure!("negate", [], move |x: i32| -> i32 { -x });
/// let bytes = serfn::to_bytes_signed(&f, &key, b"job:1/task:0")?;
/// // Moved to another task, or read with another key: refused.
/// for (key, context) in [(&key, &b"job:1/task:1"[..]), (&Key::new([8u8; 32]), b"job:1/task:0")] {
///     assert!(matches!(
///         serfn::from_bytes_signed::<serfn::SerFn<i32, i32>>(&bytes, key, context),
///         Err(serfn::Error::Unauthenticated { .. })
///     ));
/// }
/// # Ok::<(), serfn::Error>(())
/// ```
pub fn from_bytes_signed<T: DeserializeOwned>(
    bytes: &[u8],
    key: &Key,
    context: &[u8],
) -> Result<T> {
    Limits::default().from_bytes_signed(bytes, key, context)
}

/// Writes `value`'s envelope to `writer`, after its length as 4 bytes LE.
///
/// # Errors
/// [`Error::Encode`] if a `Serialize` impl fails, [`Error::TooLarge`] past
/// 4 GiB, [`Error::Io`] if writing fails.
///
/// # Example
/// ```
/// use serfn::SerFn;
///
/// let inc = serfn::closure!("inc", [], move |x: u8| -> u8 { x + 1 });
/// let dec = serfn::closure!("dec", [], move |x: u8| -> u8 { x - 1 });
/// // Several envelopes in one stream (a file, a pipe, a socket).
/// let mut stream = Vec::new();
/// serfn::to_writer(&mut stream, &inc)?;
/// serfn::to_writer(&mut stream, &dec)?;
/// let mut reader = stream.as_slice();
/// let first: SerFn<u8, u8> = serfn::from_reader(&mut reader)?;
/// let second: SerFn<u8, u8> = serfn::from_reader(&mut reader)?;
/// assert_eq!((first.call(1), second.call(1)), (2, 0));
/// # Ok::<(), serfn::Error>(())
/// ```
pub fn to_writer<W: Write, T: Serialize + ?Sized>(mut writer: W, value: &T) -> Result<()> {
    let bytes = to_bytes(value)?;
    let len = u32::try_from(bytes.len()).map_err(|_| Error::TooLarge {
        len: bytes.len() as u64,
        limit: u32::MAX as usize,
    })?;
    writer.write_all(&len.to_le_bytes()).map_err(Error::io)?;
    writer.write_all(&bytes).map_err(Error::io)
}

/// Reads one envelope written by [`to_writer`], under the default [`Limits`].
///
/// # Errors
/// As [`from_bytes`], and [`Error::Io`] if reading fails or the stream ends early.
///
/// # Example
/// ```
/// let mut file = Vec::new(); // or a `std::fs::File`
/// serfn::to_writer(&mut file, &serfn::closure!("neg", [], move |x: i64| -> i64 { -x }))?;
/// let neg: serfn::SerFn<i64, i64> = serfn::from_reader(file.as_slice())?;
/// assert_eq!(neg.call(5), -5);
/// // A stream that ends early is an I/O error.
/// let cut = serfn::from_reader::<_, serfn::SerFn<i64, i64>>(&file[..file.len() - 1]);
/// assert!(matches!(cut, Err(serfn::Error::Io { .. })));
/// # Ok::<(), serfn::Error>(())
/// ```
pub fn from_reader<R: Read, T: DeserializeOwned>(reader: R) -> Result<T> {
    Limits::default().from_reader(reader)
}

impl Limits {
    /// [`from_bytes`] under these limits.
    ///
    /// # Errors
    /// As [`from_bytes`].
    ///
    /// # Example
    /// ```
    /// let f = serfn::closure!("inc", [], move |x: u8| -> u8 { x + 1 });
    /// let bytes = serfn::to_bytes(&f)?;
    /// let tight = serfn::Limits::default().max_bytes(8);
    /// assert!(matches!(
    ///     tight.from_bytes::<serfn::SerFn<u8, u8>>(&bytes),
    ///     Err(serfn::Error::TooLarge { .. })
    /// ));
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn from_bytes<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T> {
        decode_value(self.open_envelope(bytes)?, self)
    }

    /// [`from_bytes_signed`] under these limits: a signed envelope is held
    /// to them as any other bytes, and its size is checked before its tag
    /// is computed.
    ///
    /// # Errors
    /// As [`from_bytes_signed`].
    ///
    /// # Example
    /// ```
    /// let key = serfn::codec::Key::new([3u8; 32]);
    /// let bytes = serfn::to_bytes_signed(&vec![0u8; 100], &key, b"")?;
    /// let tight = serfn::Limits::default().max_bytes(64);
    /// assert!(matches!(
    ///     tight.from_bytes_signed::<Vec<u8>>(&bytes, &key, b""),
    ///     Err(serfn::Error::TooLarge { .. })
    /// ));
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn from_bytes_signed<T: DeserializeOwned>(
        &self,
        bytes: &[u8],
        key: &Key,
        context: &[u8],
    ) -> Result<T> {
        self.check_len(bytes.len() as u64)?;
        if bytes.first() == Some(&FORMAT_VERSION) {
            return Err(sign::unauthenticated(
                "the envelope is unsigned, and this reader takes only signed ones",
            ));
        }
        let content = sign::strip_tag(sign::ENVELOPE_LABEL, key, context, bytes)?;
        decode_value(open_content(content, SIGNED_VERSION)?, self)
    }

    /// [`from_reader`] under these limits: a length above
    /// [`max_bytes`](Limits::max_bytes) is refused before anything is allocated.
    ///
    /// # Errors
    /// As [`from_reader`].
    ///
    /// # Example
    /// ```
    /// // A length prefix of 4 GiB - 1: refused before anything is allocated.
    /// let hostile = [0xff, 0xff, 0xff, 0xff, 0];
    /// let read = serfn::Limits::default().from_reader::<_, Vec<u8>>(&hostile[..]);
    /// assert!(matches!(read, Err(serfn::Error::TooLarge { .. })));
    /// ```
    pub fn from_reader<R: Read, T: DeserializeOwned>(&self, mut reader: R) -> Result<T> {
        let mut len = [0; 4];
        reader.read_exact(&mut len).map_err(Error::io)?;
        let len = u32::from_le_bytes(len);
        self.check_len(len as u64)?;
        let mut bytes = Vec::with_capacity(len as usize);
        reader
            .take(len as u64)
            .read_to_end(&mut bytes)
            .map_err(Error::io)?;
        if bytes.len() != len as usize {
            return Err(Error::io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        self.from_bytes(&bytes)
    }

    fn check_len(&self, len: u64) -> Result<()> {
        if len > self.max_bytes as u64 {
            return Err(Error::TooLarge {
                len,
                limit: self.max_bytes,
            });
        }
        Ok(())
    }

    /// Checks size, format version and checksum; returns the body.
    fn open_envelope<'b>(&self, bytes: &'b [u8]) -> Result<&'b [u8]> {
        self.check_len(bytes.len() as u64)?;
        if bytes.first() == Some(&SIGNED_VERSION) {
            // Not a version error: the bytes are fine, the reader lacks the key.
            return Err(sign::unauthenticated(
                "the envelope is signed: read it with `from_bytes_signed` and its key",
            ));
        }
        open_content(bytes, FORMAT_VERSION)
    }
}

/// Checks an envelope's length, first byte and checksum; returns the body.
fn open_content(bytes: &[u8], version: u8) -> Result<&[u8]> {
    let (content, stored) = split_envelope(bytes, version)?;
    check_crc(content, stored)?;
    Ok(&content[1..])
}

/// Checks an envelope's length and first byte; returns what its checksum
/// covers (the version byte, then the body) and the checksum stored.
fn split_envelope(bytes: &[u8], version: u8) -> Result<(&[u8], u32)> {
    if bytes.len() < MIN_ENVELOPE_LEN {
        return Err(Error::Truncated {
            len: bytes.len(),
            min: MIN_ENVELOPE_LEN,
        });
    }
    if bytes[0] != version {
        return Err(Error::Version {
            found: bytes[0],
            supported: FORMAT_VERSION,
        });
    }
    let (content, checksum) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
    let stored = u32::from_le_bytes(checksum.try_into().expect("split at 4 bytes from the end"));
    Ok((content, stored))
}

/// [`Error::Checksum`] unless `content`'s CRC-32 is `stored`.
fn check_crc(content: &[u8], stored: u32) -> Result<()> {
    let computed = crc32(content);
    if stored != computed {
        return Err(Error::Checksum { stored, computed });
    }
    Ok(())
}
