//! ic-cdk entry points: each reads the caller, calls the archive's logic
//! and returns its answer.

use canister_common::block_archive::BlockArchive;
use canister_common::memory::{self, Memory};
use market_api::StandardRecord;
use market_api::blocks::{
    AppendBlocksArgs, AppendBlocksError, ArchiveInit, ArchiveStatus, GetBlocksRequest,
    GetBlocksResult, SupportedBlockType,
};
use std::cell::RefCell;

canister_common::memory_ids! {
    /// The blocks, by index.
    BLOCKS = 3;
}

thread_local! {
    static ARCHIVE: RefCell<BlockArchive<Memory>> =
        RefCell::new(BlockArchive::open(memory::get(BLOCKS), memory::get(memory::CONFIG)));
}

/// Names the owner and the capacity. An upgrade needs no hook: the blocks
/// and the bookkeeping are in stable memory.
#[ic_cdk::init]
fn init(arg: ArchiveInit) {
    ARCHIVE.with(|a| a.borrow_mut().install(&arg));
}

/// Stores consecutive blocks of the owner's chain from `start`; blocks
/// already held are a no-op if equal. Returns one past the last block
/// held. Only the owner may call it.
#[ic_cdk::update]
fn append_blocks(args: AppendBlocksArgs) -> Result<u64, AppendBlocksError> {
    let caller = ic_cdk::api::msg_caller();
    ARCHIVE.with(|a| a.borrow_mut().append(caller, &args))
}

/// ICRC-3: the blocks held of the requested ranges, at most
/// `market_api::blocks::MAX_BLOCKS_PER_QUERY` per call.
#[ic_cdk::query]
fn icrc3_get_blocks(ranges: Vec<GetBlocksRequest>) -> GetBlocksResult {
    ARCHIVE.with(|a| a.borrow().get_blocks(&ranges))
}

/// ICRC-3: the type of the blocks held.
#[ic_cdk::query]
fn icrc3_supported_block_types() -> Vec<SupportedBlockType> {
    ARCHIVE.with(|a| a.borrow().supported_block_types())
}

/// The owner, capacity and range held.
#[ic_cdk::query]
fn archive_status() -> ArchiveStatus {
    ARCHIVE.with(|a| a.borrow().status())
}

/// ICRC-10: the standards this canister supports.
#[ic_cdk::query]
fn icrc10_supported_standards() -> Vec<StandardRecord> {
    vec![market_api::icrc10_standard(), market_api::icrc3_standard()]
}

/// Only the owner canister appends, and canisters call without ingress:
/// every ingress update is refused before it costs anything.
#[ic_cdk::inspect_message]
fn inspect_message() {
    ic_cdk::trap("the archive takes no ingress updates: only its owner canister appends");
}

candid::export_service!();

/// The Candid interface generated from the entry points above, compared in
/// tests with the checked-in `archive.did`.
pub fn candid_interface() -> String {
    __export_service()
}
