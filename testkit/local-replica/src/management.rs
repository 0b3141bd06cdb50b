//! The management canister (`aaaaa-aa`) as deployment tools see it over
//! HTTP. The devnet library implements creation, installation, settings,
//! status, stopping, starting, deleting, logs and randomness; this module
//! adds what tools call on top (the chunk store and its size in
//! `canister_status`, `install_chunked_code`, `provisional_top_up_canister`,
//! `canister_metadata`).

use std::collections::{BTreeMap, HashMap};

use candid::{CandidType, Decode, Deserialize, Encode, Nat, Principal};
use devnet::{Devnet, ErrorCode, InstallError, InstallMode, MessageId, Reject, UpgradeFlags};
use ic_management_canister_types::{
    CanisterIdRecord, CanisterInstallMode, CanisterMetadataArgs, CanisterMetadataResult,
    CanisterStatusResult, ChunkHash, InstallChunkedCodeArgs, ProvisionalTopUpCanisterArgs,
    UploadChunkArgs,
};
use sha2::{Digest, Sha256};

use crate::metadata::ModuleMetadata;

/// Largest chunk `upload_chunk` accepts (IC: 1 MiB).
const MAX_CHUNK: usize = 1 << 20;
/// Most chunks one canister's store holds (IC: 100 MiB / 1 MiB).
const MAX_CHUNKS: usize = 100;

/// What the HTTP layer's management canister keeps beside the devnet: the
/// canisters' wasm chunk stores and the metadata of installed modules.
#[derive(Default)]
pub struct ManagementState {
    stores: HashMap<Principal, BTreeMap<[u8; 32], Vec<u8>>>,
    /// Metadata sections of the modules installed so far.
    pub metadata: ModuleMetadata,
}

impl ManagementState {
    /// Empty chunk stores beside `metadata` (a loaded state's).
    pub fn with_metadata(metadata: ModuleMetadata) -> Self {
        ManagementState {
            stores: HashMap::new(),
            metadata,
        }
    }
}

fn reject(code: ErrorCode, message: impl Into<String>) -> Reject {
    Reject::error(code, message)
}

fn bad_arg(e: candid::Error) -> Reject {
    reject(
        ErrorCode::InvalidManagementPayload,
        format!("Error decoding candid: {e}"),
    )
}

fn not_found(canister: Principal) -> Reject {
    reject(
        ErrorCode::CanisterNotFound,
        format!("Canister {canister} not found"),
    )
}

fn install_reject(e: InstallError) -> Reject {
    let code = match &e {
        InstallError::CanisterNotFound(c) => return not_found(*c),
        InstallError::NotController(_) => ErrorCode::CanisterInvalidController,
        InstallError::Trapped(t) if t.contains("`ic0.trap`") => ErrorCode::CanisterCalledTrap,
        InstallError::Trapped(t) if t.contains("instruction limit") => {
            ErrorCode::CanisterInstructionLimitExceeded
        }
        InstallError::Trapped(_) => ErrorCode::CanisterTrapped,
        InstallError::UnsupportedImport(_) | InstallError::InvalidModule(_) => {
            ErrorCode::CanisterInvalidWasm
        }
        InstallError::WrongMode(m) if m.contains("already has") => ErrorCode::CanisterNonEmpty,
        InstallError::WrongMode(_) => ErrorCode::CanisterWasmModuleNotFound,
    };
    reject(code, e.to_string())
}

fn require_controller(
    devnet: &Devnet,
    caller: Principal,
    canister: Principal,
) -> Result<(), Reject> {
    match devnet.controllers(canister) {
        None => Err(not_found(canister)),
        Some(c) if !c.contains(&caller) => Err(reject(
            ErrorCode::CanisterInvalidController,
            format!("Only the controllers of the canister {canister} can control it."),
        )),
        Some(_) => Ok(()),
    }
}

fn encode<T: CandidType>(value: &T) -> Vec<u8> {
    Encode!(value).expect("encoding a management reply")
}

/// The answer of an ingress call to the management canister.
pub enum Answer {
    /// Answered at once.
    Now(Result<Vec<u8>, Reject>),
    /// Answered later by the devnet (a `stop_canister` waiting for the
    /// canister's calls to finish): poll the message.
    Later(MessageId),
}

/// Handles an ingress call to the management canister from `sender`.
pub fn call(
    devnet: &mut Devnet,
    chunks: &mut ManagementState,
    sender: Principal,
    method: &str,
    arg: &[u8],
) -> Answer {
    match method {
        "stop_canister" => {
            match devnet.submit_call(
                Principal::management_canister(),
                sender,
                method,
                arg.to_vec(),
            ) {
                Ok(id) => match devnet.ingress_status(id) {
                    devnet::IngressStatus::Pending => Answer::Later(id),
                    _ => Answer::Now(devnet.await_call(id)),
                },
                Err(reject) => Answer::Now(Err(reject)),
            }
        }
        _ => Answer::Now(call_at_once(devnet, chunks, sender, method, arg)),
    }
}

