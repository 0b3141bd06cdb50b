//! The deployment configuration (`icp.yaml`, `deploy/`) against the
//! canisters' interfaces: every init argument template, filled with each
//! network's values, must be Candid of the canister's init type in its
//! checked-in `.did` file, and decode into the type the canister reads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candid::{Decode, Principal};
use candid_parser::utils::{CandidSource, instantiate_candid};
use market_api::escrow::EscrowInit;
use market_api::matcher::MatcherInit;
use market_api::registry::RegistryInit;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// `NAME=VALUE` lines of an env file, comments and blank lines skipped.
fn env_file(path: &str) -> BTreeMap<String, String> {
    read(path)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, value) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("{path}: '{l}' is not NAME=VALUE"));
            (name.to_string(), value.to_string())
        })
        .collect()
}

/// The template with every `${NAME}` replaced; panics on a name without a value.
fn fill(template: &str, values: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .map(|e| start + e)
            .expect("an unclosed ${");
        let name = &rest[start + 2..end];
        let value = values
            .get(name)
            .unwrap_or_else(|| panic!("no value for ${{{name}}}"));
        out.push_str(value);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The Candid bytes of `text` typed with the init arguments of `did`.
fn encode_init(did: &str, text: &str) -> Vec<u8> {
    let (types, (env, _)) =
        instantiate_candid(CandidSource::Text(&read(did))).expect("the .did's init types");
    candid_parser::parse_idl_args(text)
        .unwrap_or_else(|e| panic!("parsing the init argument for {did}: {e}\n{text}"))
        .to_bytes_with_types(&env, &types)
        .unwrap_or_else(|e| panic!("the init argument does not match {did}: {e}\n{text}"))
}

/// Each network's values, with the canisters' own ids as deployment would
/// have them (placeholders here: any principals will do for the type check).
fn networks() -> Vec<(&'static str, BTreeMap<String, String>)> {
    let id = |n: u64| Principal::from_slice(&[&n.to_be_bytes()[..], &[1, 1]].concat()).to_text();
    ["ic", "devnet"]
        .into_iter()
        .map(|network| {
            let mut values = env_file(&format!("deploy/{network}.env"));
            values.insert("REGISTRY".into(), id(0x8000_0000_0010_0001));
            values.insert("ESCROW".into(), id(0x8000_0000_0010_0002));
            values.insert("MATCHER".into(), id(0x8000_0000_0010_0003));
            values
                .entry("STAKE_LEDGER".into())
                .or_insert_with(|| id(0x8000_0000_0010_0000));
            values.entry("DEPLOYER".into()).or_insert_with(|| id(7));
            (network, values)
        })
        .collect()
}

#[test]
fn init_arguments_match_the_did_files_on_every_network() {
    for (network, values) in networks() {
        let arg = |name: &str| fill(&read(&format!("deploy/init/{name}.args")), &values);

        let bytes = encode_init("src/registry/registry.did", &arg("registry"));
        let registry = Decode!(&bytes, RegistryInit).expect("RegistryInit");
        assert_eq!(
            registry.ledger.to_text(),
            values["STAKE_LEDGER"],
            "{network}"
        );
        assert_eq!(
            registry.matcher.map(|m| m.to_text()),
            Some(values["MATCHER"].clone())
        );

        let bytes = encode_init("src/escrow/escrow.did", &arg("escrow"));
        let escrow = Decode!(&bytes, EscrowInit).expect("EscrowInit");
        assert_eq!(
            escrow
                .ledgers
                .iter()
                .map(Principal::to_text)
                .collect::<Vec<_>>(),
            vec![values["STAKE_LEDGER"].clone()],
            "{network}"
        );

        let bytes = encode_init("src/matcher/matcher.did", &arg("matcher"));
        let matcher = Decode!(&bytes, MatcherInit).expect("MatcherInit");
        assert_eq!(matcher.registry.to_text(), values["REGISTRY"], "{network}");
        assert_eq!(matcher.escrow.to_text(), values["ESCROW"], "{network}");
        assert_eq!(
            matcher.privacy.map(|p| p.key_name),
            Some(values["VETKD_KEY"].clone()),
            "{network}"
        );

        if network == "devnet" {
            encode_init("testkit/ledger/ledger.did", &arg("ledger"));
        }
    }
}

#[test]
fn the_mainnet_values_name_the_ics_own_canisters() {
    let ic = env_file("deploy/ic.env");
    assert_eq!(ic["STAKE_LEDGER"], "ryjl3-tyaaa-aaaaa-aaaba-cai");
    assert_eq!(ic["CMC"], "rkp4c-7iaaa-aaaaa-aaaca-cai");
    assert_eq!(ic["CYCLES_LEDGER"], "um5iw-rqaaa-aaaaq-qaaba-cai");
    assert_eq!(ic["VETKD_KEY"], "key_1");
}

#[test]
fn icp_yaml_deploys_the_built_canisters() {
    let yaml = read("icp.yaml");
    for canister in ["registry", "escrow", "matcher"] {
        assert!(
            yaml.contains(&format!("- name: {canister}\n")),
            "icp.yaml has no canister {canister}"
        );
        assert!(
            yaml.contains(&format!("scripts/build-canisters.sh {canister}")),
            "icp.yaml does not build {canister} with the pinned build"
        );
    }
    let build = read("scripts/build-canisters.sh");
    assert!(build.contains("target/canisters"));
}
