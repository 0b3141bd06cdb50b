//! Errors and rejects at the devnet's API edge.

use std::fmt;

/// Reject codes as defined by the IC interface specification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum RejectCode {
    /// 1: fatal system error.
    SysFatal,
    /// 2: transient system error; retrying may succeed.
    SysTransient,
    /// 3: the destination canister or method does not exist.
    DestinationInvalid,
    /// 4: the canister rejected the message explicitly.
    CanisterReject,
    /// 5: the canister trapped or did not reply.
    CanisterError,
    /// 6: bounded-wait call whose outcome is unknown (e.g. deadline passed).
    SysUnknown,
}

impl RejectCode {
    /// The numeric code seen by canisters (`ic0.msg_reject_code`).
    pub fn as_u32(self) -> u32 {
        match self {
            RejectCode::SysFatal => 1,
            RejectCode::SysTransient => 2,
            RejectCode::DestinationInvalid => 3,
            RejectCode::CanisterReject => 4,
            RejectCode::CanisterError => 5,
            RejectCode::SysUnknown => 6,
        }
    }

    /// The code for a numeric value, if it is one of the six defined codes.
    pub fn from_u32(code: u32) -> Option<Self> {
        Some(match code {
            1 => RejectCode::SysFatal,
            2 => RejectCode::SysTransient,
            3 => RejectCode::DestinationInvalid,
            4 => RejectCode::CanisterReject,
            5 => RejectCode::CanisterError,
            6 => RejectCode::SysUnknown,
            _ => return None,
        })
    }
}

/// A reject response: the code and the message, as a canister or an ingress
/// sender would see them.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Reject {
    /// The reject code.
    pub code: RejectCode,
    /// The human-readable reject message.
    pub message: String,
}

impl Reject {
    /// A reject with the given code and message.
    pub fn new(code: RejectCode, message: impl Into<String>) -> Self {
        Reject {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "reject {:?} ({}): {}",
            self.code,
            self.code.as_u32(),
            self.message
        )
    }
}

impl std::error::Error for Reject {}

/// Why a module could not be installed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InstallError {
    /// The module imports a function the devnet does not implement.
    UnsupportedImport(String),
    /// The bytes are not a valid WebAssembly module for the devnet.
    InvalidModule(String),
    /// The canister does not exist.
    CanisterNotFound(candid::Principal),
    /// The sender is not a controller of the canister.
    NotController(candid::Principal),
    /// The mode needs an installed module (upgrade) or an empty canister (install).
    WrongMode(String),
    /// `canister_init`, `canister_pre_upgrade` or `canister_post_upgrade` trapped.
    Trapped(String),
}

impl fmt::Display for InstallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InstallError::UnsupportedImport(i) => {
                write!(
                    f,
                    "module imports `{i}`, which the devnet does not implement"
                )
            }
            InstallError::InvalidModule(e) => write!(f, "invalid wasm module: {e}"),
            InstallError::CanisterNotFound(c) => write!(f, "canister {c} not found"),
            InstallError::NotController(p) => write!(f, "{p} is not a controller"),
            InstallError::WrongMode(e) => write!(f, "wrong install mode: {e}"),
            InstallError::Trapped(e) => write!(f, "canister trapped during installation: {e}"),
        }
    }
}

impl std::error::Error for InstallError {}

/// Errors of the typed Candid helpers.
#[derive(Debug)]
pub enum CallError {
    /// The call was rejected.
    Reject(Reject),
    /// The argument could not be encoded or the reply decoded.
    Candid(candid::Error),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Reject(r) => r.fmt(f),
            CallError::Candid(e) => write!(f, "candid: {e}"),
        }
    }
}

impl std::error::Error for CallError {}

impl From<Reject> for CallError {
    fn from(r: Reject) -> Self {
        CallError::Reject(r)
    }
}

impl From<candid::Error> for CallError {
    fn from(e: candid::Error) -> Self {
        CallError::Candid(e)
    }
}
