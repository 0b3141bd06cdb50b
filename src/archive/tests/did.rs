//! The archive's `.did` is the one its code generates. (It has no ingress
//! rules: its one update, `append_blocks`, is for its owner canister, and
//! `inspect_message` refuses every ingress update.)

#[test]
fn candid_interface_matches_checked_in_did() {
    market_artifacts::assert_did_is_generated(
        &archive::candid_interface(),
        concat!(env!("CARGO_MANIFEST_DIR"), "/archive.did"),
    );
}
