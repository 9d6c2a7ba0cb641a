#[serfn::function]
async fn count(#[capture] seen: &mut u32, x: u32) -> u32 {
    *seen += x;
    *seen
}

fn main() {
    let _f: serfn::AsyncSerFn<u32, u32> = count(0);
}
