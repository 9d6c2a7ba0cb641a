#[serfn::function]
fn affine(#[capture] slope: &f64, x: f64, #[capture] intercept: &f64) -> f64 {
    slope * x + intercept
}

fn main() {
    // The constructor still exists, so its uses add no errors of their own.
    let f: serfn::SerFn<f64, f64> = affine(3.0, 1.0);
    f.call(2.0);
}
