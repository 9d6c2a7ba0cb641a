struct Scale {
    factor: f64,
}

impl Scale {
    #[serfn::function]
    fn scale(&self, x: f64) -> f64 {
        x * self.factor
    }
}

fn main() {}
