#[serfn::function]
fn total(#[capture] base: &u64, items: impl IntoIterator<Item = u64>) -> u64 {
    base + items.into_iter().sum::<u64>()
}

fn main() {}
