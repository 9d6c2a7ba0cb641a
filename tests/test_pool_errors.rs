//! Errors raised inside real worker processes reach the caller as the same
//! `Error` variant with the same fields: a name registered twice, a name the
//! worker lacks, another signature or version of a name, inputs past the
//! worker's limits, values that refuse to be decoded or encoded there.

serfn::test_support!();

mod support;

use std::path::PathBuf;
use std::process::Command;

use serde::de::{self, Deserializer};
use serde::ser::{self, Serializer};
use serde::{Deserialize, Serialize};
use serfn::{Error, Kind, Limits, Pool, Signature};

fn pool() -> Pool {
    Pool::builder().workers(1).build().expect("pool starts")
}

/// Registered twice under one name: no binary can tell which one is meant.
#[serfn::function(name = "errors::twice")]
fn twice_a(x: u32) -> u32 {
    x
}

/// In another module, as two crates might do (the macro refuses a name
/// repeated within one module).
mod elsewhere {
    #[serfn::function(name = "errors::twice")]
    pub fn twice_b(x: u32) -> u32 {
        x + 1
    }
}

/// Only this test binary registers it, not `examples/worker`.
#[serfn::function(name = "errors::only_here")]
fn only_here(x: u32) -> u32 {
    x
}

/// `examples/worker` registers this name as `Fn(f64) -> f64`.
#[serfn::function(name = "examples::checked_sqrt")]
fn sqrt_f32(x: f32) -> f32 {
    x.sqrt()
}

/// `examples/worker` registers this name at version 1.
#[serfn::function(name = "examples::affine", version = 2)]
fn affine_v2(#[capture] slope: &f64, #[capture] intercept: &f64, x: f64) -> f64 {
    slope * x + intercept
}

/// Nests one level per link.
#[derive(Serialize, Deserialize)]
struct Nest(Option<Box<Nest>>);

fn nest(depth: usize) -> Nest {
    (0..depth).fold(Nest(None), |inner, _| Nest(Some(Box::new(inner))))
}

#[serfn::function(name = "errors::depth")]
fn depth(nest: Nest) -> u32 {
    let (mut at, mut depth) = (&nest, 0);
    while let Nest(Some(inner)) = at {
        (at, depth) = (inner, depth + 1);
    }
    depth
}

#[serfn::function(name = "errors::len")]
fn len(bytes: Vec<u8>) -> u64 {
    bytes.len() as u64
}

/// Encodes, but a worker cannot decode it.
#[derive(Serialize)]
struct Undecodable;

impl<'de> Deserialize<'de> for Undecodable {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(de::Error::custom("Undecodable refuses to be decoded"))
    }
}

#[serfn::function(name = "errors::undecodable")]
fn take_undecodable(_value: Undecodable) -> u32 {
    0
}

/// What a worker returns, but cannot encode.
#[derive(Debug, Deserialize)]
struct Unencodable;

impl Serialize for Unencodable {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(ser::Error::custom("Unencodable refuses to be encoded"))
    }
}

#[serfn::function(name = "errors::unencodable")]
fn make_unencodable(_x: u32) -> Unencodable {
    Unencodable
}

/// The dedicated worker program, brought up to date (`cargo test` alone
/// builds examples, but not `cargo test --test test_pool_errors`).
fn worker_program() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--example", "worker"])
        .args(support::format_flags())
        .status()
        .unwrap();
    assert!(status.success());
    let dir = std::env::current_exe().unwrap();
    dir.parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join("worker")
}

fn program_pool() -> Pool {
    Pool::builder()
        .workers(1)
        .program(worker_program())
        .build()
        .expect("pool starts")
}

/// A boxed source's message names the worker it came from, once.
fn assert_from_worker(pool: &Pool, message: &str) {
    let pid = pool.worker_pids()[0];
    assert_eq!(message.matches("in worker process").count(), 1, "{message}");
    assert!(
        message.ends_with(&format!("(in worker process {pid})")),
        "{message}"
    );
}

