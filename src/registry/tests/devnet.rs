//! The registry's real .wasm with the local ICRC-1/2 ledger on the devnet:
//! registration, staking, unbonding across time, bonding, slashing and
//! jailing, ledger faults, unauthorized callers, and an upgrade in the middle
//! of unbonding. After every scenario the registry's ledger balance (summed
//! over every account of the registry that the ledger's log mentions) equals
//! the stakes it records.
//!
//! Needs `scripts/build-canisters.sh registry ledger` first.

use candid::{CandidType, Decode, Deserialize, Encode, Nat, Principal, encode_one};
use devnet::{Devnet, Fault, FaultKind};
use market_api::registry::{
    BondArgs, Ineligibility, ListProvidersArgs, Provider, ProviderPage, ProviderProfile,
    RecordArgs, RecordEvent, RegistryConfig, RegistryConfigUpdate, RegistryError, RegistryInit,
    SlashArgs, SlashOutcome, StakeAccount, TrackRecord, Unbonding,
};
use market_api::{Account, HttpRequest, HttpResponse, LedgerCallError, Tokens};
use market_fixture::ledger_types::{
    ListBlocksArgs, ListBlocksResult, Operation, approve_args, local_icp,
};
use market_fixture::metrics::metric_value;
use std::collections::BTreeSet;
use std::time::Duration;

const FEE: u128 = 10_000;
const ICP: u128 = 100_000_000;
const MIN_STAKE: u128 = 10 * ICP;
const WEEK: Duration = Duration::from_secs(7 * 86_400);

// The local ledger's init argument (see testkit/ledger/ledger.did).

fn admin() -> Principal {
    Principal::from_slice(&[0xad; 29])
}
fn minter() -> Principal {
    Principal::from_slice(&[0x0e; 29])
}
fn matcher() -> Principal {
    Principal::from_slice(&[0x3a; 29])
}
fn user(i: u8) -> Principal {
    Principal::from_slice(&[0x10, i, 0x55])
}
fn buyer() -> Account {
    Account {
        owner: Principal::from_slice(&[0xb0; 29]),
        subaccount: Some([9; 32]),
    }
}
fn account(owner: Principal) -> Account {
    Account {
        owner,
        subaccount: None,
    }
}

struct Net {
    dn: Devnet,
    ledger: Principal,
    registry: Principal,
}

fn profile(node: Principal) -> ProviderProfile {
    ProviderProfile {
        display_name: "rack 7".into(),
        region: "eu-west".into(),
        node,
        total_slots: 8,
        memory_per_slot_mib: 2048,
        tags: vec!["avx2".into()],
        endpoint: None,
    }
}

impl Net {
    fn new() -> Self {
        let mut dn = Devnet::new();
        let initial_balances = (0..6)
            .map(|i| (account(user(i)), 1_000 * ICP))
            .chain([(account(user(9)), ICP)])
            .collect();
        let ledger = dn
            .deploy(
                admin(),
                &market_artifacts::canister_wasm("ledger"),
                &local_icp(FEE, account(minter()), initial_balances),
            )
            .expect("ledger installs");
        let registry = dn
            .deploy(
                admin(),
                &market_artifacts::canister_wasm("registry"),
                &RegistryInit {
                    ledger,
                    matcher: Some(matcher()),
                    min_stake: MIN_STAKE,
                    unbonding_period_secs: None,
                    governance: None,
                },
            )
            .expect("registry installs");
        Net {
            dn,
            ledger,
            registry,
        }
    }

    /// A fresh net in which `user(1)` registered and staked `stake`.
    fn with_staked_provider(stake: Tokens) -> (Net, Principal) {
        let mut n = Net::new();
        let p = user(1);
        n.register(p).unwrap();
        n.approve_and_stake(p, stake);
        (n, p)
    }

