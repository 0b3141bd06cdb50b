//! The registry's [`Runtime`] on the shared in-memory ICRC-1/2 ledger
//! ([`FakeLedger`], which also keeps the time and answers the transfers and
//! block reads), with one ledger and injectable faults.

use crate::runtime::{CallFailure, Runtime};
use crate::subaccount::stake_subaccount;
use candid::{Nat, Principal};
use fake_ledger::FakeLedger;
use icrc_ledger_types::icrc1::account::Account;

pub use fake_ledger::Fault;

pub const LEDGER: Principal = Principal::from_slice(&[0xAA, 1]);
pub const REGISTRY: Principal = Principal::from_slice(&[0xAA, 2]);
/// The ledger's transfer fee.
pub const FEE: u128 = 10_000;

fn account(owner: Principal, subaccount: Option<[u8; 32]>) -> Account {
    Account { owner, subaccount }
}

/// The ledger at `LEDGER` (fee [`FEE`]) as the registry sees it. Its
/// deduplication never expires, so pending transfers can be retried
/// after any advance of the clock.
pub fn registry_ledger() -> FakeLedger {
    let ledger = FakeLedger::new(REGISTRY);
    ledger.now.set(1_700_000_000_000_000_000);
    ledger.dedup_window_ns.set(u64::MAX);
    ledger.add_ledger(LEDGER, FEE);
    ledger
}

/// What the tests do to the ledger at `LEDGER` and read from it.
pub trait RegistryLedger {
    /// Mints `amount` to `owner`'s default account and lets the registry
    /// pull all of it.
    fn fund(&self, owner: Principal, amount: u128);
    /// Lets the registry pull `amount` from `owner`'s default account.
    fn approve_registry(&self, owner: Principal, amount: u128);
    /// The balance of one of `owner`'s accounts.
    fn balance_of(&self, owner: Principal, sub: Option<[u8; 32]>) -> u128;
    /// What `provider`'s stake account holds.
    fn stake_balance(&self, provider: Principal) -> u128;
    /// Sum of every account the registry owns.
    fn registry_holdings(&self) -> u128;
    /// Moves the clock on.
    fn advance_secs(&self, secs: u64);
}

impl RegistryLedger for FakeLedger {
    fn fund(&self, owner: Principal, amount: u128) {
        self.mint(LEDGER, account(owner, None), amount);
        self.approve_registry(owner, amount);
    }

    fn approve_registry(&self, owner: Principal, amount: u128) {
        self.approve(LEDGER, account(owner, None), amount);
    }

    fn balance_of(&self, owner: Principal, sub: Option<[u8; 32]>) -> u128 {
        self.balance(LEDGER, account(owner, sub))
    }

    fn stake_balance(&self, provider: Principal) -> u128 {
        self.balance_of(REGISTRY, Some(stake_subaccount(&provider)))
    }

    fn registry_holdings(&self) -> u128 {
        self.holdings(LEDGER, REGISTRY)
    }

    fn advance_secs(&self, secs: u64) {
        self.advance(secs * 1_000_000_000);
    }
}

impl Runtime for FakeLedger {
    /// Read without a call, so an injected fault hits the transfer it is
    /// meant for.
    async fn fee(&self, ledger: Principal) -> Result<Nat, CallFailure> {
        Ok(FakeLedger::fee(self, ledger).into())
    }
}
