//! Bad input of every kind gives its typed error: no panic, no stack
//! overflow, no large allocation, never a call of the wrong function.

use serde::{Deserialize, Serialize, Serializer};
mod support;

use serfn::{DynFn, Error, Limits, SerFn};
use support::{body, seal, Wire};

#[derive(Serialize, Deserialize)]
struct Scale {
    factor: f64,
    label: String,
}

impl serfn::Call<f64> for Scale {
    type Output = f64;
    fn call(&self, x: f64) -> f64 {
        x * self.factor
    }
}

serfn::register_instance!(Scale as Call<f64>, name = "bad_input::Scale");

#[derive(Serialize, Deserialize)]
struct Renamed {
    factor: f64,
}

impl serfn::Call<f64> for Renamed {
    type Output = f64;
    fn call(&self, x: f64) -> f64 {
        x + self.factor
    }
}

// One letter away from `bad_input::Scale`, with another capture layout.
serfn::register_instance!(Renamed as Call<f64>, name = "bad_input::Scalf");

#[derive(Serialize, Deserialize)]
enum List {
    Cons(u8, Box<List>),
    Nil,
}

#[derive(Serialize, Deserialize)]
struct Deep {
    list: List,
}

impl serfn::Call<()> for Deep {
    type Output = usize;
    fn call(&self, (): ()) -> usize {
        let mut len = 0;
        let mut node = &self.list;
        while let List::Cons(_, next) = node {
            len += 1;
            node = next;
        }
        len
    }
}

serfn::register_instance!(Deep as Call<()>, name = "bad_input::Deep");

#[derive(Serialize, Deserialize)]
struct Nest {
    next: Option<DynFn>,
}

impl serfn::Call<()> for Nest {
    type Output = ();
    fn call(&self, (): ()) {}
}

serfn::register_instance!(Nest as Call<()>, name = "bad_input::Nest");

#[derive(Serialize, Deserialize)]
struct Units {
    units: Vec<()>,
}

impl serfn::Call<()> for Units {
    type Output = usize;
    fn call(&self, (): ()) -> usize {
        self.units.len()
    }
}

serfn::register_instance!(Units as Call<()>, name = "bad_input::Units");

#[derive(Deserialize)]
struct Unencodable;

impl Serialize for Unencodable {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("refuses to be encoded"))
    }
}

impl serfn::Call<()> for Unencodable {
    type Output = ();
    fn call(&self, (): ()) {}
}

serfn::register_instance!(Unencodable as Call<()>, name = "bad_input::Unencodable");

fn scale() -> SerFn<f64, f64> {
    SerFn::new(Scale {
        factor: 2.0,
        label: "double".into(),
    })
}

fn replace(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let at = haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("needle present");
    [&haystack[..at], with, &haystack[at + needle.len()..]].concat()
}

#[test]
fn every_truncation_is_a_typed_error() {
    let bytes = scale().to_bytes().unwrap();
    for len in 0..bytes.len() {
        match SerFn::<f64, f64>::from_bytes(&bytes[..len]) {
            Err(Error::Truncated { len: got, min: 5 }) => assert!(len < 5 && got == len),
            Err(Error::Checksum { .. }) | Err(Error::Version { .. }) => assert!(len >= 1),
            other => panic!("truncated to {len}: {other:?}"),
        }
    }
}

#[test]
fn every_single_byte_change_is_a_typed_error() {
    let bytes = scale().to_bytes().unwrap();
    let mut count = 0;
    for at in 0..bytes.len() {
        for delta in 1..=255u8 {
            let mut corrupt = bytes.clone();
            corrupt[at] = corrupt[at].wrapping_add(delta);
            match SerFn::<f64, f64>::from_bytes(&corrupt) {
                Err(Error::Checksum { .. }) => {}
                Err(Error::Version { found, supported }) => {
                    assert_eq!((at, found), (0, corrupt[0]));
                    assert_eq!(supported, serfn::codec::FORMAT_VERSION);
                }
                // The first byte of a signed envelope: the plain reader says so.
                Err(Error::Unauthenticated { .. }) => {
                    assert_eq!((at, corrupt[0]), (0, serfn::codec::FORMAT_VERSION | 0x80));
                }
                other => panic!("byte {at} + {delta}: {other:?}"),
            }
            count += 1;
        }
    }
    assert_eq!(count, bytes.len() * 255);
}

#[test]
fn random_bytes_are_typed_errors() {
    // A fixed-seed xorshift: reproducible, and thousands of inputs.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..5_000 {
        let len = (next() % 200) as usize;
        let random: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        assert!(SerFn::<f64, f64>::from_bytes(&random).is_err());
        // With a valid envelope, so the decoder itself sees the garbage.
        let sealed = seal(&random);
        let result = SerFn::<f64, f64>::from_bytes(&sealed);
        assert!(result.is_err(), "round {round}: {result:?}");
    }
}

