#[serfn::function(name = "jobs::scale")]
fn scale(#[capture] factor: &f64, x: f64) -> f64 {
    x * factor
}

#[serfn::function(name = "jobs::scale")]
fn scale_twice(#[capture] factor: &f64, x: f64) -> f64 {
    2.0 * x * factor
}

fn main() {}
