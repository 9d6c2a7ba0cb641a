use std::rc::Rc;

fn main() {
    let weights = Rc::new(vec![1.0, 2.0]);
    let _f: serfn::SerFn<f64, f64> =
        serfn::closure!("weighted", [weights: Rc<Vec<f64>>], move |x: f64| -> f64 { weights[0] * x });
}
