#[test]
fn candid_interface_matches_checked_in_did() {
    market_artifacts::assert_did_matches(
        &escrow::candid_interface(),
        concat!(env!("CARGO_MANIFEST_DIR"), "/escrow.did"),
    );
}

#[test]
fn every_update_method_has_one_ingress_rule() {
    market_artifacts::assert_updates_are(
        concat!(env!("CARGO_MANIFEST_DIR"), "/escrow.did"),
        &canister_common::ingress::methods(escrow::ingress::RULES),
    );
}
