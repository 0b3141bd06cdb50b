//! Reads every source of nondeterminism WASI p1 offers a guest (wall clock,
//! monotonic clock, `random_get`, the hash seed of `HashMap`) and prints it.
//! In the sandbox its output must be the same on every run.
use std::collections::HashMap;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

#[link(wasm_import_module = "wasi_snapshot_preview1")]
unsafe extern "C" {
    fn random_get(buf: *mut u8, len: usize) -> u16;
}

fn main() {
    let wall = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970");
    println!("wall {}.{:09}", wall.as_secs(), wall.subsec_nanos());
    let start = Instant::now();
    let mut spins = 0u64;
    while start.elapsed().as_millis() < 5 {
        spins += 1;
    }
    println!("monotonic spins until 5 ms: {spins}");
    let mut bytes = [0u8; 16];
    let errno = unsafe { random_get(bytes.as_mut_ptr(), bytes.len()) };
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    println!("random_get errno {errno} bytes {hex}");
    let map: HashMap<u32, u32> = (0..8).map(|k| (k, k * k)).collect();
    let order: Vec<u32> = map.keys().copied().collect();
    println!("hashmap order {order:?}");
    let mut nan = f64::NAN;
    for k in 0..3 {
        nan = nan * -1.5 + std::hint::black_box(k as f64);
    }
    println!("nan bits {:016x}", nan.to_bits());
}
