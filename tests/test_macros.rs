//! `#[serfn::register]`, `#[serfn::function]` and `serfn::closure!`: what
//! they generate, called in process and through an encode/decode round trip.

use serde::{Deserialize, Serialize};
use serfn::{Kind, SerFn, SerFnMut, SerFnOnce};

type Result<T = ()> = std::result::Result<T, serfn::Error>;

fn round_trip<T: Serialize + serde::de::DeserializeOwned>(f: &T) -> Result<T> {
    serfn::from_bytes(&serfn::to_bytes(f)?)
}

// ---- #[serfn::register] ----------------------------------------------------

#[derive(Serialize, Deserialize)]
struct Scale {
    factor: f64,
}

#[serfn::register]
impl serfn::Call<f64> for Scale {
    type Output = f64;
    fn call(&self, x: f64) -> f64 {
        x * self.factor
    }
}

#[derive(Serialize, Deserialize)]
struct Total {
    sum: i64,
}

use serfn::CallMut;

#[serfn::register(name = "test_macros::total", version = 3)]
impl CallMut<i64> for Total {
    type Output = i64;
    fn call_mut(&mut self, x: i64) -> i64 {
        self.sum += x;
        self.sum
    }
}

#[derive(Serialize, Deserialize)]
struct Greeting {
    text: String,
}

#[serfn::register(name = "test_macros::greeting")]
impl serfn::CallOnce<(String, usize)> for Greeting {
    type Output = String;
    fn call_once(self, (name, times): (String, usize)) -> String {
        format!("{} {}", self.text, name).repeat(times)
    }
}

#[derive(Serialize, Deserialize)]
struct Wrapper<T>(T);

#[serfn::register]
impl serfn::Call<()> for Wrapper<u8> {
    type Output = u8;
    fn call(&self, (): ()) -> u8 {
        self.0
    }
}

#[test]
fn register_call() -> Result {
    let f = SerFn::new(Scale { factor: 2.0 });
    assert_eq!(f.call(21.0), 42.0);
    assert_eq!(f.name(), concat!(module_path!(), "::Scale"));
    assert_eq!(f.signature().kind(), Kind::Fn);
    assert_eq!(round_trip(&f)?.call(1.5), 3.0);
    assert_eq!(serfn::registry::get(f.name())?.version(), 1);
    Ok(())
}

#[test]
fn register_call_mut_keeps_state() -> Result {
    let mut f = SerFnMut::new(Total { sum: 0 });
    f.call_mut(40);
    assert_eq!(f.name(), "test_macros::total");
    assert_eq!(f.signature().kind(), Kind::FnMut);
    assert_eq!(serfn::registry::get("test_macros::total")?.version(), 3);
    let mut g: SerFnMut<i64, i64> = round_trip(&f)?;
    assert_eq!(g.call_mut(2), 42);
    Ok(())
}

#[test]
fn register_call_once() -> Result {
    let f = SerFnOnce::new(Greeting { text: "hi".into() });
    assert_eq!(f.signature().kind(), Kind::FnOnce);
    let g: SerFnOnce<(String, usize), String> = round_trip(&f)?;
    assert_eq!(g.call_once(("you".into(), 2)), "hi youhi you");
    Ok(())
}

#[test]
fn register_default_name_of_a_concrete_generic_type() -> Result {
    let f = SerFn::new(Wrapper(7u8));
    assert_eq!(f.name(), concat!(module_path!(), "::Wrapper<u8>"));
    assert_eq!(round_trip(&f)?.call(()), 7);
    Ok(())
}

// ---- #[serfn::function] ----------------------------------------------------

/// `slope * x + intercept`.
#[serfn::function]
pub fn affine(#[capture] slope: &f64, #[capture] intercept: &f64, x: f64) -> f64 {
    slope * x + intercept
}

#[serfn::function(name = "test_macros::counter", version = 2)]
fn count(#[capture] seen: &mut u32, #[capture] step: &u32, n: u32) -> u32 {
    *seen += n * step;
    *seen
}

#[serfn::function]
fn drain(#[capture] items: Vec<String>, #[capture] sep: &String) -> String {
    items.join(sep)
}

/// A by-value capture makes an `FnOnce`; the others keep their own access.
#[serfn::function]
fn tally(
    #[capture] mut items: Vec<u8>,
    #[capture] calls: &mut u32,
    #[capture] tag: &String,
    (a, b): (u8, u8),
) -> String {
    *calls += 1;
    items.push(a + b);
    format!("{tag}{items:?}{calls}")
}

#[serfn::function]
fn answer() -> u64 {
    42
}

#[serfn::function]
fn weighted(#[capture] weights: &(i64, i64), a: i64, b: i64) -> i64 {
    weights.0 * a + weights.1 * b
}

#[serfn::function]
fn sum_pairs(pairs: Vec<(u8, u8)>, (base, extra): (u32, u32)) -> u32 {
    pairs
        .iter()
        .map(|(a, b)| u32::from(*a) + u32::from(*b))
        .sum::<u32>()
        + base
        + extra
}

