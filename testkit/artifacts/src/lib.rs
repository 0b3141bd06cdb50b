//! Where this repository's built artifacts are, for every test, benchmark
//! and fixture: the canister modules `scripts/build-canisters.sh` writes and
//! the workload modules `scripts/build-workloads.sh` writes, and the check
//! of a canister's `.did` file against its code.

use candid::TypeEnv;
use candid::types::Type;
use std::path::PathBuf;

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .components()
        .collect()
}

/// Directory holding the built canister modules: `$MARKET_CANISTER_DIR`, or
/// `target/canisters/` of this repository.
pub fn canister_dir() -> PathBuf {
    std::env::var_os("MARKET_CANISTER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target").join("canisters"))
}

/// The path of the built module of canister package `name`.
pub fn canister_path(name: &str) -> PathBuf {
    canister_dir().join(format!("{name}.wasm"))
}

/// Reads a built canister module.
pub fn read_canister(name: &str) -> std::io::Result<Vec<u8>> {
    std::fs::read(canister_path(name))
}

/// Reads a built canister module, or panics with the command that builds it.
pub fn canister_wasm(name: &str) -> Vec<u8> {
    read_canister(name).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; build the canisters first with scripts/build-canisters.sh",
            canister_path(name).display()
        )
    })
}

/// The checked-in Candid interface of canister package `name`: the
/// product's canisters under `src/`, the test kit's under `testkit/`.
pub fn did_path(name: &str) -> PathBuf {
    let root = repo_root();
    let dir = match name {
        "registry" | "escrow" | "matcher" | "archive" | "explorer" => root.join("src").join(name),
        "ledger" => root.join("testkit/ledger"),
        "example-client" => root.join("testkit/canisters/example-client"),
        "sns-governance-standin" => root.join("testkit/canisters/sns-governance"),
        "rates-standin" => root.join("testkit/canisters/rates"),
        other => panic!("{other} has no checked-in .did"),
    };
    dir.join(format!("{name}.did"))
}

/// Directory holding the built workload modules: `$MARKET_WORKLOAD_DIR`,
/// or `target/workloads/` of this repository.
pub fn workload_dir() -> PathBuf {
    std::env::var_os("MARKET_WORKLOAD_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target").join("workloads"))
}

/// The path of built workload `name` (`echo`, `hello-service`, ...):
/// `<name>.wasm` in [`workload_dir`]. Batch jobs there are WASI preview 1
/// modules; services (`hello-service`, `hostile-service`, `tcp-relay`) are
/// WASI 0.2 components.
pub fn workload_path(name: &str) -> PathBuf {
    workload_dir().join(format!("{name}.wasm"))
}

/// The bytes of built workload `name` (see [`workload_path`]); panics
/// saying how to build the workloads when it is missing.
pub fn workload(name: &str) -> Vec<u8> {
    let path = workload_path(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "workload {} is missing ({e}); build the workloads first with scripts/build-workloads.sh",
            path.display()
        )
    })
}

/// Fails, showing the generated interface, when `generated` (from a
/// canister's code) is not the same service as the checked-in `.did` file.
///
/// With `UPDATE_DID=1` in the environment it rewrites the file instead; the
/// generated text carries the doc comments of the Rust types and methods.
pub fn assert_did_matches(generated: &str, did_path: &str) {
    use candid_parser::utils::{CandidSource, service_equal};
    let path = std::path::Path::new(did_path);
    if std::env::var_os("UPDATE_DID").is_some() {
        std::fs::write(path, generated).unwrap_or_else(|e| panic!("cannot write {did_path}: {e}"));
    }
    if let Err(e) = service_equal(CandidSource::Text(generated), CandidSource::File(path)) {
        panic!(
            "the Candid interface of the code differs from {did_path}: {e}\n\
             rerun with UPDATE_DID=1 to write this interface to it:\n\n{generated}"
        );
    }
}

