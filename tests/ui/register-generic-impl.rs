use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Repeat<T> {
    item: T,
}

#[serfn::register]
impl<T: Clone + Serialize + serde::de::DeserializeOwned + Send + Sync + 'static> serfn::Call<usize> for Repeat<T> {
    type Output = Vec<T>;
    fn call(&self, n: usize) -> Vec<T> {
        vec![self.item.clone(); n]
    }
}

fn main() {}
