//! The local ledger's Candid types that the localnet sends and reads (see
//! `src/ledger/ledger.did`). Declared here rather than imported from the
//! ledger crate, whose canister entry points would clash at link time with
//! those of any canister crate whose tests use the localnet.

use candid::{CandidType, Deserialize, Nat};
use market_api::Account;

#[derive(CandidType)]
pub enum LedgerArg {
    Init(InitArgs),
}

#[derive(CandidType)]
pub struct InitArgs {
    pub token_name: String,
    pub token_symbol: String,
    pub decimals: Option<u8>,
    pub transfer_fee: Option<Nat>,
    pub minting_account: Account,
    pub initial_balances: Vec<(Account, Nat)>,
}

#[derive(CandidType)]
pub struct ListBlocksArgs {
    pub start: u64,
    pub length: u64,
}

#[derive(CandidType, Deserialize)]
pub struct ListBlocksResult {
    pub log_length: u64,
    pub blocks: Vec<Block>,
}

#[derive(CandidType, Deserialize)]
pub struct Block {
    pub operation: Operation,
}

#[derive(CandidType, Deserialize)]
pub enum Operation {
    Mint {
        to: Account,
        amount: u64,
    },
    Burn {
        from: Account,
        amount: u64,
    },
    Transfer {
        from: Account,
        to: Account,
        fee: u64,
    },
    Approve {
        from: Account,
        fee: u64,
    },
}
