fn main() {
    let log = std::fs::File::open("/dev/null").unwrap();
    let _f: serfn::SerFn<u64, u64> = serfn::closure!("log_len", [log: std::fs::File], move |x: u64| -> u64 {
        let _ = &log;
        x
    });
}
