//! The cycles minting canister stand-in's `notify_top_up`: ICP sent to the
//! CMC's account for a canister becomes cycles of that canister.
//!
//! A top-up is an ICRC-1 transfer on the ICP ledger to the account
//! (CMC, [`top_up_subaccount`] of the canister) with the memo TPUP
//! (`0x50555054`, as the 8 little-endian bytes of the ICP ledger's `u64`
//! memo), then a call of `notify_top_up { block_index, canister_id }`.
//! The devnet's ICP ledger is a wasm canister named with
//! [`Devnet::set_icp_ledger`]; the stand-in reads the block with the
//! ledger's `list_blocks` query, as a query from the CMC. A block is
//! turned into cycles once: notifying it again answers what the first
//! notification did, as the real CMC does. A block the ledger does not
//! have (yet), or notified for a canister it does not top up, is refused
//! and not remembered, so the right notification can follow. Nothing is
//! refunded: a block that is no top-up (no transfer, the wrong memo) is
//! refused for good.
//!
//! Cycles minted: the amount in e8s × the CMC's `xdr_permyriad_per_icp`
//! (1 XDR = 10¹² cycles, so an e8 at r XDR per 10 000 ICP is r cycles).

use std::collections::BTreeMap;

use candid::{CandidType, Decode, Deserialize, Encode, Nat, Principal};
use icrc_ledger_types::icrc1::account::Account as IcrcAccount;
use icrc_ledger_types::icrc1::transfer::Memo;
use serde::Serialize;

use crate::Devnet;
use crate::cycles::CMC_ID;
use crate::error::{ErrorCode, Reject};

/// The memo of a top-up transfer: "TPUP".
pub const MEMO_TOP_UP: u64 = 0x5055_5054;

/// ICP per XDR of the stand-in's rate, in ten-thousandths: 1 ICP = 5 XDR.
pub const XDR_PERMYRIAD_PER_ICP: u64 = 50_000;

/// The subaccount of the CMC's account that tops up `canister`: the
/// principal's length, then its bytes, zero-padded (the IC's
/// `principal_to_subaccount`).
pub fn top_up_subaccount(canister: Principal) -> [u8; 32] {
    let bytes = canister.as_slice();
    let mut sub = [0u8; 32];
    sub[0] = bytes.len() as u8;
    sub[1..1 + bytes.len()].copy_from_slice(bytes);
    sub
}

/// Argument of `notify_top_up`.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct NotifyTopUpArg {
    /// The ICP ledger block of the transfer.
    pub block_index: u64,
    /// The canister to top up.
    pub canister_id: Principal,
}

/// Why a notification failed (the real CMC's `NotifyError`).
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub enum NotifyError {
    /// The transfer was refunded (never, on the devnet).
    Refunded {
        reason: String,
        block_index: Option<u64>,
    },
    /// Another notification of the block is under way.
    Processing,
    /// The block is too old to be notified.
    TransactionTooOld(u64),
    /// The block is no top-up of this canister.
    InvalidTransaction(String),
    /// Anything else.
    Other {
        error_code: u64,
        error_message: String,
    },
}

/// Answer of `notify_top_up`: the cycles deposited, or why not.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub enum NotifyTopUpResult {
    Ok(Nat),
    Err(NotifyError),
}

/// What the stand-in keeps: the ICP ledger it reads and the blocks
/// notified, with their answers (saved with the devnet's state).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct CmcState {
    pub(crate) icp_ledger: Option<Principal>,
    pub(crate) notified: BTreeMap<u64, NotifyTopUpResult>,
}

/// The ledger's `list_blocks` argument and reply, and its blocks, as the
/// devnet's ICP ledger (testkit/ledger) declares them.
#[derive(CandidType, Deserialize)]
struct ListBlocksArgs {
    start: u64,
    length: u64,
}

#[derive(CandidType, Deserialize)]
struct ListBlocksResult {
    log_length: u64,
    first_index: u64,
    blocks: Vec<Block>,
}

#[derive(CandidType, Deserialize)]
struct Block {
    #[allow(dead_code)]
    timestamp: u64,
    #[allow(dead_code)]
    created_at_time: Option<u64>,
    memo: Option<Memo>,
    operation: Operation,
}

