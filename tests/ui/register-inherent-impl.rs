#[derive(serde::Serialize, serde::Deserialize)]
struct Scale {
    factor: f64,
}

#[serfn::register]
impl Scale {
    fn call(&self, x: f64) -> f64 {
        x * self.factor
    }
}

fn main() {}
