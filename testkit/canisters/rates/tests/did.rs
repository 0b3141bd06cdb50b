#[test]
fn candid_interface_matches_checked_in_did() {
    market_artifacts::assert_did_matches(
        &rates_standin::candid_interface(),
        concat!(env!("CARGO_MANIFEST_DIR"), "/rates-standin.did"),
    );
}
