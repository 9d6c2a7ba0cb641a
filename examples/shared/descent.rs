//! The seed's own job, shared by the examples that run it on a pool and on
//! a Redis fleet: a gradient descent built at run time as a closure over
//! data, run from many starting points.
//!
//! The model is a curve `y = a·sin(b·x) + c` fitted by least squares: its
//! loss has many local minima in `b`, which is why one restarts from many
//! points and keeps the best.

#![allow(dead_code, reason = "each example uses its own part")]

use serde::{Deserialize, Serialize};
use serfn::SerFn;

/// Where one descent ended.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fit {
    pub a: f64,
    pub b: f64,
    pub c: f64,
    pub loss: f64,
}

/// Builds the descent as a serializable closure over the data: the capture
/// (`xs`, `ys`, the step settings) travels to each worker once.
pub fn make_descent(
    xs: Vec<f64>,
    ys: Vec<f64>,
    rate: f64,
    steps: u32,
) -> SerFn<(f64, f64, f64), Fit> {
    serfn::closure!(
        "examples::gradient_descent::descend",
        [xs: Vec<f64>, ys: Vec<f64>, rate: f64, steps: u32],
        move |a: f64, b: f64, c: f64| -> Fit {
            let n = xs.len() as f64;
            let (mut a, mut b, mut c) = (a, b, c);
            let mut loss = f64::INFINITY;
            for _ in 0..*steps {
                let (mut ga, mut gb, mut gc, mut sum) = (0.0, 0.0, 0.0, 0.0);
                for (&x, &y) in xs.iter().zip(ys.iter()) {
                    let (s, co) = (b * x).sin_cos();
                    let r = a * s + c - y;
                    sum += r * r;
                    ga += r * s;
                    gb += r * a * x * co;
                    gc += r;
                }
                loss = sum / n;
                a -= *rate * 2.0 * ga / n;
                b -= *rate * 2.0 * gb / n;
                c -= *rate * 2.0 * gc / n;
            }
            Fit { a, b, c, loss }
        },
        // A fixed name: this module is compiled into several programs (the
        // driver, the workers), whose module paths differ.
        name = "examples::descend"
    )
}

/// Deterministic noisy samples of `2.5·sin(1.7·x) + 0.3` (a small LCG: no
/// dependency, same data on every run).
pub fn samples(n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut noise = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        ((state >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 0.2
    };
    let xs: Vec<f64> = (0..n).map(|i| i as f64 * 6.0 / n as f64).collect();
    let ys = xs
        .iter()
        .map(|x| 2.5 * (1.7 * x).sin() + 0.3 + noise())
        .collect();
    (xs, ys)
}

/// Starting points on a grid over the frequency `b`, where the local minima are.
pub fn starting_points(starts: usize) -> Vec<(f64, f64, f64)> {
    (0..starts)
        .map(|i| (1.0, 0.2 + 3.0 * i as f64 / starts as f64, 0.0))
        .collect()
}

/// The best of the fits, and how many ended in a worse local minimum.
pub fn summary(fits: &[Fit]) -> Option<(Fit, usize)> {
    let best = *fits.iter().min_by(|x, y| x.loss.total_cmp(&y.loss))?;
    let worse = fits.iter().filter(|f| f.loss > 2.0 * best.loss).count();
    Some((best, worse))
}
