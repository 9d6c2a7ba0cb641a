//! How one function travels inside serde data:
//! `(name, version, signature fingerprint, layout fingerprint, capture bytes)`.
//!
//! The first four are checked against this binary's registry, and against
//! the signature the caller expects, before a byte of the capture is
//! decoded. The capture is a length-prefixed byte string that the
//! registration decodes with its own typed decoder, under the same limits
//! as the bytes around it. Fingerprints are byte strings of 8 (a length
//! byte, then the `u64` little endian): fixed width, read in one piece.
//!
//! The handles' own envelopes skip serde: a function's header is the same
//! bytes every time, so it is built once per registration with the CRC
//! state after it, copied when encoding and compared whole when decoding,
//! and only the capture is hashed. An envelope that differs in any way
//! takes the field-by-field path, which reports what is wrong.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde::ser::{self as ser_, SerializeTuple, Serializer};

use crate::codec::format::{self, Reader};
#[cfg(target_os = "linux")]
use crate::codec::{self, CaptureWriter, Written};
use crate::codec::{active, envelope_into, open, within_level, Limits, Prefix};
use crate::error::Error;
use crate::registry::{self, Direct, Fingerprints, Registration, SerializableFn};
use crate::schema::Layout;
use crate::signature::{Kind, Signature};

mod seeds;

pub(crate) use self::seeds::deserialize;

pub(crate) fn serialize<S: Serializer>(
    f: &dyn SerializableFn,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let registration = f.__serfn_registration();
    let fingerprints = fingerprints_of(f, registration);
    // serde needs the capture's length before its bytes: encoded aside, in
    // a buffer this thread reuses (a function nested in the capture finds
    // it taken and uses its own).
    let mut capture = CAPTURE.take();
    capture.clear();
    let result = f
        .__serfn_encode_capture(&mut capture)
        .map_err(ser_::Error::custom)
        .and_then(|()| {
            let mut tuple = serializer.serialize_tuple(5)?;
            tuple.serialize_element(registration.name())?;
            tuple.serialize_element(&registration.version())?;
            tuple.serialize_element(&Bytes(&fingerprints.signature.to_le_bytes()))?;
            tuple.serialize_element(&Bytes(&fingerprints.layout.to_le_bytes()))?;
            tuple.serialize_element(&Bytes(&capture))?;
            tuple.end()
        });
    if capture.capacity() <= MAX_KEPT_CAPTURE {
        CAPTURE.set(capture);
    }
    result
}

