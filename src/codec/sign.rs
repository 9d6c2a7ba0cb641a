//! Signed bytes: an HMAC-SHA256 tag that only holders of a shared [`Key`]
//! can make. The module is private: what users read is on [`Key`].
//!
//! ```text
//! signed bytes:    [bytes][tag: 32 bytes]
//! signed envelope: [FORMAT_VERSION | 0x80][body][CRC-32 of all before: 4 bytes LE][tag: 32 bytes]
//! tag = HMAC-SHA256(key, label ‖ len(context) as u64 LE ‖ context ‖ everything before the tag)
//! ```
//!
//! The tag is checked before the CRC and before any decoding, and the
//! plain reader refuses the flagged first byte, so a signed envelope is
//! never read as if it were unsigned.

use std::fmt;

use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{Error, Result};

/// The length of a tag in bytes: an HMAC-SHA256 output.
pub const TAG_LEN: usize = 32;

// No label is a prefix of another, so a (label, context, message) triple
// never hashes as another.
/// The label of envelopes' tags.
pub(super) const ENVELOPE_LABEL: &[u8] = b"serfn/envelope/v2";
/// The label of [`sign`]'s tags.
const BYTES_LABEL: &[u8] = b"serfn/bytes/v1";

/// A shared secret that signs bytes and verifies them: an HMAC-SHA256 tag
/// that only holders of the key can make.
///
/// An envelope's CRC catches accidents, not attackers: anyone can rewrite a
/// capture and recompute it. A tag cannot be recomputed without the key.
///
/// ```text
/// signed bytes:    [bytes][tag: 32 bytes]
/// signed envelope: [FORMAT_VERSION | 0x80][body][CRC-32 of all before: 4 bytes LE][tag: 32 bytes]
///
/// tag = HMAC-SHA256(key, label ‖ len(context) as u64 LE ‖ context ‖ everything before the tag)
/// ```
///
/// The label is `serfn/envelope/v2` for envelopes ([`to_bytes_signed`](super::to_bytes_signed))
/// and `serfn/bytes/v1` for any other byte string ([`sign`]), so a tag made
/// for one never verifies as the other.
///
/// The *context* is authenticated but not stored: the reader supplies it
/// again. Name in it where the bytes belong, such as `b"job:42/task:7"`;
/// bytes moved to another job or task then fail to verify, as do bytes
/// signed with another key or changed in any bit. The comparison runs in
/// constant time, and it happens before a single byte is decoded.
///
/// What a tag does not do:
/// - hide anything: the bytes are not encrypted;
/// - stop a replay of the same bytes under the same context: put whatever
///   must be unique (an id, an attempt number) in the context;
/// - decide whether bytes must be signed. The reader decides, by calling
///   the signed functions: [`from_bytes`](super::from_bytes) refuses a
///   signed envelope, but accepts unsigned ones, and anyone can make those;
/// - relax a decode limit. A signed envelope is decoded under the same
///   [`Limits`](super::Limits) as any other bytes, and its size is checked
///   before the tag is computed: a key holder's bytes are trusted no more
///   than bytes from anywhere.
///
/// Any secret length is accepted; 32 random bytes (256 bits) are the right
/// size, from a secrets manager or a random source such as `/dev/urandom`,
/// not a password. Every process that writes or reads the signed bytes
/// holds the same key. As in every HMAC, a secret shorter than 64 bytes
/// is padded with zeros, so secrets that differ only in trailing zero
/// bytes are the same key. The key keeps HMAC's precomputed state rather
/// than the secret, and its `Debug` prints no part of either.
///
/// # Example
/// ```
/// let key = serfn::codec::Key::new([7u8; 32]);
/// assert_eq!(format!("{key:?}"), "Key(<secret>)");
/// ```
#[derive(Clone)]
pub struct Key {
    mac: Hmac<Sha256>,
}

impl Key {
    /// A key made from `secret`.
    ///
    /// # Example
    /// ```
    /// // In real use, 32 random bytes from a secrets manager.
    /// let key = serfn::codec::Key::new(b"0123456789abcdef0123456789abcdef");
    /// let signed = serfn::codec::sign(&key, b"ctx", &b"hello"[..]);
    /// assert_eq!(serfn::codec::verify(&key, b"ctx", &signed)?, b"hello");
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn new(secret: impl AsRef<[u8]>) -> Key {
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_ref())
            .expect("HMAC accepts keys of any length");
        Key { mac }
    }

    /// HMAC's state after the label and the context: the message follows.
    fn start(&self, label: &[u8], context: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        mac.update(label);
        mac.update(&(context.len() as u64).to_le_bytes());
        mac.update(context);
        mac
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(<secret>)")
    }
}

