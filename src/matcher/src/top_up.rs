//! Turning the market's ICP into the canisters' cycles.
//!
//! The market's fees collect in the matcher's escrow balance. ICP fees are
//! turned into cycles through the cycles minting canister (CMC) when
//! [`market_api::matcher::CyclesTopUpConfig`] is set; other tokens' fees
//! accumulate. Once the matcher's ICP balance in the escrow (claimable and
//! free) reaches the threshold, the watchdog records a top-up of the
//! balance less two ledger fees for the next canister in turn (registry,
//! escrow, matcher, by the top-up's number: simple, and fair enough while
//! the three burn alike) and queues one outbox step that runs it in three
//! stages, each recorded before the next:
//!
//! 1. **Funding**: the matcher's own ICP account must hold the amount and
//!    the transfer's fee. If it does not, the matcher withdraws what is
//!    missing from its escrow balance to it. Whatever a lost answer hid,
//!    the next attempt reads the account first, so a withdrawal that
//!    landed is never made again.
//! 2. **Transferring**: `icrc1_transfer` of the amount to the CMC's account
//!    for the canister with the memo TPUP and the top-up's own
//!    `created_at_time`; a retry has identical arguments, so the ledger
//!    answers `Duplicate` with the first block and never pays twice.
//! 3. **Notifying**: `notify_top_up` of that block; the CMC answers a
//!    repeat with the first answer.
//!
//! An unknown outcome, a busy callee or a transient refusal retries the
//! stage with the same key (bounded-wait calls). A refusal for good ends
//! the top-up with a `CyclesTopUpFailed` event; ICP already withdrawn
//! stays in the matcher's account, and the next top-up's funding counts
//! it. At most one top-up is under way.
//!
//! The watchdog reads the balance (two calls to the escrow) only when it
//! may have grown: after a step that can pay the market's fee finished (a
//! lock with its storage fee, a release with a fee, a probe fee, a
//! settle), after a top-up ended, and otherwise once an hour. Each of
//! those asks for a watchdog run a minute later. A busy market's balance
//! is so read every minute, an idle one's hourly.

use crate::audit;
use crate::lifecycle::Effect;
use crate::perform::Outcome;
use crate::runtime::Runtime;
use crate::state::{State, mutate_state, read_state};
use candid::{Nat, Principal};
use canister_common::codec::Cbor;
use icrc_ledger_types::icrc1::account::Account as IcrcAccount;
use icrc_ledger_types::icrc1::transfer::{Memo, TransferArg, TransferError};
use market_api::escrow::{EscrowError, WithdrawArgs};
use market_api::prices::cmc::{
    MEMO_TOP_UP, NotifyError, NotifyTopUpArg, NotifyTopUpResult, top_up_subaccount,
};
use market_api::{Account, JobId, Tokens};
use serde::{Deserialize, Serialize};

/// The outbox queue of the top-ups: an id no job reaches (jobs count up
/// from 1) nor a rate read (`rates_queue`, the top few ids).
pub const TOP_UP_QUEUE: JobId = JobId::MAX - (1 << 20);

/// Where a top-up stands.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// The matcher's own account is being funded from its escrow balance.
    Funding,
    /// The transfer to the CMC is being made.
    Transferring,
    /// The CMC is being notified of the transfer's block.
    Notifying { block_index: u64 },
}

/// A top-up under way.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TopUp {
    /// Numbers the top-ups from 0; also picks the canister.
    pub number: u64,
    /// The canister topped up.
    pub canister: Principal,
    /// E8s sent to the CMC.
    pub amount: Tokens,
    /// The ICP ledger's fee when the top-up began.
    pub fee: Tokens,
    /// The transfer's `created_at_time`: its deduplication key.
    pub created_at_time: u64,
    /// Where it stands.
    pub stage: Stage,
}

/// How long the watchdog goes without reading the matcher's balance while
/// no step of the market pays into it: ICP that reaches it otherwise (a
/// deposit in its name, a lowered threshold) waits at most this long.
pub const BALANCE_READ_EVERY_NS: u64 = 3_600 * 1_000_000_000;

/// The top-ups made and the one under way.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct TopUps {
    /// Top-ups begun so far.
    pub begun: u64,
    /// The one under way.
    pub current: Option<TopUp>,
    /// Whether the matcher's escrow balance may have grown since the
    /// watchdog last read it: a step that can pay the market's fee has
    /// finished, or a top-up has ended (see [`balance_may_have_grown`]).
    #[serde(default)]
    pub balance_may_have_grown: bool,
    /// When the watchdog last read the balance (`None`: never).
    #[serde(default)]
    pub balance_read_at_ns: Option<u64>,
}

