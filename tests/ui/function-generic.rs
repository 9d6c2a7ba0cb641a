#[serfn::function]
fn first<T: Clone>(#[capture] items: &Vec<T>) -> T {
    items[0].clone()
}

fn main() {}
