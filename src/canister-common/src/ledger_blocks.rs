//! Learning from a ledger's block log how a transfer ended, once asking the
//! ledger again can no longer tell.
//!
//! A canister that lost a ledger's answer resends the identical transfer,
//! and the ledger's deduplication answers `Duplicate` if the first one went
//! through. That works for the ledger's deduplication window only (24 h
//! plus 60 s of drift on the ICP, ICRC and cycles ledgers); afterwards every
//! resend is refused as `TooOld`, whether or not the first one landed. Then
//! the block log decides: the transfer's memo, `created_at_time`, accounts
//! and amount identify it exactly ([`ExpectedTransfer`]), so it is either
//! in a block (done, at that index) or provably absent (failed for good).
//!
//! The log is read with the standard ICRC-3 `icrc3_get_blocks`, following
//! the archives it names. It is scanned backwards, from the tip read after
//! the ledger refused a resend as too old (so every block the transfer
//! could be in is below it) down to the first block older than the
//! transfer's `created_at_time` minus the drift (no block before it can
//! hold the transfer: the ledger refuses transfers created that far in its
//! future). The scan reads at most [`PAGES_PER_MESSAGE`] pages of
//! [`PAGE_BLOCKS`] blocks per message and keeps its place in a
//! [`BlockScan`] the caller stores, so a long log takes several messages.
//!
//! Which ledgers serve it: the ICRC ledgers of the DFINITY ledger suite (SNS
//! ledgers, ckBTC, ckETH and the other chain-key tokens) and the cycles
//! ledger list "ICRC-3" in `icrc1_supported_standards` and serve
//! `icrc3_get_blocks`. The ICP ledger does not: it has only its own
//! `query_blocks`, with account identifiers (hashes) instead of accounts.
//! On a ledger that does not list ICRC-3 the scan answers
//! [`ScanStep::Unsupported`] and the canister leaves the transfer to its
//! controllers' resolution, recorded as an event.

use candid::{Nat, Principal};
use icrc_ledger_types::icrc::generic_value::{ICRC3Map, ICRC3Value};
use icrc_ledger_types::icrc1::account::Account;
use icrc_ledger_types::icrc3::blocks::{GetBlocksRequest, GetBlocksResult};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The ledgers' deduplication window (ICRC-1 `TX_WINDOW`).
pub const TX_WINDOW_NS: u64 = 24 * 3_600 * 1_000_000_000;
/// How far in the future of the ledger's clock a transaction may be created
/// (ICRC-1 `PERMITTED_DRIFT`).
pub const PERMITTED_DRIFT_NS: u64 = 60 * 1_000_000_000;
/// Allowance for the difference between this canister's clock and the
/// ledger's, on top of the ledger's own drift.
pub const CLOCK_MARGIN_NS: u64 = 5 * 60 * 1_000_000_000;
/// Blocks asked for per `icrc3_get_blocks` call (the DFINITY ledgers serve
/// up to 2,000 at once, the test ledger 1,000).
pub const PAGE_BLOCKS: u64 = 100;
/// Pages read per message before the scan yields and resumes later.
pub const PAGES_PER_MESSAGE: u32 = 10;

/// The standard name a ledger lists when it serves `icrc3_get_blocks`.
pub const ICRC3: &str = "ICRC-3";

/// A transfer as it was sent, which its block must repeat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedTransfer {
    /// The account debited.
    pub from: Account,
    /// The account credited.
    pub to: Account,
    /// The spender of an `icrc2_transfer_from`; `None` for `icrc1_transfer`.
    pub spender: Option<Account>,
    /// The amount credited to `to`.
    pub amount: u128,
    /// The fee named in the call, if any (a block names it only then).
    pub fee: Option<u128>,
    /// The call's memo.
    pub memo: Vec<u8>,
    /// The call's `created_at_time`.
    pub created_at_time: u64,
}

/// Whether the ledger's deduplication window of a transfer created at
/// `created_at_time` has surely passed at `now` (this canister's clock):
/// a resend can then no longer tell whether it landed.
pub fn past_dedup_window(created_at_time: u64, now: u64) -> bool {
    now.saturating_sub(created_at_time) > TX_WINDOW_NS + PERMITTED_DRIFT_NS + CLOCK_MARGIN_NS
}

/// Where a scan of the block log stands, kept by the caller between
/// messages. `Default` is a scan not started.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockScan {
    /// Every block at or above this index has been read, and none holds
    /// the transfer; `None` until the ledger's tip is read.
    pub below: Option<u64>,
    /// Blocks read so far.
    #[serde(default)]
    pub blocks_read: u64,
    /// The ledger does not serve ICRC-3 blocks: only a controller can
    /// resolve the transfer.
    #[serde(default)]
    pub unsupported: bool,
}