/// Appends a tag to `bytes` that binds them to `key` and `context`.
///
/// For any byte string stored or sent anywhere: an encoded value
/// ([`encode_value`](super::encode_value)), a result, an entry in a queue.
/// For an envelope, [`to_bytes_signed`](super::to_bytes_signed) signs under
/// a label of its own.
///
/// # Example
/// ```
/// use serfn::codec::{self, Key};
///
/// let key = Key::new([1u8; 32]);
/// let result = codec::encode_value(&42u64)?;
/// let signed = codec::sign(&key, b"job:9/result:0", result);
///
/// let bytes = codec::verify(&key, b"job:9/result:0", &signed)?;
/// assert_eq!(codec::decode_value::<u64>(bytes, &serfn::Limits::default())?, 42);
/// // The same bytes, claimed for another result, are refused.
/// assert!(matches!(
///     codec::verify(&key, b"job:9/result:1", &signed),
///     Err(serfn::Error::Unauthenticated { .. })
/// ));
/// # Ok::<(), serfn::Error>(())
/// ```
pub fn sign(key: &Key, context: &[u8], bytes: impl Into<Vec<u8>>) -> Vec<u8> {
    let mut signed = bytes.into();
    append_tag(BYTES_LABEL, key, context, &mut signed);
    signed
}

/// Checks the tag [`sign`] appended, for `key` and `context`; returns the
/// bytes before it.
///
/// The work is one pass over `signed`, whatever it holds: compare its
/// length with your limit (such as
/// [`Limits::get_max_bytes`](super::Limits::get_max_bytes)) before, if it
/// came from anywhere. Decode what it returns under [`Limits`](super::Limits)
/// as any other bytes.
///
/// # Errors
/// [`Error::Unauthenticated`] if `signed` is shorter than a tag or its tag
/// does not match: a byte was changed, or it was signed with another key or
/// for another context.
///
/// # Example
/// ```
/// use serfn::codec::{self, Key};
///
/// let key = Key::new([2u8; 32]);
/// let mut signed = codec::sign(&key, b"ctx", &b"payload"[..]);
/// assert_eq!(codec::verify(&key, b"ctx", &signed)?, b"payload");
///
/// signed[0] ^= 1;
/// assert!(matches!(
///     codec::verify(&key, b"ctx", &signed),
///     Err(serfn::Error::Unauthenticated { .. })
/// ));
/// # Ok::<(), serfn::Error>(())
/// ```
pub fn verify<'s>(key: &Key, context: &[u8], signed: &'s [u8]) -> Result<&'s [u8]> {
    strip_tag(BYTES_LABEL, key, context, signed)
}

/// Appends the tag of `bytes` under `label`.
pub(super) fn append_tag(label: &[u8], key: &Key, context: &[u8], bytes: &mut Vec<u8>) {
    let mut mac = key.start(label, context);
    mac.update(bytes);
    bytes.extend_from_slice(&mac.finalize().into_bytes());
}

/// Checks the tag at the end of `signed` under `label`; returns what it signs.
pub(super) fn strip_tag<'s>(
    label: &[u8],
    key: &Key,
    context: &[u8],
    signed: &'s [u8],
) -> Result<&'s [u8]> {
    let Some(split) = signed.len().checked_sub(TAG_LEN) else {
        return Err(unauthenticated(format!(
            "{} bytes are too short to hold a {TAG_LEN}-byte tag",
            signed.len()
        )));
    };
    let (message, tag) = signed.split_at(split);
    let mut mac = key.start(label, context);
    mac.update(message);
    // `verify_slice` compares in constant time.
    mac.verify_slice(tag).map_err(|_| {
        unauthenticated(
            "the tag does not match: the bytes were changed, \
             or signed with another key or for another context",
        )
    })?;
    Ok(message)
}

pub(super) fn unauthenticated(reason: impl Into<String>) -> Error {
    Error::Unauthenticated {
        reason: reason.into(),
    }
}
