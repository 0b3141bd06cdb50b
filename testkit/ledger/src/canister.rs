//! The canister's entry points. Each reads the caller and the time from the
//! IC and calls one function of [`crate::operations`]; nothing else happens here.

use candid::Nat;
use ic_cdk::api::{msg_caller, time};
use ic_cdk::{init, post_upgrade, query, update};
use ic_stable_structures::DefaultMemoryImpl;
use icrc_ledger_types::icrc::generic_metadata_value::MetadataValue;
use icrc_ledger_types::icrc1::account::Account;
use icrc_ledger_types::icrc1::transfer::{TransferArg, TransferError};
use icrc_ledger_types::icrc2::allowance::{Allowance, AllowanceArgs};
use icrc_ledger_types::icrc2::approve::{ApproveArgs, ApproveError};
use icrc_ledger_types::icrc2::transfer_from::{TransferFromArgs, TransferFromError};
use icrc_ledger_types::icrc3::archive::{GetArchivesArgs, ICRC3ArchiveInfo};
use icrc_ledger_types::icrc3::blocks::{GetBlocksRequest, GetBlocksResult, SupportedBlockType};

use crate::amount::nat;
use crate::block::{ListBlocksArgs, ListBlocksResult};
use crate::config::LedgerArg;
use crate::operations::{self, StandardRecord};
use crate::state::{State, mutate_state, read_state, replace_state};

#[init]
fn init(arg: LedgerArg) {
    let LedgerArg::Init(args) = arg else {
        ic_cdk::trap("install needs LedgerArg::Init");
    };
    let mut state = State::open(DefaultMemoryImpl::default());
    if let Err(e) = operations::install(&mut state, &args, time()) {
        ic_cdk::trap(e.to_string());
    }
    replace_state(state);
}

#[post_upgrade]
fn post_upgrade(arg: Option<LedgerArg>) {
    let mut state = State::open(DefaultMemoryImpl::default());
    let upgrade = match &arg {
        None | Some(LedgerArg::Upgrade(None)) => None,
        Some(LedgerArg::Upgrade(Some(args))) => Some(args),
        Some(LedgerArg::Init(_)) => ic_cdk::trap("upgrade needs LedgerArg::Upgrade"),
    };
    if let Err(e) = operations::upgrade(&mut state, upgrade) {
        ic_cdk::trap(e.to_string());
    }
    replace_state(state);
}

#[query]
fn icrc1_name() -> String {
    read_state(|s| s.config().token_name.clone())
}

#[query]
fn icrc1_symbol() -> String {
    read_state(|s| s.config().token_symbol.clone())
}

#[query]
fn icrc1_decimals() -> u8 {
    read_state(|s| s.config().decimals)
}

#[query]
fn icrc1_fee() -> Nat {
    read_state(|s| nat(s.config().fee))
}

#[query]
fn icrc1_metadata() -> Vec<(String, MetadataValue)> {
    read_state(operations::metadata)
}

#[query]
fn icrc1_total_supply() -> Nat {
    read_state(|s| nat(s.total_supply()))
}

#[query]
fn icrc1_minting_account() -> Option<Account> {
    read_state(|s| Some(s.config().minting_account))
}

#[query]
fn icrc1_balance_of(account: Account) -> Nat {
    read_state(|s| nat(s.balance(&account)))
}

#[query]
fn icrc1_supported_standards() -> Vec<StandardRecord> {
    operations::supported_standards()
}

#[query]
fn icrc10_supported_standards() -> Vec<StandardRecord> {
    operations::supported_standards()
}

#[update]
fn icrc1_transfer(arg: TransferArg) -> Result<Nat, TransferError> {
    let caller = msg_caller();
    mutate_state(|s| operations::transfer(s, caller, &arg, time())).map(Nat::from)
}

#[update]
fn icrc2_approve(args: ApproveArgs) -> Result<Nat, ApproveError> {
    let caller = msg_caller();
    mutate_state(|s| operations::approve(s, caller, &args, time())).map(Nat::from)
}

#[update]
fn icrc2_transfer_from(args: TransferFromArgs) -> Result<Nat, TransferFromError> {
    let caller = msg_caller();
    mutate_state(|s| operations::transfer_from(s, caller, &args, time())).map(Nat::from)
}

#[query]
fn icrc2_allowance(args: AllowanceArgs) -> Allowance {
    read_state(|s| operations::allowance(s, &args, time()))
}

/// A page of the transaction log (at most `MAX_BLOCKS_PER_PAGE` blocks).
#[query]
fn list_blocks(args: ListBlocksArgs) -> ListBlocksResult {
    read_state(|s| s.blocks_page(args.start, args.length))
}

/// ICRC-3: blocks of the log, each as a generic value (see [`crate::icrc3`]).
#[query]
fn icrc3_get_blocks(args: Vec<GetBlocksRequest>) -> GetBlocksResult {
    read_state(|s| crate::icrc3::get_blocks(s, &args))
}

/// ICRC-3: the archives holding older blocks (none: every block stays here).
#[query]
fn icrc3_get_archives(_: GetArchivesArgs) -> Vec<ICRC3ArchiveInfo> {
    vec![]
}

/// ICRC-3: the block types this ledger writes.
#[query]
fn icrc3_supported_block_types() -> Vec<SupportedBlockType> {
    ["1mint", "1burn", "1xfer", "2approve", "2xfer"]
        .into_iter()
        .map(|t| SupportedBlockType {
            block_type: t.to_string(),
            url: "https://github.com/dfinity/ICRC-1/tree/main/standards/ICRC-3".to_string(),
        })
        .collect()
}

ic_cdk::export_candid!();

#[cfg(test)]
mod tests {
    #[test]
    fn candid_interface_matches_ledger_did() {
        market_artifacts::assert_did_matches(
            &super::__export_service(),
            concat!(env!("CARGO_MANIFEST_DIR"), "/ledger.did"),
        );
    }
}
