//! Native tests of the escrow's accounting against the fake ledger: every
//! method, every fault in the middle of a value-moving call, upgrades, and
//! a property test of random operations and faults that checks the
//! conservation invariant after each step.

use crate::jobs;
use crate::payments::{self, deposit_account, main_account};
use crate::state::{State, mutate_state, read_state, replace_state};
use canister_common::audit::{AuditedBooks, Books};
use fake_ledger::{DEDUP_WINDOW_NS, FakeLedger, Fault};
use futures::executor::block_on;
use ic_stable_structures::DefaultMemoryImpl;
use ic_stable_structures::memory_manager::MemoryManager;
use market_api::escrow::{
    DepositArgs, EscrowError, EscrowEvent, EscrowInit, ExtendLockArgs, ForfeitArgs, JobLock,
    LockArgs, NotifyDepositArgs, PendingKind, ReconcileArgs, ReleaseArgs, SettleArgs, WithdrawArgs,
    WithdrawForArgs,
};
use market_api::{Account, LedgerCallError, PageRequest, Principal, Tokens};

mod fake;
mod fees;
mod pending_pay;
mod property;
mod scenarios;

const fn p(n: u8) -> Principal {
    Principal::from_slice(&[n; 10])
}

const FEE1: Tokens = 10_000;
const FEE2: Tokens = 10;

const ESCROW: Principal = p(0xE5);
const MATCHER: Principal = p(0x3A);
const L1: Principal = p(0x11);
const L2: Principal = p(0x12);

fn open(mem: &DefaultMemoryImpl) {
    // Small buckets keep the in-memory stable memory small in tests.
    let mm = MemoryManager::init_with_bucket_size(mem.clone(), 1);
    replace_state(State::open(|id| mm.get(id)));
}

/// A fresh escrow with two whitelisted ledgers (fees 10 000 and 10) on a
/// fake ledger set.
struct Env {
    rt: FakeLedger,
    mem: DefaultMemoryImpl,
}

/// Applies an install argument naming the matcher and whitelisting
/// `ledgers` (their fees not read yet).
fn apply_install_arg(ledgers: Vec<Principal>) {
    mutate_state(|s| {
        s.apply_config(
            EscrowInit {
                matcher: Some(MATCHER),
                ledgers,
                governance: None,
            },
            0,
        )
    });
}

impl Env {
    fn new() -> Env {
        let mem = DefaultMemoryImpl::default();
        open(&mem);
        let rt = FakeLedger::new(ESCROW);
        rt.add_ledger(L1, FEE1);
        rt.add_ledger(L2, FEE2);
        apply_install_arg(vec![]);
        block_on(payments::add_ledger(&rt, true, L1)).unwrap();
        block_on(payments::add_ledger(&rt, true, L2)).unwrap();
        Env { rt, mem }
    }

    /// A new ledger (0x13) charging `fee`, whitelisted by the install
    /// argument: its fee is not known until first used.
    fn ledger_named_at_install(&self, fee: Tokens) -> Principal {
        let ledger = p(0x13);
        self.rt.add_ledger(ledger, fee);
        apply_install_arg(vec![ledger]);
        assert_eq!(read_state(|s| s.ledger(&ledger)).unwrap().fee, None);
        ledger
    }

    /// Models an upgrade: the heap is dropped and the state is reopened
    /// from the same stable memory.
    fn upgrade(&self) {
        open(&self.mem);
        read_state(|s| s.check_invariants()).unwrap();
    }

    fn fee(&self, ledger: Principal) -> Tokens {
        self.rt.fee(ledger)
    }

    /// Mints `amount + fee` to `user`, approves the escrow and deposits `amount`.
    fn deposit(
        &self,
        user: Principal,
        ledger: Principal,
        amount: Tokens,
    ) -> Result<Tokens, EscrowError> {
        let fee = self.fee(ledger);
        self.rt.mint(ledger, Account::from(user), amount + fee);
        self.rt.approve(ledger, Account::from(user), amount + fee);
        self.pull(user, ledger, amount)
    }

    fn pull(
        &self,
        user: Principal,
        ledger: Principal,
        amount: Tokens,
    ) -> Result<Tokens, EscrowError> {
        block_on(payments::deposit(
            &self.rt,
            user,
            DepositArgs {
                ledger,
                amount,
                from_subaccount: None,
            },
        ))
    }

