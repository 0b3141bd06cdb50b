//! The local ledger's Candid types (`testkit/ledger/ledger.did`) for every
//! test that installs or reads it: its own init argument and block log from
//! the ledger crate (whose entry points are left out of native builds), the
//! standard ICRC-1/2 arguments from `icrc-ledger-types`.

use candid::Nat;
pub use icrc_ledger_types::icrc1::transfer::TransferArg;
pub use icrc_ledger_types::icrc2::approve::ApproveArgs;
pub use ledger::{Block, InitArgs, LedgerArg, ListBlocksArgs, ListBlocksResult, Operation};
use market_api::{Account, Tokens};

/// The init argument of a local ICP: 8 decimals, `fee` e8s per transfer,
/// minted by `minter`, with `initial_balances` in e8s.
pub fn local_icp(
    fee: Tokens,
    minter: Account,
    initial_balances: Vec<(Account, Tokens)>,
) -> LedgerArg {
    LedgerArg::Init(InitArgs {
        token_name: "Internet Computer (local)".into(),
        token_symbol: "ICP".into(),
        decimals: Some(8),
        transfer_fee: Some(Nat::from(fee)),
        minting_account: minter,
        initial_balances: initial_balances
            .into_iter()
            .map(|(a, n)| (a, Nat::from(n)))
            .collect(),
    })
}

/// An `icrc2_approve` argument letting `spender` take up to `amount` from
/// the caller's default account, with no fee, memo, expiry or expectation.
pub fn approve_args(spender: Account, amount: impl Into<Nat>) -> ApproveArgs {
    ApproveArgs {
        from_subaccount: None,
        spender,
        amount: amount.into(),
        expected_allowance: None,
        expires_at: None,
        fee: None,
        memo: None,
        created_at_time: None,
    }
}

/// An `icrc1_transfer` argument moving `amount` from the caller's default
/// account to `to`, with the default fee and no memo.
pub fn transfer_arg(to: Account, amount: impl Into<Nat>) -> TransferArg {
    TransferArg {
        from_subaccount: None,
        to,
        amount: amount.into(),
        fee: None,
        memo: None,
        created_at_time: None,
    }
}
