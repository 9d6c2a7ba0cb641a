//! The typed handles, composition and the registry, on hand-written impls
//! registered with `register_instance!` (the macros have their own tests).

use serde::{Deserialize, Serialize};
use serfn::{DynFn, Error, Kind, SerFn, SerFnMut, SerFnOnce};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Scale {
    factor: f64,
}

impl serfn::Call<f64> for Scale {
    type Output = f64;
    fn call(&self, x: f64) -> f64 {
        x * self.factor
    }
}

serfn::register_instance!(Scale as Call<f64>, name = "test_handles::Scale");

#[derive(Serialize, Deserialize)]
struct Weighted {
    weights: Vec<i64>,
}

impl serfn::Call<(i64, i64)> for Weighted {
    type Output = i64;
    fn call(&self, (a, b): (i64, i64)) -> i64 {
        self.weights[0] * a + self.weights[1] * b
    }
}

serfn::register_instance!(Weighted as Call<(i64, i64)>);

#[derive(Serialize, Deserialize, Debug)]
struct Total {
    sum: i64,
}

impl serfn::CallMut<i64> for Total {
    type Output = i64;
    fn call_mut(&mut self, x: i64) -> i64 {
        self.sum += x;
        self.sum
    }
}

serfn::register_instance!(Total as CallMut<i64>);

#[derive(Serialize, Deserialize)]
struct Take {
    items: Vec<String>,
}

impl serfn::CallOnce<usize> for Take {
    type Output = Vec<String>;
    fn call_once(mut self, n: usize) -> Vec<String> {
        self.items.truncate(n);
        self.items
    }
}

serfn::register_instance!(Take as CallOnce<usize>, version = 3);

#[derive(Serialize, Deserialize)]
struct Add {
    n: i64,
}

impl serfn::Call<i64> for Add {
    type Output = i64;
    fn call(&self, x: i64) -> i64 {
        x + self.n
    }
}

serfn::register_instance!(Add as Call<i64>);

#[derive(Serialize, Deserialize)]
struct Explode;

impl serfn::Call<u8> for Explode {
    type Output = u8;
    fn call(&self, x: u8) -> u8 {
        panic!("exploded on {x}")
    }
}

serfn::register_instance!(Explode as Call<u8>);

fn round_trip<T: Serialize + serde::de::DeserializeOwned>(value: &T) -> T {
    serfn::from_bytes(&serfn::to_bytes(value).unwrap()).unwrap()
}

#[test]
fn serfn_round_trips_and_calls() {
    let f = SerFn::new(Scale { factor: 3.0 });
    assert_eq!(f.call(2.0), 6.0);
    let g: SerFn<f64, f64> = round_trip(&f);
    assert_eq!(g.call(2.5), 7.5);
    assert_eq!(g.name(), "test_handles::Scale");
    assert_eq!(
        format!("{g:?}"),
        "SerFn(\"test_handles::Scale\", Fn(f64) -> f64)"
    );
}

#[test]
fn tuple_arguments() {
    let f = SerFn::new(Weighted {
        weights: vec![2, 10],
    });
    let g: SerFn<(i64, i64), i64> = round_trip(&f);
    assert_eq!(g.call((3, 4)), 46);
    assert_eq!(g.name(), concat!(module_path!(), "::Weighted"));
}

#[test]
fn serfn_mut_state_survives_encoding_between_calls() {
    let mut f = SerFnMut::new(Total { sum: 0 });
    assert_eq!(f.call_mut(5), 5);
    let mut g: SerFnMut<i64, i64> = round_trip(&f);
    assert_eq!(g.call_mut(6), 11);
    let mut h: SerFnMut<i64, i64> = round_trip(&g);
    assert_eq!(h.call_mut(-1), 10);
    // The original is untouched by what its copies did.
    assert_eq!(f.call_mut(1), 6);
}

#[test]
fn serfn_mut_clone_is_deep() {
    let mut f = SerFnMut::new(Total { sum: 10 });
    let mut g = f.clone();
    assert_eq!(g.call_mut(1), 11);
    assert_eq!(f.call_mut(2), 12);
}

#[test]
fn serfn_once_is_consumed_and_versioned() {
    let items = vec!["a".to_string(), "b".into(), "c".into()];
    let f = SerFnOnce::new(Take { items });
    let g: SerFnOnce<usize, Vec<String>> = round_trip(&f);
    assert_eq!(g.call_once(2), vec!["a".to_string(), "b".into()]);
    assert_eq!(serfn::registry::get(f.name()).unwrap().version(), 3);
    assert_eq!(f.clone().call_once(1), vec!["a".to_string()]);
}