#[serfn::function]
fn log_nothing(#[capture] _tag: &String) {}

#[test]
fn function_call() -> Result {
    let f: SerFn<f64, f64> = affine(3.0, 1.0);
    assert_eq!(f.call(2.0), 7.0);
    assert_eq!(f.name(), concat!(module_path!(), "::affine"));
    assert_eq!(f.signature().kind(), Kind::Fn);
    assert_eq!(round_trip(&f)?.call(2.0), 7.0);
    // The capture struct is named like the fn.
    let _: fn(f64, f64) -> SerFn<f64, f64> = affine;
    Ok(())
}

#[test]
fn function_call_mut_keeps_state() -> Result {
    let mut f: SerFnMut<u32, u32> = count(0, 10);
    assert_eq!(f.call_mut(1), 10);
    assert_eq!(f.name(), "test_macros::counter");
    assert_eq!(f.signature().kind(), Kind::FnMut);
    assert_eq!(serfn::registry::get("test_macros::counter")?.version(), 2);
    let mut g: SerFnMut<u32, u32> = round_trip(&f)?;
    assert_eq!(g.call_mut(2), 30);
    Ok(())
}

#[test]
fn function_call_once() -> Result {
    let f: SerFnOnce<(), String> = drain(vec!["a".into(), "b".into()], ", ".into());
    assert_eq!(f.signature().kind(), Kind::FnOnce);
    assert_eq!(round_trip(&f)?.call_once(()), "a, b");
    Ok(())
}

#[test]
fn function_once_with_mixed_captures() -> Result {
    let f: SerFnOnce<(u8, u8), String> = tally(vec![1], 0, "t".into());
    assert_eq!(round_trip(&f)?.call_once((2, 3)), "t[1, 5]1");
    Ok(())
}

#[test]
fn function_arguments() -> Result {
    let none: SerFn<(), u64> = answer();
    assert_eq!(round_trip(&none)?.call(()), 42);

    let several: SerFn<(i64, i64), i64> = weighted((2, 3));
    assert_eq!(round_trip(&several)?.call((10, 100)), 320);

    let patterns = sum_pairs();
    assert_eq!(patterns.call((vec![(1, 2), (3, 4)], (100, 1000))), 1110);

    let unit: SerFn<(), ()> = log_nothing("tag".into());
    unit.call(());
    Ok(())
}

// ---- serfn::closure! -------------------------------------------------------

#[test]
fn closure_call() -> Result {
    let factor = 2.0;
    let f: SerFn<f64, f64> =
        serfn::closure!("scale", [factor: f64], move |x: f64| -> f64 { x * factor });
    assert_eq!(f.call(21.0), 42.0);
    assert_eq!(f.name(), concat!(module_path!(), "::scale"));
    assert_eq!(f.signature().kind(), Kind::Fn);
    assert_eq!(round_trip(&f)?.call(0.5), 1.0);
    Ok(())
}

#[test]
fn closure_mut_keeps_state() -> Result {
    let mut g: SerFnMut<u32, u32> =
        serfn::closure!(mut "count", [seen: u32 = 0], move |n: u32| -> u32 { *seen += n; *seen });
    assert_eq!(g.call_mut(2), 2);
    assert_eq!(g.signature().kind(), Kind::FnMut);
    let mut moved: SerFnMut<u32, u32> = round_trip(&g)?;
    assert_eq!(moved.call_mut(3), 5);
    assert_eq!(g.call_mut(1), 3);
    Ok(())
}

#[test]
fn closure_once() -> Result {
    let report = vec![1, 2, 3];
    let h: SerFnOnce<(), Vec<i32>> =
        serfn::closure!(once "report", [report: Vec<i32>], move |(): ()| -> Vec<i32> { report });
    assert_eq!(h.signature().kind(), Kind::FnOnce);
    assert_eq!(round_trip(&h)?.call_once(()), [1, 2, 3]);

    let mut items = vec![3, 1, 2];
    items.push(0);
    let sorted: SerFnOnce<(), Vec<i32>> = serfn::closure!(once "sorted", [mut items: Vec<i32>], move || -> Vec<i32> {
        items.sort();
        items
    });
    assert_eq!(sorted.call_once(()), [0, 1, 2, 3]);
    Ok(())
}

#[test]
fn closure_arguments() -> Result {
    let name = String::from("n");
    let a = 1;
    let k = serfn::closure!("pair", [a: i32, b: String = name.clone()], move |x: i32, y: i32| -> i32 {
        x + y + a + b.len() as i32
    });
    let k: SerFn<(i32, i32), i32> = round_trip(&k)?;
    assert_eq!(k.call((10, 20)), 32);

    let zero: SerFn<(), String> =
        serfn::closure!("zero", [name: String], move || -> String { name.to_uppercase() });
    assert_eq!(round_trip(&zero)?.call(()), "N");

    let unit: SerFn<u8, ()> = serfn::closure!("unit", [], move |_x: u8| -> () {});
    unit.call(1);
    Ok(())
}

#[test]
fn closure_sees_local_items() -> Result {
    use std::collections::BTreeMap;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Length(usize);

    let table = BTreeMap::from([(1, 2)]);
    let f = serfn::closure!("local_items", [table: BTreeMap<u8, u8>], move |x: usize| -> Length {
        Length(x + table.len())
    });
    assert_eq!(round_trip(&f)?.call(1), Length(2));
    Ok(())
}

/// The body's names resolve at the macro's mixed site (so that a missing
/// capture is "cannot find value"): everything a closure body may name must
/// still resolve, and resolve to the same thing.
#[test]
fn closure_body_names_resolve_as_in_a_closure() -> Result {
    const OFFSET: i32 = 100;
    macro_rules! twice {
        ($e:expr) => {
            2 * $e
        };
    }
    let base = 1;
    let text = String::from("t");
    let f = serfn::closure!("body_names", [base: i32, text: String], move |(a, b): (i32, i32)| -> String {
        // The body's own bindings, a label, a local closure and a macro.
        let sum = a + b + base;
        let mut steps = 0;
        'outer: loop {
            steps += 1;
            if steps != 1 && !(steps < 2) {
                break 'outer;
            }
        }
        let add = |x: i32| x + OFFSET;
        // `format!` captures `sum` and `text` through its literal.
        format!("{text}:{sum}:{}:{steps}", twice!(add(sum)))
    });
    assert_eq!(round_trip(&f)?.call((2, 3)), "t:6:212:2");

    // A closure inside a body captures the outer closure's capture.
    let outer = serfn::closure!("outer", [base: i32], move |x: i32| -> i32 {
        let inner: SerFn<i32, i32> = serfn::closure!("inner", [k: i32 = *base], move |y: i32| -> i32 { y * k });
        inner.call(x)
    });
    assert_eq!(round_trip(&outer)?.call(7), 7);
    Ok(())
}

