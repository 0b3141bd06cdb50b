//! Shared helpers of the cross-crate integration tests: where the built
//! artifacts live and how to read them.

use std::path::PathBuf;

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Directory holding the built canister modules (`target/canisters/` unless
/// `MARKET_CANISTER_DIR` says otherwise).
pub fn canister_dir() -> PathBuf {
    std::env::var_os("MARKET_CANISTER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target").join("canisters"))
}

/// Reads a built canister module, or panics with the command that builds it.
pub fn canister_wasm(name: &str) -> Vec<u8> {
    let path = canister_dir().join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; build the canisters first with scripts/build-canisters.sh",
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

/// (method name, is a query) for each method of the service in `did`.
pub fn did_methods(did: &str) -> Vec<(String, bool)> {
    let (env, service) = candid_parser::utils::CandidSource::Text(did)
        .load()
        .expect(".did parses");
    let service = service.expect(".did has a service");
    env.as_service(&service)
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
            (name.clone(), query)
        })
        .collect()
}
