//! Where each provider's stake is held: the registry's ledger account at a
//! subaccount derived from the provider's principal, so anyone can find and
//! audit it.

use market_api::Principal;
use sha2::{Digest, Sha256};

/// Domain tag of stake subaccounts.
const DOMAIN: &[u8] = b"market-registry-stake";

/// The stake subaccount of `provider`: sha256(domain ‖ len ‖ principal bytes).
pub fn stake_subaccount(provider: &Principal) -> [u8; 32] {
    let bytes = provider.as_slice();
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update([bytes.len() as u8]);
    h.update(bytes);
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_providers_get_distinct_subaccounts() {
        let a = Principal::from_slice(&[1, 2, 3]);
        let b = Principal::from_slice(&[1, 2, 3, 0]);
        assert_ne!(stake_subaccount(&a), stake_subaccount(&b));
        assert_eq!(stake_subaccount(&a), stake_subaccount(&a));
    }
}
