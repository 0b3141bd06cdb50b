//! The cross-canister test suite: module checks, bad input, the
//! conservation audit and the randomized chaos tests live under `tests/`.
//! What they share with the other crates' tests (where the built modules
//! are, the `.did` check) is in the `market-artifacts` crate.

/// `n` with thousands separators: 1234567 as "1,234,567", for the
/// benchmarks' tables.
pub fn thousands(n: u128) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn thousands_puts_a_comma_every_three_digits() {
        assert_eq!(super::thousands(0), "0");
        assert_eq!(super::thousands(999), "999");
        assert_eq!(super::thousands(1_000), "1,000");
        assert_eq!(super::thousands(1_234_567), "1,234,567");
    }
}
