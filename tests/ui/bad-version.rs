#[derive(serde::Serialize, serde::Deserialize)]
struct Scale {
    factor: f64,
}

#[serfn::register(version = 0)]
impl serfn::Call<f64> for Scale {
    type Output = f64;
    fn call(&self, x: f64) -> f64 {
        x * self.factor
    }
}

fn main() {}
