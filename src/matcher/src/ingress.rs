//! Which update methods ingress may reach, from whom, with how large an
//! argument (see [`canister_common::ingress`]). The `sns_*` methods are
//! meant for registered DAOs' governance canisters, which call them between
//! canisters; they check their caller themselves.

use canister_common::ingress::{BULK_ARG, Rule, SMALL_ARG, Senders};

/// Every update method of the matcher.
pub const RULES: &[Rule] = &[
    Rule::anyone("begin_module_upload"),
    Rule::anyone("cancel_job"),
    Rule::anyone("cancel_reservation"),
    Rule::anyone("commit_module"),
    Rule::new("deregister_dao", Senders::Controllers, SMALL_ARG),
    Rule::anyone("dispute_job"),
    Rule::anyone("extend_reservation"),
    Rule::anyone("hand_back"),
    Rule::anyone("heartbeat"),
    Rule::anyone("job_key"),
    Rule::anyone("post_offer"),
    Rule::new("put_module_chunk", Senders::Anyone, BULK_ARG),
    Rule::new("refresh_rates", Senders::Controllers, SMALL_ARG),
    Rule::new("register_dao", Senders::Controllers, SMALL_ARG),
    Rule::anyone("reserve"),
    Rule::anyone("set_delegates"),
    Rule::new("set_log_archiving", Senders::Controllers, SMALL_ARG),
    Rule::new("set_market_fee", Senders::Controllers, SMALL_ARG),
    Rule::anyone("sns_cancel"),
    Rule::anyone("sns_extend"),
    Rule::anyone("sns_reserve"),
    Rule::anyone("sns_set_delegates"),
    Rule::new("sns_submit_job", Senders::Anyone, BULK_ARG),
    Rule::anyone("sns_validate_cancel"),
    Rule::anyone("sns_validate_extend"),
    Rule::anyone("sns_validate_reserve"),
    Rule::anyone("sns_validate_set_delegates"),
    Rule::new("sns_validate_submit_job", Senders::Anyone, BULK_ARG),
    Rule::anyone("sns_validate_withdraw"),
    Rule::anyone("sns_withdraw"),
    Rule::new("submit_job", Senders::Anyone, BULK_ARG),
    Rule::new("submit_reserved_job", Senders::Anyone, BULK_ARG),
    Rule::new("submit_result", Senders::Anyone, BULK_ARG),
    Rule::anyone("update_offer"),
    Rule::anyone("withdraw_offer"),
];

#[ic_cdk::inspect_message]
fn inspect_message() {
    canister_common::ingress::inspect(RULES, None);
}
