//! The transaction log: one block per successful mint, burn, transfer or
//! approval, in order. Replaying the log from the start gives every balance.

use candid::{CandidType, Deserialize};
use icrc_ledger_types::icrc1::account::Account;
use icrc_ledger_types::icrc1::transfer::Memo;

/// What a block did. Amounts are in the token's smallest unit.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Operation {
    /// New tokens credited to `to` (a transfer from the minting account, or an initial balance).
    Mint {
        /// Credited account.
        to: Account,
        /// Minted amount.
        amount: u64,
    },
    /// Tokens removed from `from` (a transfer to the minting account).
    Burn {
        /// Debited account.
        from: Account,
        /// The spender when the burn went through `icrc2_transfer_from`.
        spender: Option<Account>,
        /// Burnt amount.
        amount: u64,
    },
    /// `amount` moved from `from` to `to`; `fee` was debited from `from` and burnt.
    Transfer {
        /// Debited account.
        from: Account,
        /// Credited account.
        to: Account,
        /// The spender when the transfer went through `icrc2_transfer_from`.
        spender: Option<Account>,
        /// Moved amount.
        amount: u64,
        /// Fee charged to `from`.
        fee: u64,
    },
    /// `spender` may now spend `amount` from `from` until `expires_at`;
    /// `fee` was debited from `from` and burnt.
    Approve {
        /// The account the allowance draws on.
        from: Account,
        /// The account allowed to spend.
        spender: Account,
        /// The new allowance (capped at `u64::MAX`).
        amount: u64,
        /// The allowance the caller expected to replace, if given.
        expected_allowance: Option<u64>,
        /// When the allowance lapses (nanoseconds since the epoch).
        expires_at: Option<u64>,
        /// Fee charged to `from`.
        fee: u64,
    },
}

/// One entry of the transaction log.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// Ledger time when the block was made (nanoseconds since the epoch).
    pub timestamp: u64,
    /// The caller's `created_at_time`, if given.
    pub created_at_time: Option<u64>,
    /// The caller's memo, if given.
    pub memo: Option<Memo>,
    /// What the block did.
    pub operation: Operation,
}

crate::memory::candid_storable!(Block, "block");

/// Argument of `list_blocks`: a page of the log.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ListBlocksArgs {
    /// Index of the first block wanted.
    pub start: u64,
    /// How many blocks are wanted; at most `MAX_BLOCKS_PER_PAGE` are returned.
    pub length: u64,
}

/// Reply of `list_blocks`.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ListBlocksResult {
    /// Number of blocks in the whole log.
    pub log_length: u64,
    /// Index of `blocks[0]` (equal to `start` when `start` is in the log).
    pub first_index: u64,
    /// The blocks, in order.
    pub blocks: Vec<Block>,
}
