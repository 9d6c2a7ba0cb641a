//! The serde path: one function read field by field from any serde data,
//! each field through a seed of its own, the header checked before the
//! capture is decoded.

use std::fmt;
use std::sync::Arc;

use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};

use super::{check_combinator, check_header, decode_capture};
use crate::codec::{active, stash, Limits};
use crate::registry::{self, Fingerprints, Registration, SerializableFn};
use crate::schema;
use crate::signature::Signature;

/// Decodes one function, checked against `expected` when given.
pub(crate) fn deserialize<'de, D: de::Deserializer<'de>>(
    deserializer: D,
    expected: Option<Signature>,
) -> Result<Arc<dyn SerializableFn>, D::Error> {
    if schema::tracing() {
        return crate::handle::trace::trace_dyn_function(deserializer);
    }
    deserializer.deserialize_tuple(5, FnSeed { expected })
}

struct FnSeed {
    expected: Option<Signature>,
}

impl<'de> Visitor<'de> for FnSeed {
    type Value = Arc<dyn SerializableFn>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a serfn function: name, version, fingerprints, capture")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let missing = |index| de::Error::invalid_length(index, &self);
        let registration: &'static Registration =
            seq.next_element_seed(NameSeed)?.ok_or_else(|| missing(0))?;
        let version: u32 = seq.next_element()?.ok_or_else(|| missing(1))?;
        let signature = seq
            .next_element_seed(FingerprintSeed)?
            .ok_or_else(|| missing(2))?;
        let layout = seq
            .next_element_seed(FingerprintSeed)?
            .ok_or_else(|| missing(3))?;
        let found = Fingerprints { signature, layout };
        check_header(registration, version, found, self.expected.as_ref()).map_err(stash)?;
        let f = seq
            .next_element_seed(CaptureSeed(registration))?
            .ok_or_else(|| missing(4))?;
        check_combinator(registration, &*f, found, self.expected.as_ref()).map_err(stash)?;
        Ok(f)
    }
}

/// A fingerprint: a byte string of 8, read in one piece (an array of 8
/// would be 8 elements through the decode guard).
struct FingerprintSeed;

impl<'de> DeserializeSeed<'de> for FingerprintSeed {
    type Value = u64;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<u64, D::Error> {
        deserializer.deserialize_bytes(self)
    }
}

impl Visitor<'_> for FingerprintSeed {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an 8-byte fingerprint")
    }

    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<u64, E> {
        let bytes: [u8; 8] = bytes
            .try_into()
            .map_err(|_| E::invalid_length(bytes.len(), &self))?;
        Ok(u64::from_le_bytes(bytes))
    }
}

struct NameSeed;

impl<'de> DeserializeSeed<'de> for NameSeed {
    type Value = &'static Registration;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        // A `str` and a byte string encode alike: read as bytes, looked up
        // as bytes, UTF-8 checked only for an unknown name's error.
        deserializer.deserialize_bytes(self)
    }
}

impl Visitor<'_> for NameSeed {
    type Value = &'static Registration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a registered function name")
    }

    fn visit_bytes<E: de::Error>(self, name: &[u8]) -> Result<Self::Value, E> {
        registry::lookup_bytes(name).map_err(stash)
    }
}

/// The capture's bytes, decoded by the registration.
struct CaptureSeed(&'static Registration);

impl<'de> DeserializeSeed<'de> for CaptureSeed {
    type Value = Arc<dyn SerializableFn>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_bytes(self)
    }
}

impl Visitor<'_> for CaptureSeed {
    type Value = Arc<dyn SerializableFn>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the bytes of a capture")
    }

    fn visit_bytes<E: de::Error>(self, capture: &[u8]) -> Result<Self::Value, E> {
        // Decoded in place, not copied: only what its content allocates
        // counts.
        crate::codec::refund_borrowed(capture.len());
        // Inside a guarded decode, what is left of the outer limits applies (a
        // pool's may exceed the defaults); outside one, the defaults.
        let limits = if active() {
            Limits::unlimited()
        } else {
            Limits::default()
        };
        decode_capture(self.0, capture, Some(&limits)).map_err(stash)
    }
}