    /// Someone transfers `amount` to `beneficiary`'s deposit account.
    fn push(&self, beneficiary: Principal, ledger: Principal, amount: Tokens) {
        let payer = Account::from(p(0xDA));
        self.rt.mint(ledger, payer, amount + self.fee(ledger));
        let to = deposit_account(ESCROW, beneficiary).unwrap();
        self.rt
            .external_transfer(ledger, payer, to, amount)
            .unwrap();
    }

    fn notify(&self, beneficiary: Principal, ledger: Principal) -> Result<Tokens, EscrowError> {
        block_on(payments::notify_deposit(
            &self.rt,
            p(0xCC),
            NotifyDepositArgs {
                ledger,
                beneficiary,
            },
        ))
    }

    fn withdraw(
        &self,
        user: Principal,
        ledger: Principal,
        amount: Tokens,
        to: Principal,
    ) -> Result<u128, EscrowError> {
        block_on(payments::withdraw(
            &self.rt,
            user,
            WithdrawArgs {
                ledger,
                amount,
                to: Account::from(to),
            },
        ))
    }

    /// `withdraw_for` of `owner` called by `caller`.
    fn withdraw_for(
        &self,
        caller: Principal,
        owner: Principal,
        ledger: Principal,
        amount: Tokens,
        to: Principal,
    ) -> Result<u128, EscrowError> {
        block_on(payments::withdraw_for(
            &self.rt,
            caller,
            WithdrawForArgs {
                owner,
                args: WithdrawArgs {
                    ledger,
                    amount,
                    to: Account::from(to),
                },
            },
        ))
    }

    fn reconcile(&self, owner: Principal, ledger: Principal) -> Result<bool, EscrowError> {
        block_on(payments::reconcile(
            &self.rt,
            p(0xCC),
            ReconcileArgs { owner, ledger },
        ))
    }

    fn lock(
        &self,
        key: &str,
        buyer: Principal,
        ledger: Principal,
        amount: Tokens,
    ) -> Result<JobLock, EscrowError> {
        self.job_call(
            jobs::lock,
            MATCHER,
            LockArgs {
                job_key: key.into(),
                buyer,
                ledger,
                amount,
                stored_bytes: None,
            },
        )
    }

    /// A fresh escrow in which `owner` deposited `deposit` on L1 and locked
    /// `amount` of it for job `key`.
    fn locked_for(key: &str, owner: Principal, deposit: Tokens, amount: Tokens) -> Env {
        let env = Env::new();
        env.deposit(owner, L1, deposit).unwrap();
        env.lock(key, owner, L1, amount).unwrap();
        env
    }

    /// A release claimable at once.
    fn release(
        &self,
        key: &str,
        seq: u64,
        provider: Principal,
        amount: Tokens,
    ) -> Result<JobLock, EscrowError> {
        self.release_with(key, seq, provider, amount, false)
    }

    /// A release held as pending pay.
    fn hold(
        &self,
        key: &str,
        seq: u64,
        provider: Principal,
        amount: Tokens,
    ) -> Result<JobLock, EscrowError> {
        self.release_with(key, seq, provider, amount, true)
    }

    fn release_with(
        &self,
        key: &str,
        seq: u64,
        provider: Principal,
        amount: Tokens,
        hold: bool,
    ) -> Result<JobLock, EscrowError> {
        self.release_with_fee(key, seq, provider, amount, hold, 0)
    }

    /// A release of `amount` with the market's `fee` beside it.
    fn release_with_fee(
        &self,
        key: &str,
        seq: u64,
        provider: Principal,
        amount: Tokens,
        hold: bool,
        fee: Tokens,
    ) -> Result<JobLock, EscrowError> {
        self.job_call(
            jobs::release,
            MATCHER,
            ReleaseArgs {
                job_key: key.into(),
                seq,
                provider,
                amount,
                hold,
                fee,
            },
        )
    }

    fn forfeit(&self, key: &str, provider: Principal) -> Result<JobLock, EscrowError> {
        self.job_call(
            jobs::forfeit,
            MATCHER,
            ForfeitArgs {
                job_key: key.into(),
                provider,
            },
        )
    }

