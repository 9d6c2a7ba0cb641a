fn main() {
    let _f = serfn::closure!(mut "count", [seen: u32 = 0], async move |x: u32| -> u32 {
        *seen += x;
        *seen
    });
}
