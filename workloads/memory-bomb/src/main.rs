//! Hostile: allocates and touches memory without bound.
fn main() {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut block = vec![0u8; 1 << 20];
        block[0] = hoard.len() as u8;
        hoard.push(block);
        std::hint::black_box(&hoard);
    }
}
