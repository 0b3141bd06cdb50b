//! Hostile: tries to reach the host: files, directories, sockets and the
//! host environment. Prints what each attempt returned and exits 0; in the
//! sandbox every attempt must fail.
use std::net::{TcpListener, TcpStream, UdpSocket};

#[link(wasm_import_module = "wasi_snapshot_preview1")]
unsafe extern "C" {
    fn sock_accept(fd: u32, flags: u16, result_fd: *mut u32) -> u16;
}

fn report<T, E: std::fmt::Display>(what: &str, result: Result<T, E>) {
    match result {
        Ok(_) => println!("{what}: ALLOWED"),
        Err(e) => println!("{what}: denied ({e})"),
    }
}

fn main() {
    report("open /etc/passwd", std::fs::read("/etc/passwd"));
    report("open ./secret", std::fs::read("secret"));
    report("create /tmp/owned", std::fs::write("/tmp/owned", b"x"));
    report("read_dir /", std::fs::read_dir("/"));
    report("tcp connect", TcpStream::connect("127.0.0.1:22"));
    report("tcp listen", TcpListener::bind("0.0.0.0:8080"));
    report("udp bind", UdpSocket::bind("0.0.0.0:0"));
    for fd in 0..16u32 {
        let mut new_fd = 0u32;
        let errno = unsafe { sock_accept(fd, 0, &mut new_fd) };
        if errno == 0 {
            println!("sock_accept fd {fd}: ALLOWED");
        }
    }
    println!("sock_accept on fds 0..16: denied");
    let host_vars: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
    if host_vars.is_empty() {
        println!("environment: empty");
    } else {
        println!("environment: {host_vars:?}");
    }
}