thread_local! {
    static CAPTURE: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// The largest capture buffer kept for the next encoding: larger ones
/// would pin memory, and cost little to allocate next to their encoding.
const MAX_KEPT_CAPTURE: usize = 64 << 10;

/// Appends what [`serialize`] writes through bincode, written directly: no
/// serde around the header, and the capture encoded in place.
pub(crate) fn write(f: &dyn SerializableFn, out: &mut Vec<u8>) -> Result<(), Error> {
    let registration = f.__serfn_registration();
    write_header(registration, fingerprints_of(f, registration), out);
    write_capture(f, out)
}

fn write_header(registration: &Registration, fingerprints: Fingerprints, out: &mut Vec<u8>) {
    format::write_bytes(registration.name().as_bytes(), out);
    format::write_u32(registration.version(), out);
    format::write_bytes(&fingerprints.signature.to_le_bytes(), out);
    format::write_bytes(&fingerprints.layout.to_le_bytes(), out);
}

// Always inlined: out of line, its frame and the checks of its result cost
// a third of encoding a small capture.
#[inline(always)]
fn write_capture(f: &dyn SerializableFn, out: &mut Vec<u8>) -> Result<(), Error> {
    let start = format::begin_bytes(out);
    f.__serfn_encode_capture(out)?;
    format::end_bytes(start, out);
    Ok(())
}

/// What the direct path keeps of a function with static fingerprints.
fn direct(registration: &'static Registration) -> Option<&'static Direct> {
    registration.direct(|_| {
        let fingerprints = registration.fingerprints()?;
        Some(Direct {
            registration,
            prefix: Prefix::new(|out| write_header(registration, fingerprints, out)),
            signature: registration.signature()?,
            fixed: registration.layout().is_some_and(Layout::is_fixed),
            accepted: AtomicUsize::new(0),
        })
    })
}

thread_local! {
    /// The function this thread read last: decodes tend to repeat one, and
    /// its header is then found by comparing the envelope with it.
    static LAST: Cell<Option<&'static Direct>> = const { Cell::new(None) };
}

/// Appends the envelope of `f`: its header copied from the registration,
/// whose checksum state spares hashing it again.
pub(crate) fn write_envelope(f: &dyn SerializableFn, out: &mut Vec<u8>) -> Result<(), Error> {
    match direct(f.__serfn_registration()) {
        Some(direct) => direct.prefix.seal_into(out, |out| write_capture(f, out)),
        None => envelope_into(out, |out| write(f, out)),
    }
}

/// Whether the capture of `f` encodes to at most `cap` bytes: counted, and
/// not past `cap` (a larger one is not counted to its end).
#[cfg(target_os = "linux")] // the pool's shared memory
pub(crate) fn capture_fits(f: &dyn SerializableFn, cap: u64) -> Result<bool, Error> {
    let mut counter = CaptureWriter::counting_up_to(cap);
    match f.__serfn_write_capture(&mut counter) {
        Ok(()) => Ok(true),
        Err(_) if counter.len() > cap => Ok(false),
        Err(error) => Err(error),
    }
}

/// Writes the envelope of `f` to `sink`, from its start: the bytes
/// [`write_envelope`] appends, a few bytes in ([`Written::skip`]), never
/// held whole in memory.
#[cfg(target_os = "linux")] // the pool's shared memory
pub(crate) fn stream_envelope<S: codec::Sink>(
    f: &dyn SerializableFn,
    sink: &mut S,
) -> Result<Written, Error> {
    let registration = f.__serfn_registration();
    let mut header = Vec::new();
    write_header(registration, fingerprints_of(f, registration), &mut header);
    codec::write_envelope(sink, &header, |out| f.__serfn_write_capture(out))
}

/// Decodes an envelope holding one function, as `crate::from_bytes` does
/// through serde: the same checks, the same errors. `expected` builds the
/// signature a handle of `kind` expects.
pub(crate) fn read_envelope(
    bytes: &[u8],
    kind: Kind,
    expected: fn() -> Signature,
) -> Result<Arc<dyn SerializableFn>, Error> {
    if let Some((direct, capture)) = known(bytes) {
        if accepts(direct, expected) {
            let registration = direct.registration;
            if !direct.fixed || active() {
                let name_len = registration.name().len();
                return decode_direct(registration, direct.fixed, name_len, capture);
            }
            let recycle = kind == Kind::Fn;
            if let Some(f) = decode_unguarded(registration, capture, recycle) {
                return Ok(f);
            }
        }
    }
    // Any failure: the full path finds and reports it, in its order.
    read(open(bytes)?, &expected())
}

/// Whether the function of `direct` satisfies the signature `expected`
/// builds. The answer is kept by the address of `expected`: it depends on
/// nothing else (one address is one code, whose signature is constant), and
/// a handle decoding one function over and over then neither builds nor
/// compares signatures. Another address only misses what is kept.
#[inline]
fn accepts(direct: &Direct, expected: fn() -> Signature) -> bool {
    let address = expected as usize;
    if direct.accepted.load(Ordering::Relaxed) == address {
        return true;
    }
    let accepted = expected().accepts(&direct.signature);
    if accepted {
        direct.accepted.store(address, Ordering::Relaxed);
    }
    accepted
}

/// A function this thread decoded last, of a
/// [recycled](Registration::recycled) capture type.
struct Spare {
    registration: &'static Registration,
    f: Arc<dyn SerializableFn>,
}

thread_local! {
    static SPARE: RefCell<Option<Spare>> = const { RefCell::new(None) };
}

/// Decodes a capture of a fixed layout outside any guarded decode; `None`
/// if it does not decode, for the full path to say why. With `recycle`, a
/// capture type that allows it is decoded into the allocation of the last
/// one this thread decoded, once nobody holds it: no allocation and no free
/// per decode. Only for `Fn` handles: the calls of a `SerFnMut` and a
/// `SerFnOnce` need their function unshared.
#[inline]
fn decode_unguarded(
    registration: &'static Registration,
    capture: &[u8],
    recycle: bool,
) -> Option<Arc<dyn SerializableFn>> {
    if !(recycle && registration.is_recycled()) {
        return registration.decode(capture, None).ok();
    }
    // Busy only while a capture's own decoder decodes a function, gone
    // only as the thread exits: the full path then decodes it.
    SPARE
        .try_with(|spare| {
            let mut spare = spare.try_borrow_mut().ok()?;
            if let Some(Spare {
                registration: last,
                f,
            }) = &mut *spare
            {
                // One registration per capture type: the same registration,
                // the same type, which `__serfn_decode_in_place` decodes into.
                if std::ptr::eq(*last, registration)
                    && Arc::get_mut(f).is_some_and(|f| f.__serfn_decode_in_place(capture))
                {
                    return Some(Arc::clone(f));
                }
            }
            let f = registration.decode(capture, None).ok()?;
            *spare = Some(Spare {
                registration,
                f: Arc::clone(&f),
            });
            Some(f)
        })
        .ok()
        .flatten()
}

/// The common case: an envelope that starts with its registration's own
/// header, whose checks passed when the header was built, and holds one
/// capture after it. Returns the registration's direct path and the capture.
#[inline]
fn known(bytes: &[u8]) -> Option<(&'static Direct, &[u8])> {
    let (direct, rest) = match LAST
        .get()
        .and_then(|last| Some((last, last.prefix.open(bytes)?)))
    {
        Some(found) => found,
        None => {
            let name = Reader::new(bytes.get(1..)?).bytes().ok()?;
            let direct = direct(registry::lookup_bytes(name).ok()?)?;
            let rest = direct.prefix.open(bytes)?;
            LAST.set(Some(direct));
            (direct, rest)
        }
    };
    let mut reader = Reader::new(rest);
    let capture = reader.bytes().ok()?;
    reader.rest().is_empty().then_some((direct, capture))
}

/// Decodes a capture after a header read by hand: unguarded if its layout
/// is fixed and no decode is running, else one level into a guarded decode.
fn decode_direct(
    registration: &'static Registration,
    fixed: bool,
    name_len: usize,
    capture: &[u8],
) -> Result<Arc<dyn SerializableFn>, Error> {
    if fixed && !active() {
        return decode_capture(registration, capture, None);
    }
    // What serde would have charged for the header it read.
    let header = name_len + 2 * 8;
    within_level(&Limits::default(), header, || {
        decode_capture(registration, capture, Some(&Limits::unlimited()))
    })
}

/// Decodes the body of an envelope holding one function, as [`deserialize`]
/// does through serde under the default limits: the same checks in the same
/// order, the header read directly and the name looked up as bytes.
pub(crate) fn read(body: &[u8], expected: &Signature) -> Result<Arc<dyn SerializableFn>, Error> {
    let mut reader = Reader::new(body);
    let name = reader.bytes()?;
    let registration = registry::lookup_bytes(name)?;
    let version = reader.u32()?;
    let signature = fingerprint(reader.bytes()?)?;
    let layout = fingerprint(reader.bytes()?)?;
    let found = Fingerprints { signature, layout };
    check_header(registration, version, found, Some(expected))?;
    let capture = reader.bytes()?;
    let fixed = direct(registration).is_some_and(|direct| direct.fixed);
    let f = decode_direct(registration, fixed, name.len(), capture)?;
    check_combinator(registration, &*f, found, Some(expected))?;
    match reader.rest().len() {
        0 => Ok(f),
        left => Err(Error::decode(format!(
            "{left} bytes left over after the value"
        ))),
    }
}

fn fingerprint(bytes: &[u8]) -> Result<u64, Error> {
    let bytes: [u8; 8] = bytes.try_into().map_err(|_| {
        Error::decode(format!(
            "invalid length {}, expected an 8-byte fingerprint",
            bytes.len()
        ))
    })?;
    Ok(u64::from_le_bytes(bytes))
}

/// A combinator's signature is known once its parts are decoded: what they
/// add up to must be what its header claimed.
fn check_combinator(
    registration: &Registration,
    f: &dyn SerializableFn,
    found: Fingerprints,
    expected: Option<&Signature>,
) -> Result<(), Error> {
    if registration.fingerprints().is_some() {
        return Ok(());
    }
    let name = registration.name();
    let signature = f.signature();
    if wire_fingerprint(f) != found.signature {
        return Err(signature_mismatch(name, &signature, found.signature));
    }
    check_expected(expected, name, &signature)
}

/// Decodes a capture with its registration's own decoder.
fn decode_capture(
    registration: &'static Registration,
    capture: &[u8],
    limits: Option<&Limits>,
) -> Result<Arc<dyn SerializableFn>, Error> {
    // Inside a guarded decode, the tighter of `limits` and what is left of
    // the outer ones applies.
    registration
        .decode(capture, limits)
        .map_err(|error| capture_error(registration, error))
}

/// A capture's decode error, naming the function.
#[cold]
fn capture_error(registration: &Registration, error: Error) -> Error {
    match error {
        Error::Decode { source } => Error::decode(format!(
            "the capture of `{}`: {source}",
            registration.name()
        )),
        other => other,
    }
}

/// What the encoding of `f` carries: the registration's own fingerprints, or
/// for a combinator, the fingerprint of the signature it composes.
fn fingerprints_of(f: &dyn SerializableFn, registration: &Registration) -> Fingerprints {
    registration.fingerprints().unwrap_or_else(|| Fingerprints {
        signature: wire_fingerprint(f),
        layout: registration.layout_fingerprint(),
    })
}

/// The signature fingerprint a combinator is encoded with: of its
/// signature, but for a `bind` of the first of a pair, whose argument `B` is
/// named `(B,)` as it was before `bind` left it bare, so that its bytes stay
/// the same in both directions.
fn wire_fingerprint(f: &dyn SerializableFn) -> u64 {
    let signature = f.signature();
    if f.__serfn_wire_tupled() {
        signature.tupled_fingerprint()
    } else {
        signature.fingerprint()
    }
}

/// A byte string (bincode: a length, then the bytes).
struct Bytes<'a>(&'a [u8]);

impl serde::Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

fn signature_mismatch(name: &str, expected: &Signature, fingerprint: u64) -> Error {
    Error::SignatureMismatch {
        name: name.into(),
        expected: expected.to_string(),
        found: format!("another signature (fingerprint {fingerprint:#018x})"),
    }
}

/// Checks what the header says against this binary, before the capture.
fn check_header(
    registration: &Registration,
    version: u32,
    found: Fingerprints,
    expected: Option<&Signature>,
) -> Result<(), Error> {
    let name = registration.name();
    if version != registration.version() {
        return Err(Error::VersionMismatch {
            name: name.into(),
            registered: registration.version(),
            found: version,
        });
    }
    let registered = registration.fingerprints();
    match (registered, registration.signature()) {
        (Some(registered), Some(signature)) => {
            if registered.signature != found.signature {
                return Err(signature_mismatch(name, &signature, found.signature));
            }
            check_expected(expected, name, &signature)?;
        }
        // A combinator: its signature is known once its parts are decoded,
        // but what it claims can be checked against what is asked for now.
        _ => {
            if let Some(expected) = expected {
                let acceptable = [Kind::Fn, Kind::FnMut, Kind::FnOnce, Kind::Async]
                    .into_iter()
                    .filter(|kind| kind.can_act_as(expected.kind()))
                    .map(|kind| Signature::new(kind, expected.args(), expected.output()));
                // The argument named as a 1-tuple: see `wire_fingerprint`.
                if !acceptable.into_iter().any(|s| {
                    s.fingerprint() == found.signature || s.tupled_fingerprint() == found.signature
                }) {
                    return Err(signature_mismatch(name, expected, found.signature));
                }
            }
        }
    }
    let layout = registered.map_or_else(|| registration.layout_fingerprint(), |f| f.layout);
    if layout != found.layout {
        return Err(Error::LayoutChanged {
            name: name.into(),
            version,
        });
    }
    Ok(())
}

fn check_expected(
    expected: Option<&Signature>,
    name: &str,
    found: &Signature,
) -> Result<(), Error> {
    match expected {
        Some(expected) if !expected.accepts(found) => Err(expected_mismatch(expected, name, found)),
        _ => Ok(()),
    }
}

#[cold]
fn expected_mismatch(expected: &Signature, name: &str, found: &Signature) -> Error {
    Error::SignatureMismatch {
        name: name.into(),
        expected: expected.to_string(),
        found: found.to_string(),
    }
}