#[allow(dead_code)]
#[derive(CandidType, Deserialize)]
enum Operation {
    Mint {
        to: IcrcAccount,
        amount: u64,
    },
    Burn {
        from: IcrcAccount,
        spender: Option<IcrcAccount>,
        amount: u64,
    },
    Transfer {
        from: IcrcAccount,
        to: IcrcAccount,
        spender: Option<IcrcAccount>,
        amount: u64,
        fee: u64,
    },
    Approve {
        from: IcrcAccount,
        spender: IcrcAccount,
        amount: u64,
        expected_allowance: Option<u64>,
        expires_at: Option<u64>,
        fee: u64,
    },
}

fn invalid(reason: impl Into<String>) -> NotifyTopUpResult {
    NotifyTopUpResult::Err(NotifyError::InvalidTransaction(reason.into()))
}

fn other(message: impl Into<String>) -> NotifyTopUpResult {
    NotifyTopUpResult::Err(NotifyError::Other {
        error_code: 1,
        error_message: message.into(),
    })
}

impl Devnet {
    /// Names the ICP ledger canister whose blocks the CMC stand-in's
    /// `notify_top_up` reads.
    pub fn set_icp_ledger(&mut self, ledger: Principal) {
        self.cmc.icp_ledger = Some(ledger);
    }

    /// `notify_top_up` of the CMC stand-in (see the module docs).
    pub(crate) fn cmc_notify_top_up(&mut self, arg: &[u8]) -> Result<Vec<u8>, Reject> {
        let args = Decode!(arg, NotifyTopUpArg).map_err(|e| {
            Reject::error(
                ErrorCode::CanisterCalledTrap,
                format!(
                    "Canister called `ic0.trap` with message: failed to decode the argument: {e}"
                ),
            )
        })?;
        let result = match self.cmc.notified.get(&args.block_index) {
            Some(done) => done.clone(),
            None => {
                let (result, remember) = self.top_up(&args);
                if remember {
                    self.cmc.notified.insert(args.block_index, result.clone());
                }
                result
            }
        };
        Ok(Encode!(&result).expect("encoding the CMC's answer"))
    }

    /// Checks the block and deposits the cycles; whether the answer is
    /// final for the block (remembered) or may change (the block is not
    /// there yet, the ledger could not be read).
    fn top_up(&mut self, args: &NotifyTopUpArg) -> (NotifyTopUpResult, bool) {
        let Some(ledger) = self.cmc.icp_ledger else {
            return (other("the devnet names no ICP ledger"), false);
        };
        let query = Encode!(&ListBlocksArgs {
            start: args.block_index,
            length: 1,
        })
        .expect("encoding list_blocks");
        let page = match self.query_call(ledger, CMC_ID, "list_blocks", query) {
            Ok(bytes) => match Decode!(&bytes, ListBlocksResult) {
                Ok(page) => page,
                Err(e) => return (other(format!("the ICP ledger's blocks: {e}")), false),
            },
            Err(e) => return (other(format!("the ICP ledger: {}", e.message)), false),
        };
        let block = match page.blocks.into_iter().next() {
            Some(b) if page.first_index == args.block_index => b,
            _ => {
                let reason = format!(
                    "block {} is not in the ICP ledger (its log has {} blocks)",
                    args.block_index, page.log_length
                );
                return (invalid(reason), false);
            }
        };
        let Operation::Transfer { to, amount, .. } = block.operation else {
            return (invalid("the block is not a transfer"), true);
        };
        let expected = IcrcAccount {
            owner: CMC_ID,
            subaccount: Some(top_up_subaccount(args.canister_id)),
        };
        if to != expected {
            // Not remembered: a notification naming the wrong canister
            // must not spoil the block for the right one.
            return (
                invalid(format!(
                    "the transfer went to {to}, not the CMC's account for {}",
                    args.canister_id
                )),
                false,
            );
        }
        let memo = block.memo.as_ref().map(|m| m.0.as_slice());
        if memo != Some(MEMO_TOP_UP.to_le_bytes().as_slice()) {
            return (invalid("the transfer's memo is not TPUP"), true);
        }
        let cycles = u128::from(amount) * u128::from(XDR_PERMYRIAD_PER_ICP);
        match self.canisters.get_mut(&args.canister_id) {
            None => (
                invalid(format!("canister {} does not exist", args.canister_id)),
                false,
            ),
            Some(c) => {
                c.balance = c.balance.saturating_add(cycles);
                (NotifyTopUpResult::Ok(Nat::from(cycles)), true)
            }
        }
    }
}
