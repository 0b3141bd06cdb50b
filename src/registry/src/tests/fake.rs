//! A fake runtime: the shared in-memory ICRC-1/2 ledger
//! ([`fake_ledger::FakeLedger`]) with one ledger, settable time and
//! injectable faults, seen by the registry.

use crate::runtime::{BlockSource, CallFailure, Runtime, SystemApi};
use crate::subaccount::stake_subaccount;
use candid::{Nat, Principal};
use fake_ledger::{Failure, FakeLedger};
use icrc_ledger_types::icrc1::account::Account;
use icrc_ledger_types::icrc1::transfer::{TransferArg, TransferError};
use icrc_ledger_types::icrc2::transfer_from::{TransferFromArgs, TransferFromError};
use icrc_ledger_types::icrc3::blocks::{GetBlocksRequest, GetBlocksResult};
use std::ops::Deref;

pub use fake_ledger::Fault;

pub const LEDGER: Principal = Principal::from_slice(&[0xAA, 1]);
pub const REGISTRY: Principal = Principal::from_slice(&[0xAA, 2]);

/// The ledger at `LEDGER` (fee 10 000) as the registry sees it. Its
/// deduplication never expires, so pending transfers can be retried
/// after any advance of the clock.
pub struct FakeRuntime(FakeLedger);

impl Deref for FakeRuntime {
    type Target = FakeLedger;
    fn deref(&self) -> &FakeLedger {
        &self.0
    }
}

fn account(owner: Principal, subaccount: Option<[u8; 32]>) -> Account {
    Account { owner, subaccount }
}

fn failure(f: Failure) -> CallFailure {
    match f {
        Failure::Rejected { code, message } => CallFailure::Definite { code, message },
        Failure::Unknown { .. } => CallFailure::Unknown,
    }
}

impl FakeRuntime {
    pub fn new() -> Self {
        let ledger = FakeLedger::new(REGISTRY);
        ledger.now.set(1_700_000_000_000_000_000);
        ledger.dedup_window_ns.set(u64::MAX);
        ledger.add_ledger(LEDGER, 10_000);
        FakeRuntime(ledger)
    }

    pub fn mint(&self, owner: Principal, amount: u128) {
        self.0.mint(LEDGER, account(owner, None), amount);
    }

    pub fn approve(&self, owner: Principal, amount: u128) {
        self.0.approve(LEDGER, account(owner, None), amount);
    }

    pub fn balance(&self, owner: Principal, sub: Option<[u8; 32]>) -> u128 {
        self.0.balance(LEDGER, account(owner, sub))
    }

    pub fn stake_balance(&self, provider: Principal) -> u128 {
        self.balance(REGISTRY, Some(stake_subaccount(&provider)))
    }

    /// Sum of every account the registry owns.
    pub fn registry_holdings(&self) -> u128 {
        self.0.holdings(LEDGER, REGISTRY)
    }

    pub fn fault(&self, f: Fault) {
        self.0.push_fault(f);
    }

    pub fn advance_secs(&self, secs: u64) {
        self.0.advance(secs * 1_000_000_000);
    }
}

impl SystemApi for FakeRuntime {
    fn now_ns(&self) -> u64 {
        self.0.now_ns()
    }

    fn self_id(&self) -> Principal {
        self.0.self_id()
    }
}

impl BlockSource for FakeRuntime {
    async fn supported_standards(&self, ledger: Principal) -> Result<Vec<String>, String> {
        self.0.supported_standards(ledger).await
    }

    async fn get_blocks(
        &self,
        canister: Principal,
        method: &str,
        args: Vec<GetBlocksRequest>,
    ) -> Result<GetBlocksResult, String> {
        self.0.get_blocks(canister, method, args).await
    }
}

impl Runtime for FakeRuntime {
    async fn transfer_from(
        &self,
        ledger: Principal,
        args: TransferFromArgs,
    ) -> Result<Result<Nat, TransferFromError>, CallFailure> {
        self.0
            .call(ledger, |l| l.transfer_from(ledger, args))
            .await
            .map_err(failure)
    }

    async fn transfer(
        &self,
        ledger: Principal,
        args: TransferArg,
    ) -> Result<Result<Nat, TransferError>, CallFailure> {
        self.0
            .call(ledger, |l| l.transfer(ledger, args))
            .await
            .map_err(failure)
    }

    async fn fee(&self, ledger: Principal) -> Result<Nat, CallFailure> {
        Ok(self.0.fee(ledger).into())
    }
}
