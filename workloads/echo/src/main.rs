//! Copies stdin to stdout. With `ECHO_EXIT=N` in the environment it then
//! exits with code N; each argument is written to stderr on its own line.
use std::io::{Read, Write};

fn main() {
    let mut input = Vec::new();
    std::io::stdin().read_to_end(&mut input).expect("read stdin");
    std::io::stdout().write_all(&input).expect("write stdout");
    for arg in std::env::args().skip(1) {
        eprintln!("{arg}");
    }
    if let Ok(code) = std::env::var("ECHO_EXIT") {
        std::process::exit(code.parse().unwrap_or(1));
    }
}
