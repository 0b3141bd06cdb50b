//! The escrow's [`Runtime`] on the shared in-memory ledger set
//! ([`fake_ledger::FakeLedger`], which also answers the transfers): every
//! call can be rejected, time out before or after the ledger executed it,
//! or meet a changed fee.

use crate::runtime::{CallFailure, Runtime};
use fake_ledger::FakeLedger;
use icrc_ledger_types::icrc1::account::Account;
use market_api::{Principal, StandardRecord, Tokens};

impl Runtime for FakeLedger {
    async fn icrc1_fee(&self, ledger: Principal) -> Result<Tokens, CallFailure> {
        self.call(ledger, |l| l.fee(ledger)).await
    }

    async fn icrc1_symbol(&self, ledger: Principal) -> Result<String, CallFailure> {
        self.call(ledger, |_| format!("TK{}", ledger.as_slice()[0]))
            .await
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
    }

    async fn icrc1_balance_of(
        &self,
        ledger: Principal,
        account: Account,
    ) -> Result<Tokens, CallFailure> {
        self.call(ledger, |l| l.balance(ledger, account)).await
    }
}
