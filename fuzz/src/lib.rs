//! What the fuzz targets share: functions registered in every definition
//! style, the samples the seed corpora are made from, and the oracle.
//!
//! A panic in a registered function here is the function's own: serfn must
//! catch it and report it as that function's panic. Any other panic is a
//! bug, and [`install_panic_hook`] makes it abort, even where serfn would
//! catch it (libFuzzer only sees aborts).

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serfn::codec::{self, FORMAT_VERSION};
use serfn::{DynFn, Kind, Limits, SerFn, SerFnMut, SerFnOnce};

thread_local! {
    static IN_USER: Cell<u32> = const { Cell::new(0) };
}

/// Runs `body` as user code: a panic inside it is the user function's.
pub fn user<T>(body: impl FnOnce() -> T) -> T {
    struct Leave;
    impl Drop for Leave {
        fn drop(&mut self) {
            IN_USER.with(|depth| depth.set(depth.get() - 1));
        }
    }
    IN_USER.with(|depth| depth.set(depth.get() + 1));
    let _leave = Leave;
    body()
}

/// Keeps the fuzzer's abort-on-panic hook for every panic but those of user
/// code. Call it first in each target: libFuzzer installs its hook before.
pub fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let fuzzer_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_USER.with(Cell::get) == 0 {
                fuzzer_hook(info);
            }
        }));
    });
}

// ---- The functions, one of each definition style.

/// `#[serfn::register]`; panics on 13, so that panics cross too.
#[derive(Serialize, Deserialize)]
pub struct Scale {
    factor: i64,
    label: String,
}

#[serfn::register(name = "fuzz::Scale")]
impl serfn::Call<i64> for Scale {
    type Output = i64;
    fn call(&self, x: i64) -> i64 {
        user(|| {
            assert!(x != 13, "{}: unlucky {x}", self.label);
            x.wrapping_mul(self.factor)
        })
    }
}

/// `#[serfn::function]`.
#[serfn::function(name = "fuzz::affine")]
pub fn affine(#[capture] slope: &i64, #[capture] intercept: &i64, x: i64) -> i64 {
    user(|| slope.wrapping_mul(x).wrapping_add(*intercept))
}

/// `serfn::closure!`.
pub fn shift(offset: i64) -> SerFn<i64, i64> {
    serfn::closure!("fuzz::shift", [offset: i64], move |x: i64| -> i64 {
        user(|| x.wrapping_add(*offset))
    })
}

/// Two arguments, for `bind`.
pub fn weighted() -> SerFn<(i64, i64), i64> {
    serfn::closure!("fuzz::weighted", [], move |weight: i64, x: i64| -> i64 {
        user(|| weight.wrapping_mul(x))
    })
}

/// A capture holding a function. Calls it once: nested twice-calls would
/// cost 2^depth.
#[derive(Serialize, Deserialize)]
pub struct Around {
    inner: SerFn<i64, i64>,
    after: i64,
}

#[serfn::register(name = "fuzz::Around")]
impl serfn::Call<i64> for Around {
    type Output = i64;
    fn call(&self, x: i64) -> i64 {
        let y = self.inner.call(x);
        user(|| y.wrapping_add(self.after))
    }
}

/// Many serde shapes in one capture, for the capture decoder and the guard.
#[derive(Serialize, Deserialize)]
pub enum Mode {
    Plain,
    Scaled(i64),
    Clamped { low: i64, high: i64 },
}

/// See [`Mode`].
#[derive(Serialize, Deserialize)]
pub struct Lookup {
    table: BTreeMap<String, i64>,
    mode: Mode,
    limit: Option<u32>,
    tags: Vec<(u8, char, bool)>,
    nested: Vec<Vec<Option<f32>>>,
    unit: (),
}

#[serfn::register(name = "fuzz::Lookup")]
impl serfn::Call<String> for Lookup {
    type Output = i64;
    fn call(&self, key: String) -> i64 {
        user(|| {
            let value = self
                .table
                .get(&key)
                .copied()
                .unwrap_or(self.tags.len() as i64);
            let value = match self.mode {
                Mode::Plain => value,
                Mode::Scaled(k) => value.wrapping_mul(k),
                Mode::Clamped { low, high } => value.max(low).min(high),
            };
            value.min(i64::from(self.limit.unwrap_or(u32::MAX)))
        })
    }
}

