//! How one function travels inside serde data: `(name, version, fingerprint, capture)`.
//!
//! The first three are checked against this binary's registry, and against
//! the signature the caller expects, before the capture is decoded.

use std::fmt;
use std::sync::Arc;

use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};
use serde::ser::{SerializeTuple, Serializer};
use serde::Serialize;

use crate::codec::stash;
use crate::erased::SerializableFn;
use crate::error::Error;
use crate::registry::{self, Registration};
use crate::signature::Signature;

pub(crate) fn serialize<S: Serializer>(
    f: &dyn SerializableFn,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let mut tuple = serializer.serialize_tuple(4)?;
    tuple.serialize_element(f.name())?;
    tuple.serialize_element(&f.__serfn_registration().version())?;
    tuple.serialize_element(&f.__serfn_fingerprint())?;
    tuple.serialize_element(&Capture(f))?;
    tuple.end()
}

struct Capture<'a>(&'a dyn SerializableFn);

impl Serialize for Capture<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // The capture alone: typetag's own impl would repeat the name.
        erased_serde::serialize(self.0 as &dyn erased_serde::Serialize, serializer)
    }
}

/// Decodes one function, checked against `expected` when given.
pub(crate) struct FnSeed {
    pub(crate) expected: Option<Signature>,
}

impl<'de> DeserializeSeed<'de> for FnSeed {
    type Value = Arc<dyn SerializableFn>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_tuple(4, self)
    }
}

fn check_expected(expected: Option<Signature>, name: &str, found: &Signature) -> Result<(), Error> {
    match expected {
        Some(expected) if !expected.accepts(found) => Err(Error::SignatureMismatch {
            name: name.into(),
            expected: expected.to_string(),
            found: found.to_string(),
        }),
        _ => Ok(()),
    }
}

fn fingerprint_mismatch(name: &str, registered: &Signature, fingerprint: u64) -> Error {
    Error::SignatureMismatch {
        name: name.into(),
        expected: registered.to_string(),
        found: format!("another signature (fingerprint {fingerprint:#018x})"),
    }
}

impl<'de> Visitor<'de> for FnSeed {
    type Value = Arc<dyn SerializableFn>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a serfn function: name, version, fingerprint, capture")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let missing = |index| de::Error::invalid_length(index, &self);
        let registration: &'static Registration =
            seq.next_element_seed(NameSeed)?.ok_or_else(|| missing(0))?;
        let name = registration.name();
        let version: u32 = seq.next_element()?.ok_or_else(|| missing(1))?;
        if version != registration.version() {
            return Err(stash(Error::VersionMismatch {
                name: name.into(),
                registered: registration.version(),
                found: version,
            }));
        }
        let fingerprint: u64 = seq.next_element()?.ok_or_else(|| missing(2))?;
        if let Some(signature) = registration.signature() {
            if registration.fingerprint() != Some(fingerprint) {
                return Err(stash(fingerprint_mismatch(name, &signature, fingerprint)));
            }
            check_expected(self.expected, name, &signature).map_err(stash)?;
        }
        let f = seq
            .next_element_seed(CaptureSeed(registration))?
            .ok_or_else(|| missing(3))?;
        if registration.signature().is_none() {
            // serfn's combinators: their signature is known once their parts are.
            let signature = f.signature();
            if signature.fingerprint() != fingerprint {
                return Err(stash(fingerprint_mismatch(name, &signature, fingerprint)));
            }
            check_expected(self.expected, name, &signature).map_err(stash)?;
        }
        Ok(f)
    }
}

struct NameSeed;

impl<'de> DeserializeSeed<'de> for NameSeed {
    type Value = &'static Registration;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for NameSeed {
    type Value = &'static Registration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a registered function name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Self::Value, E> {
        registry::lookup(name).map_err(stash)
    }
}

struct CaptureSeed(&'static Registration);

impl<'de> DeserializeSeed<'de> for CaptureSeed {
    type Value = Arc<dyn SerializableFn>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        let mut erased = <dyn erased_serde::Deserializer>::erase(deserializer);
        self.0.decode(&mut erased).map_err(de::Error::custom)
    }
}