#[test]
fn kinds_widen_but_never_narrow() {
    let f = SerFn::new(Scale { factor: 2.0 });
    let bytes = f.to_bytes().unwrap();
    let mut as_mut = SerFnMut::<f64, f64>::from_bytes(&bytes).unwrap();
    assert_eq!(as_mut.call_mut(1.0), 2.0);
    assert_eq!(
        SerFnOnce::<f64, f64>::from_bytes(&bytes)
            .unwrap()
            .call_once(4.0),
        8.0
    );
    assert_eq!(SerFnOnce::from(f.clone()).call_once(1.5), 3.0);

    let total = SerFnMut::new(Total { sum: 0 }).to_bytes().unwrap();
    match SerFn::<i64, i64>::from_bytes(&total) {
        Err(Error::SignatureMismatch {
            name,
            expected,
            found,
        }) => {
            assert!(name.ends_with("::Total"), "{name}");
            assert_eq!(expected, "Fn(i64) -> i64");
            assert_eq!(found, "FnMut(i64) -> i64");
        }
        other => panic!("{other:?}"),
    }
    assert!(SerFnMut::<i64, i64>::from_bytes(&total).is_ok());
}

#[test]
fn wrong_types_are_refused_before_decoding_the_capture() {
    let bytes = SerFn::new(Scale { factor: 2.0 }).to_bytes().unwrap();
    match SerFn::<f32, f64>::from_bytes(&bytes) {
        Err(Error::SignatureMismatch {
            expected, found, ..
        }) => {
            assert_eq!(expected, "Fn(f32) -> f64");
            assert_eq!(found, "Fn(f64) -> f64");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        SerFn::<f64, String>::from_bytes(&bytes),
        Err(Error::SignatureMismatch { .. })
    ));
}

#[test]
fn then_composes_and_round_trips() {
    let double = SerFn::new(Scale { factor: 2.0 });
    let tenfold = SerFn::new(Scale { factor: 10.0 });
    let f = double.clone().then(tenfold).then(double);
    assert_eq!(f.call(1.0), 40.0);
    assert_eq!(f.name(), "serfn::then");
    let g: SerFn<f64, f64> = round_trip(&f);
    assert_eq!(g.call(0.5), 20.0);
}

#[test]
fn then_mixes_kinds_and_keeps_state() {
    let mut f = SerFnMut::new(Total { sum: 0 }).then(SerFn::new(Add { n: 100 }));
    assert_eq!(f.signature().kind(), Kind::FnMut);
    assert_eq!(f.call_mut(1), 101);
    let mut g: SerFnMut<i64, i64> = round_trip(&f);
    assert_eq!(g.call_mut(1), 102);
    assert!(SerFn::<i64, i64>::from_bytes(&g.to_bytes().unwrap()).is_err());
}

#[test]
fn bind_fixes_leading_arguments() {
    // A pair bound once takes its second element alone, as a closure of one
    // argument does: no `(x,)` to write.
    let f = SerFn::new(Weighted {
        weights: vec![2, 10],
    });
    let g: SerFn<i64, i64> = f.bind(3);
    assert_eq!(g.call(4), 46);
    let h: SerFn<i64, i64> = round_trip(&g);
    assert_eq!(h.call(5), 56);
    assert_eq!(h.signature().args().name(), "i64");

    // Three or more: the rest stays a tuple, down to a pair.
    let sum3: SerFn<(i64, i64, i64), i64> =
        serfn::closure!("handles::sum3", [], move |a: i64, b: i64, c: i64| -> i64 {
            100 * a + 10 * b + c
        });
    let rest: SerFn<(i64, i64), i64> = round_trip(&sum3.bind(1));
    let last: SerFn<i64, i64> = round_trip(&rest.bind(2));
    assert_eq!(last.call(3), 123);
    assert_eq!(last.signature().args().name(), "i64");

    // One argument, as a 1-tuple: nothing left.
    let one: SerFn<(i64,), i64> =
        serfn::closure!("handles::one", [], move |a: (i64,)| -> i64 { a.0 + 1 });
    let k: SerFn<(), i64> = round_trip(&one.bind(41));
    assert_eq!(k.call(()), 42);
    assert_eq!(k.signature().args().name(), "()");
}

/// The second of two arguments is not split further, even when it is a
/// tuple: binding into it is refused, not mis-signed.
#[test]
fn bind_does_not_split_the_second_of_two_arguments() {
    let nested: SerFn<(i64, (i64, i64)), i64> =
        serfn::closure!("handles::nested", [], move |a: i64,
                                                     bc: (i64, i64)|
              -> i64 {
            a + bc.0 * bc.1
        });
    let pair: SerFn<(i64, i64), i64> = nested.bind(1);
    assert_eq!(pair.call((2, 3)), 7);
    match pair.try_bind(2) {
        Err(serfn::Error::SignatureMismatch { name, expected, .. }) => {
            assert_eq!(name, "serfn::bind");
            assert!(expected.contains("never split"), "{expected}");
        }
        other => panic!("{:?}", other.map(|f| f.signature())),
    }
}