#[test]
fn a_name_registered_twice_is_duplicate_function_for_every_item() {
    // The worker is this binary, so its error equals the one raised here.
    let Err(Error::DuplicateFunction {
        name: local_name,
        locations: local_locations,
    }) = serfn::registry::get("errors::twice")
    else {
        panic!("errors::twice is registered twice");
    };
    assert_eq!(local_locations.matches("test_pool_errors.rs:").count(), 2);
    let pool = pool();
    for f in [twice_a(), elsewhere::twice_b()] {
        match pool.call(&f, 1) {
            Err(Error::DuplicateFunction { name, locations }) => {
                assert_eq!(name, local_name);
                assert_eq!(locations, local_locations);
            }
            other => panic!("{other:?}"),
        }
    }
    let mapped: Vec<serfn::Result<u32>> = pool.map(&twice_a(), 0..10).collect();
    assert_eq!(mapped.len(), 10);
    for result in mapped {
        assert!(
            matches!(
                &result,
                Err(Error::DuplicateFunction { name, locations })
                    if *name == local_name && *locations == local_locations
            ),
            "{result:?}"
        );
    }
    assert_eq!(pool.stats().restarts, 0);
}

#[test]
fn a_worker_program_reports_unknown_names_and_other_signatures_and_versions() {
    let pool = program_pool();
    match pool.call(&only_here(), 1) {
        Err(Error::UnknownFunction { name }) => assert_eq!(name, "errors::only_here"),
        other => panic!("{other:?}"),
    }
    match pool.call(&sqrt_f32(), 4.0) {
        Err(Error::SignatureMismatch {
            name,
            expected,
            found,
        }) => {
            assert_eq!(name, "examples::checked_sqrt");
            // What the worker registers; the bytes carry only a fingerprint.
            assert_eq!(expected, Signature::of::<f64, f64>(Kind::Fn).to_string());
            assert!(found.contains("fingerprint"), "{found}");
        }
        other => panic!("{other:?}"),
    }
    match pool.call(&affine_v2(2.0, 1.0), 3.0) {
        Err(Error::VersionMismatch {
            name,
            registered,
            found,
        }) => {
            assert_eq!(name, "examples::affine");
            assert_eq!((registered, found), (1, 2));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(pool.stats().restarts, 0);
}

#[test]
fn inputs_past_the_workers_limits_are_too_deep_and_too_large() {
    let limits = Limits::default().max_depth(16).max_bytes(4096);
    let pool = Pool::builder()
        .workers(1)
        .limits(limits)
        .build()
        .expect("pool starts");
    // Within the limits, the same functions run.
    assert_eq!(pool.call(&depth(), nest(4)).unwrap(), 4);
    assert_eq!(pool.call(&len(), vec![7; 100]).unwrap(), 100);

    match pool.call(&depth(), nest(64)) {
        Err(Error::TooDeep { limit }) => assert_eq!(limit, 16),
        other => panic!("{other:?}"),
    }
    match pool.call(&len(), vec![7; 4500]) {
        Err(Error::TooLarge { len, limit }) => {
            assert_eq!(limit, 4096);
            assert!(len > 4096, "{len}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(pool.stats().restarts, 0);
}

#[test]
fn what_a_worker_cannot_decode_or_encode_is_decode_or_encode() {
    let pool = pool();
    match pool.call(&take_undecodable(), Undecodable) {
        Err(error @ Error::Decode { .. }) => {
            let message = error.to_string();
            // postcard drops a `Deserialize` impl's own message (see
            // src/codec/format/postcard.rs); it keeps its own kind of error.
            let expected = if cfg!(feature = "postcard") {
                "Serde Deserialization Error"
            } else {
                "Undecodable refuses to be decoded"
            };
            assert!(message.contains(expected), "{message}");
            assert_from_worker(&pool, &message);
        }
        other => panic!("{other:?}"),
    }
    match pool.call(&make_unencodable(), 1) {
        Err(error @ Error::Encode { .. }) => {
            let message = error.to_string();
            assert!(
                message.contains("Unencodable refuses to be encoded"),
                "{message}"
            );
            assert_from_worker(&pool, &message);
        }
        other => panic!("{other:?}"),
    }
    // Every item of a failed chunk gets the error, still said once.
    let mapped: Vec<serfn::Result<Unencodable>> = pool.map(&make_unencodable(), 0..5).collect();
    for result in mapped {
        match result {
            Err(error @ Error::Encode { .. }) => assert_from_worker(&pool, &error.to_string()),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(pool.stats().restarts, 0);
}
