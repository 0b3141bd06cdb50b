//! The escrow's [`Runtime`] on the shared in-memory ledger set
//! ([`fake_ledger::FakeLedger`]): every call can be rejected, time out
//! before or after the ledger executed it, or meet a changed fee.

use crate::runtime::{CallFailure, Runtime};
use candid::Nat;
use fake_ledger::{Failure, FakeLedger};
use icrc_ledger_types::icrc1::account::Account;
use icrc_ledger_types::icrc1::transfer::{TransferArg, TransferError};
use icrc_ledger_types::icrc2::transfer_from::{TransferFromArgs, TransferFromError};
use market_api::{Principal, StandardRecord, Tokens};

fn failure(f: Failure) -> CallFailure {
    match f {
        Failure::Rejected { code, message } => CallFailure::Rejected { code, message },
        Failure::Unknown { message } => CallFailure::Unknown { message },
    }
}

impl Runtime for FakeLedger {
    async fn icrc1_fee(&self, ledger: Principal) -> Result<Tokens, CallFailure> {
        self.call(ledger, |l| l.fee(ledger)).await.map_err(failure)
    }

    async fn icrc1_symbol(&self, ledger: Principal) -> Result<String, CallFailure> {
        self.call(ledger, |_| format!("TK{}", ledger.as_slice()[0]))
            .await
            .map_err(failure)
    }

    async fn icrc1_supported_standards(
        &self,
        ledger: Principal,
    ) -> Result<Vec<StandardRecord>, CallFailure> {
        let std = |n: &str| StandardRecord {
            name: n.into(),
            url: String::new(),
        };
        self.call(ledger, |_| vec![std("ICRC-1"), std("ICRC-2")])
            .await
            .map_err(failure)
    }

    async fn icrc1_balance_of(
        &self,
        ledger: Principal,
        account: Account,
    ) -> Result<Tokens, CallFailure> {
        self.call(ledger, |l| l.balance(ledger, account))
            .await
            .map_err(failure)
    }

    async fn icrc1_transfer(
        &self,
        ledger: Principal,
        arg: TransferArg,
    ) -> Result<Result<Nat, TransferError>, CallFailure> {
        self.call(ledger, |l| l.transfer(ledger, arg))
            .await
            .map_err(failure)
    }

    async fn icrc2_transfer_from(
        &self,
        ledger: Principal,
        arg: TransferFromArgs,
    ) -> Result<Result<Nat, TransferFromError>, CallFailure> {
        self.call(ledger, |l| l.transfer_from(ledger, arg))
            .await
            .map_err(failure)
    }
}
