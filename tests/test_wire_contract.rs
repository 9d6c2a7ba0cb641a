//! The wire contract against forged input: bound arguments checked at
//! decode, pipelines checked before their stages are decoded, readable
//! errors, and `then` chains of any length.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Deserializer, Serialize};
use serfn::{Error, SerFn, SerFnMut};
use support::{seal, Wire};

#[serfn::function(name = "contract::pair")]
fn pair(a: u32, b: u64) -> (u32, u64) {
    (a, b)
}

/// A function's wire form as a plain tuple: name, version, fingerprints, capture.
type FunctionTuple = (String, u32, Vec<u8>, Vec<u8>, Vec<u8>);

/// The capture of a `bind`: the function held, the bound prefix, how many
/// elements it binds.
type BindCapture = (FunctionTuple, Vec<u8>, u32);

/// `pair` with 7 bound, its bound prefix replaced by `prefix` and its
/// count by `bound`, sealed with a valid checksum.
fn forged_bind(prefix: Vec<u8>, bound: u32) -> Vec<u8> {
    let f: SerFn<u64, (u32, u64)> = pair().bind(7);
    let outer = Wire::parse(&f.to_bytes().unwrap());
    let (inner, _, _): BindCapture =
        serfn::codec::decode_value(&outer.capture, &serfn::Limits::default()).unwrap();
    let capture = serfn::codec::encode_value(&(inner, prefix, bound)).unwrap();
    seal(&outer.with_capture(&capture))
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serfn::codec::encode_value(value).unwrap()
}

/// `bytes` without their last byte: a multi-byte varint cut short, in any format.
fn truncated(mut bytes: Vec<u8>) -> Vec<u8> {
    bytes.pop();
    bytes
}

#[test]
fn a_forged_bound_prefix_fails_in_from_bytes_never_in_call() {
    // The honest payload, rebuilt by hand, decodes and calls.
    let honest = forged_bind(encode(&7u32), 1);
    let f: SerFn<u64, (u32, u64)> = serfn::from_bytes(&honest).unwrap();
    assert_eq!(f.call(305), (7, 305));

    let forgeries = [
        // Both arguments bound in one prefix: it would swallow the caller's.
        ("two values", encode(&(11515u32, 6u64)), 1),
        ("nothing", Vec::new(), 1),
        ("a truncated varint", truncated(encode(&u64::MAX)), 1),
        ("a u64 too large for u32", encode(&(u64::MAX)), 1),
        ("more bound than taken", encode(&7u32), 3),
        ("a count of two with one value", encode(&7u32), 2),
        ("trailing garbage", [encode(&7u32), vec![0]].concat(), 1),
    ];
    for (what, prefix, bound) in forgeries {
        match serfn::from_bytes::<SerFn<u64, (u32, u64)>>(&forged_bind(prefix, bound)) {
            Err(Error::Decode { .. } | Error::SignatureMismatch { .. }) => {}
            Ok(f) => panic!("{what}: decoded, and called gives {:?}", f.try_call(305)),
            Err(other) => panic!("{what}: {other:?}"),
        }
    }
}

static DECODED: AtomicUsize = AtomicUsize::new(0);

/// A capture that counts how often it is decoded.
#[derive(Serialize)]
struct Counted {
    k: f64,
}

impl<'de> Deserialize<'de> for Counted {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            k: f64,
        }
        let Raw { k } = Raw::deserialize(deserializer)?;
        DECODED.fetch_add(1, Ordering::SeqCst);
        Ok(Counted { k })
    }
}

#[serfn::register(name = "contract::Counted")]
impl serfn::Call<f64> for Counted {
    type Output = f64;
    fn call(&self, x: f64) -> f64 {
        x * self.k
    }
}

#[test]
fn a_pipeline_of_another_signature_is_refused_before_a_stage_is_decoded() {
    let f = SerFn::new(Counted { k: 2.0 }).then(SerFn::new(Counted { k: 3.0 }));
    let bound: SerFn<f64, f64> =
        serfn::closure!("contract::add", [], move |x: f64, y: f64| -> f64 { x + y })
            .bind(1.0)
            .then(SerFn::new(Counted { k: 1.0 }))
            .into_dyn()
            .try_into()
            .unwrap();
    for (bytes, calls) in [(f.to_bytes().unwrap(), 2), (bound.to_bytes().unwrap(), 1)] {
        let before = DECODED.load(Ordering::SeqCst);
        for wrong in [
            serfn::from_bytes::<SerFn<i32, i32>>(&bytes).map(drop),
            serfn::from_bytes::<SerFn<f64, i32>>(&bytes).map(drop),
            serfn::from_bytes::<SerFnMut<u8, f64>>(&bytes).map(drop),
        ] {
            assert!(
                matches!(wrong, Err(Error::SignatureMismatch { .. })),
                "{wrong:?}"
            );
        }
        assert_eq!(
            DECODED.load(Ordering::SeqCst),
            before,
            "a capture was decoded"
        );
        serfn::from_bytes::<serfn::DynFn>(&bytes).unwrap();
        assert_eq!(DECODED.load(Ordering::SeqCst), before + calls);
    }
    let g: SerFn<f64, f64> = serfn::from_bytes(&f.to_bytes().unwrap()).unwrap();
    assert_eq!(g.call(1.0), 6.0);
}

#[test]
fn a_capture_that_ends_early_says_what_and_where_once() {
    let f = SerFn::new(Counted { k: 2.0 });
    let wire = Wire::parse(&f.to_bytes().unwrap());
    let cut = &wire.capture[..wire.capture.len() - 1];
    let error = serfn::from_bytes::<SerFn<f64, f64>>(&seal(&wire.with_capture(cut))).unwrap_err();
    assert!(matches!(error, Error::Decode { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        "malformed input: the capture of `contract::Counted`: the input ends early (1 more bytes needed)"
    );

    // Nested in a pipeline: the path to it, each step once.
    let pipeline = f.clone().then(f);
    let outer = Wire::parse(&pipeline.to_bytes().unwrap());
    let stages: Vec<FunctionTuple> =
        serfn::codec::decode_value(&outer.capture, &serfn::Limits::default()).unwrap();
    let mut forged = stages.clone();
    forged[1].4.pop();
    let capture = serfn::codec::encode_value(&forged).unwrap();
    let error = serfn::from_bytes::<SerFn<f64, f64>>(&seal(&outer.with_capture(&capture)))
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        "malformed input: the capture of `serfn::then`: the capture of `contract::Counted`: \
         the input ends early (1 more bytes needed)"
    );
}

#[test]
fn then_appends_in_amortised_constant_time_a_million_stages() {
    let inc: SerFn<u64, u64> = serfn::closure!("contract::inc", [], move |x: u64| -> u64 { x + 1 });
    let mut f = inc.clone();
    for _ in 1..1_000_000 {
        f = f.then(inc.clone());
    }
    assert_eq!(f.call(0), 1_000_000);
    assert_eq!(
        format!("{:?}", f.signature()),
        format!("{:?}", inc.signature())
    );
}
