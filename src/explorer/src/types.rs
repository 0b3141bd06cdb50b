//! The explorer's Candid types.

use candid::{CandidType, Deserialize, Principal};
use serde::Serialize;

/// The explorer's init argument: the market it shows.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct ExplorerConfig {
    /// The registry canister.
    pub registry: Principal,
    /// The escrow canister.
    pub escrow: Principal,
    /// The matcher canister.
    pub matcher: Principal,
    /// Whether the page must fetch the network's root key before it
    /// verifies answers: true on a local replica or the devnet, never on
    /// mainnet (where the key is built into the agent).
    pub fetch_root_key: bool,
}

/// One piece of a file of the page, sent by a controller.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AssetUpload {
    /// The file's path, e.g. `/index.html`: starts with `/`, at most 256
    /// bytes, no `?` or `#`; not `/` or `/config.json`.
    pub path: String,
    /// Its `Content-Type`, e.g. `text/html; charset=utf-8`.
    pub content_type: String,
    /// The bytes of this piece.
    #[serde(with = "serde_bytes")]
    pub content: Vec<u8>,
    /// Whether this piece continues the file (false: it starts the file
    /// anew). A file is served, and certified, as it stands after each piece.
    pub append: bool,
}

/// A file the explorer serves.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AssetInfo {
    /// Its path.
    pub path: String,
    /// Its `Content-Type`.
    pub content_type: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// sha256 of its bytes.
    #[serde(with = "serde_bytes")]
    pub sha256: Vec<u8>,
}

/// Why an upload was refused.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum UploadError {
    /// Only the canister's controllers upload files.
    NotController,
    /// The path is not one the explorer serves (see [`AssetUpload::path`]).
    BadPath(String),
    /// The content type is empty or longer than 128 bytes.
    BadContentType,
    /// The files would pass this many bytes in all.
    TooLarge {
        /// The most bytes all files may hold.
        max_bytes: u64,
    },
    /// There would be more than this many files.
    TooManyAssets {
        /// The most files the explorer holds.
        max: u32,
    },
}