#[test]
fn mutated_bodies_with_valid_checksums_never_panic() {
    let good = body(&scale().to_bytes().unwrap());
    for at in 0..good.len() {
        for value in [0u8, 1, 0x7f, 0x80, 0xfb, 0xfc, 0xfd, 0xfe, 0xff] {
            let mut mutated = good.clone();
            mutated[at] = value;
            // Decoding may succeed (a changed float is still a float): the
            // checksum is what catches corruption. It must never panic.
            let _ = SerFn::<f64, f64>::from_bytes(&seal(&mutated));
        }
    }
}

#[test]
fn unknown_name() {
    let bytes = seal(&replace(
        &body(&scale().to_bytes().unwrap()),
        b"bad_input::Scale",
        b"bad_input::Scalx",
    ));
    match SerFn::<f64, f64>::from_bytes(&bytes) {
        Err(Error::UnknownFunction { name }) => assert_eq!(name, "bad_input::Scalx"),
        other => panic!("{other:?}"),
    }
    let text = SerFn::<f64, f64>::from_bytes(&bytes)
        .unwrap_err()
        .to_string();
    assert_eq!(
        text,
        "function `bad_input::Scalx` is not registered in this binary"
    );
}

#[test]
fn a_renamed_payload_never_calls_the_other_function() {
    // Same version, same signature, other capture layout: the capture of
    // `Scale` read as `Renamed` is refused before it is decoded.
    let bytes = seal(&replace(
        &body(&scale().to_bytes().unwrap()),
        b"bad_input::Scale",
        b"bad_input::Scalf",
    ));
    match SerFn::<f64, f64>::from_bytes(&bytes) {
        Err(Error::LayoutChanged { name, version: 1 }) => assert_eq!(name, "bad_input::Scalf"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn wrong_registration_version() {
    let good = body(&scale().to_bytes().unwrap());
    // name length, name, then the version (1, one varint byte).
    let at = 1 + "bad_input::Scale".len();
    assert_eq!(good[at], 1);
    let mut old = good.clone();
    old[at] = 7;
    match SerFn::<f64, f64>::from_bytes(&seal(&old)) {
        Err(Error::VersionMismatch {
            name,
            registered: 1,
            found: 7,
        }) => assert_eq!(name, "bad_input::Scale"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn wrong_fingerprint_and_wrong_signature() {
    let good = body(&scale().to_bytes().unwrap());
    // name length, name, version, the fingerprint's length (8), its first byte.
    let at = 1 + "bad_input::Scale".len() + 1 + 1;
    assert_eq!(good[at - 1], 8);
    let mut forged = good.clone();
    forged[at] ^= 0x55;
    match SerFn::<f64, f64>::from_bytes(&seal(&forged)) {
        Err(Error::SignatureMismatch {
            name,
            expected,
            found,
        }) => {
            assert_eq!(name, "bad_input::Scale");
            assert_eq!(expected, "Fn(f64) -> f64");
            assert!(found.contains("fingerprint"), "{found}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        SerFn::<u64, f64>::from_bytes(&scale().to_bytes().unwrap()),
        Err(Error::SignatureMismatch { .. })
    ));
}

#[test]
fn future_format_version() {
    let mut bytes = scale().to_bytes().unwrap();
    let current = serfn::codec::FORMAT_VERSION;
    bytes[0] = current + 1;
    let len = bytes.len();
    let checksum = crc32fast::hash(&bytes[..len - 4]);
    bytes[len - 4..].copy_from_slice(&checksum.to_le_bytes());
    match SerFn::<f64, f64>::from_bytes(&bytes) {
        Err(Error::Version { found, supported }) => {
            assert_eq!((found, supported), (current + 1, current))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn trailing_bytes() {
    let mut extended = body(&scale().to_bytes().unwrap());
    extended.push(0);
    assert!(matches!(
        SerFn::<f64, f64>::from_bytes(&seal(&extended)),
        Err(Error::Decode { .. })
    ));
}

#[test]
fn forged_lengths_of_two_to_the_sixty_allocate_nothing() {
    let good = Wire::parse(&scale().to_bytes().unwrap());
    // The label "double" is its length (6) then its bytes.
    let forged_len = serfn::codec::encode_value(&(1u64 << 60)).unwrap();
    let forged = replace(&good.capture, b"\x06double", &forged_len);
    assert!(matches!(
        SerFn::<f64, f64>::from_bytes(&seal(&good.with_capture(&forged))),
        Err(Error::Decode { .. })
    ));

    // A vector of zero-sized values reads no bytes per element: the
    // budget stops it.
    let units = Wire::parse(&SerFn::new(Units { units: vec![] }).to_bytes().unwrap());
    match SerFn::<(), usize>::from_bytes(&seal(&units.with_capture(&forged_len))) {
        Err(Error::TooLarge { limit, .. }) => assert_eq!(limit, Limits::DEFAULT_MAX_BYTES),
        other => panic!("{other:?}"),
    }
}

#[test]
fn input_larger_than_the_limit() {
    let bytes = scale().to_bytes().unwrap();
    let limits = Limits::default().max_bytes(bytes.len() - 1);
    assert!(matches!(
        limits.from_bytes::<SerFn<f64, f64>>(&bytes),
        Err(Error::TooLarge { limit, .. }) if limit == bytes.len() - 1
    ));
    assert!(Limits::default()
        .max_bytes(bytes.len())
        .from_bytes::<SerFn<f64, f64>>(&bytes)
        .is_ok());
}

#[test]
fn reader_length_prefix_over_the_limit_is_refused_before_reading() {
    let mut stream = u32::MAX.to_le_bytes().to_vec();
    stream.extend_from_slice(&[0; 16]);
    match serfn::from_reader::<_, SerFn<f64, f64>>(&stream[..]) {
        Err(Error::TooLarge { len, .. }) => assert_eq!(len, u32::MAX as u64),
        other => panic!("{other:?}"),
    }
}

#[test]
fn reader_and_writer_frame_several_envelopes() {
    let mut stream = Vec::new();
    serfn::to_writer(&mut stream, &scale()).unwrap();
    serfn::to_writer(&mut stream, &scale()).unwrap();
    let mut reader = &stream[..];
    let first: SerFn<f64, f64> = serfn::from_reader(&mut reader).unwrap();
    let second: SerFn<f64, f64> = serfn::from_reader(&mut reader).unwrap();
    assert_eq!(first.call(1.0) + second.call(1.0), 4.0);
    // A stream cut short is an I/O error.
    let mut cut = &stream[..stream.len() - 3];
    assert!(serfn::from_reader::<_, SerFn<f64, f64>>(&mut cut).is_ok());
    match serfn::from_reader::<_, SerFn<f64, f64>>(&mut cut) {
        Err(Error::Io { .. }) => {}
        other => panic!("{other:?}"),
    }
}

/// Builds `unit * depth + end`, sealed.
fn nested(unit: &[u8], depth: usize, end: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(unit.len() * depth + end.len());
    for _ in 0..depth {
        body.extend_from_slice(unit);
    }
    body.extend_from_slice(end);
    seal(&body)
}

#[test]
fn data_nested_100_000_deep_is_too_deep_not_a_stack_overflow() {
    let empty = Wire::parse(&SerFn::new(Deep { list: List::Nil }).to_bytes().unwrap());
    assert_eq!(empty.capture, [1], "Nil is variant 1");
    let list = |n| body(&nested(&[0, 7], n, &[1]));
    let bytes = seal(&empty.with_capture(&list(100_000)));
    match SerFn::<(), usize>::from_bytes(&bytes) {
        Err(Error::TooDeep { limit }) => assert_eq!(limit, 128),
        other => panic!("{other:?}"),
    }
    // Within the limit the same shape decodes.
    let shallow = seal(&empty.with_capture(&list(100)));
    assert_eq!(
        SerFn::<(), usize>::from_bytes(&shallow).unwrap().call(()),
        100
    );
    assert!(matches!(
        Limits::default()
            .max_depth(50)
            .from_bytes::<SerFn<(), usize>>(&shallow),
        Err(Error::TooDeep { limit: 50 })
    ));
}

#[test]
fn functions_nested_100_000_deep_are_too_deep() {
    let leaf = Wire::parse(&SerFn::new(Nest { next: None }).to_bytes().unwrap());
    assert_eq!(leaf.capture, [0], "None");
    // `Nest { next: Some(Nest { next: Some(... None) }) }`, `depth` functions
    // deep, each capture `[1][function]` with its length in front: written
    // front to back from the lengths, computed inside out.
    let chain = |depth: usize| {
        let mut capture_lens = vec![leaf.capture.len()];
        for level in 1..depth {
            let inner = capture_lens[level - 1];
            capture_lens.push(1 + leaf.head(inner).len() + inner);
        }
        let mut out = Vec::new();
        for level in (1..depth).rev() {
            out.extend(leaf.head(capture_lens[level]));
            out.push(1);
        }
        out.extend(leaf.with_capture(&leaf.capture));
        seal(&out)
    };
    assert!(matches!(
        SerFn::<(), ()>::from_bytes(&chain(100_000)),
        Err(Error::TooDeep { .. })
    ));
    assert!(SerFn::<(), ()>::from_bytes(&chain(3)).is_ok());
}

#[test]
fn a_capture_that_cannot_be_encoded() {
    match SerFn::new(Unencodable).to_bytes() {
        Err(Error::Encode { source }) => {
            assert!(source.to_string().contains("refuses to be encoded"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_arguments_to_a_bytes_call() {
    let f = scale().into_dyn();
    assert!(matches!(f.call_bytes(&[1, 2]), Err(Error::Decode { .. })));
    let out = f
        .call_bytes(&serfn::codec::encode_value(&1.0f64).unwrap())
        .unwrap();
    assert!(matches!(
        serfn::codec::decode_result::<f64>(&out[..3], &Limits::default()),
        Err(Error::Decode { .. })
    ));
}
