fn scaled<T: serde::Serialize + serde::de::DeserializeOwned + Clone>(xs: Vec<T>) -> serfn::SerFn<(), Vec<T>> {
    serfn::closure!("scaled", [xs: Vec<T>], move || -> Vec<T> { xs.clone() })
}

fn main() {
    let _ = scaled(vec![1.0]);
}
