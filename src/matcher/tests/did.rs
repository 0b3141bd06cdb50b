#[test]
fn candid_interface_matches_checked_in_did() {
    market_artifacts::assert_did_matches(
        &matcher::candid_interface(),
        concat!(env!("CARGO_MANIFEST_DIR"), "/matcher.did"),
    );
}

#[test]
fn every_update_method_has_one_ingress_rule() {
    market_artifacts::assert_updates_are(
        concat!(env!("CARGO_MANIFEST_DIR"), "/matcher.did"),
        &canister_common::ingress::methods(matcher::ingress::RULES),
    );
}
