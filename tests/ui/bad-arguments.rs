#[derive(serde::Serialize, serde::Deserialize)]
struct Scale {
    factor: f64,
}

// Every problem is reported at once.
#[serfn::register(name = "", label = "scale", version = 2, version = 3)]
impl serfn::Call<f64> for Scale {
    type Output = f64;
    fn call(&self, x: f64) -> f64 {
        x * self.factor
    }
}

fn main() {}