/// `closure!(mut ...)`: a `SerFnMut`.
pub fn running_total() -> SerFnMut<i64, i64> {
    serfn::closure!(mut "fuzz::running_total", [sum: i64 = 0], move |x: i64| -> i64 {
        user(|| {
            *sum = sum.wrapping_add(x);
            *sum
        })
    })
}

/// `closure!(once ...)`: a `SerFnOnce`.
pub fn report(items: Vec<i32>) -> SerFnOnce<(), Vec<i32>> {
    serfn::closure!(once "fuzz::report", [items: Vec<i32>], move |(): ()| -> Vec<i32> { user(|| items) })
}

/// Names that the re-encoding of a decoded function may carry: each must be in the input too.
pub fn known_names() -> Vec<&'static str> {
    serfn::registry::functions()
        .into_iter()
        .map(|registration| registration.name())
        .collect()
}

// ---- Samples: what the seeds are made of.

/// One function, encoded, with arguments of its type and its typed oracle.
pub struct Sample {
    /// A file name for its seeds.
    pub label: &'static str,
    /// Its envelope.
    pub envelope: Vec<u8>,
    /// Encodings of arguments of its type.
    pub args: Vec<Vec<u8>>,
    /// Whether it is an `Fn` (batches), `FnMut` or `FnOnce`.
    pub kind: Kind,
    /// Which output type `parent_answers` should read its answers as.
    pub output: u8,
    /// Checks a bytes-in call against the typed call on raw argument bytes.
    pub check_args: Box<dyn Fn(&[u8])>,
}

fn enc<T: Serialize>(value: &T) -> Vec<u8> {
    codec::encode_value(value).expect("encodes")
}

/// Every sample, in a fixed order (`call_args` picks by index).
pub fn samples() -> Vec<Sample> {
    let scale = SerFn::new(Scale {
        factor: 3,
        label: "scale".into(),
    });
    let lookup = SerFn::new(Lookup {
        table: BTreeMap::from([("a".into(), 5), ("bb".into(), -7)]),
        mode: Mode::Clamped { low: -3, high: 4 },
        limit: Some(9),
        tags: vec![(1, 'x', true)],
        nested: vec![vec![Some(1.5), None], vec![]],
        unit: (),
    });
    let ints = vec![0i64, 1, -5, 13, i64::MAX];
    vec![
        sample_fn("scale", scale.clone(), ints.clone(), 0),
        sample_fn("affine", affine(2, 1), ints.clone(), 0),
        sample_fn("shift", shift(10), ints.clone(), 0),
        sample_fn(
            "pipeline",
            scale.clone().then(affine(2, 1)).then(shift(-4)),
            ints.clone(),
            0,
        ),
        sample_fn("bind", weighted().bind(6), vec![4i64, 13], 0),
        sample_fn(
            "around",
            SerFn::new(Around {
                inner: shift(1).then(scale),
                after: 2,
            }),
            ints.clone(),
            0,
        ),
        sample_fn("lookup", lookup, vec!["a".into(), "zz".into()], 0),
        sample_mut("running_total", running_total(), ints),
        sample_once("report", report(vec![1, -2, 3])),
    ]
}

