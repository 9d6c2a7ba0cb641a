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
