//! Which update methods ingress may reach, from whom, with how large an
//! argument (see [`canister_common::ingress`]).

use canister_common::ingress::{Rule, SMALL_ARG, Senders};

/// Every update method of the registry.
pub const RULES: &[Rule] = &[
    Rule::new("bond", Senders::Matcher, SMALL_ARG),
    Rule::anyone("deregister"),
    Rule::new("record", Senders::Matcher, SMALL_ARG),
    Rule::anyone("register_provider"),
    Rule::new("resolve_transfer", Senders::Controllers, SMALL_ARG),
    Rule::new("set_log_archiving", Senders::Controllers, SMALL_ARG),
    Rule::anyone("settle_pending"),
    Rule::new("slash", Senders::Matcher, SMALL_ARG),
    Rule::anyone("stake"),
    Rule::new("unbond", Senders::Matcher, SMALL_ARG),
    Rule::anyone("unjail"),
    Rule::anyone("unstake"),
    Rule::new("update_config", Senders::Controllers, SMALL_ARG),
    Rule::anyone("update_profile"),
    Rule::anyone("withdraw_unbonded"),
];

#[ic_cdk::inspect_message]
fn inspect_message() {
    let matcher = crate::state::read_state(|s| s.config().matcher);
    canister_common::ingress::inspect(RULES, matcher);
}
