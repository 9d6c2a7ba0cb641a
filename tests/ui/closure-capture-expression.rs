// What rustc suggests for a variable moved into two closures.
fn main() {
    let ys = vec![1.0, 2.0];
    let _f: serfn::SerFn<(), f64> = serfn::closure!("sum", [ys.clone(): Vec<f64>], move || -> f64 { ys.iter().sum() });
}
