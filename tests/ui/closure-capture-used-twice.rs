fn main() {
    let ys = vec![1.0, 2.0];
    let _sum: serfn::SerFn<(), f64> = serfn::closure!("sum", [ys: Vec<f64>], move || -> f64 { ys.iter().sum() });
    let _max: serfn::SerFn<(), f64> =
        serfn::closure!("max", [ys: Vec<f64>], move || -> f64 { ys.iter().copied().fold(f64::MIN, f64::max) });
}
