//! Native tests of the performer and the outbox against a fake runtime
//! whose escrow and registry can answer, refuse, be busy, reject a call or
//! leave its outcome unknown.

use super::market::{icp, lease, offer, spec};
use crate::endpoints;
use crate::lifecycle::Effect;
use crate::perform::{self, Outcome};
use crate::runtime::{Answer, Runtime, SystemApi};
use crate::state::{mutate_state, read_state};
use candid::Principal;
use canister_common::audit::Books;
use futures::executor::block_on;
use market_api::client::CallError;
use market_api::escrow::{
    Balance, EscrowError, ExtendLockArgs, ForfeitArgs, JobLock, LedgerInfo, LockArgs,
    NotifyDepositArgs, ReleaseArgs, SettleArgs, WithdrawForArgs,
};
use market_api::matcher::{
    ExtendReservationArgs, HeartbeatAck, HeartbeatItem, JobNotice, JobStatus, MatcherError,
    MatcherEvent, MatcherInit, ReservationSpec, ServiceNotice,
};
use market_api::outcall::{
    HttpRequestArgs, HttpRequestResult, PROBE_MAX_RESPONSE_BYTES, http_request_cycles,
    request_bytes,
};
use market_api::prices::cmc::IcpXdrConversionRateResponse;
use market_api::prices::xrc::{GetExchangeRateRequest, GetExchangeRateResult};
use market_api::registry::{
    BondArgs, Eligibility, Provider, RecordArgs, RegistryError, SlashArgs, SlashOutcome,
};
use market_api::{PageRequest, Tokens};
use market_fixture::heartbeat_item;
use market_fixture::url_service;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

pub(crate) const S: u64 = 1_000_000_000;
pub(crate) const PRICE: Tokens = 100;
/// The ICP ledger's fee.
const ICP_FEE: Tokens = 10_000;

const fn p(n: u8) -> Principal {
    Principal::from_slice(&[n; 10])
}

pub(crate) const ESCROW: Principal = p(0xE5);
const REGISTRY: Principal = p(0x2E);
pub(crate) const BUYER: Principal = p(0x20);
pub(crate) const PROVIDER: Principal = p(0x30);
pub(crate) const NODE: Principal = p(0x40);

/// What the fake does with the next call.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Fault {
    /// The call is rejected: it had no effect.
    Reject,
    /// The outcome is unknown (a bounded-wait call timed out).
    Unknown,
    /// The callee answers that it is busy.
    Busy,
    /// The callee refuses for good.
    Refuse,
    /// The call is answered as if no fault were queued.
    Answer,
}

/// One call the fake received: the method and its idempotency key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Made {
    pub(crate) method: &'static str,
    pub(crate) key: String,
}

fn made(method: &'static str, key: impl Into<String>) -> Made {
    Made {
        method,
        key: key.into(),
    }
}

/// The escrow and registry as the matcher sees them, with faults applied to
/// the next calls in order.
#[derive(Default)]
pub(crate) struct Fake {
    pub(crate) now: Cell<u64>,
    faults: RefCell<VecDeque<Fault>>,
    calls: RefCell<Vec<Made>>,
    scheduled: Cell<u32>,
    /// Whether the registry's slashes jail the provider.
    jails: Cell<bool>,
    /// How the next probes are answered (then 200).
    probe_answers: RefCell<VecDeque<Result<HttpRequestResult, CallError>>>,
    /// Releases asked for: (lock key, seq, to whom, amount).
    pub(crate) releases: RefCell<Vec<(String, u64, Principal, Tokens)>>,
    /// The market's fee of each release asked for, in the same order.
    pub(crate) release_fees: RefCell<Vec<Tokens>>,
    /// The matcher's own ICP account.
    pub(crate) own_icp: Cell<Tokens>,
    /// Withdrawals from the matcher's escrow balance that landed.
    pub(crate) withdrawn: RefCell<Vec<Tokens>>,
    /// ICP transfers that landed, by block: (created_at_time, amount,
    /// recipient).
    pub(crate) icp_blocks: RefCell<Vec<(u64, Tokens, icrc_ledger_types::icrc1::account::Account)>>,
    /// Blocks the CMC turned into cycles, with the cycles.
    pub(crate) topped_up: RefCell<Vec<(u64, u128)>>,
    /// Locks made: (lock key, amount).
    pub(crate) locks: RefCell<Vec<(String, Tokens)>>,
    /// Settles answered: (lock key, what was refunded).
    pub(crate) refunds: RefCell<Vec<(String, Tokens)>>,
    /// The cycles minting canister's answers, in order (then an error).
    pub(crate) cmc_rates: RefCell<VecDeque<Result<IcpXdrConversionRateResponse, CallError>>>,
    /// The exchange rate canister's answers, in order (then an error).
    pub(crate) xrc_rates: RefCell<VecDeque<Result<GetExchangeRateResult, CallError>>>,
    /// Errors the next vetKD calls fail with, in order (then they answer).
    pub(crate) vetkd_errors: RefCell<VecDeque<CallError>>,
    /// vetKD derivations asked for: (input, transport key, cycles).
    pub(crate) derivations: RefCell<Vec<Derivation>>,
    /// Whether a derivation waits once before it is answered (so another
    /// call can run meanwhile).
    pub(crate) derivations_wait: Cell<bool>,
    /// What `balance_of` answers, as the claimable balance (`None`: the
    /// outcome is unknown).
    pub(crate) escrow_balance: Cell<Option<Tokens>>,
    /// What `ledgers` answers.
    pub(crate) ledgers: RefCell<Vec<LedgerInfo>>,
    /// How many times a run of the watchdog was asked for soon.
    pub(crate) watchdog_asked: Cell<u32>,
}

/// A future that is pending once, then ready: an `.await` at which other
/// calls interleave.
struct WaitOnce(bool);

impl std::future::Future for WaitOnce {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 {
            return std::task::Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

/// A vetKD derivation the fake made: (input, transport key, cycles).
pub(crate) type Derivation = (Vec<u8>, Vec<u8>, u128);

/// The public key the fake management canister gives the matcher.
pub(crate) const FAKE_VETKD_PUBLIC_KEY: [u8; 96] = [0x96; 96];

/// A replica's answer with this status.
fn status(code: u32) -> HttpRequestResult {
    HttpRequestResult {
        status: code.into(),
        headers: vec![],
        body: vec![],
    }
}

impl Fake {
    pub(crate) fn new() -> Fake {
        let fake = Fake::default();
        fake.now.set(1_000 * S);
        mutate_state(|s| {
            s.set_config(MatcherInit {
                bond_multiple: 2,
                slash_multiple: 3,
                min_slash: Some(1),
                min_audit_ppm: Some(0),
                ..MatcherInit::new(REGISTRY, ESCROW, icp(), 30)
            })
        });
        fake
    }