/// [`assert_did_matches`], and more: the checked-in file is the generated
/// text to the letter, so its comments are the code's doc comments and a
/// rewrite with `UPDATE_DID=1` changes nothing. For the product's canisters,
/// whose `.did` files are only ever generated (a stand-in's may follow a
/// published file instead).
pub fn assert_did_is_generated(generated: &str, did_path: &str) {
    assert_did_matches(generated, did_path);
    let file =
        std::fs::read_to_string(did_path).unwrap_or_else(|e| panic!("cannot read {did_path}: {e}"));
    if generated == file {
        return;
    }
    let n = generated
        .lines()
        .zip(file.lines())
        .take_while(|(a, b)| a == b)
        .count();
    panic!(
        "{did_path} is the code's interface, but differs from the generated text \
         from its line {} on (a doc comment changed?):\n  file: {}\n  code: {}\n\
         rerun with UPDATE_DID=1 to write the generated text",
        n + 1,
        file.lines().nth(n).unwrap_or("(the end)"),
        generated.lines().nth(n).unwrap_or("(the end)"),
    );
}

/// Checks that `ruled` (the methods a canister's ingress filter has a rule
/// for) are exactly the update methods of the `.did` file at `did_path`.
pub fn assert_updates_are(did_path: &str, ruled: &[&str]) {
    let did = std::fs::read_to_string(did_path).expect("read the .did file");
    let mut updates: Vec<String> = did_methods(&did)
        .into_iter()
        .filter(|(_, query)| !query)
        .map(|(name, _)| name)
        .collect();
    updates.sort();
    let mut ruled: Vec<String> = ruled.iter().map(|m| m.to_string()).collect();
    ruled.sort();
    assert_eq!(
        ruled, updates,
        "ingress rules against the update methods of {did_path}"
    );
}

/// Declares a canister crate's two interface tests: the Candid interface
/// its code exports (`$canister::candid_interface()`) is the checked-in
/// `$canister.did` beside its `Cargo.toml`, to the letter
/// ([`assert_did_is_generated`]), and `$ruled` (the methods its
/// ingress filter has a rule for) are exactly that file's update methods.
#[macro_export]
macro_rules! canister_interface_tests {
    ($canister:ident, $ruled:expr) => {
        #[test]
        fn candid_interface_matches_checked_in_did() {
            $crate::assert_did_is_generated(
                &$canister::candid_interface(),
                concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/",
                    stringify!($canister),
                    ".did"
                ),
            );
        }

        #[test]
        fn every_update_method_has_one_ingress_rule() {
            $crate::assert_updates_are(
                concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/",
                    stringify!($canister),
                    ".did"
                ),
                $ruled,
            );
        }
    };
}

/// (method name, is a query) for each method of the service in `did`.
pub fn did_methods(did: &str) -> Vec<(String, bool)> {
    let (_, methods) = did_service(did);
    methods
        .into_iter()
        .map(|(name, query, _)| (name, query))
        .collect()
}

/// The type environment of the service in `did` and, for each of its
/// methods, (name, is a query, result types).
pub fn did_service(did: &str) -> (TypeEnv, Vec<(String, bool, Vec<Type>)>) {
    let (env, service) = candid_parser::utils::CandidSource::Text(did)
        .load()
        .expect(".did parses");
    let service = service.expect(".did has a service");
    let methods = env
        .as_service(&service)
        .expect("service type")
        .iter()
        .map(|(name, ty)| {
            let func = env.as_func(ty).expect("method type");
            let query = func.modes.iter().any(|m| {
                matches!(
                    m,
                    candid::types::FuncMode::Query | candid::types::FuncMode::CompositeQuery
                )
            });
            (name.clone(), query, func.rets.clone())
        })
        .collect();
    (env, methods)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workload_is_its_name_with_wasm_in_the_workload_dir() {
        let path = workload_path("hello-service");
        assert_eq!(path.parent(), Some(workload_dir().as_path()));
        assert_eq!(path.file_name().unwrap(), "hello-service.wasm");
    }
}
