//! Hostile: blocks in WASI `poll_oneoff` for `SLEEP_SECS` (default 30) seconds.
fn main() {
    let secs: u64 = std::env::var("SLEEP_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(30);
    println!("sleeping {secs} s");
    std::thread::sleep(std::time::Duration::from_secs(secs));
    println!("woke up");
}
