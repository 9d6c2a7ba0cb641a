#[serfn::function]
async fn fetch(#[capture] url: &String) -> usize {
    url.len()
}

fn main() {
    let _f: serfn::SerFn<(), usize> = fetch("https://example.com".into());
}
