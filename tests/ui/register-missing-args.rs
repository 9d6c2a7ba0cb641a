#[derive(serde::Serialize, serde::Deserialize)]
struct Answer;

#[serfn::register]
impl serfn::Call for Answer {
    type Output = u32;
    fn call(&self, (): ()) -> u32 {
        42
    }
}

fn main() {}