fn call_at_once(
    devnet: &mut Devnet,
    chunks: &mut ManagementState,
    sender: Principal,
    method: &str,
    arg: &[u8],
) -> Result<Vec<u8>, Reject> {
    match method {
        "canister_status" => canister_status(devnet, chunks, sender, arg),
        "delete_canister" => {
            let canister = controlled_canister(devnet, sender, arg)?;
            let reply = devnet_management(devnet, sender, method, arg)?;
            chunks.stores.remove(&canister);
            Ok(reply)
        }
        "provisional_top_up_canister" => {
            let args = Decode!(arg, ProvisionalTopUpCanisterArgs).map_err(bad_arg)?;
            if !devnet.canister_exists(args.canister_id) {
                return Err(not_found(args.canister_id));
            }
            let amount = u128::try_from(args.amount.0).unwrap_or(u128::MAX);
            devnet.add_cycles(args.canister_id, amount);
            Ok(encode(&()))
        }
        "upload_chunk" => {
            let args = Decode!(arg, UploadChunkArgs).map_err(bad_arg)?;
            require_controller(devnet, sender, args.canister_id)?;
            if args.chunk.len() > MAX_CHUNK {
                return Err(reject(
                    ErrorCode::CanisterContractViolation,
                    format!("chunk of {} bytes exceeds 1 MiB", args.chunk.len()),
                ));
            }
            let store = chunks.stores.entry(args.canister_id).or_default();
            if store.len() >= MAX_CHUNKS {
                return Err(reject(
                    ErrorCode::CanisterContractViolation,
                    "the chunk store is full",
                ));
            }
            let hash: [u8; 32] = Sha256::digest(&args.chunk).into();
            store.insert(hash, args.chunk);
            Ok(encode(&ChunkHash {
                hash: hash.to_vec(),
            }))
        }
        "stored_chunks" => {
            let canister = controlled_canister(devnet, sender, arg)?;
            let hashes: Vec<ChunkHash> = chunks
                .stores
                .get(&canister)
                .map(|s| s.keys().map(|h| ChunkHash { hash: h.to_vec() }).collect())
                .unwrap_or_default();
            Ok(encode(&hashes))
        }
        "clear_chunk_store" => {
            let canister = controlled_canister(devnet, sender, arg)?;
            chunks.stores.remove(&canister);
            Ok(encode(&()))
        }
        "install_chunked_code" => {
            let args = Decode!(arg, InstallChunkedCodeArgs).map_err(bad_arg)?;
            let store_canister = args.store_canister.unwrap_or(args.target_canister);
            require_controller(devnet, sender, store_canister)?;
            let store = chunks.stores.get(&store_canister);
            let mut wasm = Vec::new();
            for ChunkHash { hash } in &args.chunk_hashes_list {
                let chunk = store
                    .and_then(|s| {
                        <[u8; 32]>::try_from(hash.as_slice())
                            .ok()
                            .and_then(|h| s.get(&h))
                    })
                    .ok_or_else(|| {
                        reject(
                            ErrorCode::CanisterContractViolation,
                            format!(
                                "chunk {} is not in the store of {store_canister}",
                                hex::encode(hash)
                            ),
                        )
                    })?;
                wasm.extend_from_slice(chunk);
            }
            if Sha256::digest(&wasm).as_slice() != args.wasm_module_hash.as_slice() {
                return Err(reject(
                    ErrorCode::CanisterContractViolation,
                    "the hash of the assembled module differs from wasm_module_hash",
                ));
            }
            chunks.metadata.record(&wasm);
            devnet
                .install_code(
                    sender,
                    args.target_canister,
                    install_mode(args.mode),
                    &wasm,
                    args.arg,
                )
                .map_err(install_reject)?;
            Ok(encode(&()))
        }
        "canister_metadata" => canister_metadata(devnet, chunks, sender, arg),
        "install_code" => {
            #[derive(CandidType, Deserialize)]
            struct WasmOnly {
                wasm_module: serde_bytes::ByteBuf,
            }
            if let Ok(args) = Decode!(arg, WasmOnly) {
                chunks.metadata.record(&args.wasm_module);
            }
            devnet_management(devnet, sender, method, arg)
        }
        // Creation, update_settings, start, uninstall, logs, raw_rand,
        // deposit_cycles: the devnet's own management canister, which
        // answers these at once.
        _ => devnet_management(devnet, sender, method, arg),
    }
}