    fn fail_next(&self, fault: Fault) {
        self.faults.borrow_mut().push_back(fault);
    }

    pub(crate) fn advance(&self, ns: u64) {
        self.now.set(self.now.get() + ns);
    }

    fn calls(&self) -> Vec<Made> {
        self.calls.borrow().clone()
    }

    pub(crate) fn calls_of(&self, method: &str) -> Vec<Made> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == method)
            .collect()
    }

    /// Records the call and answers `ok`, or the next fault.
    fn answer<T, E>(
        &self,
        method: &'static str,
        key: String,
        busy: E,
        refused: E,
        ok: T,
    ) -> Answer<T, E> {
        self.calls.borrow_mut().push(Made { method, key });
        match self.faults.borrow_mut().pop_front() {
            None | Some(Fault::Answer) => Ok(Ok(ok)),
            Some(Fault::Reject) => Err(CallError::Rejected {
                code: 2,
                message: "rejected".into(),
            }),
            Some(Fault::Unknown) => Err(CallError::OutcomeUnknown),
            Some(Fault::Busy) => Ok(Err(busy)),
            Some(Fault::Refuse) => Ok(Err(refused)),
        }
    }

    fn escrow_answer<T>(&self, method: &'static str, key: String, ok: T) -> Answer<T, EscrowError> {
        let refused = EscrowError::InsufficientBalance { available: 7 };
        self.answer(method, key, EscrowError::Busy, refused, ok)
    }

    fn registry_answer<T>(
        &self,
        method: &'static str,
        key: String,
        ok: T,
    ) -> Answer<T, RegistryError> {
        let refused = RegistryError::InsufficientStake { available: 0 };
        self.answer(method, key, RegistryError::Busy, refused, ok)
    }

    /// Runs the outbox until nothing is ready, moving the clock to the end
    /// of any backoff; at most `rounds` runs.
    pub(crate) fn settle_outbox(&self, rounds: usize) {
        for _ in 0..rounds {
            if read_state(|s| s.market.outbox.is_empty()) {
                return;
            }
            if let Some(wake) = read_state(|s| s.market.outbox.next_wake_ns()) {
                self.now.set(self.now.get().max(wake));
            }
            block_on(perform::run_ready_steps(self));
        }
    }
}

fn lock(key: &str, total: Tokens) -> JobLock {
    JobLock {
        job_key: key.into(),
        buyer: BUYER,
        ledger: icp(),
        total,
        released: 0,
        remaining: total,
        refunded: 0,
        settled: false,
        storage_fee: 0,
        pending: vec![],
        fee_paid: 0,
        fee_pending: 0,
    }
}

impl SystemApi for Fake {
    fn now_ns(&self) -> u64 {
        self.now.get()
    }

    fn self_id(&self) -> Principal {
        p(0x3A)
    }
}

impl crate::runtime::ArchiveCalls for Fake {}

impl Runtime for Fake {
    fn schedule(&self) {
        self.scheduled.set(self.scheduled.get() + 1);
    }

    fn watchdog_soon(&self) {
        self.watchdog_asked.set(self.watchdog_asked.get() + 1);
    }

    fn log(&self, _line: &str) {}

    async fn lock(&self, escrow: Principal, args: &LockArgs) -> Answer<JobLock, EscrowError> {
        assert_eq!(escrow, ESCROW);
        self.locks
            .borrow_mut()
            .push((args.job_key.clone(), args.amount));
        let answer = lock(&args.job_key, args.amount);
        self.escrow_answer("lock", args.job_key.clone(), answer)
    }

    async fn extend_lock(
        &self,
        _escrow: Principal,
        args: &ExtendLockArgs,
    ) -> Answer<JobLock, EscrowError> {
        let key = format!("{} ext {}", args.job_key, args.extension);
        self.escrow_answer("extend_lock", key, lock(&args.job_key, args.amount))
    }

    async fn release(
        &self,
        _escrow: Principal,
        args: &ReleaseArgs,
    ) -> Answer<JobLock, EscrowError> {
        let key = format!("{} seq {}", args.job_key, args.seq);
        self.releases.borrow_mut().push((
            args.job_key.clone(),
            args.seq,
            args.provider,
            args.amount,
        ));
        self.release_fees.borrow_mut().push(args.fee);
        self.escrow_answer("release", key, lock(&args.job_key, args.amount))
    }

    async fn forfeit(
        &self,
        _escrow: Principal,
        args: &ForfeitArgs,
    ) -> Answer<JobLock, EscrowError> {
        let key = format!("{} forfeit {}", args.job_key, args.provider);
        self.escrow_answer("forfeit", key, lock(&args.job_key, 0))
    }

    async fn settle(&self, _escrow: Principal, args: &SettleArgs) -> Answer<JobLock, EscrowError> {
        // The escrow's books of this lock: what was locked, less what was
        // released from it, is refunded.
        let total: Tokens = self
            .locks
            .borrow()
            .iter()
            .filter(|(k, _)| *k == args.job_key)
            .map(|(_, a)| *a)
            .sum();
        let released: Tokens = self
            .releases
            .borrow()
            .iter()
            .filter(|(k, ..)| *k == args.job_key)
            .map(|(.., a)| *a)
            .sum();
        self.refunds
            .borrow_mut()
            .push((args.job_key.clone(), total.saturating_sub(released)));
        let mut answer = lock(&args.job_key, total);
        answer.released = released;
        self.escrow_answer("settle", args.job_key.clone(), answer)
    }

    async fn notify_deposit(
        &self,
        _escrow: Principal,
        args: &NotifyDepositArgs,
    ) -> Answer<Tokens, EscrowError> {
        self.escrow_answer("notify_deposit", args.beneficiary.to_text(), 0)
    }

    async fn withdraw_for(
        &self,
        _escrow: Principal,
        args: &WithdrawForArgs,
    ) -> Answer<Tokens, EscrowError> {
        self.escrow_answer("withdraw_for", args.owner.to_text(), 1)
    }

