//! Hostile: writes to stdout forever, ignoring write errors.
use std::io::Write;

fn main() {
    let line = [b'x'; 4096];
    let mut out = std::io::stdout().lock();
    loop {
        let _ = out.write_all(&line);
    }
}