/// The call answered by the devnet's own management canister.
fn devnet_management(
    devnet: &mut Devnet,
    sender: Principal,
    method: &str,
    arg: &[u8],
) -> Result<Vec<u8>, Reject> {
    let id = devnet.submit_call(
        Principal::management_canister(),
        sender,
        method,
        arg.to_vec(),
    )?;
    devnet.await_call(id)
}

/// The canister named by a `CanisterIdRecord` argument, once `sender` is
/// known to control it.
fn controlled_canister(
    devnet: &Devnet,
    sender: Principal,
    arg: &[u8],
) -> Result<Principal, Reject> {
    let args = Decode!(arg, CanisterIdRecord).map_err(bad_arg)?;
    require_controller(devnet, sender, args.canister_id)?;
    Ok(args.canister_id)
}

/// Handles a query to the management canister (ic-utils sends
/// `canister_status` as a query by default).
pub fn query(
    devnet: &Devnet,
    chunks: &ManagementState,
    sender: Principal,
    method: &str,
    arg: &[u8],
) -> Result<Vec<u8>, Reject> {
    match method {
        "canister_status" => canister_status(devnet, chunks, sender, arg),
        "canister_metadata" => canister_metadata(devnet, chunks, sender, arg),
        _ => devnet.management_query(sender, method, arg),
    }
}

fn canister_status(
    devnet: &Devnet,
    chunks: &ManagementState,
    sender: Principal,
    arg: &[u8],
) -> Result<Vec<u8>, Reject> {
    let args = Decode!(arg, CanisterIdRecord).map_err(bad_arg)?;
    devnet.require_status_viewer(sender, args.canister_id)?;
    Ok(encode(&full_status(devnet, chunks, args.canister_id)))
}

fn canister_metadata(
    devnet: &Devnet,
    state: &ManagementState,
    sender: Principal,
    arg: &[u8],
) -> Result<Vec<u8>, Reject> {
    let args = Decode!(arg, CanisterMetadataArgs).map_err(bad_arg)?;
    match metadata_section(devnet, state, sender, args.canister_id, &args.name)? {
        Some(value) => Ok(encode(&CanisterMetadataResult { value })),
        None => Err(reject(
            ErrorCode::CanisterContractViolation,
            format!(
                "Canister {} has no metadata section '{}'",
                args.canister_id, args.name
            ),
        )),
    }
}

/// The metadata section `name` of the canister's module, if it has one and
/// `sender` may read it (private sections: controllers only).
pub fn metadata_section(
    devnet: &Devnet,
    state: &ManagementState,
    sender: Principal,
    canister: Principal,
    name: &str,
) -> Result<Option<Vec<u8>>, Reject> {
    let Some(hash) = devnet.module_hash(canister) else {
        return Ok(None);
    };
    match state.metadata.get(&hash, name) {
        None => Ok(None),
        Some(section) if section.public => Ok(Some(section.content.clone())),
        Some(section) => {
            require_controller(devnet, sender, canister)?;
            Ok(Some(section.content.clone()))
        }
    }
}

fn install_mode(mode: CanisterInstallMode) -> InstallMode {
    match mode {
        CanisterInstallMode::Install => InstallMode::Install,
        CanisterInstallMode::Reinstall => InstallMode::Reinstall,
        CanisterInstallMode::Upgrade(flags) => InstallMode::Upgrade(flags.map(|f| UpgradeFlags {
            skip_pre_upgrade: f.skip_pre_upgrade,
        })),
    }
}

/// `canister_status` as the devnet reports it, with the size of the
/// canister's chunk store, which this layer keeps.
fn full_status(
    devnet: &Devnet,
    chunks: &ManagementState,
    canister: Principal,
) -> CanisterStatusResult {
    let mut status = devnet.canister_status(canister).expect("checked to exist");
    let chunk_bytes: usize = chunks
        .stores
        .get(&canister)
        .map(|s| s.values().map(Vec::len).sum())
        .unwrap_or(0);
    status.memory_metrics.wasm_chunk_store_size = Nat::from(chunk_bytes);
    status
}

/// The canister a management call acts on, from its argument's
/// `canister_id` (or `target_canister`), if it has one: the IC's effective
/// canister id of the call.
pub fn effective_canister(arg: &[u8]) -> Option<Principal> {
    #[derive(CandidType, Deserialize)]
    struct WithCanisterId {
        canister_id: Principal,
    }
    #[derive(CandidType, Deserialize)]
    struct WithTarget {
        target_canister: Principal,
    }
    Decode!(arg, WithCanisterId)
        .map(|a| a.canister_id)
        .or_else(|_| Decode!(arg, WithTarget).map(|a| a.target_canister))
        .ok()
}
