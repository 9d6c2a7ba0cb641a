//! Functions registered under explicit names, shared by `examples/roundtrip.rs`
//! and `tests/test_process.rs` so that each binary can decode the other's bytes.

use serde::{Deserialize, Serialize};

/// 1. The capture-struct way: serde derive, an impl, one attribute.
#[derive(Serialize, Deserialize)]
pub struct Scale {
    pub factor: f64,
}

#[serfn::register(name = "examples::Scale")]
impl serfn::Call<f64> for Scale {
    type Output = f64;
    fn call(&self, x: f64) -> f64 {
        x * self.factor
    }
}

/// 2. A plain function whose leading parameters are bound captures.
#[serfn::function(name = "examples::affine")]
pub fn affine(#[capture] slope: &f64, #[capture] intercept: &f64, x: f64) -> f64 {
    slope * x + intercept
}

/// A stateful accumulator: the state after calls travels with it.
#[serfn::function(name = "examples::running_mean")]
pub fn running_mean(#[capture] count: &mut u64, #[capture] sum: &mut f64, x: f64) -> f64 {
    *count += 1;
    *sum += x;
    *sum / *count as f64
}

/// A function that panics, to show how a worker reports it.
#[serfn::function(name = "examples::checked_sqrt")]
pub fn checked_sqrt(x: f64) -> f64 {
    assert!(x >= 0.0, "square root of negative number {x}");
    x.sqrt()
}
