#[derive(serde::Serialize, serde::Deserialize)]
struct Scale {
    factor: f64,
}

trait Apply<A> {
    fn apply(&self, x: A) -> f64;
}

#[serfn::register]
impl Apply<f64> for Scale {
    fn apply(&self, x: f64) -> f64 {
        x * self.factor
    }
}

fn main() {}