/// Encodes as a sequence whose length is not known in advance, which the
/// format refuses.
#[derive(Debug, Deserialize)]
struct Unsized(Vec<u8>);

impl Serialize for Unsized {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().filter(|_| true))
    }
}

fn first_len() -> SerFn<(Unsized, u8), usize> {
    serfn::closure!("handles::first_len", [], move |a: Unsized,
                                                    _b: u8|
          -> usize { a.0.len() })
}

#[test]
fn try_bind_returns_what_bind_panics_on() {
    assert!(matches!(
        first_len().try_bind(Unsized(vec![1])),
        Err(Error::Encode { .. })
    ));
    let panic = std::panic::catch_unwind(|| first_len().bind(Unsized(vec![1]))).unwrap_err();
    let message = panic.downcast_ref::<String>().unwrap();
    assert!(
        message.starts_with("cannot bind the first argument of serfn function `")
            && message.contains("first_len`: cannot encode: "),
        "{message}"
    );
}

#[test]
fn a_long_then_chain_is_flat() {
    let step = SerFn::new(Scale { factor: 1.0 });
    let mut chain = step.clone();
    for _ in 1..10_000 {
        chain = chain.then(step.clone());
    }
    let bytes = chain.to_bytes().unwrap();
    let decoded = SerFn::<f64, f64>::from_bytes(&bytes).unwrap();
    assert_eq!(decoded.call(7.0), 7.0);
    assert_eq!(
        decoded
            .into_dyn()
            .call_bytes(&serfn::codec::encode_value(&2.0f64).unwrap())
            .map(|out| serfn::codec::decode_result::<f64>(&out, &serfn::Limits::default()).unwrap())
            .unwrap(),
        2.0
    );
}

#[test]
fn dyn_fn_calls_through_bytes_and_reports_panics() {
    let limits = serfn::Limits::default();
    let f = DynFn::from_bytes(&SerFn::new(Scale { factor: 4.0 }).to_bytes().unwrap()).unwrap();
    let out = f
        .call_bytes(&serfn::codec::encode_value(&2.0f64).unwrap())
        .unwrap();
    assert_eq!(
        serfn::codec::decode_result::<f64>(&out, &limits).unwrap(),
        8.0
    );

    let boom = SerFn::new(Explode).into_dyn();
    let out = boom
        .call_bytes(&serfn::codec::encode_value(&7u8).unwrap())
        .unwrap();
    match serfn::codec::decode_result::<u8>(&out, &limits) {
        Err(Error::Panicked { name, message, .. }) => {
            assert!(name.ends_with("::Explode"));
            assert_eq!(message, "exploded on 7");
        }
        other => panic!("{other:?}"),
    }
    // The function is still usable after a panic.
    assert!(boom
        .call_bytes(&serfn::codec::encode_value(&1u8).unwrap())
        .is_ok());
}

#[test]
fn dyn_fn_mut_returns_updated_state() {
    let mut f = SerFnMut::new(Total { sum: 1 }).into_dyn();
    for x in [1i64, 2, 3] {
        f.call_bytes_mut(&serfn::codec::encode_value(&x).unwrap())
            .unwrap();
    }
    let mut back: SerFnMut<i64, i64> = SerFnMut::from_bytes(&f.to_bytes().unwrap()).unwrap();
    assert_eq!(back.call_mut(0), 7);
    assert!(matches!(
        f.call_bytes(&[0]),
        Err(Error::SignatureMismatch { .. })
    ));
    let typed = SerFnMut::<i64, i64>::try_from(f).unwrap();
    assert!(SerFnMut::<i64, u8>::try_from(typed.into_dyn()).is_err());
}

#[test]
fn registry_lists_functions_with_signatures() {
    let all = serfn::registry::functions();
    let scale = all
        .iter()
        .find(|r| r.name() == "test_handles::Scale")
        .unwrap();
    assert_eq!(scale.signature().unwrap().to_string(), "Fn(f64) -> f64");
    assert!(scale.location().contains("test_handles.rs"));
    assert!(all
        .iter()
        .any(|r| r.name() == "serfn::then" && r.signature().is_none()));
    serfn::registry::check().unwrap();
    assert!(matches!(
        serfn::registry::get("no::such::fn"),
        Err(Error::UnknownFunction { .. })
    ));
}
