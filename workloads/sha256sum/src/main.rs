//! Prints the hex sha256 of stdin, read in chunks.
use sha2::{Digest, Sha256};
use std::io::Read;

fn main() {
    let mut hasher = Sha256::new();
    let mut buf = [0u8; 64 * 1024];
    let mut stdin = std::io::stdin().lock();
    loop {
        let n = stdin.read(&mut buf).expect("read stdin");
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let digest = hasher.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    println!("{hex}");
}
