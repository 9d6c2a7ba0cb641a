//! The wire format is a contract: committed encodings in `tests/golden/`
//! must keep decoding and calling with the same results, and today's
//! encoder must produce them byte for byte. An incompatible change bumps
//! `codec::FORMAT_VERSION` and adds a new folder; see `tests/golden/README.md`.
//!
//! `SERFN_BLESS=1 cargo test --test test_golden` writes the files of the
//! current format version (only when creating a new version's folder).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serfn::{AsyncSerFn, DynFn, SerFn, SerFnMut, SerFnOnce};

#[derive(Serialize, Deserialize)]
struct Scale {
    factor: f64,
}

#[serfn::register(name = "golden::Scale")]
impl serfn::Call<f64> for Scale {
    type Output = f64;
    fn call(&self, x: f64) -> f64 {
        x * self.factor
    }
}

#[serfn::function(name = "golden::affine")]
fn affine(#[capture] slope: &f64, #[capture] intercept: &f64, x: f64) -> f64 {
    slope * x + intercept
}

fn shift() -> SerFn<f64, f64> {
    let offset = 0.5;
    serfn::closure!("golden::shift", [offset: f64], move |x: f64| -> f64 { x + offset })
}

fn async_scale() -> AsyncSerFn<f64, f64> {
    let factor = 2.0;
    serfn::closure!("golden::async_scale", [factor: f64], async move |x: f64| -> f64 {
        std::future::ready(x * factor).await
    })
}

#[serfn::function(name = "golden::async_affine")]
async fn async_affine(#[capture] slope: &f64, #[capture] intercept: &f64, x: f64) -> f64 {
    std::future::ready(slope * x + intercept).await
}

/// Runs a future to its end on a runtime of its own.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

/// A higher-order capture: a function inside.
#[derive(Serialize, Deserialize)]
struct Twice {
    f: SerFn<f64, f64>,
}

#[serfn::register(name = "golden::Twice")]
impl serfn::Call<f64> for Twice {
    type Output = f64;
    fn call(&self, x: f64) -> f64 {
        self.f.call(self.f.call(x))
    }
}

#[derive(Serialize, Deserialize)]
enum Mode {
    Sum,
    Scaled(f64),
}

#[derive(Serialize, Deserialize)]
struct Config {
    table: BTreeMap<String, f64>,
    mode: Mode,
    limit: Option<u32>,
}

#[serfn::register(name = "golden::Config")]
impl serfn::Call<String> for Config {
    type Output = f64;
    fn call(&self, key: String) -> f64 {
        let value = self.table.get(&key).copied().unwrap_or(0.0);
        let value = match self.mode {
            Mode::Sum => value,
            Mode::Scaled(k) => value * k,
        };
        value.min(f64::from(self.limit.unwrap_or(u32::MAX)))
    }
}

#[derive(Serialize, Deserialize)]
struct Sum<T> {
    items: Vec<T>,
}

impl serfn::Call<i64> for Sum<i64> {
    type Output = i64;
    fn call(&self, x: i64) -> i64 {
        x + self.items.iter().sum::<i64>()
    }
}

serfn::register_instance!(Sum<i64> as Call<i64>, name = "golden::sum_i64");

/// One committed encoding: how today's encoder makes it, and what calling
/// its decoding must give.
struct Case {
    name: &'static str,
    make: fn() -> Vec<u8>,
    check: fn(&[u8]),
}

