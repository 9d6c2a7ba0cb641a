struct Job {
    factor: f64,
}

impl Job {
    fn scaler(&self) -> serfn::SerFn<f64, f64> {
        serfn::closure!("scale", [], move |x: f64| -> f64 { x * self.factor })
    }
}

fn main() {}
