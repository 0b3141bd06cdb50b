//! What the suites that run the market as separate processes (the devnet's
//! HTTP server, provider daemons, the buyer's tool, the browser) share.

use candid::Principal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A built binary: this test's executable is in `target/<profile>/deps/`,
/// the binaries one level up.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable lies in target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the binaries with `cargo build -p local-replica -p provider-node -p market` \
         (cargo test --workspace builds them too)",
        path.display()
    );
    path
}

/// The id the devnet gives its `index`-th canister (as a local
/// application subnet numbers them, from `bkyz2-fmaaa-aaaaa-qaaaq-cai`).
pub fn canister_id(index: u8) -> Principal {
    let mut bytes = [1u8; 10];
    bytes[..8].copy_from_slice(&(0x8000_0000_0010_0001u64 + u64::from(index)).to_be_bytes());
    Principal::from_slice(&bytes)
}

/// Waits until `file` has a line containing `needle`; returns that line.
pub fn wait_for_line(file: &Path, needle: &str, timeout: Duration) -> String {
    let end = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains(needle)) {
            return line.to_string();
        }
        assert!(
            Instant::now() < end,
            "no line containing {needle:?} in {} within {timeout:?}; it holds:\n{text}",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