    /// Lands unless rejected, busy or refused; an unknown outcome lands
    /// and loses the answer.
    async fn withdraw(
        &self,
        _escrow: Principal,
        args: &market_api::escrow::WithdrawArgs,
    ) -> Answer<u128, EscrowError> {
        let answer = self.escrow_answer("withdraw", args.amount.to_string(), 7);
        if matches!(answer, Ok(Ok(_)) | Err(CallError::OutcomeUnknown)) {
            self.withdrawn.borrow_mut().push(args.amount);
            self.own_icp.set(self.own_icp.get() + args.amount - ICP_FEE);
        }
        answer
    }

    async fn icrc1_balance(
        &self,
        _ledger: Principal,
        _account: &icrc_ledger_types::icrc1::account::Account,
    ) -> Result<Tokens, CallError> {
        Ok(self.own_icp.get())
    }

    /// Deduplicates on `created_at_time` as a ledger does; an unknown
    /// outcome lands and loses the answer.
    async fn icrc1_transfer(
        &self,
        _ledger: Principal,
        arg: &icrc_ledger_types::icrc1::transfer::TransferArg,
    ) -> Result<Result<candid::Nat, icrc_ledger_types::icrc1::transfer::TransferError>, CallError>
    {
        use icrc_ledger_types::icrc1::transfer::TransferError;
        let at = arg.created_at_time.unwrap();
        self.calls
            .borrow_mut()
            .push(made("icrc1_transfer", at.to_string()));
        let fault = self.faults.borrow_mut().pop_front();
        match fault {
            Some(Fault::Reject) => {
                return Err(CallError::Rejected {
                    code: 2,
                    message: "rejected".into(),
                });
            }
            Some(Fault::Busy) => return Ok(Err(TransferError::TemporarilyUnavailable)),
            Some(Fault::Refuse) => return Ok(Err(TransferError::TooOld)),
            _ => {}
        }
        let landed = self.icp_blocks.borrow().iter().position(|(t, ..)| *t == at);
        let answer = match landed {
            Some(block) => Err(TransferError::Duplicate {
                duplicate_of: candid::Nat::from(block),
            }),
            None => {
                let amount = u128::try_from(arg.amount.0.clone()).unwrap();
                let Some(left) = self.own_icp.get().checked_sub(amount + ICP_FEE) else {
                    return Ok(Err(TransferError::InsufficientFunds {
                        balance: candid::Nat::from(self.own_icp.get()),
                    }));
                };
                self.own_icp.set(left);
                let mut blocks = self.icp_blocks.borrow_mut();
                blocks.push((at, amount, arg.to));
                Ok(candid::Nat::from(blocks.len() - 1))
            }
        };
        if fault == Some(Fault::Unknown) {
            return Err(CallError::OutcomeUnknown);
        }
        Ok(answer)
    }

    /// Turns a block into cycles once (50 000 per e8), answering a repeat
    /// alike; an unknown outcome lands and loses the answer.
    async fn notify_top_up(
        &self,
        _cmc: Principal,
        arg: &market_api::prices::cmc::NotifyTopUpArg,
    ) -> Result<market_api::prices::cmc::NotifyTopUpResult, CallError> {
        use market_api::prices::cmc::{NotifyError, NotifyTopUpResult};
        self.calls
            .borrow_mut()
            .push(made("notify_top_up", arg.block_index.to_string()));
        let fault = self.faults.borrow_mut().pop_front();
        match fault {
            Some(Fault::Reject) => {
                return Err(CallError::Rejected {
                    code: 2,
                    message: "rejected".into(),
                });
            }
            Some(Fault::Busy) => return Ok(NotifyTopUpResult::Err(NotifyError::Processing)),
            Some(Fault::Refuse) => {
                return Ok(NotifyTopUpResult::Err(NotifyError::InvalidTransaction(
                    "no".into(),
                )));
            }
            _ => {}
        }
        let (_, amount, _) = self.icp_blocks.borrow()[arg.block_index as usize];
        let cycles = amount * 50_000;
        let mut done = self.topped_up.borrow_mut();
        if !done.iter().any(|(b, _)| *b == arg.block_index) {
            done.push((arg.block_index, cycles));
        }
        if fault == Some(Fault::Unknown) {
            return Err(CallError::OutcomeUnknown);
        }
        Ok(NotifyTopUpResult::Ok(candid::Nat::from(cycles)))
    }

    async fn balances_of(
        &self,
        _escrow: Principal,
        _owner: Principal,
    ) -> Result<Vec<Balance>, CallError> {
        Ok(vec![])
    }

    async fn balance_of(
        &self,
        _escrow: Principal,
        owner: Principal,
        ledger: Principal,
    ) -> Result<Balance, CallError> {
        self.calls
            .borrow_mut()
            .push(made("balance_of", owner.to_text()));
        let claimable = self.escrow_balance.get().ok_or(CallError::OutcomeUnknown)?;
        Ok(Balance {
            ledger,
            free: 0,
            claimable,
            locked: 0,
            pending: 0,
        })
    }

    async fn ledgers(&self, _escrow: Principal) -> Result<Vec<LedgerInfo>, CallError> {
        Ok(self.ledgers.borrow().clone())
    }

    async fn get_provider(
        &self,
        _registry: Principal,
        _provider: Principal,
    ) -> Result<Option<Provider>, CallError> {
        Ok(None)
    }

    async fn eligibility(
        &self,
        _registry: Principal,
        _provider: Principal,
    ) -> Result<Eligibility, CallError> {
        Err(CallError::OutcomeUnknown)
    }

    async fn bond(&self, registry: Principal, args: &BondArgs) -> Answer<(), RegistryError> {
        assert_eq!(registry, REGISTRY);
        self.registry_answer("bond", args.key.clone(), ())
    }

    async fn unbond(&self, _registry: Principal, key: &str) -> Answer<Tokens, RegistryError> {
        self.registry_answer("unbond", key.to_string(), 0)
    }

    async fn record(&self, _registry: Principal, args: &RecordArgs) -> Answer<(), RegistryError> {
        self.registry_answer("record", args.key.clone(), ())
    }

    async fn slash(
        &self,
        _registry: Principal,
        args: &SlashArgs,
    ) -> Answer<SlashOutcome, RegistryError> {
        let outcome = SlashOutcome {
            slashed: args.amount,
            paid_out: args.amount,
            block_index: Some(1),
            jailed: self.jails.get(),
        };
        self.registry_answer("slash", args.key.clone(), outcome)
    }

