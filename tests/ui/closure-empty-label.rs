fn main() {
    let _f: serfn::SerFn<u8, u8> = serfn::closure!("", [], move |x: u8| -> u8 { x });
}
