use std::net::TcpStream;

#[serfn::function]
fn send(#[capture] stream: &TcpStream, bytes: Vec<u8>) -> usize {
    let _ = stream;
    bytes.len()
}

fn main() {}
