//! Property tests: captures of many shapes survive encode/decode exactly,
//! and stateful functions keep their state across any number of hops.

use std::collections::HashMap;

use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use serfn::{codec, SerFn, SerFnMut};

#[derive(Serialize, Deserialize, Clone, Debug)]
enum Choice {
    Unit,
    Newtype(i16),
    Tuple(u8, String),
    Struct { flag: bool, ratio: f32 },
}

#[derive(Serialize, Deserialize, Clone, Debug)]
struct Inner {
    name: String,
    values: Vec<Option<u32>>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
struct Shapes {
    ints: (i8, u16, i32, u64, i128),
    floats: (f32, f64),
    text: String,
    chars: Vec<char>,
    list: Vec<i64>,
    map: HashMap<String, u32>,
    maybe: Option<u64>,
    choices: Vec<Choice>,
    inner: Inner,
    function: Option<SerFn<i64, i64>>,
}

impl serfn::Call<()> for Shapes {
    type Output = Shapes;
    fn call(&self, (): ()) -> Shapes {
        self.clone()
    }
}

serfn::register_instance!(Shapes as Call<()>, name = "proptest::Shapes");

#[derive(Serialize, Deserialize, Clone, Debug)]
struct Offset {
    by: i64,
}

impl serfn::Call<i64> for Offset {
    type Output = i64;
    fn call(&self, x: i64) -> i64 {
        x.wrapping_add(self.by)
    }
}

serfn::register_instance!(Offset as Call<i64>, name = "proptest::Offset");

#[derive(Serialize, Deserialize, Debug)]
struct History {
    seen: Vec<i32>,
    total: i64,
}

impl serfn::CallMut<i32> for History {
    type Output = (usize, i64);
    fn call_mut(&mut self, x: i32) -> (usize, i64) {
        self.seen.push(x);
        self.total += i64::from(x);
        (self.seen.len(), self.total)
    }
}

serfn::register_instance!(History as CallMut<i32>, name = "proptest::History");

fn choice() -> impl Strategy<Value = Choice> {
    prop_oneof![
        Just(Choice::Unit),
        any::<i16>().prop_map(Choice::Newtype),
        (any::<u8>(), ".*").prop_map(|(a, b)| Choice::Tuple(a, b)),
        (any::<bool>(), any::<f32>()).prop_map(|(flag, ratio)| Choice::Struct { flag, ratio }),
    ]
}

prop_compose! {
    fn shapes()(
        ints in any::<(i8, u16, i32, u64, i128)>(),
        floats in any::<(f32, f64)>(),
        text in ".*",
        chars in prop::collection::vec(any::<char>(), 0..8),
        list in prop::collection::vec(any::<i64>(), 0..32),
        map in prop::collection::hash_map(".{0,8}", any::<u32>(), 0..8),
        maybe in any::<Option<u64>>(),
        choices in prop::collection::vec(choice(), 0..6),
        name in ".{0,16}",
        values in prop::collection::vec(any::<Option<u32>>(), 0..8),
        by in any::<Option<i64>>(),
    ) -> Shapes {
        let function = by.map(|by| SerFn::new(Offset { by }));
        Shapes { ints, floats, text, chars, list, map, maybe, choices, inner: Inner { name, values }, function }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn captures_of_every_shape_round_trip(original in shapes(), probe in any::<i64>()) {
        let f = SerFn::new(original.clone());
        let decoded = SerFn::<(), Shapes>::from_bytes(&f.to_bytes().unwrap()).unwrap();
        let back = decoded.call(());
        // Compare encodings: exact to the bit, NaN included.
        let mut expected = original.clone();
        let mut found = back.clone();
        expected.function = None;
        found.function = None;
        // A HashMap's encoding follows its iteration order: compare it by value.
        prop_assert_eq!(&expected.map, &found.map);
        expected.map.clear();
        found.map.clear();
        prop_assert_eq!(codec::encode_value(&expected).unwrap(), codec::encode_value(&found).unwrap());
        prop_assert_eq!(
            original.function.map(|g| g.call(probe)),
            back.function.map(|g| g.call(probe))
        );
    }

    #[test]
    fn state_survives_any_number_of_hops(calls in prop::collection::vec(any::<i32>(), 1..40), hop_every in 1usize..5) {
        let mut local = SerFnMut::new(History { seen: vec![], total: 0 });
        let mut travelling = SerFnMut::new(History { seen: vec![], total: 0 });
        for (index, x) in calls.into_iter().enumerate() {
            if index % hop_every == 0 {
                travelling = SerFnMut::from_bytes(&travelling.to_bytes().unwrap()).unwrap();
            }
            prop_assert_eq!(local.call_mut(x), travelling.call_mut(x));
        }
    }

    #[test]
    fn bound_and_composed_functions_round_trip(by in any::<i64>(), then_by in any::<i64>(), x in any::<i64>()) {
        let f = SerFn::new(Offset { by }).then(SerFn::new(Offset { by: then_by }));
        let g = SerFn::<i64, i64>::from_bytes(&f.to_bytes().unwrap()).unwrap();
        prop_assert_eq!(g.call(x), x.wrapping_add(by).wrapping_add(then_by));
    }

    #[test]
    fn values_round_trip_through_the_codec(value in any::<(u8, i64, String, Vec<u16>, Option<bool>)>()) {
        let bytes = codec::encode_value(&value).unwrap();
        let back: (u8, i64, String, Vec<u16>, Option<bool>) = codec::decode_value(&bytes, &serfn::Limits::default()).unwrap();
        prop_assert_eq!(value, back);
    }
}