/// What one message's part of a scan found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScanStep {
    /// The transfer is in this block.
    Found(u64),
    /// No block the transfer could be in holds it: it never happened.
    Absent,
    /// Not finished: resume from here in a later message.
    Unfinished(BlockScan),
    /// The ledger does not list ICRC-3: the log can't be read this way.
    Unsupported,
    /// A call failed; resume from here later.
    Failed {
        /// Where the scan stands (progress before the failure is kept).
        scan: BlockScan,
        /// What failed.
        error: String,
    },
}

/// The ledger calls a scan makes.
#[allow(async_fn_in_trait)]
pub trait BlockSource {
    /// The names in `ledger`'s `icrc1_supported_standards`.
    async fn supported_standards(&self, ledger: Principal) -> Result<Vec<String>, String> {
        #[derive(candid::CandidType, Deserialize)]
        struct StandardRecord {
            name: String,
            #[allow(dead_code)]
            url: String,
        }
        let records: Vec<StandardRecord> = call(ledger, "icrc1_supported_standards", &()).await?;
        Ok(records.into_iter().map(|r| r.name).collect())
    }

    /// `method` (`icrc3_get_blocks`, or an archive's callback) of `canister`.
    async fn get_blocks(
        &self,
        canister: Principal,
        method: &str,
        args: Vec<GetBlocksRequest>,
    ) -> Result<GetBlocksResult, String> {
        call(canister, method, &args).await
    }
}

async fn call<A: candid::CandidType, R: candid::CandidType + for<'de> Deserialize<'de>>(
    canister: Principal,
    method: &str,
    arg: &A,
) -> Result<R, String> {
    ic_cdk::call::Call::bounded_wait(canister, method)
        .with_arg(arg)
        .await
        .map_err(|e| format!("{method}: {e}"))?
        .candid::<R>()
        .map_err(|e| format!("undecodable reply of {method}: {e}"))
}

fn field<'a>(map: &'a ICRC3Map, name: &str) -> Option<&'a ICRC3Value> {
    map.get(name)
}

fn nat(v: Option<&ICRC3Value>) -> Option<u128> {
    match v {
        Some(ICRC3Value::Nat(n)) => u128::try_from(&n.0).ok(),
        _ => None,
    }
}

fn blob(v: Option<&ICRC3Value>) -> Option<&[u8]> {
    match v {
        Some(ICRC3Value::Blob(b)) => Some(b.as_slice()),
        _ => None,
    }
}

/// An account as ICRC-3 writes it: an array of the owner's bytes and,
/// optionally, the subaccount's.
fn account(v: Option<&ICRC3Value>) -> Option<Account> {
    let Some(ICRC3Value::Array(parts)) = v else {
        return None;
    };
    let owner = match parts.first() {
        Some(ICRC3Value::Blob(b)) => Principal::try_from_slice(b).ok()?,
        _ => return None,
    };
    let subaccount = match parts.get(1) {
        None => None,
        Some(ICRC3Value::Blob(b)) => Some(<[u8; 32]>::try_from(b.as_slice()).ok()?),
        Some(_) => return None,
    };
    if parts.len() > 2 {
        return None;
    }
    Some(Account { owner, subaccount })
}

/// The ledger time of a block (its top-level `ts`).
pub fn block_timestamp(block: &ICRC3Value) -> Option<u64> {
    let ICRC3Value::Map(map) = block else {
        return None;
    };
    nat(field(map, "ts")).and_then(|t| u64::try_from(t).ok())
}

/// Whether `block` is the transfer `expected`: a transfer block (`btype`
/// "1xfer" or "2xfer", or the older `tx.op` "xfer") with the same accounts,
/// spender, amount, memo and `created_at_time`, and the same fee if the
/// block names one. A different amount or fee under the right memo is not
/// a match.
pub fn is_transfer(block: &ICRC3Value, expected: &ExpectedTransfer) -> bool {
    let ICRC3Value::Map(map) = block else {
        return false;
    };
    let Some(ICRC3Value::Map(tx)) = field(map, "tx") else {
        return false;
    };
    let kind = match (field(map, "btype"), field(tx, "op")) {
        (Some(ICRC3Value::Text(t)), _) => t.as_str(),
        (None, Some(ICRC3Value::Text(t))) => t.as_str(),
        _ => return false,
    };
    if !matches!(kind, "xfer" | "1xfer" | "2xfer") {
        return false;
    }
    let fee_matches = match (field(tx, "fee"), expected.fee) {
        (None, _) => true,
        (Some(f), Some(expected)) => nat(Some(f)) == Some(expected),
        (Some(_), None) => false,
    };
    let spender = match field(tx, "spender") {
        None => None,
        Some(v) => match account(Some(v)) {
            Some(a) => Some(a),
            None => return false,
        },
    };
    fee_matches
        && spender == expected.spender
        && account(field(tx, "from")) == Some(expected.from)
        && account(field(tx, "to")) == Some(expected.to)
        && nat(field(tx, "amt")) == Some(expected.amount)
        && blob(field(tx, "memo")) == Some(expected.memo.as_slice())
        && nat(field(tx, "ts")) == Some(u128::from(expected.created_at_time))
}

