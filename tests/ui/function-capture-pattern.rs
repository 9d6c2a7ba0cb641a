#[serfn::function]
fn affine(#[capture] (slope, intercept): &(f64, f64), x: f64) -> f64 {
    slope * x + intercept
}

fn main() {}
