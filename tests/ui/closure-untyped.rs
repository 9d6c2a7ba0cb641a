fn main() {
    let factor = 2.0;
    let _f: serfn::SerFn<f64, f64> = serfn::closure!("scale", [factor: f64], move |x| x * factor);
}
