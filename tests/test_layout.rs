//! Structural layouts: what a capture's fingerprint covers, and what it does not.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serfn::{Error, SerFn};

fn layout(name: &str) -> Result<String, String> {
    let registration = serfn::registry::get(name).unwrap();
    let layout = registration.layout().expect("a registered capture");
    layout
        .description()
        .map(str::to_owned)
        .map_err(str::to_owned)
}

mod one {
    #[derive(serde::Serialize, serde::Deserialize)]
    pub struct Scale {
        pub factor: f64,
    }

    #[serfn::register(name = "layout::one")]
    impl serfn::Call<f64> for Scale {
        type Output = f64;
        fn call(&self, x: f64) -> f64 {
            x * self.factor
        }
    }
}

mod elsewhere {
    /// The same data model under another Rust name, in another module.
    #[derive(serde::Serialize, serde::Deserialize)]
    pub struct Renamed {
        pub factor: f64,
    }

    #[serfn::register(name = "layout::renamed")]
    impl serfn::Call<f64> for Renamed {
        type Output = f64;
        fn call(&self, x: f64) -> f64 {
            x * self.factor
        }
    }
}

#[test]
fn layouts_describe_the_data_model_not_rust_names() {
    assert_eq!(layout("layout::one").unwrap(), "{6:factor:f64}");
    assert_eq!(layout("layout::one"), layout("layout::renamed"));
    let fingerprint = |name| {
        serfn::registry::get(name)
            .unwrap()
            .layout()
            .unwrap()
            .fingerprint()
    };
    assert_eq!(fingerprint("layout::one"), fingerprint("layout::renamed"));
}

#[derive(Serialize, Deserialize)]
enum Activation {
    Relu,
    Leaky(f32),
    Clamp { low: f64, high: f64 },
}

#[derive(Serialize, Deserialize)]
enum List {
    Nil,
    Cons(u8, Box<List>),
}

#[derive(Serialize, Deserialize)]
struct Everything {
    activation: Activation,
    list: List,
    table: BTreeMap<String, Vec<Option<(u16, char)>>>,
    fixed: [i8; 3],
    bytes: Vec<u8>,
    unit: (),
    inner: SerFn<f64, f64>,
}

#[serfn::register(name = "layout::everything")]
impl serfn::Call<()> for Everything {
    type Output = usize;
    fn call(&self, (): ()) -> usize {
        self.table.len()
    }
}

#[test]
fn every_shape_is_described_and_nested_functions_by_signature() {
    let description = layout("layout::everything").unwrap();
    for part in [
        "10:activation:enum{0=4:Relu:unit,1=5:Leaky:newtype<f32>,2=5:Clamp:{3:low:f64,4:high:f64}}",
        "4:list:enum{0=3:Nil:unit,1=4:Cons:tuple(u8,^1)}",
        "5:table:map<str,seq<opt<(u16,char)>>>",
        "5:fixed:[i8;3]",
        "5:bytes:seq<u8>",
        "4:unit:()",
        "5:inner:serfn::Fnnewtype<[f64;2]>",
    ] {
        assert!(description.contains(part), "{part} not in {description}");
    }
    let registration = serfn::registry::get("layout::everything").unwrap();
    assert!(registration.layout().unwrap().partial_enums().is_empty());
}

#[derive(Serialize, Deserialize)]
enum BadList {
    Cons(u8, Box<BadList>),
    Nil,
}

#[derive(Serialize, Deserialize)]
struct Untraceable {
    list: BadList,
    count: std::num::NonZeroU32,
}

#[serfn::register(name = "layout::untraceable")]
impl serfn::Call<()> for Untraceable {
    type Output = u32;
    fn call(&self, (): ()) -> u32 {
        self.count.get()
    }
}

#[test]
fn untraceable_captures_say_why_and_still_round_trip() {
    let reason = layout("layout::untraceable").unwrap_err();
    assert!(reason.contains("recursive enum"), "{reason}");
    let f = SerFn::new(Untraceable {
        list: BadList::Cons(1, Box::new(BadList::Nil)),
        count: std::num::NonZeroU32::new(7).unwrap(),
    });
    let g: SerFn<(), u32> = serfn::from_bytes(&serfn::to_bytes(&f).unwrap()).unwrap();
    assert_eq!(g.call(()), 7);
}

