//! Fixed-size byte keys for the stable maps. Byte order equals the order of
//! the fields they encode, so range scans (by expiry time) work on them.

use candid::Principal;
use icrc_ledger_types::icrc1::account::Account;

/// Longest principal the IC issues, in bytes.
const MAX_PRINCIPAL_LEN: usize = 29;
/// Size of an encoded account: length byte, padded principal, subaccount.
pub const ACCOUNT_KEY_LEN: usize = 1 + MAX_PRINCIPAL_LEN + 32;

/// An account as a map key; `None` and the all-zero subaccount are the same
/// account and give the same key.
pub type AccountKey = [u8; ACCOUNT_KEY_LEN];
/// The pair (owner account, spender account) of an allowance.
pub type ApprovalKey = [u8; 2 * ACCOUNT_KEY_LEN];
/// An allowance's expiry time (big-endian) followed by its approval key.
pub type AllowanceExpiryKey = [u8; 8 + 2 * ACCOUNT_KEY_LEN];
/// The sha256 of a deduplicated transaction's caller, method and arguments.
pub type TxHash = [u8; 32];
/// A transaction's `created_at_time` (big-endian) followed by its hash.
pub type DedupExpiryKey = [u8; 8 + 32];

/// Encodes an account as a fixed-size key.
pub fn account_key(account: &Account) -> AccountKey {
    let mut key = [0u8; ACCOUNT_KEY_LEN];
    let owner = account.owner.as_slice();
    // Principals are at most 29 bytes by construction (`Principal` refuses longer).
    key[0] = owner.len() as u8;
    key[1..1 + owner.len()].copy_from_slice(owner);
    key[1 + MAX_PRINCIPAL_LEN..].copy_from_slice(account.effective_subaccount());
    key
}

/// Decodes a key made by [`account_key`]; the default subaccount comes back as `None`.
pub fn account_from_key(key: &AccountKey) -> Account {
    let len = usize::from(key[0]).min(MAX_PRINCIPAL_LEN);
    let owner = Principal::from_slice(&key[1..1 + len]);
    let mut subaccount = [0u8; 32];
    subaccount.copy_from_slice(&key[1 + MAX_PRINCIPAL_LEN..]);
    Account {
        owner,
        subaccount: (subaccount != [0u8; 32]).then_some(subaccount),
    }
}

/// Key of the allowance `spender` has on `owner`'s account.
pub fn approval_key(owner: &Account, spender: &Account) -> ApprovalKey {
    let mut key = [0u8; 2 * ACCOUNT_KEY_LEN];
    key[..ACCOUNT_KEY_LEN].copy_from_slice(&account_key(owner));
    key[ACCOUNT_KEY_LEN..].copy_from_slice(&account_key(spender));
    key
}

/// `time` big-endian, so that keys sort by time, followed by `id`.
fn time_key<const N: usize>(time: u64, id: &[u8]) -> [u8; N] {
    let mut key = [0u8; N];
    key[..8].copy_from_slice(&time.to_be_bytes());
    key[8..].copy_from_slice(id);
    key
}

/// Splits a [`time_key`] into the time and the id.
fn split_time_key<const N: usize>(key: &[u8]) -> (u64, [u8; N]) {
    let (time, id) = key.split_at(8);
    let time = time.try_into().expect("8 bytes of time");
    (
        u64::from_be_bytes(time),
        id.try_into().expect("the id fills the key"),
    )
}

/// Key of an allowance in the expiry index.
pub fn allowance_expiry_key(expires_at: u64, approval: &ApprovalKey) -> AllowanceExpiryKey {
    time_key(expires_at, approval)
}

/// Splits an allowance expiry key into (expires_at, approval key).
pub fn split_allowance_expiry_key(key: &AllowanceExpiryKey) -> (u64, ApprovalKey) {
    split_time_key(key)
}

/// Key of a dedup entry in the expiry index.
pub fn dedup_expiry_key(created_at_time: u64, hash: &TxHash) -> DedupExpiryKey {
    time_key(created_at_time, hash)
}

/// Splits a dedup expiry key into (created_at_time, hash).
pub fn split_dedup_expiry_key(key: &DedupExpiryKey) -> (u64, TxHash) {
    split_time_key(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_account() -> impl Strategy<Value = Account> {
        (
            proptest::collection::vec(any::<u8>(), 0..=29),
            proptest::option::of(any::<[u8; 32]>()),
        )
            .prop_map(|(owner, subaccount)| Account {
                owner: Principal::from_slice(&owner),
                subaccount,
            })
    }

    proptest! {
        #[test]
        fn account_key_round_trips(account in arb_account()) {
            let back = account_from_key(&account_key(&account));
            prop_assert_eq!(back, account);
            prop_assert_eq!(back.owner, account.owner);
        }

        #[test]
        fn expiry_keys_order_by_time(a in any::<u64>(), b in any::<u64>(), h in any::<[u8; 32]>()) {
            prop_assert_eq!(a.cmp(&b), dedup_expiry_key(a, &h).cmp(&dedup_expiry_key(b, &h)));
            prop_assert_eq!(split_dedup_expiry_key(&dedup_expiry_key(a, &h)), (a, h));
        }
    }

    #[test]
    fn default_subaccount_is_the_same_account() {
        let owner = Principal::from_slice(&[1, 2, 3]);
        let none = Account {
            owner,
            subaccount: None,
        };
        let zero = Account {
            owner,
            subaccount: Some([0; 32]),
        };
        assert_eq!(account_key(&none), account_key(&zero));
    }
}
