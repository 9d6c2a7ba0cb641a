//! A capture of a fixed layout (no sequence, string, map or recursion) is
//! decoded by the handles without the decode guard: the same outcomes as
//! the guarded serde path, for every byte of its body.

use serde::{Deserialize, Serialize};
use serfn::{Error, SerFn};

#[derive(Serialize, Deserialize, Clone, Copy)]
enum Mode {
    Add,
    Scale(f32),
    Clamp { low: i16, high: i16 },
}

#[derive(Serialize, Deserialize, Clone)]
struct Fixed {
    offset: f64,
    enabled: bool,
    limit: Option<u32>,
    mode: Mode,
    tag: char,
}

#[serfn::register(name = "fixed::Fixed")]
impl serfn::Call<f64> for Fixed {
    type Output = f64;
    fn call(&self, x: f64) -> f64 {
        let x = match self.mode {
            Mode::Add => x + self.offset,
            Mode::Scale(k) => x * f64::from(k),
            Mode::Clamp { low, high } => x.max(f64::from(low)).min(f64::from(high)),
        };
        let x = if self.enabled { x } else { -x };
        x + f64::from(self.limit.unwrap_or(0)) + f64::from(u32::from(self.tag))
    }
}

fn samples() -> Vec<SerFn<f64, f64>> {
    let base = Fixed {
        offset: 0.5,
        enabled: true,
        limit: Some(300),
        mode: Mode::Add,
        tag: 'é',
    };
    let modes = [
        Mode::Add,
        Mode::Scale(2.0),
        Mode::Clamp { low: -3, high: 300 },
    ];
    modes
        .into_iter()
        .map(|mode| {
            SerFn::new(Fixed {
                mode,
                ..base.clone()
            })
        })
        .chain([SerFn::new(Fixed {
            enabled: false,
            limit: None,
            ..base.clone()
        })])
        .collect()
}

#[test]
fn a_fixed_capture_round_trips_through_both_paths() {
    for f in samples() {
        let bytes = f.to_bytes().unwrap();
        assert_eq!(bytes, serfn::to_bytes(&f).unwrap());
        let direct = SerFn::<f64, f64>::from_bytes(&bytes).unwrap();
        let serde: SerFn<f64, f64> = serfn::from_bytes(&bytes).unwrap();
        assert_eq!(direct.call(2.0), f.call(2.0));
        assert_eq!(serde.call(2.0), f.call(2.0));
        assert!(matches!(
            SerFn::<f64, u32>::from_bytes(&bytes),
            Err(Error::SignatureMismatch { .. })
        ));
    }
}

#[test]
fn a_fixed_capture_is_refused_alike_through_both_paths() {
    for f in samples() {
        let bytes = f.to_bytes().unwrap();
        // Cut anywhere: the same error.
        for len in 0..bytes.len() {
            let direct = SerFn::<f64, f64>::from_bytes(&bytes[..len]).map(drop);
            let serde = serfn::from_bytes::<SerFn<f64, f64>>(&bytes[..len]).map(drop);
            assert_eq!(format!("{direct:?}"), format!("{serde:?}"));
        }
        // Any byte changed and the envelope resealed: the same outcome.
        let body = &bytes[..bytes.len() - 4];
        for at in 1..body.len() {
            for value in [0u8, 1, 2, 3, 8, 0x7f, 0x80, 0xc3, 0xfa, 0xfb, 0xfe, 0xff] {
                let mut mutated = body.to_vec();
                mutated[at] = value;
                let checksum = crc32fast::hash(&mutated);
                mutated.extend_from_slice(&checksum.to_le_bytes());
                let direct = SerFn::<f64, f64>::from_bytes(&mutated).map(|f| f.call(1.0));
                let serde = serfn::from_bytes::<SerFn<f64, f64>>(&mutated).map(|f| f.call(1.0));
                match (&direct, &serde) {
                    (Ok(a), Ok(b)) => assert!(a == b || (a.is_nan() && b.is_nan())),
                    // postcard drops serde's custom messages on its own path
                    // (src/codec/format/postcard.rs): there, the same variant.
                    (Err(a), Err(b)) if cfg!(feature = "postcard") => assert_eq!(
                        std::mem::discriminant(a),
                        std::mem::discriminant(b),
                        "byte {at}: {a} / {b}"
                    ),
                    (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "byte {at}"),
                    _ => panic!("byte {at} = {value}: {direct:?} / {serde:?}"),
                }
            }
        }
    }
}