    async fn deliver_service_notice(
        &self,
        owner: Principal,
        method: &str,
        notice: &ServiceNotice,
    ) -> Result<(), CallError> {
        self.calls.borrow_mut().push(Made {
            method: "service_notice",
            key: format!("{owner} {method} {notice:?}"),
        });
        Ok(())
    }

    async fn http_request(
        &self,
        args: &HttpRequestArgs,
        cycles: u128,
    ) -> Result<HttpRequestResult, CallError> {
        assert_eq!(
            cycles,
            http_request_cycles(request_bytes(args), PROBE_MAX_RESPONSE_BYTES),
            "the probe pays what the IC charges"
        );
        self.calls.borrow_mut().push(Made {
            method: "http_request",
            key: args.url.clone(),
        });
        match self.probe_answers.borrow_mut().pop_front() {
            None => Ok(status(200)),
            Some(answer) => answer,
        }
    }

    async fn icp_xdr_rate(
        &self,
        cmc: Principal,
    ) -> Result<IcpXdrConversionRateResponse, CallError> {
        self.calls.borrow_mut().push(Made {
            method: "get_icp_xdr_conversion_rate",
            key: cmc.to_text(),
        });
        self.cmc_rates
            .borrow_mut()
            .pop_front()
            .unwrap_or(Err(CallError::OutcomeUnknown))
    }

    async fn exchange_rate(
        &self,
        xrc: Principal,
        request: &GetExchangeRateRequest,
    ) -> Result<GetExchangeRateResult, CallError> {
        self.calls.borrow_mut().push(Made {
            method: "get_exchange_rate",
            key: format!("{xrc} {}", request.base_asset.symbol),
        });
        self.xrc_rates
            .borrow_mut()
            .pop_front()
            .unwrap_or(Err(CallError::OutcomeUnknown))
    }

    async fn vetkd_public_key(
        &self,
        args: &ic_management_canister_types::VetKDPublicKeyArgs,
    ) -> Result<ic_management_canister_types::VetKDPublicKeyResult, CallError> {
        self.calls.borrow_mut().push(Made {
            method: "vetkd_public_key",
            key: format!(
                "{} {}",
                args.key_id.name,
                String::from_utf8_lossy(&args.context)
            ),
        });
        if let Some(e) = self.vetkd_errors.borrow_mut().pop_front() {
            return Err(e);
        }
        Ok(ic_management_canister_types::VetKDPublicKeyResult {
            public_key: FAKE_VETKD_PUBLIC_KEY.to_vec(),
        })
    }

    /// Answers with the input and the transport key, so a test sees what
    /// was derived for whom.
    async fn vetkd_derive_key(
        &self,
        args: &ic_management_canister_types::VetKDDeriveKeyArgs,
        cycles: u128,
    ) -> Result<ic_management_canister_types::VetKDDeriveKeyResult, CallError> {
        self.calls.borrow_mut().push(Made {
            method: "vetkd_derive_key",
            key: args.key_id.name.clone(),
        });
        if self.derivations_wait.get() {
            WaitOnce(false).await;
        }
        if let Some(e) = self.vetkd_errors.borrow_mut().pop_front() {
            return Err(e);
        }
        self.derivations.borrow_mut().push((
            args.input.clone(),
            args.transport_public_key.clone(),
            cycles,
        ));
        Ok(ic_management_canister_types::VetKDDeriveKeyResult {
            encrypted_key: [args.input.as_slice(), &args.transport_public_key].concat(),
        })
    }

    async fn raw_rand(&self) -> Result<Vec<u8>, CallError> {
        self.calls.borrow_mut().push(Made {
            method: "raw_rand",
            key: String::new(),
        });
        Ok(vec![0; 32])
    }

    async fn deliver_notice(
        &self,
        buyer: Principal,
        method: &str,
        _notice: &JobNotice,
    ) -> Result<(), CallError> {
        self.calls.borrow_mut().push(Made {
            method: "callback",
            key: format!("{buyer} {method}"),
        });
        Ok(())
    }
}

pub(crate) fn post_offer(rt: &Fake) {
    let t = rt.now_ns();
    mutate_state(|s| {
        let params = s.params();
        s.market
            .put_offer(&params, t, PROVIDER, NODE, 1_000_000, None, offer(PRICE))
    })
    .unwrap();
}

pub(crate) fn events() -> Vec<MatcherEvent> {
    read_state(|s| s.events.page(&PageRequest::default()))
        .events
        .into_iter()
        .map(|e| e.event)
        .collect()
}

fn pending() -> Vec<(u32, Effect)> {
    let mut steps = vec![];
    read_state(|s| {
        let mut seq = 0;
        while steps.len() < s.market.outbox.len() as usize && seq < 10_000 {
            if let Some(step) = s.market.outbox.get(seq) {
                steps.push((step.failures, step.effect));
            }
            seq += 1;
        }
    });
    steps
}

/// A heartbeat of attempt 1 of `job_id` reporting `fuel_used` in all.
pub(crate) fn heartbeat(rt: &Fake, job_id: u64, fuel_used: u64) {
    endpoints::heartbeat(rt, NODE, vec![heartbeat_item(job_id, 1, fuel_used)]).unwrap();
}

#[test]
fn a_lock_whose_call_is_rejected_is_retried_with_the_same_key() {
    let rt = Fake::new();
    rt.fail_next(Fault::Reject);
    let id = block_on(endpoints::submit_job(&rt, BUYER, spec(PRICE, 0))).unwrap();
    assert!(!read_state(|s| s.market.job(id).unwrap().funded));
    let waiting = pending();
    assert_eq!(waiting.len(), 1, "the lock waits in the outbox");
    assert_eq!(waiting[0].0, 1, "one failure recorded");
    assert!(rt.scheduled.get() > 0, "the timer was armed for the retry");

    rt.settle_outbox(3);
    assert_eq!(
        rt.calls(),
        vec![made("lock", "job/1"), made("lock", "job/1")],
        "asked again with the same key"
    );
    assert!(read_state(|s| s.market.job(id).unwrap().funded));
    assert!(
        read_state(|s| s.market.outbox.is_empty()),
        "done steps leave"
    );
    let submitted = events()
        .iter()
        .filter(|e| matches!(e, MatcherEvent::JobSubmitted { .. }))
        .count();
    assert_eq!(submitted, 1);
}

