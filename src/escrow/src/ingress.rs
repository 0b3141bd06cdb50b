//! Which update methods ingress may reach, from whom, with how large an
//! argument (see [`canister_common::ingress`]).

use canister_common::ingress::{Rule, SMALL_ARG, Senders};

/// Every update method of the escrow.
pub const RULES: &[Rule] = &[
    Rule::new("add_ledger", Senders::Controllers, SMALL_ARG),
    Rule::anyone("deposit"),
    Rule::new("extend_lock", Senders::Matcher, SMALL_ARG),
    Rule::new("forfeit", Senders::Matcher, SMALL_ARG),
    Rule::new("lock", Senders::Matcher, SMALL_ARG),
    Rule::anyone("notify_deposit"),
    Rule::anyone("reconcile"),
    Rule::new("release", Senders::Matcher, SMALL_ARG),
    Rule::new("resolve_operation", Senders::Controllers, SMALL_ARG),
    Rule::new("set_log_archiving", Senders::Controllers, SMALL_ARG),
    Rule::new("settle", Senders::Matcher, SMALL_ARG),
    Rule::anyone("withdraw"),
    Rule::new("withdraw_for", Senders::Matcher, SMALL_ARG),
];

#[ic_cdk::inspect_message]
fn inspect_message() {
    let matcher = crate::state::read_state(|s| s.matcher());
    canister_common::ingress::inspect(RULES, matcher);
}
