fn main() {
    let data = vec![1.0, 2.0];
    let ys: &[f64] = &data;
    let _f: serfn::SerFn<(), f64> = serfn::closure!("sum", [ys: &[f64]], move || -> f64 { ys.iter().sum() });
}
