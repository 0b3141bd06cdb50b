//! The block log in the standard ICRC-3 form: `icrc3_get_blocks` serves the
//! same blocks as `list_blocks`, each as a generic `ICRC3Value` written the
//! way the DFINITY ICRC ledgers write theirs (`ts` and the charged `fee` at
//! the top, the transaction under `tx` with its `op`, accounts, `amt`,
//! `memo` and `created_at_time` as `ts`).
//!
//! Kept simple, as a test ledger may be: there are no archives (every block
//! stays in the ledger, so `archived_blocks` is always empty) and no hash
//! chain (no `phash`, no tip certificate).

use candid::Nat;
use icrc_ledger_types::icrc::generic_value::{ICRC3Map, ICRC3Value};
use icrc_ledger_types::icrc1::account::Account;
use icrc_ledger_types::icrc3::blocks::{BlockWithId, GetBlocksRequest, GetBlocksResult};
use serde_bytes::ByteBuf;

use crate::block::{Block, Operation};
use crate::config::MAX_BLOCKS_PER_PAGE;
use crate::state::State;

fn account(a: &Account) -> ICRC3Value {
    let mut parts = vec![ICRC3Value::Blob(ByteBuf::from(a.owner.as_slice().to_vec()))];
    if let Some(sub) = a.subaccount {
        parts.push(ICRC3Value::Blob(ByteBuf::from(sub.to_vec())));
    }
    ICRC3Value::Array(parts)
}

fn nat(n: u64) -> ICRC3Value {
    ICRC3Value::Nat(Nat::from(n))
}

/// A block as an ICRC-3 value.
pub fn block_value(block: &Block) -> ICRC3Value {
    let mut tx = ICRC3Map::new();
    let mut top = ICRC3Map::new();
    let mut put = |k: &str, v: ICRC3Value| {
        tx.insert(k.to_string(), v);
    };
    let charged = match &block.operation {
        Operation::Mint { to, amount } => {
            put("op", ICRC3Value::Text("mint".into()));
            put("to", account(to));
            put("amt", nat(*amount));
            None
        }
        Operation::Burn {
            from,
            spender,
            amount,
        } => {
            put("op", ICRC3Value::Text("burn".into()));
            put("from", account(from));
            if let Some(s) = spender {
                put("spender", account(s));
            }
            put("amt", nat(*amount));
            None
        }
        Operation::Transfer {
            from,
            to,
            spender,
            amount,
            fee,
        } => {
            put("op", ICRC3Value::Text("xfer".into()));
            put("from", account(from));
            put("to", account(to));
            if let Some(s) = spender {
                put("spender", account(s));
            }
            put("amt", nat(*amount));
            Some(*fee)
        }
        Operation::Approve {
            from,
            spender,
            amount,
            expected_allowance,
            expires_at,
            fee,
        } => {
            put("op", ICRC3Value::Text("approve".into()));
            put("from", account(from));
            put("spender", account(spender));
            put("amt", nat(*amount));
            if let Some(e) = expected_allowance {
                put("expected_allowance", nat(*e));
            }
            if let Some(t) = expires_at {
                put("expires_at", nat(*t));
            }
            Some(*fee)
        }
    };
    if let Some(memo) = &block.memo {
        put("memo", ICRC3Value::Blob(memo.0.clone()));
    }
    if let Some(t) = block.created_at_time {
        put("ts", nat(t));
    }
    top.insert("ts".into(), nat(block.timestamp));
    if let Some(fee) = charged {
        top.insert("fee".into(), nat(fee));
    }
    top.insert("tx".into(), ICRC3Value::Map(tx));
    ICRC3Value::Map(top)
}

/// `icrc3_get_blocks`: the blocks of every requested range that exists, in
/// request order, at most [`MAX_BLOCKS_PER_PAGE`] in all.
pub fn get_blocks(state: &State, requests: &[GetBlocksRequest]) -> GetBlocksResult {
    let log_length = state.block_count();
    let mut blocks = Vec::new();
    let mut room = MAX_BLOCKS_PER_PAGE;
    for request in requests {
        let Ok((start, length)) = request.as_start_and_length() else {
            continue;
        };
        let page = state.blocks_page(start, length.min(room));
        room -= page.blocks.len() as u64;
        blocks.extend(
            page.blocks
                .iter()
                .zip(page.first_index..)
                .map(|(b, id)| BlockWithId {
                    id: Nat::from(id),
                    block: block_value(b),
                }),
        );
    }
    GetBlocksResult {
        log_length: Nat::from(log_length),
        blocks,
        archived_blocks: vec![],
    }
}
