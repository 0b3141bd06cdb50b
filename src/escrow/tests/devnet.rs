//! The escrow's real .wasm on the devnet with the project's ICRC-1/2 ledger
//! canister: deposits, push deposits, locks, withdrawals, injected ledger
//! faults (rejects, traps, timeouts with the ledger executing the call),
//! an upgrade between lock and settle, and unauthorized callers.
//!
//! After every scenario the books must match the ledger: the escrow's main
//! account holds exactly Σ free + claimable + locked + pending (its
//! `/metrics` liabilities), with no ledger call pending.
//!
//! Needs `scripts/build-canisters.sh escrow ledger`.

use candid::{CandidType, Deserialize, Nat, Principal};
use devnet::{Devnet, Fault, FaultKind, RejectCode};
use market_api::escrow::{
    Balance, DepositArgs, EscrowError, EscrowEvent, EscrowInit, ExtendLockArgs, ForfeitArgs,
    JobLock, LedgerInfo, LockArgs, NotifyDepositArgs, PendingOperation, ReconcileArgs, ReleaseArgs,
    SettleArgs, WithdrawArgs, WithdrawForArgs,
};
use market_api::{
    Account, EventPage, HttpRequest, HttpResponse, LedgerCallError, PageRequest, StandardRecord,
    Tokens,
};
use market_fixture::ledger_types::{approve_args, local_icp, transfer_arg};
use market_fixture::metrics::metric_value;
use market_fixture::principal as p;

const FEE: Tokens = 10_000;

const ADMIN: Principal = p(0xAD);
const MATCHER: Principal = p(0x3A);
const BUYER: Principal = p(1);
const BUYER2: Principal = p(2);
const PROVIDER: Principal = p(101);
const PAYER: Principal = p(0xDA);

type R<T> = Result<T, EscrowError>;

struct Net {
    dn: Devnet,
    ledger: Principal,
    escrow: Principal,
}

impl Net {
    fn new() -> Net {
        let mut dn = Devnet::new();
        let initial = [BUYER, BUYER2, PROVIDER, PAYER]
            .into_iter()
            .map(|o| (Account::from(o), 100_000_000))
            .collect();
        let ledger = dn
            .deploy(
                ADMIN,
                &market_artifacts::canister_wasm("ledger"),
                &local_icp(FEE, Account::from(p(0xEE)), initial),
            )
            .expect("install ledger");
        let escrow = dn
            .deploy(
                ADMIN,
                &market_artifacts::canister_wasm("escrow"),
                &EscrowInit {
                    matcher: Some(MATCHER),
                    ledgers: vec![],
                    governance: None,
                },
            )
            .expect("install escrow");
        let mut net = Net { dn, ledger, escrow };
        let info: R<LedgerInfo> = net.call(ADMIN, "add_ledger", &ledger);
        assert_eq!(info.unwrap().fee, Some(FEE));
        net
    }

    /// A fresh net in which the buyer approved the escrow for `approved`
    /// and deposited `deposited`.
    fn with_deposit(approved: Tokens, deposited: Tokens) -> Net {
        let mut net = Net::new();
        net.approve(BUYER, approved);
        net.deposit(BUYER, deposited).unwrap();
        net
    }