impl TopUps {
    /// Whether the watchdog reads the balance now: no top-up is under way,
    /// and the balance may have grown, was never read, or was last read an
    /// hour ago.
    fn read_due(&self, now_ns: u64) -> bool {
        self.current.is_none()
            && (self.balance_may_have_grown
                || self
                    .balance_read_at_ns
                    .is_none_or(|t| now_ns.saturating_sub(t) >= BALANCE_READ_EVERY_NS))
    }
}

/// Notes that the matcher's escrow balance may have grown, so the
/// watchdog reads it on its next run. An idle market's watchdog otherwise
/// reads it once an hour: each read is two calls to the escrow.
pub fn balance_may_have_grown(s: &mut State) {
    let mut top_ups = s.top_ups.get().0.clone();
    if !top_ups.balance_may_have_grown {
        top_ups.balance_may_have_grown = true;
        s.top_ups.set(Cbor(top_ups));
    }
}

/// Takes the read of the balance if one is due at `now_ns`; the mark is
/// cleared before the calls go out, so a step that pays the market while
/// they are out marks the balance again.
fn take_read(s: &mut State, now_ns: u64) -> bool {
    let mut top_ups = s.top_ups.get().0.clone();
    if !top_ups.read_due(now_ns) {
        return false;
    }
    top_ups.balance_may_have_grown = false;
    top_ups.balance_read_at_ns = Some(now_ns);
    s.top_ups.set(Cbor(top_ups));
    true
}

/// What the matcher's ICP escrow balance allows, as the watchdog read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Funds {
    /// The balance (claimable and free), in e8s.
    pub available: Tokens,
    /// The ICP ledger's fee.
    pub fee: Tokens,
}

/// The canisters topped up in turn.
fn canister_for(s: &State, me: Principal, number: u64) -> Principal {
    let config = s.config();
    [config.registry, config.escrow, me][(number % 3) as usize]
}

/// Records a top-up of `funds` and queues its step, if a top-up is
/// configured, none is under way and the balance reached the threshold;
/// returns the step's number.
pub fn begin(s: &mut State, now_ns: u64, me: Principal, funds: Funds) -> Option<u64> {
    let threshold = s.config().cycles_top_up?.threshold;
    let mut top_ups = s.top_ups.get().0.clone();
    if top_ups.current.is_some() || funds.available < threshold {
        return None;
    }
    let amount = funds
        .available
        .checked_sub(funds.fee.checked_mul(2)?)
        .filter(|a| *a > 0)?;
    let number = top_ups.begun;
    let top_up = TopUp {
        number,
        canister: canister_for(s, me, number),
        amount,
        fee: funds.fee,
        created_at_time: now_ns,
        stage: Stage::Funding,
    };
    top_ups.begun += 1;
    top_ups.current = Some(top_up);
    s.top_ups.set(Cbor(top_ups));
    Some(s.market.outbox.push(TOP_UP_QUEUE, Effect::TopUp { number }))
}

/// Reads the matcher's ICP escrow balance and begins a top-up if it is
/// due (see [`begin`]). Called by the watchdog; does nothing without a
/// top-up configured, with one under way, or while the balance cannot
/// have grown since the last read (see [`TopUps::balance_may_have_grown`]).
pub async fn queue(rt: &impl Runtime) {
    let config = read_state(|s| s.config());
    let t = rt.now_ns();
    if config.cycles_top_up.is_none() || !mutate_state(|s| take_read(s, t)) {
        return;
    }
    let me = rt.self_id();
    let icp = config.stake_ledger;
    let balance = rt.balance_of(config.escrow, me, icp).await;
    let ledgers = rt.ledgers(config.escrow).await;
    let (Ok(balance), Ok(ledgers)) = (balance, ledgers) else {
        // Read again on the next run, soon.
        mutate_state(balance_may_have_grown);
        rt.watchdog_soon();
        return;
    };
    let Some(fee) = ledgers.iter().find(|l| l.ledger == icp).and_then(|l| l.fee) else {
        return;
    };
    let funds = Funds {
        available: balance.claimable.saturating_add(balance.free),
        fee,
    };
    let t = rt.now_ns();
    if mutate_state(|s| begin(s, t, me, funds)).is_some() {
        rt.schedule();
    }
}

fn current(number: u64) -> Option<TopUp> {
    read_state(|s| s.top_ups.get().0.current.clone()).filter(|t| t.number == number)
}

fn set_stage(number: u64, stage: Stage) {
    mutate_state(|s| {
        let mut top_ups = s.top_ups.get().0.clone();
        if let Some(t) = top_ups.current.as_mut().filter(|t| t.number == number) {
            t.stage = stage;
            s.top_ups.set(Cbor(top_ups));
        }
    });
}