    fn call<R: CandidType + for<'de> Deserialize<'de>>(
        &mut self,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> R {
        let bytes = self
            .dn
            .update_call(self.registry, sender, method, arg)
            .unwrap_or_else(|e| panic!("{method}: {e:?}"));
        Decode!(&bytes, R).unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    /// A call ingress may not make: refused by `inspect_message`, and by
    /// the method itself when it comes from a canister.
    fn refused<R: CandidType + for<'de> Deserialize<'de>>(
        &mut self,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> R {
        let bytes =
            market_fixture::refused_ingress_bytes(&mut self.dn, self.registry, sender, method, arg);
        Decode!(&bytes, R).unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    fn register(&mut self, p: Principal) -> Result<(), RegistryError> {
        self.call(p, "register_provider", encode_one(profile(p)).unwrap())
    }

    fn approve(&mut self, p: Principal, amount: Tokens) {
        let r: Result<Nat, candid::Reserved> = self
            .dn
            .update(
                self.ledger,
                p,
                "icrc2_approve",
                &approve_args(account(self.registry), amount),
            )
            .unwrap();
        assert!(r.is_ok(), "approve failed");
    }

    fn stake(&mut self, p: Principal, amount: Tokens) -> Result<u128, RegistryError> {
        self.call(p, "stake", encode_one(amount).unwrap())
    }

    fn approve_and_stake(&mut self, p: Principal, amount: Tokens) {
        self.approve(p, amount + FEE);
        self.stake(p, amount).expect("stake");
    }

    fn unstake(&mut self, p: Principal, amount: Tokens) -> Result<Unbonding, RegistryError> {
        self.call(p, "unstake", encode_one(amount).unwrap())
    }

    fn withdraw(&mut self, p: Principal) -> Result<u128, RegistryError> {
        self.call(p, "withdraw_unbonded", Encode!().unwrap())
    }

    fn bond(
        &mut self,
        caller: Principal,
        p: Principal,
        amount: Tokens,
        key: &str,
    ) -> Result<(), RegistryError> {
        self.call(
            caller,
            "bond",
            encode_one(bond_args(p, amount, key)).unwrap(),
        )
    }

    fn unbond(&mut self, caller: Principal, key: &str) -> Result<Tokens, RegistryError> {
        self.call(caller, "unbond", encode_one(key.to_string()).unwrap())
    }

    fn slash(
        &mut self,
        caller: Principal,
        p: Principal,
        amount: Tokens,
        key: &str,
    ) -> Result<SlashOutcome, RegistryError> {
        self.call(
            caller,
            "slash",
            encode_one(slash_args(p, amount, key)).unwrap(),
        )
    }

    fn record(&mut self, caller: Principal, args: &RecordArgs) -> Result<(), RegistryError> {
        self.call(caller, "record", encode_one(args).unwrap())
    }

    fn track_record(&mut self, p: Principal) -> Option<TrackRecord> {
        self.dn
            .query(self.registry, user(0), "track_record", &p)
            .unwrap()
    }

    fn provider(&mut self, p: Principal) -> Provider {
        let r: Option<Provider> = self
            .dn
            .query(self.registry, user(0), "get_provider", &p)
            .unwrap();
        r.expect("provider exists")
    }

    fn balance(&mut self, a: Account) -> u128 {
        let n: Nat = self
            .dn
            .query(self.ledger, user(0), "icrc1_balance_of", &a)
            .unwrap();
        u128::try_from(n.0).unwrap()
    }

    /// Every account of the registry that appears in the ledger's log.
    fn registry_accounts(&mut self) -> BTreeSet<Vec<u8>> {
        let mut out = BTreeSet::new();
        let mut start = 0;
        loop {
            let page: ListBlocksResult = self
                .dn
                .query(
                    self.ledger,
                    user(0),
                    "list_blocks",
                    &ListBlocksArgs {
                        start,
                        length: 1000,
                    },
                )
                .unwrap();
            for b in &page.blocks {
                let accounts = match &b.operation {
                    Operation::Mint { to, .. } => vec![to],
                    Operation::Transfer { from, to, .. } => vec![from, to],
                    _ => vec![],
                };
                for a in accounts {
                    if a.owner == self.registry {
                        out.insert(a.subaccount.unwrap_or([0; 32]).to_vec());
                    }
                }
            }
            start += page.blocks.len() as u64;
            if page.blocks.is_empty() || start >= page.log_length {
                return out;
            }
        }
    }

    /// The conservation invariant: the registry's ledger balance equals the
    /// sum of the stakes it records (free, bonded, unbonding), with no
    /// transfer left pending.
    fn check_conservation(&mut self) {
        let mut held = 0u128;
        for sub in self.registry_accounts() {
            let sub: [u8; 32] = sub.try_into().unwrap();
            held += self.balance(Account {
                owner: self.registry,
                subaccount: Some(sub),
            });
        }
        let mut recorded = 0u128;
        let mut start_after = None;
        loop {
            let page: ProviderPage = self
                .dn
                .query(
                    self.registry,
                    user(0),
                    "list_providers",
                    &ListProvidersArgs {
                        start_after,
                        ..Default::default()
                    },
                )
                .unwrap();
            for p in &page.providers {
                assert_eq!(p.pending_operation, None, "{} has a pending transfer", p.id);
                recorded += p.stake.free + p.stake.bonded;
                recorded += p.stake.unbonding.iter().map(|u| u.amount).sum::<u128>();
                // Each provider's stake account holds exactly its stake.
                let acct: StakeAccount = self
                    .dn
                    .query(self.registry, user(0), "stake_account", &p.id)
                    .unwrap();
                let own = self.balance(acct.account);
                assert_eq!(
                    own,
                    p.stake.free
                        + p.stake.bonded
                        + p.stake.unbonding.iter().map(|u| u.amount).sum::<u128>()
                );
            }
            match page.next {
                Some(n) => start_after = Some(n),
                None => break,
            }
        }
        assert_eq!(held, recorded, "registry ledger balance vs recorded stakes");
    }

    fn metrics(&mut self) -> String {
        let r: HttpResponse = self
            .dn
            .query(
                self.registry,
                Principal::anonymous(),
                "http_request",
                &HttpRequest {
                    method: "GET".into(),
                    url: "/metrics".into(),
                    headers: vec![],
                    body: vec![],
                },
            )
            .unwrap();
        assert_eq!(r.status_code, 200);
        String::from_utf8(r.body).unwrap()
    }

    fn fault(&mut self, method: &str, kind: FaultKind, count: u32) {
        let f = Fault::new(self.ledger, kind, count)
            .method(method)
            .caller(self.registry);
        self.dn.inject_fault(f);
    }
}

fn bond_args(p: Principal, amount: Tokens, key: &str) -> BondArgs {
    BondArgs {
        provider: p,
        amount,
        key: key.into(),
        min_stake: None,
        min_record: None,
    }
}

fn slash_args(p: Principal, amount: Tokens, key: &str) -> SlashArgs {
    SlashArgs {
        provider: p,
        amount,
        beneficiary: buyer(),
        reason: "missed heartbeat".into(),
        key: key.into(),
    }
}

fn record_args(p: Principal, key: &str, event: RecordEvent) -> RecordArgs {
    RecordArgs {
        provider: p,
        key: key.into(),
        event,
    }
}

fn rejected_with(r: &Result<u128, RegistryError>, what: &str) -> bool {
    matches!(r, Err(RegistryError::Ledger(LedgerCallError::Rejected { message })) if message.contains(what))
}

#[test]
fn register_and_stake_only_with_approval_and_funds() {
    let mut n = Net::new();
    let p = user(1);
    let anon = Principal::anonymous();
    let r: Result<(), RegistryError> = n.refused(
        anon,
        "register_provider",
        encode_one(profile(anon)).unwrap(),
    );
    assert_eq!(r, Err(RegistryError::AnonymousCaller));
    assert_eq!(n.stake(p, ICP), Err(RegistryError::NotRegistered));
    n.register(p).unwrap();
    assert_eq!(n.register(p), Err(RegistryError::AlreadyRegistered));
    // No approval.
    let r = n.stake(p, 20 * ICP);
    assert!(rejected_with(&r, "InsufficientAllowance"), "{r:?}");
    // Approval without the fee.
    n.approve(p, 20 * ICP);
    let r = n.stake(p, 20 * ICP);
    assert!(rejected_with(&r, "InsufficientAllowance"), "{r:?}");
    assert_eq!(n.provider(p).stake.free, 0);
    n.check_conservation();
    // Insufficient funds.
    let poor = user(9);
    n.register(poor).unwrap();
    n.approve(poor, 50 * ICP);
    let r = n.stake(poor, 20 * ICP);
    assert!(rejected_with(&r, "InsufficientFunds"), "{r:?}");
    // Approved for amount plus fee.
    n.approve_and_stake(p, 20 * ICP);
    assert_eq!(n.provider(p).stake.free, 20 * ICP);
    assert_eq!(n.balance(account(p)), 1_000 * ICP - 20 * ICP - 3 * FEE);
    let e: market_api::registry::Eligibility =
        n.dn.query(n.registry, p, "eligibility", &p).unwrap();
    assert_eq!(e.ineligible, None);
    let e: market_api::registry::Eligibility =
        n.dn.query(n.registry, p, "eligibility", &poor).unwrap();
    assert!(matches!(
        e.ineligible,
        Some(Ineligibility::BelowMinimumStake { .. })
    ));
    let m = n.metrics();
    assert_eq!(metric_value(&m, "registry_providers"), Some(2.0), "{m}");
    assert_eq!(
        metric_value(&m, "registry_staked_e8s"),
        Some((20 * ICP) as f64),
        "{m}"
    );
    n.check_conservation();
}

#[test]
fn unstake_and_withdraw_before_and_after_the_period() {
    let (mut n, p) = Net::with_staked_provider(30 * ICP);
    let entry = n.unstake(p, 10 * ICP).unwrap();
    assert_eq!(
        entry.release_at_ns,
        n.dn.time_nanos() + WEEK.as_nanos() as u64
    );
    assert_eq!(n.withdraw(p), Err(RegistryError::NothingToWithdraw));
    n.dn.advance_time(WEEK - Duration::from_secs(60));
    assert_eq!(n.withdraw(p), Err(RegistryError::NothingToWithdraw));
    n.check_conservation();
    n.dn.advance_time(Duration::from_secs(61));
    let before = n.balance(account(p));
    n.withdraw(p).unwrap();
    assert_eq!(n.balance(account(p)), before + 10 * ICP - FEE);
    let rec = n.provider(p);
    assert_eq!(rec.stake.free, 20 * ICP);
    assert!(rec.stake.unbonding.is_empty());
    n.check_conservation();
}

#[test]
fn bonds_slashes_jail_and_unjail() {
    let (mut n, p) = Net::with_staked_provider(30 * ICP);
    n.bond(matcher(), p, 6 * ICP, "job/1").unwrap();
    n.bond(matcher(), p, 6 * ICP, "job/1").unwrap(); // retry
    assert_eq!(
        n.bond(matcher(), p, 25 * ICP, "job/2"),
        Err(RegistryError::InsufficientStake {
            available: 24 * ICP
        })
    );
    n.unstake(p, 4 * ICP).unwrap();
    // free 20, bonded 6, unbonding 4: takes the 6 bonded, then 2 free.
    let o = n.slash(matcher(), p, 8 * ICP, "job/1/deadline/1").unwrap();
    assert_eq!(
        (o.slashed, o.paid_out, o.jailed),
        (8 * ICP, 8 * ICP - FEE, false)
    );
    let rec = n.provider(p);
    assert_eq!((rec.stake.bonded, rec.stake.free), (0, 18 * ICP));
    assert_eq!(n.balance(buyer()), 8 * ICP - FEE);
    // Idempotent retry: same outcome, nothing more paid.
    assert_eq!(
        n.slash(matcher(), p, 8 * ICP, "job/1/deadline/1").unwrap(),
        o
    );
    assert_eq!(n.balance(buyer()), 8 * ICP - FEE);
    n.check_conservation();
    // Free 9 < minimum 10 after this one: jailed.
    let o2 = n.slash(matcher(), p, 9 * ICP, "job/1/deadline/2").unwrap();
    assert!(o2.jailed);
    assert!(n.provider(p).jailed);
    assert_eq!(
        n.bond(matcher(), p, ICP, "job/3"),
        Err(RegistryError::Jailed)
    );
    // Reaches unbonding stake: 9 free, then 2 of the 4 unbonding.
    let o3 = n.slash(matcher(), p, 11 * ICP, "job/1/deadline/3").unwrap();
    assert_eq!(o3.slashed, 11 * ICP);
    let rec = n.provider(p);
    assert_eq!(rec.stake.free, 0);
    assert_eq!(
        rec.stake.unbonding.iter().map(|u| u.amount).sum::<u128>(),
        2 * ICP
    );
    assert_eq!(rec.slashed_total, 28 * ICP);
    n.check_conservation();
    // Unjail needs the minimum back.
    let r: Result<(), RegistryError> = n.call(p, "unjail", Encode!().unwrap());
    assert!(matches!(r, Err(RegistryError::InsufficientStake { .. })));
    n.approve_and_stake(p, 10 * ICP);
    let r: Result<(), RegistryError> = n.call(p, "unjail", Encode!().unwrap());
    r.unwrap();
    n.bond(matcher(), p, ICP, "job/3").unwrap();
    assert_eq!(n.unbond(matcher(), "job/3"), Ok(ICP));
    assert_eq!(n.unbond(matcher(), "job/3"), Ok(0));
    assert_eq!(
        metric_value(&n.metrics(), "registry_slashes_total"),
        Some(3.0)
    );
    n.check_conservation();
}

#[test]
fn ledger_faults_never_create_or_lose_stake() {
    let mut n = Net::new();
    let p = user(1);
    n.register(p).unwrap();
    n.approve(p, 100 * ICP);
    // Executed but the answer is lost: the retry is a duplicate, credited once.
    n.fault("icrc2_transfer_from", FaultKind::Timeout, 1);
    n.stake(p, 20 * ICP).unwrap();
    assert_eq!(n.provider(p).stake.free, 20 * ICP);
    n.check_conservation();
    // The ledger traps: nothing changes.
    n.fault("icrc2_transfer_from", FaultKind::Trap, 1);
    assert!(n.stake(p, 5 * ICP).is_err());
    assert_eq!(n.provider(p).stake.free, 20 * ICP);
    n.check_conservation();
    // A withdrawal whose transfer traps is restored exactly.
    n.unstake(p, 5 * ICP).unwrap();
    n.dn.advance_time(WEEK);
    let before = n.provider(p).stake;
    n.fault("icrc1_transfer", FaultKind::Trap, 1);
    assert!(n.withdraw(p).is_err());
    assert_eq!(n.provider(p).stake, before);
    n.check_conservation();
    // A slash whose outcome stays unknown is pending (debited), and the
    // matcher's retry with the same key settles it once.
    n.fault("icrc1_transfer", FaultKind::Timeout, 3);
    assert_eq!(
        n.slash(matcher(), p, 4 * ICP, "k"),
        Err(RegistryError::Ledger(LedgerCallError::OutcomeUnknown))
    );
    assert!(n.provider(p).pending_operation.is_some());
    let o = n.slash(matcher(), p, 4 * ICP, "k").unwrap();
    assert_eq!(o.slashed, 4 * ICP);
    assert_eq!(n.balance(buyer()), 4 * ICP - FEE);
    // The withdrawal still works afterwards.
    n.withdraw(p).unwrap();
    n.check_conservation();
}

#[test]
fn every_update_refuses_unauthorized_callers() {
    let (mut n, p) = Net::with_staked_provider(20 * ICP);
    let anon = Principal::anonymous();
    let prof = encode_one(profile(p)).unwrap();
    let unit: Vec<(&str, Vec<u8>)> = vec![
        ("register_provider", prof.clone()),
        ("update_profile", prof),
        ("deregister", Encode!().unwrap()),
        ("unjail", Encode!().unwrap()),
        (
            "update_config",
            encode_one(RegistryConfigUpdate::default()).unwrap(),
        ),
    ];
    let unit = unit.into_iter().chain([
        ("stake", encode_one(ICP).unwrap()),
        ("unstake", encode_one(ICP).unwrap()),
        ("withdraw_unbonded", Encode!().unwrap()),
        ("settle_pending", encode_one(p).unwrap()),
    ]);
    for (m, arg) in unit {
        let r: Result<candid::Reserved, RegistryError> = n.refused(anon, m, arg);
        assert_eq!(r.err(), Some(RegistryError::AnonymousCaller), "{m}");
    }
    let bond = bond_args(p, ICP, "x");
    let slash = slash_args(p, ICP, "x");
    for caller in [anon, p, user(2), admin()] {
        let want_anon = caller == anon;
        let ok = |e: Option<RegistryError>| match e {
            Some(RegistryError::AnonymousCaller) => want_anon,
            Some(RegistryError::Unauthorized { .. }) => !want_anon,
            _ => false,
        };
        let r: Result<(), RegistryError> = n.refused(caller, "bond", encode_one(&bond).unwrap());
        assert!(ok(r.err()), "bond by {caller}");
        let r: Result<Tokens, RegistryError> =
            n.refused(caller, "unbond", encode_one("x".to_string()).unwrap());
        assert!(ok(r.err()), "unbond by {caller}");
        let r: Result<SlashOutcome, RegistryError> =
            n.refused(caller, "slash", encode_one(&slash).unwrap());
        assert!(ok(r.err()), "slash by {caller}");
        let r: Result<(), RegistryError> = n.refused(
            caller,
            "record",
            encode_one(record_args(p, "x", RecordEvent::AuditFailed)).unwrap(),
        );
        assert!(ok(r.err()), "record by {caller}");
    }
    let r: Result<(), RegistryError> = n.call(user(2), "settle_pending", encode_one(p).unwrap());
    assert!(matches!(r, Err(RegistryError::Unauthorized { .. })));
    let r: Result<RegistryConfig, RegistryError> = n.refused(
        p,
        "update_config",
        encode_one(RegistryConfigUpdate::default()).unwrap(),
    );
    assert!(matches!(r, Err(RegistryError::Unauthorized { .. })));
    let r: Result<RegistryConfig, RegistryError> = n.call(
        admin(),
        "update_config",
        encode_one(RegistryConfigUpdate {
            min_stake: Some(5 * ICP),
            ..Default::default()
        })
        .unwrap(),
    );
    assert_eq!(r.unwrap().min_stake, 5 * ICP);
    assert_eq!(n.provider(p).stake.free, 20 * ICP);
    n.check_conservation();
}

#[test]
fn stake_survives_an_upgrade_mid_unbonding() {
    let mut n = Net::new();
    let (p, q) = (user(1), user(2));
    n.register(p).unwrap();
    n.register(q).unwrap();
    n.approve_and_stake(p, 30 * ICP);
    n.approve_and_stake(q, 15 * ICP);
    n.bond(matcher(), q, 5 * ICP, "job/9").unwrap();
    n.unstake(p, 12 * ICP).unwrap();
    n.dn.advance_time(Duration::from_secs(3 * 86_400));
    let before_p = n.provider(p);
    let before_q = n.provider(q);
    let wasm = market_artifacts::canister_wasm("registry");
    let arg = encode_one(Some(RegistryConfigUpdate {
        min_stake: Some(12 * ICP),
        ..Default::default()
    }))
    .unwrap();
    n.dn.upgrade_canister(n.registry, &wasm, arg, admin())
        .expect("upgrade");
    assert_eq!(n.provider(p), before_p);
    assert_eq!(n.provider(q), before_q);
    let config: RegistryConfig = n.dn.query(n.registry, p, "get_config", &()).unwrap();
    assert_eq!(config.min_stake, 12 * ICP);
    // Still slashable while unbonding, still bonded, and idempotency keys kept.
    n.bond(matcher(), q, 5 * ICP, "job/9").unwrap();
    assert_eq!(n.provider(q).stake.bonded, 5 * ICP);
    assert_eq!(n.withdraw(p), Err(RegistryError::NothingToWithdraw));
    n.dn.advance_time(Duration::from_secs(4 * 86_400));
    let before = n.balance(account(p));
    n.withdraw(p).unwrap();
    assert_eq!(n.balance(account(p)), before + 12 * ICP - FEE);
    // Upgrade with no argument keeps everything.
    n.dn.upgrade_canister(
        n.registry,
        &wasm,
        encode_one(None::<RegistryConfigUpdate>).unwrap(),
        admin(),
    )
    .expect("upgrade without argument");
    assert_eq!(n.provider(p).stake.free, 18 * ICP);
    n.check_conservation();
}

#[test]
fn the_matcher_records_work_and_a_stranger_cannot() {
    let (mut n, p) = Net::with_staked_provider(20 * ICP);
    assert_eq!(n.track_record(p), Some(TrackRecord::default()));
    assert_eq!(n.track_record(user(5)), None);
    let done = record_args(
        p,
        "job/1/done",
        RecordEvent::JobCompleted {
            heartbeats_on_time: 4,
        },
    );
    n.record(matcher(), &done).unwrap();
    // The matcher's retry counts nothing.
    n.record(matcher(), &done).unwrap();
    let want = TrackRecord {
        jobs_completed: 1,
        heartbeats_on_time: 4,
        ..TrackRecord::default()
    };
    assert_eq!(n.track_record(p), Some(want.clone()));
    assert_eq!(n.provider(p).record, want);
    // The same key with another event is refused.
    assert_eq!(
        n.record(
            matcher(),
            &record_args(p, "job/1/done", RecordEvent::AuditPassed)
        ),
        Err(RegistryError::KeyConflict {
            key: "job/1/done".into()
        })
    );
    // A stranger, the provider itself or the controller: refused by
    // inspect_message, and by the method when called from a canister.
    let failed = record_args(p, "job/1/audit", RecordEvent::AuditFailed);
    for caller in [user(2), p, admin()] {
        let r: Result<(), RegistryError> =
            n.refused(caller, "record", encode_one(&failed).unwrap());
        assert!(
            matches!(r, Err(RegistryError::Unauthorized { .. })),
            "record by {caller}: {r:?}"
        );
    }
    assert_eq!(n.track_record(p), Some(want.clone()));
    // A slash counts itself.
    n.slash(matcher(), p, 2 * ICP, "job/1/deadline/1").unwrap();
    let rec = n.provider(p).record;
    assert_eq!((rec.slashes, rec.slashed), (1, 2 * ICP));
    assert_eq!(rec.jobs_completed, 1);
    let m = n.metrics();
    assert_eq!(
        metric_value(&m, "registry_jobs_completed_total"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric_value(&m, "registry_audits_failed_total"),
        Some(0.0),
        "{m}"
    );
    // The record and the remembered key survive an upgrade.
    let before = n.provider(p);
    let wasm = market_artifacts::canister_wasm("registry");
    n.dn.upgrade_canister(
        n.registry,
        &wasm,
        encode_one(None::<RegistryConfigUpdate>).unwrap(),
        admin(),
    )
    .expect("upgrade");
    assert_eq!(n.provider(p), before);
    n.record(matcher(), &done).unwrap();
    assert_eq!(n.provider(p).record.jobs_completed, 1);
    n.check_conservation();
}
