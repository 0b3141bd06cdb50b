//! What the matcher's devnet tests share: their principals, the
//! marketplace with a funded buyer, and calls to the matcher.

// Each test binary uses part of this.
#![allow(dead_code)]

use candid::{CandidType, Principal};
use market_fixture::{ICP, MarketFixture, Settings, principal};
use serde::de::DeserializeOwned;

/// The buyer of these tests.
pub fn buyer() -> Principal {
    principal(1)
}

/// The `n`-th provider.
pub fn provider(n: u8) -> Principal {
    principal(100 + n)
}

/// The node of [`provider`]`(n)`.
pub fn node(n: u8) -> Principal {
    principal(200 + n)
}

/// The deployed marketplace, which each test gives its own calls.
pub struct Net {
    pub net: MarketFixture,
}

impl std::ops::Deref for Net {
    type Target = MarketFixture;
    fn deref(&self) -> &MarketFixture {
        &self.net
    }
}

impl Net {
    /// The marketplace of `settings`.
    pub fn deploy(settings: Settings) -> Net {
        Net {
            net: MarketFixture::deploy(settings).expect("deploy the marketplace"),
        }
    }

    /// The marketplace of `settings` with the buyer holding 100 ICP in
    /// the escrow and 100 more in its ledger account.
    pub fn with_buyer(settings: Settings) -> Net {
        let net = Net::deploy(settings);
        net.fund(buyer());
        net
    }

    /// Mints 200 ICP to `who` and deposits 100 of them in the escrow.
    pub fn fund(&self, who: Principal) {
        self.mint(who, 200 * ICP).unwrap();
        self.deposit(who, 100 * ICP).unwrap();
    }

    /// An update call to the matcher as `caller`, which the devnet must
    /// deliver.
    pub fn call<A: CandidType, T: CandidType + DeserializeOwned>(
        &self,
        caller: Principal,
        method: &str,
        arg: &A,
    ) -> T {
        self.update(self.ids.matcher, caller, method, arg)
            .unwrap_or_else(|e| panic!("{e}"))
    }
}