fn bytes<T: Serialize>(value: &T) -> Vec<u8> {
    serfn::to_bytes(value).unwrap()
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> T {
    serfn::from_bytes(bytes).unwrap()
}

const CASES: &[Case] = &[
    Case {
        name: "register",
        make: || bytes(&SerFn::new(Scale { factor: 1.5 })),
        check: |b| assert_eq!(decode::<SerFn<f64, f64>>(b).call(2.0), 3.0),
    },
    Case {
        name: "function",
        make: || bytes(&affine(3.0, 1.0)),
        check: |b| assert_eq!(decode::<SerFn<f64, f64>>(b).call(2.0), 7.0),
    },
    Case {
        name: "closure",
        make: || bytes(&shift()),
        check: |b| assert_eq!(decode::<SerFn<f64, f64>>(b).call(2.0), 2.5),
    },
    Case {
        name: "then",
        make: || {
            bytes(
                &SerFn::new(Scale { factor: 1.5 })
                    .then(affine(3.0, 1.0))
                    .then(shift()),
            )
        },
        check: |b| assert_eq!(decode::<SerFn<f64, f64>>(b).call(1.0), 6.0),
    },
    Case {
        name: "bind",
        make: || {
            let pair = serfn::closure!("golden::pair", [], move |a: u32, b: String| -> String {
                format!("{a}:{b}")
            });
            bytes(&pair.bind(7))
        },
        check: |b| assert_eq!(decode::<SerFn<String, String>>(b).call("x".into()), "7:x"),
    },
    Case {
        name: "bind_then",
        make: || {
            let add = serfn::closure!("golden::add", [], move |a: f64, b: f64| -> f64 { a + b });
            bytes(&add.bind(1.0).then(SerFn::new(Scale { factor: 2.0 })))
        },
        check: |b| assert_eq!(decode::<SerFn<f64, f64>>(b).call(4.0), 10.0),
    },
    Case {
        name: "nested",
        make: || {
            bytes(&SerFn::new(Twice {
                f: shift().then(shift()),
            }))
        },
        check: |b| assert_eq!(decode::<SerFn<f64, f64>>(b).call(1.0), 3.0),
    },
    Case {
        name: "fn_mut_state",
        make: || {
            let mut count: SerFnMut<u32, u32> = serfn::closure!(mut "golden::count", [seen: u32 = 0], move |n: u32| -> u32 { *seen += n; *seen });
            count.call_mut(40);
            bytes(&count)
        },
        check: |b| assert_eq!(decode::<SerFnMut<u32, u32>>(b).call_mut(2), 42),
    },
    Case {
        name: "fn_once",
        make: || {
            let report = vec![1, 2, 3];
            let f: SerFnOnce<(), Vec<i32>> = serfn::closure!(once "golden::report", [report: Vec<i32>], move |(): ()| -> Vec<i32> { report });
            bytes(&f)
        },
        check: |b| {
            assert_eq!(
                decode::<SerFnOnce<(), Vec<i32>>>(b).call_once(()),
                [1, 2, 3]
            )
        },
    },
    Case {
        name: "generic_instance",
        make: || {
            bytes(&SerFn::new(Sum {
                items: vec![1i64, 2, -10],
            }))
        },
        check: |b| assert_eq!(decode::<SerFn<i64, i64>>(b).call(100), 93),
    },
    Case {
        name: "data_model",
        make: || {
            bytes(&SerFn::new(Config {
                table: BTreeMap::from([("a".into(), 2.0), ("b".into(), 30.0)]),
                mode: Mode::Scaled(2.0),
                limit: Some(50),
            }))
        },
        check: |b| {
            let f = decode::<SerFn<String, f64>>(b);
            assert_eq!((f.call("a".into()), f.call("b".into())), (4.0, 50.0));
        },
    },
    Case {
        name: "async",
        make: || bytes(&async_scale()),
        check: |b| {
            assert_eq!(block_on(decode::<AsyncSerFn<f64, f64>>(b).call(2.0)), 4.0);
            // Its own kind: never read as a sync function.
            assert!(matches!(
                serfn::from_bytes::<SerFn<f64, f64>>(b),
                Err(serfn::Error::SignatureMismatch { .. })
            ));
        },
    },
    Case {
        name: "async_then",
        make: || {
            bytes(
                &SerFn::new(Scale { factor: 1.5 })
                    .then_async(async_affine(3.0, 1.0))
                    .then(shift())
                    .then(async_scale()),
            )
        },
        // ((1 * 1.5) * 3 + 1 + 0.5) * 2
        check: |b| {
            assert_eq!(block_on(decode::<AsyncSerFn<f64, f64>>(b).call(1.0)), 12.0);
            assert!(matches!(
                serfn::from_bytes::<SerFn<f64, f64>>(b),
                Err(serfn::Error::SignatureMismatch { .. })
            ));
        },
    },
    Case {
        name: "dyn_fn",
        make: || bytes(&shift().into_dyn()),
        check: |b| {
            let f = decode::<DynFn>(b);
            let out = f
                .call_bytes(&serfn::codec::encode_value(&1.0f64).unwrap())
                .unwrap();
            let limits = serfn::Limits::default();
            assert_eq!(
                serfn::codec::decode_result::<f64>(&out, &limits).unwrap(),
                1.5
            );
        },
    },
];

fn folder() -> PathBuf {
    let version = serfn::codec::FORMAT_VERSION;
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/golden/v{version}"))
}

#[test]
fn committed_encodings_decode_and_call_with_their_results() {
    if std::env::var_os("SERFN_BLESS").is_some() {
        std::fs::create_dir_all(folder()).unwrap();
        for case in CASES {
            std::fs::write(folder().join(format!("{}.bin", case.name)), (case.make)()).unwrap();
        }
    }
    for case in CASES {
        let path = folder().join(format!("{}.bin", case.name));
        let committed = std::fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        (case.check)(&committed);
    }
}

#[test]
fn todays_encoder_writes_the_committed_bytes() {
    for case in CASES {
        let path = folder().join(format!("{}.bin", case.name));
        let committed = std::fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        assert!(
            (case.make)() == committed,
            "{}: the encoding changed; an incompatible change needs a new format version",
            case.name
        );
    }
}

#[test]
fn every_committed_file_is_a_case() {
    let mut files: Vec<String> = std::fs::read_dir(folder())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    let mut names: Vec<String> = CASES
        .iter()
        .map(|case| format!("{}.bin", case.name))
        .collect();
    names.sort();
    assert_eq!(files, names);
}
