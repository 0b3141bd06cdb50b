//! Hostile: recurses without bound (the base case is never reached).
fn descend(depth: u64, pad: [u64; 8]) -> u64 {
    if depth == u64::MAX {
        return 0;
    }
    let mut next = std::hint::black_box(pad);
    next[0] = depth;
    descend(depth + 1, next).wrapping_add(next[(depth % 8) as usize])
}

fn main() {
    println!("{}", descend(0, [1; 8]));
}
