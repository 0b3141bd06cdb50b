//! The built canister modules are valid WebAssembly, export an entry point
//! for every method of their `.did` (as an update or a query, as declared),
//! and carry the `candid:service` metadata that dfx and icp-cli read.

use market_artifacts::{canister_wasm, did_methods, did_path};
use std::collections::BTreeSet;
use wasmparser::{Parser, Payload, Validator, WasmFeatures};

struct Module {
    exports: BTreeSet<String>,
    custom_sections: Vec<(String, Vec<u8>)>,
}

fn parse(bytes: &[u8]) -> Module {
    let mut validator = Validator::new_with_features(WasmFeatures::default());
    validator
        .validate_all(bytes)
        .expect("module is valid WebAssembly");
    let mut exports = BTreeSet::new();
    let mut custom_sections = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.expect("module parses") {
            Payload::ExportSection(reader) => {
                for export in reader {
                    exports.insert(export.expect("export parses").name.to_string());
                }
            }
            Payload::CustomSection(c) => {
                custom_sections.push((c.name().to_string(), c.data().to_vec()));
            }
            _ => {}
        }
    }
    Module {
        exports,
        custom_sections,
    }
}

fn check_canister(name: &str) {
    let did_path = did_path(name);
    let did = std::fs::read_to_string(&did_path).expect("checked-in .did");
    let module = parse(&canister_wasm(name));

    let methods = did_methods(&did);
    assert!(!methods.is_empty(), "{name}.did declares no methods");
    for (method, query) in &methods {
        let (want, other) = if *query {
            (
                format!("canister_query {method}"),
                format!("canister_update {method}"),
            )
        } else {
            (
                format!("canister_update {method}"),
                format!("canister_query {method}"),
            )
        };
        assert!(
            module.exports.contains(&want),
            "{name}.wasm lacks export `{want}`"
        );
        assert!(
            !module.exports.contains(&other),
            "{name}.wasm exports `{other}` against its .did"
        );
    }
    for export in &module.exports {
        if let Some(m) = export
            .strip_prefix("canister_update ")
            .or_else(|| export.strip_prefix("canister_query "))
        {
            assert!(
                methods.iter().any(|(name, _)| name == m) || m.starts_with("<ic-cdk internal>"),
                "{name}.wasm exports `{export}`, which its .did does not declare"
            );
        }
    }

    let metadata = module
        .custom_sections
        .iter()
        .find(|(section, _)| section == "icp:public candid:service")
        .unwrap_or_else(|| panic!("{name}.wasm has no public candid:service metadata"));
    assert_eq!(
        std::str::from_utf8(&metadata.1).expect("metadata is UTF-8"),
        did,
        "{name}.wasm carries a different interface than {name}.did; rebuild it"
    );
}

#[test]
fn registry_module_matches_its_did() {
    check_canister("registry");
}

#[test]
fn escrow_module_matches_its_did() {
    check_canister("escrow");
}

#[test]
fn matcher_module_matches_its_did() {
    check_canister("matcher");
}

#[test]
fn explorer_module_matches_its_did() {
    check_canister("explorer");
}

#[test]
fn ledger_module_matches_its_did() {
    check_canister("ledger");
}

#[test]
fn example_client_module_matches_its_did() {
    check_canister("example-client");
}

#[test]
fn archive_module_matches_its_did() {
    check_canister("archive");
}