#[test]
fn signatures_are_structural() {
    #[derive(Serialize, Deserialize)]
    struct Point {
        x: f64,
        y: f64,
    }
    #[derive(Serialize, Deserialize)]
    struct Other {
        x: f64,
        y: f64,
    }
    #[derive(Serialize, Deserialize)]
    struct Swapped {
        y: f64,
        x: f64,
    }
    let fingerprint = |s: serfn::Signature| s.fingerprint();
    let point = serfn::Signature::of::<Point, f64>(serfn::Kind::Fn);
    assert_eq!(
        fingerprint(point),
        fingerprint(serfn::Signature::of::<Other, f64>(serfn::Kind::Fn))
    );
    assert_ne!(
        fingerprint(point),
        fingerprint(serfn::Signature::of::<Swapped, f64>(serfn::Kind::Fn))
    );
    assert_ne!(
        fingerprint(point),
        fingerprint(serfn::Signature::of::<Point, f64>(serfn::Kind::FnMut))
    );
    assert_ne!(
        fingerprint(point),
        fingerprint(serfn::Signature::of::<(f64, f64), f64>(serfn::Kind::Fn))
    );
}

#[test]
fn a_decoded_function_inside_a_capture_keeps_its_checks() {
    let inner = serfn::closure!("layout::inner", [k: f64 = 2.0], move |x: f64| -> f64 { x * k });
    let f = SerFn::new(Everything {
        activation: Activation::Leaky(0.1),
        list: List::Cons(1, Box::new(List::Nil)),
        table: BTreeMap::from([("a".into(), vec![Some((1, 'x')), None])]),
        fixed: [1, 2, 3],
        bytes: vec![9],
        unit: (),
        inner: inner.clone(),
    });
    let g: SerFn<(), usize> = serfn::from_bytes(&serfn::to_bytes(&f).unwrap()).unwrap();
    assert_eq!(g.call(()), 1);
    assert!(matches!(
        serfn::from_bytes::<SerFn<(), u8>>(&serfn::to_bytes(&f).unwrap()),
        Err(Error::SignatureMismatch { .. })
    ));
}

// ---- a layout change without a version bump is always refused -----------

mod support;

use proptest::prelude::*;

/// A capture whose layout is its field's.
#[derive(Serialize, Deserialize)]
struct Cap<T> {
    value: T,
}

/// Made from a seed, weighed as an `f64`: one capture type per layout.
trait Sample: Serialize + serde::de::DeserializeOwned + Send + Sync + 'static {
    fn sample(seed: u64) -> Self;
    fn weigh(&self) -> f64;
}

impl<T: Sample> serfn::Call<f64> for Cap<T> {
    type Output = f64;
    fn call(&self, x: f64) -> f64 {
        x * self.value.weigh()
    }
}

/// `Cap` under another Rust name, registered at version 2.
#[derive(Serialize, Deserialize)]
struct Bumped<T> {
    value: T,
}

impl<T: Sample> serfn::Call<f64> for Bumped<T> {
    type Output = f64;
    fn call(&self, x: f64) -> f64 {
        x * self.value.weigh()
    }
}

#[derive(Serialize, Deserialize)]
struct Named {
    factor: f64,
}

#[derive(Serialize, Deserialize)]
struct FieldRenamed {
    scale: f64,
}

#[derive(Serialize, Deserialize)]
struct Ordered {
    a: f32,
    b: f32,
}

#[derive(Serialize, Deserialize)]
struct Swapped {
    b: f32,
    a: f32,
}

#[derive(Serialize, Deserialize)]
enum Either {
    Weight(f64),
    Nothing,
}

#[derive(Serialize, Deserialize)]
enum VariantsSwapped {
    Nothing,
    Weight(f64),
}

macro_rules! samples {
    ($($ty:ty => |$seed:ident| $make:expr, |$v:ident| $weigh:expr;)*) => {$(
        impl Sample for $ty {
            fn sample($seed: u64) -> Self {
                $make
            }
            fn weigh(&self) -> f64 {
                let $v = self;
                $weigh
            }
        }
    )*};
}