/// Decodes a function inside its own `Deserialize` impl: the direct path
/// then runs within the outer decode's limits, guarded.
#[derive(Debug)]
struct Nested(f64);

impl<'de> Deserialize<'de> for Nested {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let bytes = <serde_bytes_like::Bytes>::deserialize(deserializer)?;
        let f = SerFn::<f64, f64>::from_bytes(&bytes.0).map_err(serde::de::Error::custom)?;
        Ok(Nested(f.call(1.0)))
    }
}

mod serde_bytes_like {
    /// A byte string to encode.
    pub struct Borrowed<'a>(pub &'a [u8]);

    impl serde::Serialize for Borrowed<'_> {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_bytes(self.0)
        }
    }

    /// An owned byte string.
    pub struct Bytes(pub Vec<u8>);

    impl<'de> serde::Deserialize<'de> for Bytes {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct Visit;
            impl serde::de::Visitor<'_> for Visit {
                type Value = Bytes;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
                    Ok(Bytes(v.to_vec()))
                }
            }
            deserializer.deserialize_bytes(Visit)
        }
    }
}

#[test]
fn a_fixed_capture_decodes_inside_another_decode() {
    let f = &samples()[0];
    let inner = f.to_bytes().unwrap();
    let outer = serfn::codec::encode_value(&serde_bytes_like::Borrowed(&inner)).unwrap();
    let back: Nested = serfn::codec::decode_value(&outer, &serfn::Limits::default()).unwrap();
    assert_eq!(back.0, f.call(1.0));
}

/// Decoding reuses the allocation of a function decoded before once nobody
/// holds it: a function still held, cloned or moved to another thread keeps
/// its own capture.
#[test]
fn a_decoded_fixed_capture_keeps_its_value_while_others_are_decoded() {
    let all = samples();
    let bytes: Vec<Vec<u8>> = all.iter().map(|f| f.to_bytes().unwrap()).collect();
    let expected: Vec<f64> = all.iter().map(|f| f.call(2.0)).collect();
    assert!(expected.windows(2).all(|w| w[0] != w[1]));
    let decode = |i: usize| SerFn::<f64, f64>::from_bytes(&bytes[i]).unwrap();

    // Held: each decode gets its own.
    let held: Vec<_> = (0..bytes.len()).map(decode).collect();
    for (f, want) in held.iter().zip(&expected) {
        assert_eq!(f.call(2.0), *want);
    }
    // Dropped right away, over and over, then one still held by a clone.
    for round in 0..3 {
        for (i, want) in expected.iter().enumerate() {
            assert_eq!(decode(i).call(2.0), *want, "round {round}");
        }
    }
    let kept = decode(1).clone();
    let next = decode(2);
    assert_eq!((kept.call(2.0), next.call(2.0)), (expected[1], expected[2]));
    // Moved to another thread, and dropped there or kept there.
    let moved = decode(3);
    let back = std::thread::spawn(move || moved.call(2.0)).join().unwrap();
    assert_eq!(back, expected[3]);
    let there = decode(0);
    let handle = std::thread::spawn(move || there.call(2.0));
    assert_eq!(decode(2).call(2.0), expected[2]);
    assert_eq!(handle.join().unwrap(), expected[0]);
    for (f, want) in held.iter().zip(&expected) {
        assert_eq!(f.call(2.0), *want);
    }
    assert_eq!(kept.call(2.0), expected[1]);
}
