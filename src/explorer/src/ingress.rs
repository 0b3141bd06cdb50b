//! Which update methods ingress may reach, from whom, with how large an
//! argument (see [`canister_common::ingress`]).

use canister_common::ingress::{BULK_ARG, Rule, SMALL_ARG, Senders};

/// Every update method of the explorer.
pub const RULES: &[Rule] = &[
    Rule::new("clear_assets", Senders::Controllers, SMALL_ARG),
    Rule::new("upload_asset", Senders::Controllers, BULK_ARG),
];

#[ic_cdk::inspect_message]
fn inspect_message() {
    canister_common::ingress::inspect(RULES, None);
}
