//! Helpers shared by the native tests.

use candid::{Nat, Principal};
use ic_stable_structures::DefaultMemoryImpl;
use icrc_ledger_types::icrc1::account::Account;
use icrc_ledger_types::icrc1::transfer::{Memo, TransferArg};
use icrc_ledger_types::icrc2::approve::ApproveArgs;
use icrc_ledger_types::icrc2::transfer_from::TransferFromArgs;

use crate::config::InitArgs;
use crate::operations;
use crate::state::State;

/// Ledger fee used by the tests.
pub const FEE: u64 = 10_000;
/// A plausible ledger time (2025-01-01 in nanoseconds).
pub const T0: u64 = 1_735_689_600_000_000_000;
/// One second in nanoseconds.
pub const SEC: u64 = 1_000_000_000;

/// The principal numbered `n` (never the anonymous one).
pub fn user(n: u8) -> Principal {
    Principal::from_slice(&[n, 0xAB, 0x01])
}

/// The default account of `user(n)`.
pub fn acct(n: u8) -> Account {
    Account::from(user(n))
}

/// The subaccount `sub` of `user(n)`.
pub fn sub(n: u8, sub: u8) -> Account {
    Account {
        owner: user(n),
        subaccount: Some([sub; 32]),
    }
}

/// The minting account of test ledgers.
pub fn minter() -> Account {
    Account::from(Principal::from_slice(&[0xFF, 0xEE]))
}

/// Install arguments with `balances` for `acct(n)`.
pub fn init_args(balances: &[(Account, u64)]) -> InitArgs {
    InitArgs {
        token_name: "Test Token".into(),
        token_symbol: "TT".into(),
        decimals: None,
        transfer_fee: None,
        minting_account: minter(),
        initial_balances: balances.iter().map(|(a, n)| (*a, Nat::from(*n))).collect(),
    }
}

/// A fresh ledger in its own memory, installed at `T0`; also returns the
/// memory so tests can reopen it as an upgrade does.
pub fn ledger_with_memory(balances: &[(Account, u64)]) -> (State, DefaultMemoryImpl) {
    let memory = DefaultMemoryImpl::default();
    let mut state = State::open_with_bucket_size(memory.clone(), 1);
    operations::install(&mut state, &init_args(balances), T0).expect("valid init args");
    (state, memory)
}

/// A fresh ledger installed at `T0`.
pub fn ledger(balances: &[(Account, u64)]) -> State {
    ledger_with_memory(balances).0
}

/// A transfer of `amount` to `to` with no optional fields set.
pub fn xfer(to: Account, amount: u64) -> TransferArg {
    TransferArg {
        from_subaccount: None,
        to,
        fee: None,
        created_at_time: None,
        memo: None,
        amount: Nat::from(amount),
    }
}

/// An approval of `amount` for `spender` with no optional fields set.
pub fn approval(spender: Account, amount: u64) -> ApproveArgs {
    ApproveArgs {
        from_subaccount: None,
        spender,
        amount: Nat::from(amount),
        expected_allowance: None,
        expires_at: None,
        fee: None,
        memo: None,
        created_at_time: None,
    }
}

/// A transfer_from of `amount` from `from` to `to` with no optional fields set.
pub fn xfer_from(from: Account, to: Account, amount: u64) -> TransferFromArgs {
    TransferFromArgs {
        spender_subaccount: None,
        from,
        to,
        amount: Nat::from(amount),
        fee: None,
        memo: None,
        created_at_time: None,
    }
}

/// A memo of `len` bytes.
pub fn memo(len: usize) -> Memo {
    Memo::from(vec![7u8; len])
}

/// Sum of all balances.
pub fn sum_of_balances(state: &State) -> u64 {
    state.balances().iter().map(|(_, b)| *b).sum()
}
