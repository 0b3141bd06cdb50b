//! Hostile: recurses without bound (the base case is never reached). The
//! frames hold only scalars, so they live on the wasm stack, not in the
//! shadow stack in linear memory.
#[inline(never)]
fn descend(depth: u64) -> u64 {
    if depth == u64::MAX {
        return 0;
    }
    let below = descend(depth + 1);
    below.rotate_left((depth % 63) as u32) ^ depth
}

fn main() {
    let start = std::env::args().count() as u64;
    println!("{}", descend(start));
}