    fn call<A: CandidType, T: CandidType + for<'de> Deserialize<'de>>(
        &mut self,
        caller: Principal,
        method: &str,
        arg: &A,
    ) -> T {
        self.dn
            .update(self.escrow, caller, method, arg)
            .unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    fn query<A: CandidType, T: CandidType + for<'de> Deserialize<'de>>(
        &mut self,
        method: &str,
        arg: &A,
    ) -> T {
        self.dn
            .query(self.escrow, ADMIN, method, arg)
            .unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    fn ledger_balance(&mut self, a: Account) -> Tokens {
        let n: Nat = self
            .dn
            .query(self.ledger, ADMIN, "icrc1_balance_of", &a)
            .unwrap();
        u128::try_from(&n.0).unwrap()
    }

    fn approve(&mut self, owner: Principal, amount: Tokens) {
        let r: Result<Nat, candid::Reserved> = self
            .dn
            .update(
                self.ledger,
                owner,
                "icrc2_approve",
                &approve_args(Account::from(self.escrow), amount),
            )
            .unwrap();
        assert!(r.is_ok());
    }

    fn deposit(&mut self, user: Principal, amount: Tokens) -> R<Tokens> {
        let args = DepositArgs {
            ledger: self.ledger,
            amount,
            from_subaccount: None,
        };
        self.call(user, "deposit", &args)
    }

    fn push(&mut self, beneficiary: Principal, amount: Tokens) {
        let to: Account = self.query("deposit_account", &beneficiary);
        let r: Result<Nat, candid::Reserved> = self
            .dn
            .update(
                self.ledger,
                PAYER,
                "icrc1_transfer",
                &transfer_arg(to, amount),
            )
            .unwrap();
        assert!(r.is_ok());
    }

    fn notify_args(&self, beneficiary: Principal) -> NotifyDepositArgs {
        NotifyDepositArgs {
            ledger: self.ledger,
            beneficiary,
        }
    }

    fn notify(&mut self, beneficiary: Principal) -> R<Tokens> {
        let args = self.notify_args(beneficiary);
        self.call(PAYER, "notify_deposit", &args)
    }

    fn withdraw(&mut self, user: Principal, amount: Tokens, to: Principal) -> R<Tokens> {
        let args = WithdrawArgs {
            ledger: self.ledger,
            amount,
            to: Account::from(to),
        };
        self.call(user, "withdraw", &args)
    }

    /// Withdraws `amount` of `user`'s balance to `p(0x50)` and checks that
    /// the ledger paid that account `amount` less the fee.
    fn withdraw_paid(&mut self, user: Principal, amount: Tokens) {
        let before = self.ledger_balance(Account::from(p(0x50)));
        self.withdraw(user, amount, p(0x50)).unwrap();
        assert_eq!(
            self.ledger_balance(Account::from(p(0x50))) - before,
            amount - FEE
        );
    }

    fn reconcile(&mut self, owner: Principal) -> R<bool> {
        let args = ReconcileArgs {
            owner,
            ledger: self.ledger,
        };
        self.call(PAYER, "reconcile", &args)
    }

    fn lock(&mut self, key: &str, buyer: Principal, amount: Tokens) -> R<JobLock> {
        let args = LockArgs {
            job_key: key.into(),
            buyer,
            ledger: self.ledger,
            amount,
            stored_bytes: None,
        };
        self.call(MATCHER, "lock", &args)
    }

    fn release(&mut self, key: &str, seq: u64, amount: Tokens) -> R<JobLock> {
        self.release_with(key, seq, amount, false)
    }

    fn release_with(&mut self, key: &str, seq: u64, amount: Tokens, hold: bool) -> R<JobLock> {
        let args = ReleaseArgs {
            job_key: key.into(),
            seq,
            provider: PROVIDER,
            amount,
            hold,
            fee: 0,
        };
        self.call(MATCHER, "release", &args)
    }

    fn forfeit(&mut self, key: &str) -> R<JobLock> {
        let args = ForfeitArgs {
            job_key: key.into(),
            provider: PROVIDER,
        };
        self.call(MATCHER, "forfeit", &args)
    }

    fn settle(&mut self, key: &str) -> R<JobLock> {
        self.call(
            MATCHER,
            "settle",
            &SettleArgs {
                job_key: key.into(),
            },
        )
    }

    fn balance(&mut self, owner: Principal) -> Balance {
        let ledger = self.ledger;
        self.dn
            .query_args::<_, (Balance,)>(self.escrow, ADMIN, "balance_of", (owner, ledger))
            .unwrap()
            .0
    }

    fn fault(&mut self, method: &str, kind: FaultKind) {
        let f = Fault::new(self.ledger, kind, 1)
            .method(method)
            .caller(self.escrow);
        self.dn.inject_fault(f);
    }

    fn pending(&mut self) -> Vec<PendingOperation> {
        self.query("pending_operations", &PageRequest::default())
    }

    /// The escrow's answer to `GET url`.
    fn http_get(&mut self, url: &str) -> HttpResponse {
        let req = HttpRequest {
            method: "GET".into(),
            url: url.into(),
            headers: vec![],
            body: vec![],
        };
        self.query("http_request", &req)
    }

    /// The escrow's `/metrics` gauge `name` for the ledger.
    fn ledger_gauge(&mut self, name: &str) -> Tokens {
        let resp = self.http_get("/metrics");
        assert_eq!(resp.status_code, 200);
        let text = String::from_utf8(resp.body).unwrap();
        let prefix = format!("{name}{{ledger=\"{}\"", self.ledger);
        let value =
            metric_value(&text, &prefix).unwrap_or_else(|| panic!("no {name} line in {text}"));
        value as Tokens
    }

    /// What `/metrics` says the escrow owes on the ledger.
    fn liabilities(&mut self) -> Tokens {
        self.ledger_gauge("escrow_liabilities")
    }

    /// The escrow's main account holds exactly what it owes, nothing pending.
    fn check_books(&mut self) {
        assert_eq!(self.pending(), vec![], "no ledger call should be pending");
        let main = self.ledger_balance(Account::from(self.escrow));
        let owed = self.liabilities();
        assert_eq!(main, owed, "escrow main account vs liabilities");
        let sum: Tokens = [BUYER, BUYER2, PROVIDER]
            .into_iter()
            .map(|o| {
                let b = self.balance(o);
                b.free + b.claimable + b.locked + b.pending
            })
            .sum();
        assert_eq!(
            sum, owed,
            "liabilities vs the balances of the test's principals"
        );
    }

    /// Calls `method` as the anonymous principal, a buyer and a controller:
    /// each is refused, the method being the matcher's.
    fn refused_ingress<A: CandidType, T: CandidType + for<'de> Deserialize<'de>>(
        &mut self,
        caller: Principal,
        method: &str,
        arg: &A,
    ) -> T {
        market_fixture::refused_ingress(&mut self.dn, self.escrow, caller, method, arg)
    }

    fn assert_matcher_only<A: CandidType>(&mut self, method: &str, arg: &A) {
        for caller in [Principal::anonymous(), BUYER, ADMIN] {
            let r: R<candid::Reserved> = self.refused_ingress(caller, method, arg);
            assert!(
                matches!(
                    r,
                    Err(EscrowError::AnonymousCaller | EscrowError::Unauthorized { .. })
                ),
                "{method} by {caller}: {r:?}"
            );
        }
    }

    fn events(&mut self) -> Vec<EscrowEvent> {
        let page: EventPage<EscrowEvent> = self.query("get_events", &PageRequest::default());
        page.events.into_iter().map(|e| e.event).collect()
    }
}

fn unknown<T: std::fmt::Debug>(r: &R<T>) -> bool {
    matches!(r, Err(EscrowError::Ledger(LedgerCallError::OutcomeUnknown)))
}

#[test]
fn pull_deposit_with_and_without_approval() {
    let mut net = Net::new();
    let r = net.deposit(BUYER, 1_000_000);
    assert!(
        matches!(
            r,
            Err(EscrowError::Ledger(LedgerCallError::Rejected { .. }))
        ),
        "{r:?}"
    );
    assert_eq!(net.balance(BUYER).free, 0);
    net.approve(BUYER, 1_000_000 + FEE);
    assert_eq!(net.deposit(BUYER, 1_000_000), Ok(1_000_000));
    assert_eq!(net.balance(BUYER).free, 1_000_000);
    // The payer paid the approve fee and the transfer fee on top.
    assert_eq!(
        net.ledger_balance(Account::from(BUYER)),
        100_000_000 - 1_000_000 - 2 * FEE
    );
    net.check_books();
}

#[test]
fn push_deposit_notify_twice_concurrently_and_with_nothing_new() {
    let mut net = Net::new();
    net.push(BUYER, 500_000);
    // Two notifies in flight at once: one credits, the other is told to wait.
    let args = candid::encode_one(net.notify_args(BUYER)).unwrap();
    let a = net
        .dn
        .submit_call(net.escrow, PAYER, "notify_deposit", args.clone())
        .unwrap();
    let b = net
        .dn
        .submit_call(net.escrow, BUYER2, "notify_deposit", args)
        .unwrap();
    let ra: R<Tokens> = candid::decode_one(&net.dn.await_call(a).unwrap()).unwrap();
    let rb: R<Tokens> = candid::decode_one(&net.dn.await_call(b).unwrap()).unwrap();
    let mut results = [ra, rb];
    results.sort_by_key(|r| r.is_err());
    assert_eq!(results, [Ok(500_000 - FEE), Err(EscrowError::Busy)]);
    assert_eq!(net.balance(BUYER).free, 500_000 - FEE);
    // Nothing new: nothing credited.
    assert_eq!(net.notify(BUYER), Ok(0));
    assert_eq!(net.notify(BUYER), Ok(0));
    net.push(BUYER, 100_000);
    assert_eq!(net.notify(BUYER), Ok(100_000 - FEE));
    assert_eq!(net.balance(BUYER).free, 600_000 - 2 * FEE);
    net.check_books();
}

#[test]
fn lock_release_settle_with_retries_and_over_release_refused() {
    let mut net = Net::with_deposit(2_000_000, 1_000_000);
    let lock = net.lock("job/1", BUYER, 600_000).unwrap();
    assert_eq!(net.lock("job/1", BUYER, 600_000), Ok(lock));
    assert_eq!(net.balance(BUYER).locked, 600_000);
    net.release("job/1", 0, 200_000).unwrap();
    let again = net.release("job/1", 0, 200_000).unwrap();
    assert_eq!((again.released, again.remaining), (200_000, 400_000));
    assert_eq!(
        net.release("job/1", 1, 400_001),
        Err(EscrowError::OverRelease { remaining: 400_000 })
    );
    assert_eq!(
        net.release("job/2", 0, 1),
        Err(EscrowError::UnknownJob {
            job_key: "job/2".into()
        })
    );
    assert_eq!(
        net.lock("job/3", BUYER, 400_001),
        Err(EscrowError::InsufficientBalance { available: 400_000 })
    );
    let settled = net.settle("job/1").unwrap();
    assert_eq!(settled.refunded, 400_000);
    assert_eq!(net.settle("job/1"), Ok(settled));
    assert_eq!(net.balance(BUYER).free, 800_000);
    assert_eq!(net.balance(PROVIDER).claimable, 200_000);
    let got: Option<JobLock> = net.query("get_lock", &"job/1".to_string());
    assert_eq!(got.unwrap().remaining, 0);
    net.check_books();
}

#[test]
fn held_pay_is_pending_until_settle_then_claimable_and_withdrawable() {
    let mut net = Net::with_deposit(2_000_000, 1_000_000);
    net.lock("job/1", BUYER, 600_000).unwrap();
    let lock = net.release_with("job/1", 0, 200_000, true).unwrap();
    assert_eq!(lock.pending, vec![(PROVIDER, 200_000)]);
    assert_eq!((lock.released, lock.remaining), (0, 400_000));
    assert_eq!(net.release_with("job/1", 0, 200_000, true), Ok(lock));
    assert_eq!(
        net.release_with("job/1", 0, 200_000, false),
        Err(EscrowError::KeyConflict {
            job_key: "job/1".into()
        })
    );
    let b = net.balance(PROVIDER);
    assert_eq!((b.pending, b.claimable), (200_000, 0));
    assert_eq!(net.ledger_gauge("escrow_pending_pay"), 200_000);
    assert_eq!(
        net.withdraw(PROVIDER, 200_000, p(0x50)),
        Err(EscrowError::InsufficientBalance { available: 0 })
    );
    net.check_books();

    // A second held release, forfeited: it goes back to the lock.
    net.release_with("job/1", 1, 50_000, true).unwrap();
    let lock = net.forfeit("job/1").unwrap();
    assert_eq!((lock.pending.clone(), lock.remaining), (vec![], 600_000));
    assert_eq!(net.balance(PROVIDER).pending, 0);
    assert_eq!(net.forfeit("job/1"), Ok(lock));
    // Held again by a later attempt, and paid at settle.
    net.release_with("job/1", 2, 200_000, true).unwrap();

    let settled = net.settle("job/1").unwrap();
    assert_eq!(
        (settled.released, settled.refunded, settled.pending),
        (200_000, 400_000, vec![])
    );
    let b = net.balance(PROVIDER);
    assert_eq!((b.pending, b.claimable), (0, 200_000));
    assert_eq!(net.ledger_gauge("escrow_pending_pay"), 0);
    assert_eq!(net.balance(BUYER).free, 400_000 + 400_000);
    assert_eq!(
        net.forfeit("job/1"),
        Err(EscrowError::AlreadySettled {
            job_key: "job/1".into()
        })
    );
    let events = net.events();
    let n = events.len();
    assert!(
        matches!(
            &events[n - 2..],
            [
                EscrowEvent::PendingPaid { amount: 200_000, provider, .. },
                EscrowEvent::Settled { refunded: 400_000, .. },
            ] if *provider == PROVIDER
        ),
        "{events:?}"
    );
    net.withdraw_paid(PROVIDER, 200_000);
    net.check_books();
}

#[test]
fn withdraw_pays_amount_minus_fee() {
    let mut net = Net::with_deposit(2_000_000, 1_000_000);
    net.lock("j", BUYER, 300_000).unwrap();
    net.release("j", 0, 300_000).unwrap();
    net.withdraw_paid(PROVIDER, 300_000);
    assert_eq!(net.balance(PROVIDER).claimable, 0);
    assert_eq!(
        net.withdraw(BUYER, FEE, p(0x50)),
        Err(EscrowError::AmountBelowFee { fee: FEE })
    );
    assert_eq!(
        net.withdraw(BUYER, 700_001, p(0x50)),
        Err(EscrowError::InsufficientBalance { available: 700_000 })
    );
    assert!(matches!(
        net.events().last(),
        Some(EscrowEvent::Withdrawn { fee: FEE, .. })
    ));
    net.check_books();
}

#[test]
fn deposit_survives_ledger_faults() {
    let mut net = Net::new();
    net.approve(BUYER, 10_000_000);
    // Rejected and trapped calls change nothing.
    for kind in [
        FaultKind::Reject {
            code: RejectCode::SysTransient,
            message: "injected".into(),
        },
        FaultKind::Trap,
    ] {
        net.fault("icrc2_transfer_from", kind);
        assert!(net.deposit(BUYER, 1_000_000).is_err());
        assert_eq!(net.balance(BUYER).free, 0);
        net.check_books();
    }
    // Timeout: the ledger moved the tokens, the escrow does not know yet.
    net.fault("icrc2_transfer_from", FaultKind::Timeout);
    assert!(unknown(&net.deposit(BUYER, 1_000_000)));
    assert_eq!(net.pending().len(), 1);
    assert_eq!(net.balance(BUYER).free, 0);
    // The retry is answered Duplicate and credits exactly once.
    assert_eq!(net.reconcile(BUYER), Ok(true));
    assert_eq!(net.reconcile(BUYER), Ok(false));
    assert_eq!(net.balance(BUYER).free, 1_000_000);
    assert_eq!(
        net.ledger_balance(Account::from(BUYER)),
        100_000_000 - FEE - 1_000_000 - FEE
    );
    net.check_books();
}

#[test]
fn notify_survives_ledger_faults() {
    let mut net = Net::new();
    net.push(BUYER, 500_000);
    net.fault("icrc1_balance_of", FaultKind::Trap);
    assert!(net.notify(BUYER).is_err());
    net.fault(
        "icrc1_transfer",
        FaultKind::Reject {
            code: RejectCode::SysTransient,
            message: "injected".into(),
        },
    );
    assert!(net.notify(BUYER).is_err());
    assert_eq!(net.balance(BUYER).free, 0);
    net.check_books();
    net.fault("icrc1_transfer", FaultKind::Timeout);
    assert!(unknown(&net.notify(BUYER)));
    // The next notify settles the sweep first (Duplicate), then finds nothing new.
    assert_eq!(net.notify(BUYER), Ok(0));
    assert_eq!(net.balance(BUYER).free, 500_000 - FEE);
    assert_eq!(net.notify(BUYER), Ok(0));
    assert_eq!(net.balance(BUYER).free, 500_000 - FEE);
    net.check_books();
}

#[test]
fn withdraw_survives_ledger_faults() {
    let mut net = Net::with_deposit(10_000_000, 2_000_000);
    // A trap in the ledger: the balance is restored, once.
    net.fault("icrc1_transfer", FaultKind::Trap);
    assert!(net.withdraw(BUYER, 500_000, p(0x50)).is_err());
    assert_eq!(net.balance(BUYER).free, 2_000_000);
    assert!(matches!(
        net.events().last(),
        Some(EscrowEvent::WithdrawalRefunded { .. })
    ));
    assert_eq!(net.reconcile(BUYER), Ok(false));
    assert_eq!(net.balance(BUYER).free, 2_000_000);
    net.check_books();
    // A timeout after the ledger paid: debited, pending, never restored.
    net.fault("icrc1_transfer", FaultKind::Timeout);
    assert!(unknown(&net.withdraw(BUYER, 500_000, p(0x50))));
    assert_eq!(net.balance(BUYER).free, 1_500_000);
    // A retry that times out again changes nothing.
    net.fault("icrc1_transfer", FaultKind::Timeout);
    assert!(matches!(
        net.reconcile(BUYER),
        Err(EscrowError::PendingOperation { .. })
    ));
    // The next withdrawal settles the old one first, then makes its own.
    net.withdraw(BUYER, 100_000, p(0x50)).unwrap();
    assert_eq!(net.balance(BUYER).free, 1_400_000);
    assert_eq!(
        net.ledger_balance(Account::from(p(0x50))),
        600_000 - 2 * FEE,
        "paid once each"
    );
    net.check_books();
}

#[test]
fn upgrade_between_lock_and_settle() {
    let mut net = Net::with_deposit(10_000_000, 1_000_000);
    net.lock("job/9", BUYER, 500_000).unwrap();
    net.release("job/9", 0, 100_000).unwrap();
    net.release_with("job/9", 5, 50_000, true).unwrap();
    net.fault("icrc1_transfer", FaultKind::Timeout);
    assert!(unknown(&net.withdraw(BUYER, 100_000, p(0x50))));
    let events = net.events().len();
    let (ledger, escrow) = (net.ledger, net.escrow);
    net.dn
        .upgrade_canister(
            escrow,
            &market_artifacts::canister_wasm("escrow"),
            candid::encode_one(None::<EscrowInit>).unwrap(),
            ADMIN,
        )
        .expect("upgrade");
    assert_eq!(net.events().len(), events);
    let ledgers: Vec<LedgerInfo> = net.query("ledgers", &());
    assert_eq!(ledgers[0].ledger, ledger);
    assert_eq!(net.pending().len(), 1);
    assert_eq!(net.balance(PROVIDER).pending, 50_000);
    assert_eq!(net.release("job/9", 0, 100_000).unwrap().released, 100_000);
    net.release("job/9", 1, 100_000).unwrap();
    assert_eq!(net.settle("job/9").unwrap().refunded, 250_000);
    assert_eq!(net.reconcile(BUYER), Ok(true));
    assert_eq!(net.balance(BUYER).free, 400_000 + 250_000);
    assert_eq!(net.balance(PROVIDER).claimable, 250_000);
    net.check_books();
}

#[test]
fn unauthorized_callers_of_every_update_method() {
    let mut net = Net::with_deposit(10_000_000, 1_000_000);
    let anon = Principal::anonymous();
    let ledger = net.ledger;
    let lock = LockArgs {
        job_key: "j".into(),
        buyer: BUYER,
        ledger,
        amount: 1,
        stored_bytes: None,
    };
    let release = ReleaseArgs {
        job_key: "j".into(),
        seq: 0,
        provider: PROVIDER,
        amount: 1,
        hold: false,
        fee: 0,
    };
    let settle = SettleArgs {
        job_key: "j".into(),
    };
    let extend = ExtendLockArgs {
        job_key: "j".into(),
        extension: 1,
        amount: 1,
    };
    let withdraw_for = WithdrawForArgs {
        owner: BUYER,
        args: WithdrawArgs {
            ledger,
            amount: 100_000,
            to: Account::from(p(0x50)),
        },
    };
    net.assert_matcher_only("extend_lock", &extend);
    net.assert_matcher_only("withdraw_for", &withdraw_for);
    net.assert_matcher_only("lock", &lock);
    net.assert_matcher_only("release", &release);
    let forfeit = ForfeitArgs {
        job_key: "j".into(),
        provider: PROVIDER,
    };
    net.assert_matcher_only("forfeit", &forfeit);
    net.assert_matcher_only("settle", &settle);
    for caller in [anon, BUYER, MATCHER] {
        let r: R<LedgerInfo> = net.refused_ingress(caller, "add_ledger", &ledger);
        assert!(matches!(r, Err(EscrowError::Unauthorized { .. })), "{r:?}");
    }
    let deposit = DepositArgs {
        ledger,
        amount: 1,
        from_subaccount: None,
    };
    let r: R<Tokens> = net.refused_ingress(anon, "deposit", &deposit);
    assert_eq!(r, Err(EscrowError::AnonymousCaller));
    let withdraw = WithdrawArgs {
        ledger,
        amount: 100_000,
        to: Account::from(p(0x50)),
    };
    let r: R<Tokens> = net.refused_ingress(anon, "withdraw", &withdraw);
    assert_eq!(r, Err(EscrowError::AnonymousCaller));
    let args = net.notify_args(BUYER);
    let r: R<Tokens> = net.refused_ingress(anon, "notify_deposit", &args);
    assert_eq!(r, Err(EscrowError::AnonymousCaller));
    let r: R<bool> = net.refused_ingress(
        anon,
        "reconcile",
        &ReconcileArgs {
            owner: BUYER,
            ledger,
        },
    );
    assert_eq!(r, Err(EscrowError::AnonymousCaller));
    assert_eq!(net.balance(BUYER).free, 1_000_000);
    net.check_books();
}

#[test]
fn standards_and_metrics() {
    let mut net = Net::new();
    let standards: Vec<StandardRecord> = net.query("icrc10_supported_standards", &());
    assert!(standards.iter().any(|s| s.name == "ICRC-10"));
    assert!(standards.iter().any(|s| s.name == "ICRC-3"));
    assert_eq!(net.http_get("/nope").status_code, 404);
    assert_eq!(net.liabilities(), 0);
}