#[test]
fn a_busy_callee_is_asked_again_with_the_same_key() {
    let rt = Fake::new();
    post_offer(&rt);
    let id = block_on(endpoints::submit_job(&rt, BUYER, spec(PRICE, 0))).unwrap();
    rt.fail_next(Fault::Busy);
    block_on(perform::run_ready_steps(&rt));
    assert_eq!(pending().len(), 1, "the bond is still pending");
    rt.settle_outbox(3);
    assert_eq!(
        rt.calls_of("bond"),
        vec![made("bond", "job/1/bond/1"), made("bond", "job/1/bond/1")]
    );
    assert!(events().contains(&MatcherEvent::JobAssigned {
        stake_value: Some(10 * PRICE),
        conversion: None,
        job_id: id,
        provider: PROVIDER,
        attempt: 1,
        price: PRICE,
    }));
}

#[test]
fn an_unknown_outcome_is_retried_with_the_same_key_and_applied_once() {
    let rt = Fake::new();
    post_offer(&rt);
    let id = block_on(endpoints::submit_job(&rt, BUYER, spec(PRICE, 0))).unwrap();
    rt.settle_outbox(3);
    heartbeat(&rt, id, 0);
    rt.advance(60 * S);
    heartbeat(&rt, id, market_api::matcher::GFUEL);
    rt.fail_next(Fault::Unknown);
    block_on(perform::run_ready_steps(&rt));
    assert_eq!(pending()[0].0, 1, "the release waits, one failure recorded");
    rt.settle_outbox(3);
    assert_eq!(
        rt.calls_of("release"),
        vec![
            made("release", "job/1 seq 0"),
            made("release", "job/1 seq 0")
        ]
    );
    let paid: Vec<_> = events()
        .into_iter()
        .filter(|e| matches!(e, MatcherEvent::FuelPaid { .. }))
        .collect();
    assert_eq!(paid.len(), 1, "recorded once");
}

#[test]
fn a_refused_lock_is_a_typed_escrow_error_and_drops_the_job() {
    let rt = Fake::new();
    rt.fail_next(Fault::Refuse);
    let e = block_on(endpoints::submit_job(&rt, BUYER, spec(PRICE, 0))).unwrap_err();
    assert_eq!(
        e,
        MatcherError::Escrow(EscrowError::InsufficientBalance { available: 7 })
    );
    assert!(read_state(|s| s.market.job(1).is_none()));
    assert!(read_state(|s| s.market.outbox.is_empty()));
}

#[test]
fn lock_bond_release_slash_unbond_and_settle_go_through_the_performer() {
    let rt = Fake::new();
    post_offer(&rt);
    let id = block_on(endpoints::submit_job(&rt, BUYER, spec(PRICE, 0))).unwrap();
    rt.settle_outbox(3);
    heartbeat(&rt, id, 0);
    rt.advance(60 * S);
    heartbeat(&rt, id, market_api::matcher::GFUEL);
    rt.settle_outbox(3);
    // The provider goes silent past its deadline: slashed, and (with no
    // retries left) the job fails and settles.
    rt.advance(200 * S);
    let t = rt.now_ns();
    mutate_state(|s| {
        let p = s.params();
        s.market.process_deadlines(&p, t, 10)
    });
    rt.settle_outbox(10);
    let methods: Vec<&str> = rt.calls().iter().map(|c| c.method).collect();
    assert_eq!(
        methods,
        vec![
            "lock",
            "bond",
            "release",
            "slash",
            "record",
            "forfeit",
            "unbond",
            "settle",
            "notify_deposit"
        ]
    );
    assert_eq!(rt.calls_of("slash"), vec![made("slash", "job/1/slash/1")]);
    assert_eq!(rt.calls_of("unbond"), vec![made("unbond", "job/1/bond/1")]);
    assert_eq!(rt.calls_of("settle"), vec![made("settle", "job/1")]);
    assert!(read_state(|s| s.market.outbox.is_empty()));
    assert_eq!(
        read_state(|s| s.market.job(id).unwrap().state.status),
        JobStatus::Failed
    );
    let evs = events();
    assert!(evs.contains(&MatcherEvent::DeadlineMissed {
        job_id: id,
        provider: PROVIDER,
        attempt: 1,
        // Three times the job's value: 10 billion fuel at PRICE.
        slashed: 3 * 10 * PRICE,
    }));
    assert!(evs.contains(&MatcherEvent::PayForfeited {
        job_id: id,
        provider: PROVIDER,
        attempt: 1,
    }));
    assert!(
        evs.iter()
            .any(|e| matches!(e, MatcherEvent::JobFinished { .. }))
    );
    read_state(|s| s.market.check_invariants()).unwrap();
}

/// A four-minute lease of one slot at up to [`PRICE`] an interval, never
/// rematched.
pub(crate) fn reservation_spec() -> ReservationSpec {
    ReservationSpec {
        memory_mib: 64,
        max_price_per_interval: PRICE,
        max_rematches: 0,
        ..lease(1, 4)
    }
}

#[test]
fn an_extension_whose_answer_is_lost_goes_through_the_performer_once() {
    let rt = Fake::new();
    let rid = block_on(endpoints::reserve(&rt, BUYER, reservation_spec())).unwrap();
    rt.settle_outbox(3);
    rt.fail_next(Fault::Unknown);
    let ext = ExtendReservationArgs {
        reservation: rid,
        intervals: 2,
    };
    block_on(endpoints::extend_reservation(&rt, BUYER, ext.clone())).unwrap();
    assert_eq!(
        block_on(endpoints::extend_reservation(&rt, BUYER, ext)),
        Err(MatcherError::Busy),
        "one extension at a time"
    );
    rt.settle_outbox(3);
    let key = format!("job/{rid} ext 1");
    assert_eq!(
        rt.calls_of("extend_lock"),
        vec![made("extend_lock", key.clone()), made("extend_lock", key)]
    );
    let r = read_state(|s| s.market.reservation_record(rid)).unwrap();
    assert_eq!(r.spec.intervals, 6, "applied once");
    assert_eq!(r.locked, 6 * PRICE);
    let extended = events()
        .into_iter()
        .filter(|e| matches!(e, MatcherEvent::ReservationExtended { .. }))
        .count();
    assert_eq!(extended, 1);
}

