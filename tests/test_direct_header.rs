//! The handles write and read an envelope's header directly, beside serde:
//! both paths must give the same bytes and the same outcomes.

use serde::{Deserialize, Serialize};
use serfn::{Error, SerFn, SerFnMut, SerFnOnce};

#[derive(Serialize, Deserialize, Clone)]
struct Weights {
    values: Vec<f64>,
}

#[serfn::register(name = "direct::Weights")]
impl serfn::Call<f64> for Weights {
    type Output = f64;
    fn call(&self, x: f64) -> f64 {
        x * self.values.iter().sum::<f64>()
    }
}

#[derive(Serialize, Deserialize)]
struct Twice {
    f: SerFn<f64, f64>,
}

#[serfn::register(name = "direct::Twice")]
impl serfn::Call<f64> for Twice {
    type Output = f64;
    fn call(&self, x: f64) -> f64 {
        self.f.call(self.f.call(x))
    }
}

fn weights(len: usize) -> SerFn<f64, f64> {
    SerFn::new(Weights {
        values: vec![0.5; len],
    })
}

/// Captures whose length prefix takes 1, 3 and 5 bytes, a function inside a
/// capture, and the combinators.
fn samples() -> Vec<SerFn<f64, f64>> {
    let mut all: Vec<SerFn<f64, f64>> = [0, 1, 30, 31, 32, 8191, 8192, 9000]
        .into_iter()
        .map(weights)
        .collect();
    all.push(SerFn::new(Twice { f: weights(3) }));
    all.push(weights(2).then(weights(40)));
    all
}

#[test]
fn a_bound_function_writes_and_reads_alike() {
    let pair: SerFn<(f64, f64), f64> =
        serfn::closure!("direct::add", [], move |(a, b): (f64, f64)| -> f64 {
            a + b
        });
    let bound = pair.bind(1.5);
    let bytes = bound.to_bytes().unwrap();
    assert_eq!(bytes, serfn::to_bytes(&bound).unwrap());
    let back = SerFn::<f64, f64>::from_bytes(&bytes).unwrap();
    assert_eq!(back.call(2.0), 3.5);
}

#[test]
fn the_handles_write_the_bytes_serde_writes() {
    let mut buf = b"prefix".to_vec();
    for f in samples() {
        let serde = serfn::to_bytes(&f).unwrap();
        assert_eq!(f.to_bytes().unwrap(), serde, "{f:?}");
        buf.truncate(6);
        f.to_bytes_into(&mut buf).unwrap();
        assert_eq!((&buf[..6], &buf[6..]), (&b"prefix"[..], &serde[..]));
        let mutable: SerFnMut<f64, f64> = f.clone().into();
        assert_eq!(mutable.to_bytes().unwrap(), serde);
        let once: SerFnOnce<f64, f64> = f.clone().into();
        assert_eq!(once.to_bytes().unwrap(), serde);
    }
}

#[test]
fn the_handles_read_what_serde_reads() {
    for f in samples() {
        let bytes = f.to_bytes().unwrap();
        let direct = SerFn::<f64, f64>::from_bytes(&bytes).unwrap();
        let serde: SerFn<f64, f64> = serfn::from_bytes(&bytes).unwrap();
        assert_eq!(direct.call(2.0), serde.call(2.0));
        assert_eq!(direct.call(2.0), f.call(2.0));
        assert_eq!(
            SerFnOnce::<f64, f64>::from_bytes(&bytes)
                .unwrap()
                .call_once(2.0),
            f.call(2.0)
        );
        // The same refusals, for every cut and for another signature.
        for len in (0..bytes.len()).filter(|len| *len < 600) {
            let direct = SerFn::<f64, f64>::from_bytes(&bytes[..len]).map(drop);
            let serde = serfn::from_bytes::<SerFn<f64, f64>>(&bytes[..len]).map(drop);
            assert_eq!(format!("{direct:?}"), format!("{serde:?}"));
        }
        assert!(matches!(
            SerFn::<f64, u32>::from_bytes(&bytes),
            Err(Error::SignatureMismatch { .. })
        ));
    }
}

#[test]
fn bodies_read_alike_through_both_paths() {
    // Every byte of a body set to values that hit the varint boundaries,
    // resealed: both readers reach the same outcome.
    let bytes = SerFn::new(Twice { f: weights(2) }).to_bytes().unwrap();
    let body = &bytes[..bytes.len() - 4];
    for at in 1..body.len() {
        for value in [0u8, 1, 8, 0x7f, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe, 0xff] {
            let mut mutated = body.to_vec();
            mutated[at] = value;
            let checksum = crc32fast::hash(&mutated);
            mutated.extend_from_slice(&checksum.to_le_bytes());
            let direct = SerFn::<f64, f64>::from_bytes(&mutated).map(|f| f.call(1.0));
            let serde = serfn::from_bytes::<SerFn<f64, f64>>(&mutated).map(|f| f.call(1.0));
            match (&direct, &serde) {
                (Ok(a), Ok(b)) => assert!(a == b || (a.is_nan() && b.is_nan())),
                (Err(a), Err(b)) => assert_eq!(
                    std::mem::discriminant(a),
                    std::mem::discriminant(b),
                    "byte {at} = {value}: {a} / {b}"
                ),
                _ => panic!("byte {at} = {value}: {direct:?} / {serde:?}"),
            }
        }
    }
}

#[test]
fn typed_pipelines_call_and_encode_as_erased_ones() {
    let inc = || serfn::closure!("direct::inc", [], move |x: u64| -> u64 { x + 1 });
    // Past 64 typed stages `then` falls back to the erased pipeline: the
    // same results and bytes on both sides of that line.
    for len in [2usize, 8, 64, 65, 200] {
        let chain = (1..len).fold(inc(), |f, _| f.then(inc()));
        assert_eq!(chain.call(0), len as u64);
        let bytes = chain.to_bytes().unwrap();
        assert_eq!(bytes, serfn::to_bytes(&chain).unwrap());
        let back = SerFn::<u64, u64>::from_bytes(&bytes).unwrap();
        assert_eq!(back.call(1), len as u64 + 1);
        // A decoded pipeline composes too, erased.
        assert_eq!(back.then(inc()).call(0), len as u64 + 1);
        assert_eq!(chain.clone().then(chain).call(0), 2 * len as u64);
    }
}