#[test]
fn closure_options() -> Result {
    let f: SerFn<u8, u8> = serfn::closure!(
        "options",
        [],
        move |x: u8| -> u8 { x + 1 },
        name = "test_macros::closure_options",
        version = 4,
    );
    assert_eq!(f.name(), "test_macros::closure_options");
    assert_eq!(serfn::registry::get(f.name())?.version(), 4);
    assert_eq!(round_trip(&f)?.call(1), 2);
    Ok(())
}

#[test]
fn labels_that_are_not_identifiers() -> Result {
    let f: SerFn<u8, u8> = serfn::closure!("add one / v2", [], move |x: u8| -> u8 { x + 1 });
    assert_eq!(f.name(), concat!(module_path!(), "::add one / v2"));
    assert_eq!(round_trip(&f)?.call(1), 2);
    Ok(())
}

// ---- crate = path ----------------------------------------------------------

/// A crate that re-exports serfn, as `crate::reexport::inner`.
mod reexport {
    pub use serfn as inner;
}

mod renamed {
    use super::reexport::inner;
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    pub struct Double;

    #[inner::register(crate = crate::reexport::inner)]
    impl inner::Call<i32> for Double {
        type Output = i32;
        fn call(&self, x: i32) -> i32 {
            2 * x
        }
    }

    #[inner::function(crate = crate::reexport::inner, name = "test_macros::renamed::add")]
    pub fn add(#[capture] n: &i32, x: i32) -> i32 {
        n + x
    }

    pub fn triple() -> inner::SerFn<i32, i32> {
        inner::closure!(
            "triple",
            [],
            move |x: i32| -> i32 { 3 * x },
            crate = crate::reexport::inner
        )
    }
}

#[test]
fn crate_override() -> Result {
    let f = SerFn::new(renamed::Double);
    assert_eq!(f.name(), concat!(module_path!(), "::renamed::Double"));
    assert_eq!(round_trip(&f)?.call(4), 8);
    assert_eq!(round_trip(&renamed::add(1))?.call(4), 5);
    assert_eq!(round_trip(&renamed::triple())?.call(4), 12);
    Ok(())
}

#[test]
fn registry_has_no_duplicates() -> Result {
    serfn::registry::check()
}

// ---- single-letter type aliases ---------------------------------------------

/// A point, named as a generic parameter would be: a type alias is a
/// concrete type, so the macro accepts it in captures, arguments and the
/// return type.
type P = (f64, f64);

#[test]
fn closure_takes_a_single_letter_type_alias() -> Result {
    let g: SerFn<P, P> = serfn::closure!("alias_grad", [], move |p: P| -> P {
        (2.0 * p.0, 2.0 * p.1)
    });
    let step: SerFn<P, P> = serfn::closure!("alias_step", [grad: SerFn<P, P> = g, lr: f64 = 0.5], move |p: P| -> P {
        let (gx, gy) = grad.call(p);
        (p.0 - lr * gx, p.1 - lr * gy)
    });
    assert_eq!(step.call((1.0, 2.0)), (0.0, 0.0));
    assert_eq!(round_trip(&step)?.call((4.0, -2.0)), (0.0, 0.0));
    Ok(())
}
