//! The one `MemoryManager` of the ledger and the `MemoryId` of every stable
//! structure. Ids are never reused: a retired structure keeps its id forever.

use ic_stable_structures::DefaultMemoryImpl;
use ic_stable_structures::memory_manager::{MemoryId, MemoryManager, VirtualMemory};

/// A region of stable memory handed out by the memory manager.
pub type Memory = VirtualMemory<DefaultMemoryImpl>;

/// `StableCell<ConfigCell>`: token name, symbol, decimals, fee, minting account.
pub const CONFIG: MemoryId = MemoryId::new(0);
/// `StableCell<u64>`: the total supply (sum of all balances).
pub const TOTAL_SUPPLY: MemoryId = MemoryId::new(1);
/// `StableBTreeMap<AccountKey, u64>`: balances; zero balances are not stored.
pub const BALANCES: MemoryId = MemoryId::new(2);
/// `StableBTreeMap<ApprovalKey, StoredAllowance>`: allowances by (owner, spender).
pub const ALLOWANCES: MemoryId = MemoryId::new(3);
/// `StableBTreeMap<AllowanceExpiryKey, ()>`: allowances by expiry time, for pruning.
pub const ALLOWANCE_EXPIRIES: MemoryId = MemoryId::new(4);
/// `StableBTreeMap<TxHash, u64>`: block index of each deduplicated transaction.
pub const DEDUP: MemoryId = MemoryId::new(5);
/// `StableBTreeMap<DedupExpiryKey, ()>`: dedup entries by `created_at_time`, for pruning.
pub const DEDUP_EXPIRIES: MemoryId = MemoryId::new(6);
/// `StableLog<Block>` index memory.
pub const BLOCKS_INDEX: MemoryId = MemoryId::new(7);
/// `StableLog<Block>` data memory.
pub const BLOCKS_DATA: MemoryId = MemoryId::new(8);

/// Pages per bucket of the canister's memory manager (the crate's default:
/// each structure grows in 8 MiB steps).
pub const BUCKET_PAGES: u16 = 128;

/// Creates the memory manager over `memory` (stable memory on the IC, a
/// vector in native tests); existing contents are kept, which is what makes
/// upgrades free of serialisation. `bucket_pages` only matters for a fresh
/// memory: an existing one keeps the bucket size it was created with.
pub fn manager(memory: DefaultMemoryImpl, bucket_pages: u16) -> MemoryManager<DefaultMemoryImpl> {
    MemoryManager::init_with_bucket_size(memory, bucket_pages)
}

/// Stores a Candid type in a stable structure as its Candid encoding, of
/// unbounded size; `$what` names it in the messages of the bugs that a
/// failed encoding or decoding would be.
macro_rules! candid_storable {
    ($type:ty, $what:literal) => {
        impl ic_stable_structures::Storable for $type {
            fn to_bytes(&self) -> std::borrow::Cow<'_, [u8]> {
                let bytes = candid::encode_one(self);
                std::borrow::Cow::Owned(bytes.expect(concat!("bug: ", $what, " does not encode")))
            }

            fn into_bytes(self) -> Vec<u8> {
                candid::encode_one(&self).expect(concat!("bug: ", $what, " does not encode"))
            }

            fn from_bytes(bytes: std::borrow::Cow<[u8]>) -> Self {
                candid::decode_one(bytes.as_ref()).expect(concat!(
                    "bug: stored ",
                    $what,
                    " does not decode"
                ))
            }

            const BOUND: ic_stable_structures::storable::Bound =
                ic_stable_structures::storable::Bound::Unbounded;
        }
    };
}
pub(crate) use candid_storable;