#[test]
fn a_refused_extension_is_a_typed_escrow_error_and_is_forgotten() {
    let rt = Fake::new();
    let rid = block_on(endpoints::reserve(&rt, BUYER, reservation_spec())).unwrap();
    rt.settle_outbox(3);
    rt.fail_next(Fault::Refuse);
    let ext = ExtendReservationArgs {
        reservation: rid,
        intervals: 2,
    };
    let e = block_on(endpoints::extend_reservation(&rt, BUYER, ext)).unwrap_err();
    assert!(matches!(
        e,
        MatcherError::Escrow(EscrowError::InsufficientBalance { .. })
    ));
    let r = read_state(|s| s.market.reservation_record(rid)).unwrap();
    assert_eq!((r.spec.intervals, r.pending_extension), (4, None));
    assert!(read_state(|s| s.market.outbox.is_empty()));
}

#[test]
fn a_step_performed_directly_reports_its_outcome() {
    let rt = Fake::new();
    let effect = Effect::Settle;
    assert_eq!(
        block_on(perform::perform(&rt, 9, effect.clone())),
        Outcome::Done
    );
    rt.fail_next(Fault::Reject);
    assert!(matches!(
        block_on(perform::perform(&rt, 9, effect)),
        Outcome::Retry(_)
    ));
}

fn offers_left() -> usize {
    read_state(|s| s.market.offers_of(PROVIDER).len())
}

fn offer_withdrawn() -> bool {
    events().iter().any(|e| {
        matches!(
            e,
            MatcherEvent::OfferChanged {
                withdrawn: true,
                ..
            }
        )
    })
}

#[test]
fn a_provider_refused_its_bond_leaves_the_book_and_acts_on_nothing() {
    let rt = Fake::new();
    post_offer(&rt);
    let id = block_on(endpoints::submit_job(&rt, BUYER, spec(PRICE, 0))).unwrap();
    // The lock goes through; the registry refuses the bond for good.
    rt.fail_next(Fault::Refuse);
    let item = heartbeat_item(id, 1, 0);
    // Before the outbox runs, the assignment is not the provider's yet.
    let acks = endpoints::heartbeat(&rt, NODE, vec![item]).unwrap();
    assert!(
        matches!(acks[..], [HeartbeatAck::Refused { .. }]),
        "{acks:?}"
    );
    rt.settle_outbox(5);
    assert_eq!(rt.calls_of("release"), vec![]);
    assert_eq!(offers_left(), 0);
    assert!(offer_withdrawn());
    assert_eq!(
        read_state(|s| s.market.job(id).unwrap().state.status),
        JobStatus::Open
    );
    read_state(|s| s.market.check_invariants()).unwrap();
}

#[test]
fn a_jailed_provider_leaves_the_book() {
    let rt = Fake::new();
    rt.jails.set(true);
    post_offer(&rt);
    let id = block_on(endpoints::submit_job(&rt, BUYER, spec(PRICE, 0))).unwrap();
    rt.settle_outbox(3);
    heartbeat(&rt, id, 0);
    assert_eq!(offers_left(), 1);
    rt.advance(200 * S);
    let t = rt.now_ns();
    mutate_state(|s| {
        let p = s.params();
        s.market.process_deadlines(&p, t, 10)
    });
    rt.settle_outbox(10);
    assert_eq!(rt.calls_of("slash").len(), 1);
    assert_eq!(offers_left(), 0);
    assert!(offer_withdrawn());
}

/// A service lease through the performer: probes are outcalls with the
/// IC's cycles, failures are logged and the last one slashes, endpoint
/// changes are logged and told to the owner once, and the probes' fee goes
/// to the matcher's own escrow account before the refund.
#[test]
fn a_service_lease_probes_by_outcall_and_pays_its_probes_to_the_matcher() {
    use crate::lifecycle::PROBE_FEE_SEQ;
    use market_api::matcher::ServiceSpec;
    let rt = Fake::new();
    mutate_state(|s| {
        let mut c = s.config();
        c.probe_fee = Some(10);
        c.probe_failures = Some(2);
        s.set_config(c);
    });
    post_offer(&rt);
    let spec = ReservationSpec {
        intervals: 10,
        service: Some(ServiceSpec {
            callback: Some("on_endpoint".into()),
            ..url_service("https://example.org/s.wasm", [3; 32])
        }),
        ..reservation_spec()
    };
    let rid = block_on(endpoints::reserve(&rt, BUYER, spec)).unwrap();
    rt.settle_outbox(3);
    assert!(events().contains(&MatcherEvent::ReservationMade {
        reservation: rid,
        owner: BUYER,
        slots: 1,
        // 10 intervals at 100, and 10 probes at 10.
        locked: 1_000 + 100,
        ledger: icp(),
    }));
    let slot = read_state(|s| s.market.reservation_record(rid).unwrap().slots[0]);
    let endpoint = format!("http://127.0.0.1:8080/{rid}/");
    let item = |endpoint: Option<String>| HeartbeatItem {
        endpoint,
        ..heartbeat_item(slot, 1, 0)
    };
    let acks = endpoints::heartbeat(&rt, NODE, vec![item(Some(endpoint.clone()))]).unwrap();
    assert!(matches!(acks[0], HeartbeatAck::Accepted { .. }), "{acks:?}");
    rt.settle_outbox(5);
    assert!(events().contains(&MatcherEvent::ServiceEndpoint {
        reservation: rid,
        slot: 0,
        provider: PROVIDER,
        endpoint: Some(endpoint.clone()),
        tcp_address: None,
    }));
    let notice = ServiceNotice {
        service: rid,
        slot: 0,
        provider: Some(PROVIDER),
        endpoint: Some(endpoint.clone()),
        tcp_address: None,
    };
    assert_eq!(
        rt.calls_of("service_notice"),
        vec![made(
            "service_notice",
            format!("{BUYER} on_endpoint {notice:?}")
        )]
    );

    // What a timer run does once a probe is due.
    let tick = |rt: &Fake| {
        rt.advance(60 * S);
        endpoints::heartbeat(rt, NODE, vec![item(None)]).unwrap();
        let t = rt.now_ns();
        mutate_state(|s| {
            let p = s.params();
            s.market.process_deadlines(&p, t, 10);
            s.market.process_probes(t, 10);
        });
        rt.settle_outbox(5);
    };
    tick(&rt);
    let url = format!("http://127.0.0.1:8080/{rid}/healthz");
    assert_eq!(
        rt.calls_of("http_request"),
        vec![made("http_request", url.clone())]
    );
    rt.probe_answers.borrow_mut().push_back(Ok(status(503)));
    tick(&rt);
    let failed = |n| MatcherEvent::ProbeFailed {
        reservation: rid,
        slot: 0,
        provider: PROVIDER,
        consecutive: n,
    };
    assert!(events().contains(&failed(1)));
    rt.probe_answers
        .borrow_mut()
        .push_back(Err(CallError::Rejected {
            code: 2,
            message: "connection refused".into(),
        }));
    tick(&rt);
    assert!(events().contains(&failed(2)));
    // The second failure in a row: slashed as a missed deadline, the
    // endpoint cleared and the owner told.
    assert_eq!(
        rt.calls_of("slash"),
        vec![made("slash", format!("job/{slot}/slash/1"))]
    );
    assert!(events().contains(&MatcherEvent::ServiceEndpoint {
        reservation: rid,
        slot: 0,
        provider: PROVIDER,
        endpoint: None,
        tcp_address: None,
    }));
    assert_eq!(rt.calls_of("service_notice").len(), 2);
    assert_eq!(rt.calls_of("http_request").len(), 3);
    let page = read_state(|s| crate::metrics::encode(s, 0, &Default::default()));
    assert!(page.contains("matcher_probes_total 3"), "{page}");
    assert!(page.contains("matcher_probe_failures_total 2"), "{page}");

    // No re-matches left: the slot failed, and the lease ended and settled.
    assert_eq!(
        read_state(|s| s.market.service(rid).unwrap().status),
        market_api::matcher::ReservationStatus::Ended
    );
    let key = format!("job/{rid}");
    let releases = rt.releases.borrow().clone();
    assert_eq!(
        releases.last(),
        Some(&(key.clone(), PROBE_FEE_SEQ, rt.self_id(), 30)),
        "three probes at 10, to the matcher: {releases:?}"
    );
    let calls = rt.calls();
    let fee_at = calls
        .iter()
        .position(|c| c.key == format!("{key} seq {PROBE_FEE_SEQ}"))
        .unwrap();
    let settle_at = calls
        .iter()
        .position(|c| *c == made("settle", key.clone()))
        .unwrap();
    assert!(fee_at < settle_at, "the fee before the refund");
    assert!(events().contains(&MatcherEvent::IntervalPaid {
        fee: 0,
        job_id: rid,
        provider: rt.self_id(),
        seq: PROBE_FEE_SEQ,
        amount: 30,
    }));
    let r = read_state(|s| s.market.reservation(rid).unwrap());
    assert_eq!(r.paid, 3 * PRICE + 30, "three intervals and three probes");
    assert!(read_state(|s| s.market.outbox.is_empty()));
    read_state(|s| s.market.check_invariants()).unwrap();
}