/// Ends the top-up under way, with its event. The balance is read again
/// on the next run: what came in while it ran, or what a failed one left,
/// may have reached the threshold.
fn end(rt: &impl Runtime, top_up: &TopUp, result: Result<(u64, u128), String>) -> Outcome {
    let t = rt.now_ns();
    mutate_state(|s| {
        let mut top_ups = s.top_ups.get().0.clone();
        top_ups.current = None;
        top_ups.balance_may_have_grown = true;
        s.top_ups.set(Cbor(top_ups));
        match result {
            Ok((block_index, cycles)) => audit::cycles_topped_up(s, t, top_up, block_index, cycles),
            Err(reason) => audit::cycles_top_up_failed(s, t, top_up, reason),
        }
    });
    rt.watchdog_soon();
    Outcome::Done
}

fn retry(what: &str, e: impl std::fmt::Debug) -> Outcome {
    Outcome::Retry(format!("top-up {what}: {e:?}"))
}

/// Runs top-up `number` from where it stands to its end, or to the first
/// answer that must wait (see the module docs).
pub async fn perform(rt: &impl Runtime, number: u64) -> Outcome {
    let config = read_state(|s| s.config());
    let Some(top_up_config) = config.cycles_top_up.clone() else {
        return Outcome::Done;
    };
    let icp = config.stake_ledger;
    let own = IcrcAccount {
        owner: rt.self_id(),
        subaccount: None,
    };
    loop {
        let Some(top_up) = current(number) else {
            return Outcome::Done;
        };
        match top_up.stage {
            Stage::Funding => {
                let need = top_up.amount.saturating_add(top_up.fee);
                let held = match rt.icrc1_balance(icp, &own).await {
                    Ok(held) => held,
                    Err(e) => return retry("balance", e),
                };
                if held < need {
                    let args = WithdrawArgs {
                        ledger: icp,
                        amount: need - held + top_up.fee,
                        to: Account {
                            owner: own.owner,
                            subaccount: None,
                        },
                    };
                    match rt.withdraw(config.escrow, &args).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(
                            e @ (EscrowError::Busy
                            | EscrowError::PendingOperation { .. }
                            | EscrowError::Ledger(_)),
                        )) => return retry("withdrawal", e),
                        Ok(Err(e)) => return end(rt, &top_up, Err(format!("withdrawal: {e:?}"))),
                        Err(e) => return retry("withdrawal", e),
                    }
                }
                set_stage(number, Stage::Transferring);
            }
            Stage::Transferring => {
                let arg = TransferArg {
                    from_subaccount: None,
                    to: IcrcAccount {
                        owner: top_up_config.cmc,
                        subaccount: Some(top_up_subaccount(top_up.canister)),
                    },
                    fee: Some(Nat::from(top_up.fee)),
                    created_at_time: Some(top_up.created_at_time),
                    memo: Some(Memo::from(MEMO_TOP_UP.to_le_bytes().to_vec())),
                    amount: Nat::from(top_up.amount),
                };
                let block = match rt.icrc1_transfer(icp, &arg).await {
                    Ok(Ok(block))
                    | Ok(Err(TransferError::Duplicate {
                        duplicate_of: block,
                    })) => block,
                    Ok(Err(TransferError::InsufficientFunds { .. })) => {
                        set_stage(number, Stage::Funding);
                        return retry("transfer", "the matcher's account is short");
                    }
                    Ok(Err(
                        e @ (TransferError::TemporarilyUnavailable
                        | TransferError::CreatedInFuture { .. }),
                    )) => return retry("transfer", e),
                    Ok(Err(e)) => return end(rt, &top_up, Err(format!("transfer: {e:?}"))),
                    Err(e) => return retry("transfer", e),
                };
                let Ok(block_index) = u64::try_from(block.0) else {
                    return end(rt, &top_up, Err("a block index beyond u64".into()));
                };
                set_stage(number, Stage::Notifying { block_index });
            }
            Stage::Notifying { block_index } => {
                let arg = NotifyTopUpArg {
                    block_index,
                    canister_id: top_up.canister,
                };
                return match rt.notify_top_up(top_up_config.cmc, &arg).await {
                    Ok(NotifyTopUpResult::Ok(cycles)) => {
                        let cycles = u128::try_from(cycles.0).unwrap_or(u128::MAX);
                        end(rt, &top_up, Ok((block_index, cycles)))
                    }
                    Ok(NotifyTopUpResult::Err(
                        e @ (NotifyError::Processing | NotifyError::Other { .. }),
                    )) => retry("notification", e),
                    Ok(NotifyTopUpResult::Err(e)) => {
                        end(rt, &top_up, Err(format!("notification: {e:?}")))
                    }
                    Err(e) => retry("notification", e),
                };
            }
        }
    }
}
