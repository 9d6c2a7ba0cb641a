//! What the codec and instruction benches share: the closure over one `f64`
//! and raw bincode's round trip, so both measure the same thing.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The capture struct of a closure `move |x| x * factor`.
#[derive(Serialize, Deserialize, Clone)]
pub struct Scale {
    pub factor: f64,
}

impl serfn::Call<f64> for Scale {
    type Output = f64;
    fn call(&self, x: f64) -> f64 {
        x * self.factor
    }
}

serfn::register_instance!(Scale as Call<f64>, name = "bench::Scale");

/// Raw bincode's encode + decode, the reference for serfn's.
pub fn bincode_round_trip<T: Serialize + DeserializeOwned>(value: &T) -> T {
    let config = bincode::config::standard();
    let bytes = bincode::serde::encode_to_vec(value, config).unwrap();
    bincode::serde::decode_from_slice(&bytes, config).unwrap().0
}
