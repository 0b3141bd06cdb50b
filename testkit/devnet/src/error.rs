//! Errors and rejects at the devnet's API edge.

use std::fmt;

/// Reject codes as defined by the IC interface specification (the type
/// ic-cdk uses; `code as u32` is what `ic0.msg_reject_code` returns).
pub use ic_error_types::RejectCode;

/// The IC's error codes (`IC0xxx`), which ingress senders see beside the
/// reject code.
pub use ic_error_types::ErrorCode;

/// A reject response: the code and the message, as a canister or an ingress
/// sender would see them, and the IC's error code when the IC gives one.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Reject {
    /// The reject code.
    pub code: RejectCode,
    /// The human-readable reject message.
    pub message: String,
    /// The IC's error code, whose first digit is `code`. `None` for rejects
    /// only canisters see (the IC gives them none) and for rejects made with
    /// [`Reject::new`].
    #[serde(default)]
    pub error_code: Option<ErrorCode>,
}

impl Reject {
    /// A reject with the given code and message, and no error code (an
    /// injected fault, a reject a canister receives).
    pub fn new(code: RejectCode, message: impl Into<String>) -> Self {
        Reject {
            code,
            message: message.into(),
            error_code: None,
        }
    }

    /// A reject as the IC makes it for `error_code`: the reject code is the
    /// one the error code belongs to.
    pub fn error(error_code: ErrorCode, message: impl Into<String>) -> Self {
        Reject {
            code: error_code.into(),
            message: message.into(),
            error_code: Some(error_code),
        }
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "reject {:?} ({})", self.code, self.code as u32)?;
        if let Some(e) = self.error_code {
            write!(f, " {e}")?;
        }
        write!(f, ": {}", self.message)
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

/// The reject of a message that trapped with `message` (as `instance`
/// describes traps): the IC's error code for the kind of trap.
pub(crate) fn trap_reject(message: String) -> Reject {
    let code = if message.contains("`ic0.trap`") {
        ErrorCode::CanisterCalledTrap
    } else if message.contains("instruction limit") {
        ErrorCode::CanisterInstructionLimitExceeded
    } else {
        ErrorCode::CanisterTrapped
    };
    Reject::error(code, message)
}