#[test]
fn controllers_set_the_market_fee_and_a_release_pays_it_once_whatever_the_retries() {
    let rt = Fake::new();
    let max = market_api::matcher::MAX_MARKET_FEE_PPM;
    assert!(matches!(
        endpoints::set_market_fee(&rt, false, BUYER, 10_000),
        Err(MatcherError::Unauthorized { .. })
    ));
    assert!(matches!(
        endpoints::set_market_fee(&rt, true, p(1), max + 1),
        Err(MatcherError::InvalidArgument { .. })
    ));
    assert_eq!(read_state(|s| s.config().market_fee_ppm()), 0);
    endpoints::set_market_fee(&rt, true, p(1), 10_000).unwrap();
    assert_eq!(read_state(|s| s.config().market_fee_ppm()), 10_000);
    assert!(events().contains(&MatcherEvent::MarketFeeSet {
        fee_ppm: 10_000,
        controller: p(1),
    }));

    post_offer(&rt);
    let id = block_on(endpoints::submit_job(&rt, BUYER, spec(PRICE, 0))).unwrap();
    // 10 billion fuel at up to 100, and 1 % of it.
    assert_eq!(rt.locks.borrow()[0], ("job/1".into(), 1_000 + 10));
    rt.settle_outbox(3);
    heartbeat(&rt, id, 0);
    rt.advance(60 * S);
    heartbeat(&rt, id, 5 * market_api::matcher::GFUEL);
    rt.fail_next(Fault::Unknown);
    block_on(perform::run_ready_steps(&rt));
    rt.settle_outbox(3);
    assert_eq!(
        rt.calls_of("release"),
        vec![
            made("release", "job/1 seq 0"),
            made("release", "job/1 seq 0")
        ]
    );
    assert_eq!(*rt.release_fees.borrow(), vec![5, 5], "the same terms");
    let paid: Vec<_> = events()
        .into_iter()
        .filter(|e| matches!(e, MatcherEvent::FuelPaid { .. }))
        .collect();
    assert_eq!(
        paid,
        vec![MatcherEvent::FuelPaid {
            job_id: id,
            provider: PROVIDER,
            seq: 0,
            fuel: 5 * market_api::matcher::GFUEL,
            amount: 500,
            fee: 5,
        }]
    );
    let job = read_state(|s| s.market.job(id).unwrap().to_job());
    assert_eq!(
        job.market_fee,
        market_api::matcher::MarketFee {
            fee_ppm: 10_000,
            locked: 10,
            paid: 5
        }
    );
}

