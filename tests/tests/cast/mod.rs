//! The principals the cross-canister suites share.

use candid::Principal;
use market_fixture::principal;

/// The buyer of the suites' jobs.
pub fn buyer() -> Principal {
    principal(1)
}

/// The provider that runs them.
pub fn provider() -> Principal {
    principal(101)
}

/// The provider's node.
pub fn node() -> Principal {
    principal(201)
}
