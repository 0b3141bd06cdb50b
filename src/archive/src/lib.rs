//! The archive canister: the old blocks of one marketplace canister's
//! certified ICRC-3 event log (the registry's, the escrow's or the
//! matcher's), which that canister moves here once its own log passes its
//! configured size.
//!
//! It is deployed beside its owner and named to it by the controllers
//! (`set_log_archiving`); its init argument names the owner, the only
//! caller that may append. The rules (in order, idempotent, bounded
//! batches, a capacity) are `canister_common::block_archive`'s; here are
//! only the entry points. Its blocks are trusted by clients only through
//! the owner's certified tip: each block's hash is in the next block's
//! `phash`, down from the tip the owner certifies.

mod canister;

pub use canister::candid_interface;
