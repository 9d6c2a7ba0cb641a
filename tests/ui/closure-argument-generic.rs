fn identity<T: serde::Serialize + serde::de::DeserializeOwned + 'static>() -> serfn::SerFn<T, T> {
    serfn::closure!("identity", [], move |x: T| -> T { x })
}

fn main() {
    let _ = identity::<u8>();
}