samples! {
    f64 => |s| (s % 1000) as f64 / 8.0, |v| *v;
    (f32, f32) => |s| ((s % 100) as f32, (s % 7) as f32), |v| f64::from(v.0 + v.1);
    u64 => |s| s, |v| (*v % 1000) as f64;
    i64 => |s| s as i64, |v| (*v % 1000) as f64;
    [u8; 8] => |s| s.to_le_bytes(), |v| f64::from(v[0]);
    String => |s| (s % 100_000).to_string(), |v| v.len() as f64;
    Vec<f64> => |s| vec![(s % 10) as f64; (s % 5) as usize], |v| v.iter().sum();
    Option<f64> => |s| (s % 2 == 0).then_some((s % 10) as f64), |v| v.unwrap_or(0.5);
    Named => |s| Named { factor: (s % 10) as f64 }, |v| v.factor;
    FieldRenamed => |s| FieldRenamed { scale: (s % 10) as f64 }, |v| v.scale;
    Ordered => |s| Ordered { a: (s % 10) as f32, b: 1.0 }, |v| f64::from(v.a - v.b);
    Swapped => |s| Swapped { b: (s % 10) as f32, a: 1.0 }, |v| f64::from(v.a - v.b);
    Either => |s| if s % 3 == 0 { Either::Nothing } else { Either::Weight((s % 10) as f64) },
        |v| match v { Either::Weight(w) => *w, Either::Nothing => -1.0 };
    VariantsSwapped => |s| if s % 3 == 0 { VariantsSwapped::Nothing } else { VariantsSwapped::Weight((s % 10) as f64) },
        |v| match v { VariantsSwapped::Weight(w) => *w, VariantsSwapped::Nothing => -1.0 };
}

/// Each layout, registered at version 1 as `prop::L<i>` and at version 2
/// as `prop::V<i>`: names of one length, so that renaming keeps offsets.
macro_rules! layouts {
    ($($i:literal: $ty:ty;)*) => {
        $(
            serfn::register_instance!(Cap<$ty> as Call<f64>, name = concat!("prop::L", $i));
            serfn::register_instance!(Bumped<$ty> as Call<f64>, name = concat!("prop::V", $i), version = 2);
        )*
        /// The encoding of layout `i`'s capture made from `seed`, and its weight.
        fn encoded(i: usize, seed: u64) -> (Vec<u8>, f64) {
            let mut at = 0;
            $(
                if at == i {
                    let value = <$ty as Sample>::sample(seed);
                    let weight = value.weigh();
                    return (SerFn::new(Cap { value }).to_bytes().unwrap(), weight);
                }
                at += 1;
            )*
            unreachable!("{at} layouts")
        }
    };
}

layouts! {
    "00": f64;
    "01": (f32, f32);
    "02": u64;
    "03": i64;
    "04": [u8; 8];
    "05": String;
    "06": Vec<f64>;
    "07": Option<f64>;
    "08": Named;
    "09": FieldRenamed;
    "10": Ordered;
    "11": Swapped;
    "12": Either;
    "13": VariantsSwapped;
}

const LAYOUTS: usize = 14;

/// `bytes` with the function renamed to `to` (same length), resealed.
fn renamed(bytes: &[u8], to: &str) -> Vec<u8> {
    let mut wire = support::Wire::parse(bytes);
    assert_eq!(wire.header.0.len(), to.len());
    wire.header.0 = to.to_owned();
    wire.seal()
}

#[test]
fn all_layouts_differ() {
    let mut seen = std::collections::HashSet::new();
    for i in 0..LAYOUTS {
        let registration = serfn::registry::get(&format!("prop::L{i:02}")).unwrap();
        let layout = registration.layout().unwrap();
        assert!(layout.description().is_ok(), "{i}: {layout:?}");
        assert!(seen.insert(layout.fingerprint()), "{i}: {layout:?}");
    }
}

proptest! {
    #[test]
    fn a_layout_change_is_never_decoded(i in 0..LAYOUTS, j in 0..LAYOUTS, seed: u64) {
        let (bytes, weight) = encoded(i, seed);
        let same: SerFn<f64, f64> = serfn::from_bytes(&bytes).unwrap();
        prop_assert_eq!(same.call(2.0), 2.0 * weight);

        let other = format!("prop::L{j:02}");
        match serfn::from_bytes::<SerFn<f64, f64>>(&renamed(&bytes, &other)) {
            Ok(f) if i == j => prop_assert_eq!(f.call(2.0), 2.0 * weight),
            Err(Error::LayoutChanged { name, version: 1 }) if i != j => prop_assert_eq!(name, other),
            other => prop_assert!(false, "{} as {}: {:?}", i, j, other.map(|f| f.call(2.0))),
        }

        let bumped = format!("prop::V{j:02}");
        match serfn::from_bytes::<SerFn<f64, f64>>(&renamed(&bytes, &bumped)) {
            Err(Error::VersionMismatch { name, registered: 2, found: 1 }) => prop_assert_eq!(name, bumped),
            other => prop_assert!(false, "{} as {}: {:?}", i, bumped, other.map(|f| f.call(2.0))),
        }
    }
}
