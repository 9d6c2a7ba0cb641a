struct Connection {
    port: u16,
}

fn main() {
    let conn = Connection { port: 80 };
    let _f: serfn::SerFn<u16, bool> =
        serfn::closure!("same_port", [conn: Connection], move |port: u16| -> bool { conn.port == port });
}