/// The watchdog reads the matcher's escrow balance for a top-up only when
/// it may have grown: after a step that paid the market, after a failed
/// read, after a top-up ended (each of which asks for a watchdog run
/// soon), and otherwise once an hour; an idle market's watchdog makes no
/// calls for it.
#[test]
fn the_balance_is_read_for_top_ups_only_when_it_may_have_grown() {
    use crate::top_up::{self, BALANCE_READ_EVERY_NS};
    let rt = Fake::new();
    let watchdog = |minutes: u64| {
        for _ in 0..minutes {
            rt.advance(60 * S);
            block_on(top_up::queue(&rt));
        }
        rt.calls_of("balance_of").len()
    };
    mutate_state(|s| {
        let mut c = s.config();
        c.cycles_top_up = Some(market_api::matcher::CyclesTopUpConfig {
            cmc: p(0xCC),
            threshold: 1_000_000,
        });
        s.set_config(c);
    });
    rt.ledgers.borrow_mut().push(LedgerInfo {
        ledger: icp(),
        fee: Some(ICP_FEE),
        symbol: Some("ICP".into()),
    });
    rt.escrow_balance.set(Some(10));

    // Never read: the first run reads; an idle hour after it, one more.
    assert_eq!(watchdog(1), 1);
    assert_eq!(watchdog(59), 1, "nothing paid the market");
    assert_eq!(watchdog(1), 2, "an hour after the last read");
    assert_eq!(BALANCE_READ_EVERY_NS, 3_600 * S);

    // A job's lock charges the storage fee, and its release pays the
    // market's fee: each has the balance read on the watchdog's next run.
    endpoints::set_market_fee(&rt, true, p(1), 10_000).unwrap();
    post_offer(&rt);
    let id = block_on(endpoints::submit_job(&rt, BUYER, spec(PRICE, 0))).unwrap();
    rt.settle_outbox(3);
    heartbeat(&rt, id, 0);
    assert_eq!(rt.watchdog_asked.get(), 1, "the lock asked for a run soon");
    assert_eq!(watchdog(1), 3, "the lock charged the storage fee");
    heartbeat(&rt, id, 5 * market_api::matcher::GFUEL);
    assert_eq!(watchdog(1), 3, "the release is not done yet");
    rt.settle_outbox(3);
    assert_eq!(*rt.release_fees.borrow(), vec![5]);
    assert_eq!(rt.watchdog_asked.get(), 2, "and so did the release");
    assert_eq!(watchdog(1), 4, "the release paid a fee");
    assert_eq!(watchdog(1), 4);

    // A read that fails is made again on the next run.
    rt.escrow_balance.set(None);
    assert_eq!(watchdog(58), 4);
    assert_eq!(watchdog(1), 5, "an hour after the last read");
    assert_eq!(
        rt.watchdog_asked.get(),
        3,
        "the failed read asked for a run soon"
    );
    rt.escrow_balance.set(Some(2_000_000));
    assert_eq!(watchdog(1), 6, "the failed read is made again");
    // That read passed the threshold: no read is made while the top-up it
    // began is under way, and one is made once it ends.
    assert!(read_state(|s| s.top_ups.get().0.current.is_some()));
    assert_eq!(watchdog(61), 6, "a top-up under way");
    rt.escrow_balance.set(Some(10));
    rt.settle_outbox(10);
    assert!(read_state(|s| s.top_ups.get().0.current.is_none()));
    assert_eq!(
        *rt.topped_up.borrow(),
        vec![(0, (2_000_000 - 2 * ICP_FEE) * 50_000)]
    );
    assert_eq!(
        rt.watchdog_asked.get(),
        4,
        "the top-up's end asked for a run soon"
    );
    assert_eq!(watchdog(1), 7, "the top-up ended");
    assert_eq!(watchdog(1), 7);
}

/// The market's ICP in the escrow reaches the threshold: it goes to the
/// cycles minting canister for the registry, then the escrow, through
/// the matcher's own account; every answer lost after the call landed is
/// asked again with the same key, and nothing is withdrawn, sent or
/// turned into cycles twice.
#[test]
fn the_markets_icp_becomes_cycles_once_whatever_answers_are_lost() {
    use crate::top_up::{self, Funds};
    let rt = Fake::new();
    let cmc = p(0xCC);
    let funds = |available| Funds {
        available,
        fee: ICP_FEE,
    };
    let me = rt.self_id();
    assert_eq!(
        mutate_state(|s| top_up::begin(s, 0, me, funds(5_000_000))),
        None,
        "not configured"
    );
    mutate_state(|s| {
        let mut c = s.config();
        c.cycles_top_up = Some(market_api::matcher::CyclesTopUpConfig {
            cmc,
            threshold: 1_000_000,
        });
        s.set_config(c);
    });
    assert_eq!(
        mutate_state(|s| top_up::begin(s, 0, me, funds(999_999))),
        None,
        "below the threshold"
    );
    let t = rt.now_ns();
    assert!(mutate_state(|s| top_up::begin(s, t, me, funds(2_000_000))).is_some());
    assert_eq!(
        mutate_state(|s| top_up::begin(s, t, me, funds(2_000_000))),
        None,
        "one at a time"
    );
    // The withdrawal, the transfer and the notification each land and
    // lose their answer (the transfer asked again is a duplicate).
    for fault in [
        Fault::Unknown,
        Fault::Unknown,
        Fault::Answer,
        Fault::Unknown,
    ] {
        rt.fail_next(fault);
    }
    rt.settle_outbox(10);
    // The amount less the transfer's fee and the withdrawal's.
    let amount = 2_000_000 - 2 * ICP_FEE;
    assert_eq!(*rt.withdrawn.borrow(), vec![amount + 2 * ICP_FEE]);
    let blocks = rt.icp_blocks.borrow().clone();
    assert_eq!(blocks.len(), 1, "one transfer landed");
    assert_eq!(blocks[0].0, t, "its key is the top-up's time");
    assert_eq!(blocks[0].1, amount);
    assert_eq!(
        blocks[0].2,
        icrc_ledger_types::icrc1::account::Account {
            owner: cmc,
            subaccount: Some(market_api::prices::cmc::top_up_subaccount(REGISTRY)),
        }
    );
    assert_eq!(rt.calls_of("icrc1_transfer").len(), 2, "asked again");
    assert_eq!(rt.calls_of("notify_top_up").len(), 2, "asked again");
    assert_eq!(*rt.topped_up.borrow(), vec![(0, amount * 50_000)]);
    assert_eq!(rt.own_icp.get(), 0);
    assert!(events().contains(&MatcherEvent::CyclesToppedUp {
        number: 0,
        canister: REGISTRY,
        amount,
        block_index: 0,
        cycles: u128::from(amount as u64) * 50_000,
    }));
    assert!(read_state(|s| s.top_ups.get().0.current.is_none()));
    assert!(read_state(|s| s.market.outbox.is_empty()));

    // The next one tops up the escrow; a refusal for good ends it, and
    // what was withdrawn waits in the matcher's account for the next.
    assert!(mutate_state(|s| top_up::begin(s, t + 1, me, funds(1_000_000))).is_some());
    rt.fail_next(Fault::Refuse);
    rt.fail_next(Fault::Refuse);
    rt.settle_outbox(10);
    let withdrawn = rt.withdrawn.borrow().len();
    assert_eq!(withdrawn, 1, "the escrow refused the withdrawal");
    assert!(events().iter().any(|e| matches!(e,
        MatcherEvent::CyclesTopUpFailed { number: 1, canister, .. } if *canister == ESCROW)));
    assert!(read_state(|s| s.top_ups.get().0.current.is_none()));
}