/// The outcome of a typed call, as a bytes call's output reads: a panic as its message.
fn typed_outcome<R>(call: impl FnOnce() -> serfn::Result<R>) -> Result<R, String> {
    match catch_unwind(AssertUnwindSafe(call)) {
        Ok(result) => result.map_err(|error| error.to_string()),
        Err(payload) => Err(panic_text(&*payload)),
    }
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

/// What a bytes call's output reads as: a panic as its message.
fn bytes_outcome<R: DeserializeOwned>(output: serfn::Result<Vec<u8>>) -> Result<R, String> {
    let output = output.map_err(|error| error.to_string())?;
    match codec::decode_result::<R>(&output, &Limits::default()) {
        Ok(value) => Ok(value),
        Err(serfn::Error::Panicked { message, .. }) => Err(message),
        Err(error) => panic!("a call's own output does not decode: {error}"),
    }
}

/// The `call_args` oracle: the bytes call decodes the arguments exactly
/// when the typed decoder does, and then answers as the typed call.
fn compare<A, R>(
    bytes: &[u8],
    typed: impl FnOnce(A) -> Result<R, String>,
    by_bytes: serfn::Result<Vec<u8>>,
) where
    A: DeserializeOwned,
    R: DeserializeOwned + PartialEq + Debug,
{
    match codec::decode_value::<A>(bytes, &Limits::default()) {
        Ok(args) => {
            let by_bytes = bytes_outcome::<R>(by_bytes);
            assert_eq!(by_bytes, typed(args));
        }
        Err(error) => {
            let refused =
                by_bytes.expect_err("bytes call took arguments the typed decoder refuses");
            assert_eq!(refused.to_string(), error.to_string());
        }
    }
}

fn sample_fn<A, R>(label: &'static str, f: SerFn<A, R>, args: Vec<A>, output: u8) -> Sample
where
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + PartialEq + Debug + 'static,
{
    let envelope = f.to_bytes().expect("encodes");
    let dynamic = f.clone().into_dyn();
    Sample {
        label,
        envelope,
        args: args.iter().map(enc).collect(),
        kind: Kind::Fn,
        output,
        check_args: Box::new(move |bytes| {
            compare::<A, R>(
                bytes,
                |args| typed_outcome(|| f.try_call(args)),
                dynamic.call_bytes(bytes),
            );
        }),
    }
}

fn sample_mut(label: &'static str, f: SerFnMut<i64, i64>, args: Vec<i64>) -> Sample {
    let envelope = f.to_bytes().expect("encodes");
    Sample {
        label,
        envelope,
        args: args.iter().map(enc).collect(),
        kind: Kind::FnMut,
        output: 0,
        check_args: Box::new(move |bytes| {
            let mut typed = f.clone();
            let mut dynamic = f.clone().into_dyn();
            let by_bytes = dynamic.call_bytes_mut(bytes);
            compare::<i64, i64>(
                bytes,
                |args| typed_outcome(|| typed.try_call_mut(args)),
                by_bytes,
            );
            // Both calls leave the same state.
            if codec::decode_value::<i64>(bytes, &Limits::default()).is_ok() {
                assert_eq!(typed.to_bytes().ok(), dynamic.to_bytes().ok());
            }
        }),
    }
}

fn sample_once(label: &'static str, f: SerFnOnce<(), Vec<i32>>) -> Sample {
    let envelope = f.to_bytes().expect("encodes");
    Sample {
        label,
        envelope,
        args: vec![enc(&())],
        kind: Kind::FnOnce,
        output: 1,
        check_args: Box::new(move |bytes| {
            let by_bytes = f.clone().into_dyn().call_bytes_once(bytes);
            let typed = f.clone();
            compare::<(), Vec<i32>>(
                bytes,
                |args| typed_outcome(|| typed.try_call_once(args)),
                by_bytes,
            );
        }),
    }
}

// ---- The decode oracle.

/// Seals `body` as an envelope with a correct checksum, so that mutations
/// reach the decoders behind it.
pub fn seal(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(FORMAT_VERSION);
    out.extend_from_slice(body);
    let checksum = crc32fast::hash(&out);
    out.extend_from_slice(&checksum.to_le_bytes());
    out
}

/// The fixed arguments every decoded function is called on: one of each
/// argument type above, and bytes of no type.
fn fixed_args() -> Vec<Vec<u8>> {
    vec![
        enc(&7i64),
        enc(&13i64),
        enc(&(4i64,)),
        enc(&"a"),
        enc(&()),
        vec![0xff; 3],
    ]
}

/// One call's answer: its output bytes (a panic encoded in them), or its error.
type Answer = Result<Vec<u8>, String>;

fn answers(f: &DynFn) -> Vec<Answer> {
    fixed_args()
        .iter()
        .map(|args| {
            let answer = match f.signature().kind() {
                Kind::Fn => f.call_bytes(args),
                Kind::FnMut => {
                    let mut f = f.clone();
                    f.call_bytes_mut(args).and_then(|out| {
                        // The state left is part of the answer.
                        let mut state = f.to_bytes()?;
                        state.extend_from_slice(&out);
                        Ok(state)
                    })
                }
                Kind::FnOnce => f.clone().call_bytes_once(args),
                // Its future needs a runtime the fuzzer does not have: what
                // decodes is checked, not what it answers.
                Kind::Async => Ok(Vec::new()),
            };
            answer.map_err(|error| error.to_string())
        })
        .collect()
}

/// Checks a function decoded from `input`: it names only what `input`
/// names, and its re-encoding decodes to a function that re-encodes the
/// same and answers the fixed arguments the same.
pub fn check_decoded(input: &[u8], f: &DynFn) {
    let again = f.to_bytes().expect("a decoded function re-encodes");
    for name in known_names() {
        if contains(&again, name.as_bytes()) {
            assert!(
                contains(input, name.as_bytes()),
                "decoded `{}` holds `{name}`, which the input does not name",
                f.name()
            );
        }
    }
    assert!(contains(input, f.name().as_bytes()));
    let g = DynFn::from_bytes(&again).expect("a decoded function's encoding decodes");
    assert_eq!(g.name(), f.name());
    assert_eq!(g.signature().to_string(), f.signature().to_string());
    assert_eq!(
        g.to_bytes().expect("re-encodes"),
        again,
        "encoding is stable"
    );
    assert_eq!(answers(&g), answers(f));
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// Checks a typed handle decoded from `input`: as [`check_decoded`], the
/// untyped decoding agrees, and a typed call answers as the bytes call.
fn check_typed<A, R>(input: &[u8], f: DynFn, typed: impl FnOnce(A) -> Result<R, String>, arg: A)
where
    A: Serialize,
    R: DeserializeOwned + PartialEq + Debug,
{
    let untyped = DynFn::from_bytes(input).expect("what a typed handle takes, DynFn takes");
    assert_eq!(untyped.name(), f.name());
    check_decoded(input, &f);
    let by_bytes = match f.signature().kind() {
        Kind::Fn => f.call_bytes(&enc(&arg)),
        Kind::FnMut => f.clone().call_bytes_mut(&enc(&arg)),
        Kind::FnOnce => f.clone().call_bytes_once(&enc(&arg)),
        Kind::Async => unreachable!("a typed `SerFn`, `SerFnMut` or `SerFnOnce` is never async"),
    };
    assert_eq!(bytes_outcome::<R>(by_bytes), typed(arg));
}

/// Every handle type's `from_bytes` on `input`, with the oracle on what decodes.
pub fn decode_everything(input: &[u8]) {
    if let Ok(f) = DynFn::from_bytes(input) {
        check_decoded(input, &f);
    }
    macro_rules! each {
        ($($a:ty => $r:ty, $arg:expr;)*) => {$(
            if let Ok(f) = SerFn::<$a, $r>::from_bytes(input) {
                let typed = f.clone();
                check_typed(input, f.into_dyn(), |a| typed_outcome(|| typed.try_call(a)), $arg);
            }
            if let Ok(f) = SerFnMut::<$a, $r>::from_bytes(input) {
                let mut typed = f.clone();
                check_typed(input, f.into_dyn(), |a| typed_outcome(|| typed.try_call_mut(a)), $arg);
            }
            if let Ok(f) = SerFnOnce::<$a, $r>::from_bytes(input) {
                let typed = f.clone();
                check_typed(input, f.into_dyn(), |a| typed_outcome(|| typed.try_call_once(a)), $arg);
            }
        )*};
    }
    each! {
        i64 => i64, 7;
        (i64,) => i64, (4,);
        String => i64, "a".to_owned();
        () => Vec<i32>, ();
    }
}
