#[test]
fn candid_interface_matches_checked_in_did() {
    market_artifacts::assert_did_matches(
        &matcher::candid_interface(),
        concat!(env!("CARGO_MANIFEST_DIR"), "/matcher.did"),
    );
}

#[test]
fn every_update_method_has_one_ingress_rule() {
    let did = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/matcher.did")).unwrap();
    let mut updates: Vec<String> = market_artifacts::did_methods(&did)
        .into_iter()
        .filter(|(_, query)| !query)
        .map(|(name, _)| name)
        .collect();
    updates.sort();
    let mut ruled: Vec<String> = canister_common::ingress::methods(matcher::ingress::RULES)
        .into_iter()
        .map(String::from)
        .collect();
    ruled.sort();
    assert_eq!(ruled, updates);
}