    /// `extend_lock` called by `caller`.
    fn extend_by(
        &self,
        caller: Principal,
        key: &str,
        extension: u32,
        amount: Tokens,
    ) -> Result<JobLock, EscrowError> {
        self.job_call(
            jobs::extend_lock,
            caller,
            ExtendLockArgs {
                job_key: key.into(),
                extension,
                amount,
            },
        )
    }

    fn extend(&self, key: &str, extension: u32, amount: Tokens) -> Result<JobLock, EscrowError> {
        self.extend_by(MATCHER, key, extension, amount)
    }

    fn settle(&self, key: &str) -> Result<JobLock, EscrowError> {
        self.job_call(
            jobs::settle,
            MATCHER,
            SettleArgs {
                job_key: key.into(),
            },
        )
    }

    /// Makes the job call `call` (`jobs::lock`, ...) as `caller`, now.
    fn job_call<A>(
        &self,
        call: fn(&mut State, Principal, A, u64) -> Result<JobLock, EscrowError>,
        caller: Principal,
        args: A,
    ) -> Result<JobLock, EscrowError> {
        let now = self.rt_now();
        mutate_state(|s| call(s, caller, args, now))
    }

    fn rt_now(&self) -> u64 {
        use crate::runtime::SystemApi;
        self.rt.now_ns()
    }

    fn free(&self, user: Principal, ledger: Principal) -> Tokens {
        read_state(|s| s.balance(user, ledger).free)
    }

    fn claimable(&self, user: Principal, ledger: Principal) -> Tokens {
        read_state(|s| s.balance(user, ledger).claimable)
    }

    fn pending(&self, user: Principal, ledger: Principal) -> Tokens {
        read_state(|s| s.balance(user, ledger).pending)
    }

    /// The conservation invariant, exact even with calls pending: for each
    /// ledger, main account == liabilities + deposits and sweeps that landed
    /// but are not credited yet + withdrawals debited that did not land.
    fn check_books(&self) {
        read_state(|s| s.check_invariants()).unwrap();
        for ledger in [L1, L2] {
            self.rt.check_supply(ledger);
            let main = self.rt.balance(ledger, main_account(ESCROW));
            let mut expected = read_state(|s| s.liabilities(&ledger));
            for op in read_state(|s| s.pending_operations()) {
                if op.ledger != ledger {
                    continue;
                }
                let landed = self.rt.executed(ledger, &op.memo);
                match op.kind {
                    PendingKind::Deposit { .. } | PendingKind::Sweep { .. } if landed => {
                        expected += op.amount
                    }
                    PendingKind::Withdraw { .. } if !landed => expected += op.amount,
                    _ => {}
                }
            }
            assert_eq!(main, expected, "ledger {ledger}: main account vs books");
        }
    }

    /// Resolves every pending call (no faults left) and checks the strict
    /// invariant: main account == liabilities, nothing pending.
    fn settle_all_and_check(&self) {
        self.rt.clear_faults();
        for op in read_state(|s| s.pending_operations()) {
            // A retry answered BadFee (the fee changed) stays pending until
            // the fee is back; put it back as the pending call named it.
            if let Some(fee) = op.fee {
                self.rt.set_fee(op.ledger, fee);
            }
            assert!(self.reconcile(op.owner, op.ledger).unwrap());
        }
        assert_eq!(read_state(|s| s.pending_count()), 0);
        self.check_books();
        for ledger in [L1, L2] {
            assert_eq!(
                self.rt.balance(ledger, main_account(ESCROW)),
                read_state(|s| s.liabilities(&ledger))
            );
        }
    }

    fn events(&self) -> Vec<EscrowEvent> {
        read_state(|s| s.events.page(&PageRequest::default()))
            .events
            .into_iter()
            .map(|e| e.event)
            .collect()
    }

    /// The last event is the forfeit of `amount` and `fee` by `provider`
    /// in job `key`'s lock on L1.
    fn assert_last_forfeit(&self, key: &str, provider: Principal, amount: Tokens, fee: Tokens) {
        assert_eq!(
            self.events().last(),
            Some(&EscrowEvent::Forfeited {
                job_key: key.into(),
                provider,
                ledger: L1,
                amount,
                fee,
            })
        );
    }
}

fn unknown() -> EscrowError {
    EscrowError::Ledger(LedgerCallError::OutcomeUnknown)
}

const DAY: u64 = DEDUP_WINDOW_NS;