/// The blocks with index in `[start, start + length)`, from the ledger and
/// from the archives it points to.
async fn fetch(
    src: &impl BlockSource,
    ledger: Principal,
    start: u64,
    length: u64,
) -> Result<(u64, BTreeMap<u64, ICRC3Value>), String> {
    let request = vec![GetBlocksRequest {
        start: Nat::from(start),
        length: Nat::from(length),
    }];
    let reply = src.get_blocks(ledger, "icrc3_get_blocks", request).await?;
    let log_length = u64::try_from(&reply.log_length.0)
        .map_err(|_| format!("log length {} does not fit 64 bits", reply.log_length))?;
    let mut blocks = BTreeMap::new();
    let mut keep = |list: Vec<icrc_ledger_types::icrc3::blocks::BlockWithId>| {
        for b in list {
            if let Ok(id) = u64::try_from(&b.id.0)
                && (start..start.saturating_add(length)).contains(&id)
            {
                blocks.insert(id, b.block);
            }
        }
    };
    keep(reply.blocks);
    for archived in reply.archived_blocks {
        let from_archive = src
            .get_blocks(
                archived.callback.canister_id,
                &archived.callback.method,
                archived.args,
            )
            .await?;
        keep(from_archive.blocks);
    }
    Ok((log_length, blocks))
}

/// Reads the next pages of the log for `expected`, on `ledger`, from where
/// `scan` stands. Call it only once a resend of the transfer was refused as
/// too old (or [`past_dedup_window`] holds): blocks appended later can't
/// hold it.
pub async fn scan(
    src: &impl BlockSource,
    ledger: Principal,
    expected: &ExpectedTransfer,
    mut scan: BlockScan,
) -> ScanStep {
    if scan.unsupported {
        return ScanStep::Unsupported;
    }
    let failed = |scan: BlockScan, error: String| ScanStep::Failed { scan, error };
    let mut below = match scan.below {
        Some(b) => b,
        None => {
            match src.supported_standards(ledger).await {
                Ok(names) if names.iter().any(|n| n == ICRC3) => {}
                Ok(_) => return ScanStep::Unsupported,
                Err(e) => return failed(scan, e),
            }
            match fetch(src, ledger, 0, 0).await {
                Ok((tip, _)) => tip,
                Err(e) => return failed(scan, e),
            }
        }
    };
    // The ledger refuses a transfer created more than the drift in its
    // future, so none before this time can hold it.
    let oldest = expected
        .created_at_time
        .saturating_sub(PERMITTED_DRIFT_NS + CLOCK_MARGIN_NS);
    // Shrunk to what the ledger serves if it caps pages below ours.
    let mut page = PAGE_BLOCKS;
    for _ in 0..PAGES_PER_MESSAGE {
        if below == 0 {
            return ScanStep::Absent;
        }
        let start = below.saturating_sub(page);
        let blocks = match fetch(src, ledger, start, below - start).await {
            Ok((_, blocks)) => blocks,
            Err(e) => {
                scan.below = Some(below);
                return failed(scan, e);
            }
        };
        let before = below;
        // Only an unbroken run down from `below` counts as read.
        while below > start {
            let Some(block) = blocks.get(&(below - 1)) else {
                break;
            };
            if is_transfer(block, expected) {
                return ScanStep::Found(below - 1);
            }
            if block_timestamp(block).is_some_and(|t| t < oldest) {
                return ScanStep::Absent;
            }
            below -= 1;
            scan.blocks_read = scan.blocks_read.saturating_add(1);
        }
        if below == before {
            let served = blocks.len() as u64;
            if served > 0 && served < page {
                page = served;
                continue;
            }
            scan.below = Some(below);
            return failed(scan, format!("the ledger served no block {}", below - 1));
        }
    }
    scan.below = Some(below);
    ScanStep::Unfinished(scan)
}

#[cfg(test)]
mod tests;
