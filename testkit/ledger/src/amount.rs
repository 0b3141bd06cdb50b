//! Conversions between Candid `nat` and the ledger's internal `u64` amounts.

use candid::Nat;

/// The value of `n` if it fits in a `u64`.
pub fn to_u64(n: &Nat) -> Option<u64> {
    let digits = n.0.to_u64_digits();
    match digits.as_slice() {
        [] => Some(0),
        [d] => Some(*d),
        _ => None,
    }
}

/// `n` as a Candid `nat`.
pub fn nat(n: u64) -> Nat {
    Nat::from(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_at_the_edges() {
        assert_eq!(to_u64(&Nat::from(0u8)), Some(0));
        assert_eq!(to_u64(&Nat::from(u64::MAX)), Some(u64::MAX));
        assert_eq!(to_u64(&(Nat::from(u64::MAX) + 1u8)), None);
    }
}
