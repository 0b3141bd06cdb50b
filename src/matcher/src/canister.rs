//! ic-cdk entry points: each reads the caller and the time, calls the logic
//! and maps its result. No rules live here.

use crate::state::{mutate_state, read_state};
use market_api::matcher::{MatcherEvent, MatcherInit};
use market_api::{EventPage, PageRequest, StandardRecord};

#[ic_cdk::init]
fn init(arg: MatcherInit) {
    mutate_state(|s| s.init(arg));
}

#[ic_cdk::post_upgrade]
fn post_upgrade(arg: Option<MatcherInit>) {
    if let Some(config) = arg {
        mutate_state(|s| s.init(config));
    }
}

/// The matcher's configuration.
#[ic_cdk::query]
fn get_config() -> MatcherInit {
    read_state(|s| s.config())
}

/// One page of the public event log.
#[ic_cdk::query]
fn get_events(page: PageRequest) -> EventPage<MatcherEvent> {
    read_state(|s| s.events.page(&page))
}

/// ICRC-10: the standards this canister supports.
#[ic_cdk::query]
fn icrc10_supported_standards() -> Vec<StandardRecord> {
    vec![market_api::icrc10_standard()]
}

candid::export_service!();

/// The Candid interface generated from the entry points above, compared in
/// tests with the checked-in `matcher.did`.
pub fn candid_interface() -> String {
    __export_service()
}
