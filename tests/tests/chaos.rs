//! Randomized fault, upgrade and adversary testing of the whole marketplace:
//! the real ledger, registry, escrow and matcher .wasm files on the devnet.
//!
//! Each case is a random sequence of [`Action`]s by several buyers and
//! providers: deposits (pull and push), submissions, offers, heartbeats on
//! time, late or never, results, cancellations, withdrawals, unstaking,
//! time jumps, faults injected on the next cross-canister or ledger call
//! (reject, trap, unknown outcome), canister upgrades at random points and
//! adversarial calls (heartbeats and results for jobs the caller doesn't
//! hold, cancelling another buyer's job). Most steps run to quiescence; an
//! interleaving step submits several calls at once, runs their messages
//! one by one, checks the mid-flight invariants with the calls in flight
//! and may upgrade a canister there, dropping the callbacks it awaits.
//! After every step the invariants
//! that hold mid-flight are checked (the ledger creates nothing, no lock
//! pays beyond its total, no deadline is slashed twice); at the end faults
//! stop, providers go silent, time runs out every job, and the full
//! conservation audit of `market-fixture` must pass: every terminal job settled,
//! every retried operation converged, every token accounted for.
//!
//! Attackers play too, from principals of their own (see [`attacker`],
//! [`stranger`], [`ZOMBIE`]), each attack a real ingress call, with every
//! refusal the market owes them asserted: the largest jobs priced to land
//! on the honest provider ([`Action::Oversized`]), loops of the largest
//! job submitted and cancelled ([`Action::SubmitCancel`]), many throwaway
//! principals holding calls in flight around an honest one
//! ([`Action::Flood`]), a provider whose offers outlive its stake or
//! registration ([`Action::Zombie`]), modules pinned with jobs of extreme
//! limits ([`Action::Pin`]), provider calls past their deadline
//! ([`Action::Late`]), calls with a node key rotated out
//! ([`Action::RotateKey`], [`Action::OldKey`]) and a provider that
//! heartbeats claimed fuel but never reports a result ([`Action::Claim`]:
//! slashed, paid nothing, its buyer loses nothing). Two more invariants hold
//! after every step: the [`HONEST`] provider, which does everything on time,
//! is never slashed (faults and attacks notwithstanding), and each
//! canister's stable memory stays under a bound proportional to the live
//! work it holds (see [`World::check_stable_memory`]).
//!
//! Results are audited: the market audits half of all one-off results
//! ([`MIN_AUDIT_PPM`]), and audit runs come to providers as jobs do, so
//! every provider runs them with the code it has. Every job has one truth
//! (see [`truth`]), which the honest provider always reports; a random
//! provider's result is the truth or a lie of its own, never another's
//! (see [`lie_sha`]), and every result taken is recorded. After every step
//! no true result has been rejected (every `ResultRejected` and every
//! `job/<id>/caught/<attempt>` slash is of a lie, for its whole bond), and
//! every verdict is right: an overturned result was a lie and is replaced
//! by the truth, an agreed one was true, an inconclusive one stands. At the
//! end every audit has its verdict, its job settled and its runs ended, an
//! overturned provider forfeited its pay, and the honest provider was paid
//! as an auditor whenever it sided with a verdict
//! ([`World::check_audits_ended`], [`World::check_honest_paid`]). Each case
//! begins with an [`Action::Cheat`]: a [`CHEATER`] that lies on the job,
//! overturned by the honest provider's audit and the [`WITNESS`]'s
//! tie-break; the cheat action also comes at random, with the cheater
//! auditing and lying too.
//!
//! Prices move too: the market prices in XDR as well as in e8s, at the
//! rate of a cycles minting canister stand-in that [`Action::Rate`] moves.
//! Half the random offers and bids are in XDR ([`Action::Submit`] and
//! [`Action::Offer`] with `xdr`), converted at the rate when locked and
//! when matched; [`Action::CyclesJob`] has a canister-like buyer pay in
//! cycles through the cycles ledger stand-in for an XDR job the honest
//! provider runs. Every ledger's books are audited at the end.
//!
//! A failing case is shrunk by proptest and printed with its actions; the
//! seed is saved in `tests/tests/chaos.proptest-regressions` and replayed
//! first on every later run.
//!
//! The market takes a fee of [`MARKET_FEE_PPM`] on providers' pay, which
//! the matcher turns into cycles through the cycles minting canister's
//! top-ups; the audit counts it in every lock. After each case the run's
//! totals are printed, among them the cycles each canister burned (by
//! category, at the devnet's 13-node prices), what the registry, escrow
//! and matcher burned per job settled, and what the market earned against
//! it; [`the_market_fee_covers_what_its_canisters_burn`] checks that the
//! fee pays for them.
//!
//! `CHAOS_CASES` (default 6) and `CHAOS_STEPS` (default 30) size the run;
//! the soak is `CHAOS_CASES=200 CHAOS_STEPS=80 cargo test --release -p
//! market-tests --test chaos -- --nocapture`.

use candid::Principal;
use devnet::{CyclesBurned, Fault, FaultKind, IngressStatus, Reject, RejectCode};
use market_api::escrow::{EscrowError, EscrowEvent, NotifyDepositArgs, WithdrawArgs};
use market_api::matcher::{
    AUDIT_ALWAYS_PPM, Assignment, AuditVerdict, CancelReservationArgs, Commitment,
    DEFAULT_MIN_SLASH, ExtendReservationArgs, GFUEL, HeartbeatAck, Job, JobKind, JobLimits,
    JobResult, JobSpec, JobStatus, JobView, MAX_ARG_LEN, MAX_ARGS, MAX_CHUNK_BYTES,
    MAX_INPUT_BYTES, MAX_JOB_FUEL, MAX_JOB_MEMORY_MIB, MAX_MODULES_PER_UPLOADER, MAX_RESTING_SECS,
    MatcherError, MatcherEvent, ModuleInfo, ModuleSource, Offer, OfferSpec, Reservation,
    ReservationSpec, ReservationStatus, ReservedJobArgs, RunOutcome, SubmitResultArgs, fuel_cost,
    heartbeat_window_opens_ns,
};
use market_api::prices::{CYCLES_PER_XDR, Currency};
use market_api::registry::{Eligibility, ProviderProfile, RegistryError, RegistryEvent};
use market_api::{EventPage, JobId, PageRequest, Tokens};
use market_fixture::{
    ICP, MarketFixture, Settings, account, admin, heartbeat_item, heartbeat_items, principal,
};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const BUYERS: u8 = 3;
/// The ICP/XDR rates [`Action::Rate`] moves between, in XDR per ICP times
/// 10^4 (cycles per e8): 3, 4 and 5 XDR per ICP.
const RATES: [u64; 3] = [30_000, 40_000, 50_000];
/// The rate a case starts at (the fixture's).
const START_RATE: u64 = 40_000;
/// The honest provider's price per billion fuel in cycles on the cycles
/// ledger: its e8s price at the starting rate.
const CYCLES_PRICE: Tokens = HONEST_PRICE * START_RATE as Tokens;
const PROVIDERS: u8 = 3;
const INTERVAL: u64 = 30;
/// The market's grace after a due heartbeat (`Settings::grace_secs` here).
const GRACE_SECS: u64 = 10;
/// The market's fee, in parts per million of what providers are paid: 5 %,
/// what the cycles of a job, of the idle canisters and of the spam they
/// refuse come to at the honest price (see BENCHMARKS.md, "Cycles per
/// operation", and [`World::income_cycles`]).
const MARKET_FEE_PPM: u32 = 50_000;
/// The matcher turns the market's ICP into cycles once it holds this much:
/// low, so that most cases top up (each top-up pays two ledger fees, a
/// tenth of this).
const TOP_UP_THRESHOLD: Tokens = ICP / 500;
/// Funded attackers (buyers with escrow balances of their own).
const ATTACKERS: u8 = 2;
/// The honest provider's price per interval: the cheapest honest offer, so
/// that jobs priced at it can land nowhere else.
const HONEST_PRICE: Tokens = 100_000;
/// The zombie provider's price: below every other offer.
const ZOMBIE_PRICE: Tokens = 50_000;
/// The most time that passes between two turns of the honest provider.
const HONEST_TURN_SECS: u64 = 10;
/// Paid intervals a job in a reservation runs on the honest provider
/// before its result.
const HONEST_RUN_INTERVALS: u32 = 2;
/// The speed every offer here declares, in fuel per second: a tenth of
/// `market_fixture::FUEL_PER_SEC`, so that a job's budget takes more than
/// an interval to run and heartbeats report its fuel as it goes.
const FUEL_PER_SEC: u64 = 100_000_000;
/// The fuel budget of every one-off job here, in billions of fuel: 50 s
/// at the declared speed, so an attempt's derived deadline is 130 s after
/// its bond held (twice that, plus an interval).
const JOB_GFUEL: u32 = 5;
/// Fuel each run on the honest provider takes: 40 s at the declared speed,
/// after which its node reports the result.
const HONEST_RUN_FUEL: u64 = 4 * GFUEL;
/// The claimer's price per billion fuel (and per interval): above every
/// other bid's highest price, so only the patron's jobs go to it.
const CLAIMER_PRICE: Tokens = 1_000_000;
/// Memory per slot of the claimer's offer and of the patron's jobs: more
/// than any other offer has, so those jobs go nowhere else.
const CLAIMER_MEMORY_MIB: u32 = 1_024;
/// ic-stable-structures' memory manager gives each memory id its stable
/// memory in buckets of 128 wasm pages: a canister's size grows in these.
const BUCKET: u64 = 128 * 65_536;
/// What one job record, offer or event is counted for in a canister's live
/// work (each is well under this, encoded and indexed).
const RECORD_BYTES: u64 = 1_024;
const NANOS: u64 = 1_000_000_000;

/// `Settings::default().slash_multiple`: intervals' prices slashed per
/// missed deadline.
const SLASH_MULTIPLE: u32 = 5;
/// `Settings::default().bond_multiple`: a one-off attempt's value bonded.
const BOND_MULTIPLE: u32 = 10;
/// The market's least audit probability here (`Settings::min_audit_ppm`):
/// half of all one-off results are audited.
const MIN_AUDIT_PPM: u32 = 500_000;
/// Memory per slot of the offers that take the [`Action::Cheat`] jobs
/// (and their audit runs), and of those jobs: more than any other offer
/// but the claimer's has, and less than the claimer's jobs ask.
const CHEAT_MEMORY_MIB: u32 = 512;
/// The [`CHEATER`]'s price per billion fuel: the cheapest offer of
/// [`CHEAT_MEMORY_MIB`], above every other bid's highest price (so it
/// takes only the cheat jobs and their audit runs).
const CHEATER_PRICE: Tokens = 600_000;
/// The price of the honest provider's second offer, of
/// [`CHEAT_MEMORY_MIB`]: the next after the cheater's.
const HONEST_CHEAT_PRICE: Tokens = 700_000;
/// The [`WITNESS`]'s price: the dearest offer of [`CHEAT_MEMORY_MIB`].
const WITNESS_PRICE: Tokens = 800_000;
/// The highest price per billion fuel of the cheat jobs: every offer of
/// [`CHEAT_MEMORY_MIB`] meets it, the claimer's does not.
const CHEAT_JOB_PRICE: Tokens = 900_000;

static CASES: AtomicU64 = AtomicU64::new(0);
static STEPS: AtomicU64 = AtomicU64::new(0);
static FAULTS: AtomicU64 = AtomicU64::new(0);
static UPGRADES: AtomicU64 = AtomicU64::new(0);
static CHECKS: AtomicU64 = AtomicU64::new(0);
static JOBS: AtomicU64 = AtomicU64::new(0);
static SLASHES: AtomicU64 = AtomicU64::new(0);
static RESERVATIONS: AtomicU64 = AtomicU64::new(0);
static EXECUTIONS: AtomicU64 = AtomicU64::new(0);
static SLASHED: AtomicU64 = AtomicU64::new(0);
static LOCKS: AtomicU64 = AtomicU64::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);
static INTERLEAVINGS: AtomicU64 = AtomicU64::new(0);
static INTERLEAVED_CALLS: AtomicU64 = AtomicU64::new(0);
static UPGRADES_IN_FLIGHT: AtomicU64 = AtomicU64::new(0);
static REJECTED: AtomicU64 = AtomicU64::new(0);
static ATTACK_CALLS: AtomicU64 = AtomicU64::new(0);
static ATTACK_BYTES: AtomicU64 = AtomicU64::new(0);
static STRANGERS: AtomicU64 = AtomicU64::new(0);
static OVERSIZED: AtomicU64 = AtomicU64::new(0);
static SUBMIT_CANCEL_ROUNDS: AtomicU64 = AtomicU64::new(0);
static FLOODS: AtomicU64 = AtomicU64::new(0);
static ZOMBIE_OFFERS: AtomicU64 = AtomicU64::new(0);
static ZOMBIE_RESULTS_REFUSED: AtomicU64 = AtomicU64::new(0);
static MODULES_PINNED: AtomicU64 = AtomicU64::new(0);
static LATE_CALLS: AtomicU64 = AtomicU64::new(0);
static LATE_BEFORE_TIMER: AtomicU64 = AtomicU64::new(0);
static ROTATIONS: AtomicU64 = AtomicU64::new(0);
static REFUSALS_ASSERTED: AtomicU64 = AtomicU64::new(0);
static HONEST_HEARTBEATS: AtomicU64 = AtomicU64::new(0);
static HONEST_RESULTS: AtomicU64 = AtomicU64::new(0);
static HONEST_RETRIES: AtomicU64 = AtomicU64::new(0);
static HONEST_FINAL: AtomicU64 = AtomicU64::new(0);
static CLAIMS: AtomicU64 = AtomicU64::new(0);
static CLAIMED_HEARTBEATS: AtomicU64 = AtomicU64::new(0);
static CLAIMS_SLASHED: AtomicU64 = AtomicU64::new(0);
static MEMORY_CHECKS: AtomicU64 = AtomicU64::new(0);
/// The highest stable memory size seen, as a share (per mille) of its bound.
static MEMORY_USE_PERMILLE: AtomicU64 = AtomicU64::new(0);
/// The most bytes a case's finished jobs held when submitted: what the
/// matcher would keep if it kept finished jobs whole.
static RETAINED_IF_KEPT: AtomicU64 = AtomicU64::new(0);
/// Late calls that found their job's term already over (no slash due).
static LATE_TERM_ENDED: AtomicU64 = AtomicU64::new(0);
/// Audits started (distinct audited jobs), and their runs (tie-breaks
/// included).
static AUDITS: AtomicU64 = AtomicU64::new(0);
static AUDIT_RUNS: AtomicU64 = AtomicU64::new(0);
/// Audits' verdicts, by kind.
static AGREED: AtomicU64 = AtomicU64::new(0);
static OVERTURNED: AtomicU64 = AtomicU64::new(0);
static INCONCLUSIVE: AtomicU64 = AtomicU64::new(0);
/// Results that lost an audit (`ResultRejected` events).
static RESULTS_REJECTED: AtomicU64 = AtomicU64::new(0);
/// Results taken that were lies, and that were the truth.
static LIES: AtomicU64 = AtomicU64::new(0);
static TRUTHS: AtomicU64 = AtomicU64::new(0);
/// [`Action::Cheat`] jobs submitted.
static CHEATS: AtomicU64 = AtomicU64::new(0);
/// Audit runs no offer took for a day, so they expired (see
/// [`World::settle_audits`]).
static AUDIT_DAY_JUMPS: AtomicU64 = AtomicU64::new(0);
/// Jobs submitted with an XDR price (paid in ICP), and by the cycles buyer.
static XDR_SUBMITS: AtomicU64 = AtomicU64::new(0);
static CYCLES_JOBS: AtomicU64 = AtomicU64::new(0);
/// Moves of the ICP/XDR rate.
static RATE_MOVES: AtomicU64 = AtomicU64::new(0);
/// Cycles each canister burned over every case, by category.
static CYCLES_BURNED: Mutex<BTreeMap<&'static str, CyclesBurned>> = Mutex::new(BTreeMap::new());
/// What the market earned over every case, in cycles (see
/// [`World::income_cycles`]), and what its three canisters burned.
static MARKET_EARNED: Mutex<(u128, u128)> = Mutex::new((0, 0));
/// The matcher's top-ups of the canisters' cycles, over every case.
static TOP_UPS: AtomicU64 = AtomicU64::new(0);
/// Jobs whose lock settled (every job that reached a final status).
static JOBS_SETTLED: AtomicU64 = AtomicU64::new(0);

fn buyer(i: u8) -> Principal {
    principal(10 + i % BUYERS)
}
fn provider(i: u8) -> Principal {
    principal(100 + i % PROVIDERS)
}
fn node(i: u8) -> Principal {
    principal(200 + i % PROVIDERS)
}

/// The honest provider: staked like the others, offering 2 slots at
/// [`HONEST_PRICE`] (the cheapest honest offer) in the randomized cases, and
/// never driven by random actions. It plays by the rules exactly: on every
/// turn (after each step, and at least every [`HONEST_TURN_SECS`] of devnet
/// time, as the world splits every clock jump into such steps) its node
/// reads its paged, light assignments, reads each new job's spec and input
/// as its daemon does (`job_view`, `job_chunk`), acknowledges each new
/// assignment, heartbeats each running one once its heartbeat window opens
/// (half an interval before it is due, so always within the interval and
/// its grace), and reports a result for each job. A one-off job runs at
/// the offer's declared speed for [`HONEST_RUN_FUEL`]: each heartbeat
/// reports the fuel burnt so far, as an honest daemon does (within the
/// speed times the time since the bond held, never shrinking, within the
/// budget read from `job_view`), and the result reports the whole run once
/// it is done, well before the attempt's deadline, committing to the
/// job's [`truth`]; the job becomes final when its challenge window closes
/// (or, if audited, after the verdict). Audit runs are jobs to it. Once an
/// [`Action::Cheat`] came it also offers one slot of [`CHEAT_MEMORY_MIB`] at
/// [`HONEST_CHEAT_PRICE`]. A job in a reservation reports its
/// result once [`HONEST_RUN_INTERVALS`] intervals of it are paid (reserved
/// slots are only heartbeated). A call answered
/// `Busy` or rejected is retried at once, a few times. It never misses a
/// deadline; whatever attackers and faults do, it must never be slashed.
const HONEST: Principal = principal(0x50);
const HONEST_NODE: Principal = principal(0x51);

/// A funded attacker: a buyer with an escrow balance of its own.
fn attacker(i: u8) -> Principal {
    principal(0x60 + i % ATTACKERS)
}

/// A provider whose offers outlive its eligibility: it posts an offer below
/// every other, then unstakes everything or deregisters.
const ZOMBIE: Principal = principal(0x70);
const ZOMBIE_NODE: Principal = principal(0x71);

/// A provider that claims fuel it never delivers: it offers one slot (see
/// [`CLAIMER_PRICE`], [`CLAIMER_MEMORY_MIB`]), and on every turn of the
/// honest provider heartbeats each job it holds on time, claiming all the
/// fuel its declared speed allows, but never reports a result. Each such
/// attempt must be slashed at its deadline and forfeit all it claimed.
const CLAIMER: Principal = principal(0x78);
const CLAIMER_NODE: Principal = principal(0x79);

/// The buyer of the claimer's jobs, funded and otherwise idle (no random
/// action cancels its jobs): it must get every such job's lock back whole.
const PATRON: Principal = principal(0x7A);

/// A buyer that pays in cycles, as a canister holding them would, through
/// the cycles ledger; only [`Action::CyclesJob`] submits for it, and no
/// random action cancels its jobs.
const CYCLES_BUYER: Principal = principal(0x7E);

/// A second provider that plays by the rules exactly, as the [`HONEST`]
/// one does (and is held to the same invariants): it offers one slot of
/// [`CHEAT_MEMORY_MIB`] at [`WITNESS_PRICE`] once the first
/// [`Action::Cheat`] comes, so it runs only cheat jobs and their audits.
/// Where the honest provider audits a cheat job, the witness breaks the
/// tie.
const WITNESS: Principal = principal(0x52);
const WITNESS_NODE: Principal = principal(0x53);

/// A provider that lies about every result: it offers one slot of
/// [`CHEAT_MEMORY_MIB`] at [`CHEATER_PRICE`] (so it runs only cheat jobs
/// and their audit runs), runs each job it holds on time as the honest
/// provider does, and then reports a result whose output no one else
/// reports (see [`lie`]). Every such result that is audited must be
/// overturned (or, as an auditor's, lose the tie-break), and the cheater
/// slashed its bond and paid nothing for it.
const CHEATER: Principal = principal(0x7C);
const CHEATER_NODE: Principal = principal(0x7D);

/// The buyer of the cheat jobs, funded and otherwise idle.
const PLAINTIFF: Principal = principal(0x7B);

/// The `n`-th throwaway principal: never funded, never registered.
fn stranger(n: u64) -> Principal {
    let mut bytes = [0x5A; 29];
    bytes[..8].copy_from_slice(&n.to_be_bytes());
    Principal::from_slice(&bytes)
}

/// Provider `p`'s `generation`-th node key after rotations.
fn rotated_node(p: u8, generation: u8) -> Principal {
    let mut bytes = [0xC0; 29];
    bytes[0] = p % PROVIDERS;
    bytes[1] = generation;
    Principal::from_slice(&bytes)
}

/// Every provider whose assignments the world watches.
fn watched_providers() -> impl Iterator<Item = Principal> {
    (0..PROVIDERS)
        .map(provider)
        .chain([HONEST, ZOMBIE, CLAIMER, WITNESS, CHEATER])
}

/// Bytes a job's spec stores beyond its fixed fields.
fn spec_bytes(spec: &JobSpec) -> u64 {
    let url = match &spec.module {
        ModuleSource::Url { url, .. } => url.len(),
        ModuleSource::Stored { .. } => 32,
    };
    let args: usize = spec.args.iter().map(String::len).sum();
    let env: usize = spec.env.iter().map(|(k, v)| k.len() + v.len()).sum();
    (spec.input.len() + args + env + url) as u64
}

/// Which canister a fault or an upgrade hits.
#[derive(Clone, Copy, Debug)]
enum Target {
    Ledger,
    Registry,
    Escrow,
    Matcher,
}

/// How an injected fault ends the call.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Reject,
    Trap,
    Unknown,
}

/// One step of a case.
#[derive(Clone, Debug)]
enum Action {
    /// A buyer submits a job paying up to `price` per interval (in XDR at
    /// the current rate, with `xdr`).
    Submit {
        buyer: u8,
        price: u8,
        retries: u8,
        xdr: bool,
    },
    /// A provider posts an offer at `price` with `slots` (in XDR at the
    /// current rate, with `xdr`).
    Offer {
        provider: u8,
        price: u8,
        slots: u8,
        xdr: bool,
    },
    /// The ICP/XDR rate moves to one of [`RATES`], and the matcher reads it.
    Rate { rate: u8 },
    /// The [`CYCLES_BUYER`] submits a job priced in XDR and paid in cycles,
    /// which only the honest provider's cycles offer takes (posted first if
    /// it is not yet).
    CyclesJob,
    /// A provider withdraws its first offer.
    WithdrawOffer { provider: u8 },
    /// A provider heartbeats every job it holds.
    Heartbeat { provider: u8 },
    /// A provider submits a result for the `nth` job it holds.
    Result { provider: u8, nth: u8, ok: bool },
    /// A buyer cancels the `nth` of its jobs.
    Cancel { buyer: u8, nth: u8 },
    /// A provider hands back the `nth` job it holds.
    HandBack { provider: u8, nth: u8 },
    /// A buyer (or provider) withdraws part of its escrow balance.
    Withdraw { who: u8, provider: bool },
    /// A buyer pushes tokens to its deposit account and notifies.
    PushDeposit { buyer: u8 },
    /// A provider unstakes some free stake.
    Unstake { provider: u8 },
    /// The clock jumps forward.
    Advance { secs: u16 },
    /// The next call to the target fails.
    Fault { target: Target, kind: Kind },
    /// The target is upgraded to the same module.
    Upgrade { target: Target },
    /// A provider heartbeats or reports a job it doesn't hold; a buyer
    /// cancels someone else's job.
    Adversary { who: u8, nth: u8 },
    /// A buyer reserves `slots` slots for a few intervals at up to `price`;
    /// the next buyer is its delegate.
    Reserve { buyer: u8, slots: u8, price: u8 },
    /// The owner or the delegate of the `nth` reservation runs a job in it;
    /// someone else tries and is refused.
    ReservedJob { delegate: bool, nth: u8 },
    /// The owner extends the `nth` reservation.
    Extend { nth: u8, intervals: u8 },
    /// The owner cancels the `nth` reservation (another buyer tries first).
    CancelReservation { nth: u8 },
    /// (1) An attacker submits the largest job a buyer may (1 MiB of input,
    /// 64 args and 64 env pairs of 1 KiB) priced at [`HONEST_PRICE`], so it
    /// lands on the honest provider, whose listing must stay readable.
    Oversized { attacker: u8 },
    /// (2) An attacker submits the largest job at 1 e8s (no offer takes it)
    /// and cancels it, `rounds` times; both calls must succeed, and the
    /// storage must go with the job (see [`World::check_stable_memory`]).
    SubmitCancel { attacker: u8, rounds: u8 },
    /// (3) `strangers` throwaway principals (or, for [`Flood::Stake`], one
    /// provider) put that many calls in flight at once, each run up to its
    /// first await, around an honest call that must not be answered `Busy`.
    Flood {
        kind: Flood,
        strangers: u8,
        victim: u8,
    },
    /// (4) The zombie provider (re)stakes, posts an offer below every other,
    /// then unstakes everything or deregisters; an attacker's job priced for
    /// it follows while the registry can't be reached for the bond (one
    /// fault), and the zombie reports a forged result for every job it
    /// holds at once: none may be taken before its bond holds.
    Zombie { deregister: bool },
    /// (5) An attacker uploads a module (1 KiB or 1 MiB) and names it in
    /// jobs of extreme limits: `u32::MAX` MiB and more than the most fuel
    /// are refused; 4 GiB (which no offer has) rests, to expire in a day.
    Pin { attacker: u8, big: bool },
    /// (6) A provider (`provider`'s or, if it holds none, the next one's)
    /// calls for a job it holds (whose bond held) just past the job's
    /// deadline, to acknowledge or heartbeat it; the call is refused and the
    /// deadline slashed all the same.
    Late {
        provider: u8,
        nth: u8,
        call: ProviderCall,
    },
    /// (8) The patron submits a job only the [`CLAIMER`] takes (its offer is
    /// posted first if it is not yet); the claimer heartbeats claimed fuel
    /// and never reports a result: it must be slashed and paid nothing, the
    /// patron must lose nothing (see [`World::check_claims`]).
    Claim,
    /// (9) The plaintiff submits a job that is always audited, of
    /// [`CHEAT_MEMORY_MIB`], so that only the [`CHEATER`], the honest
    /// provider's second offer and the [`WITNESS`] take it or audit it (their
    /// offers are posted first if they are not yet). The cheater, cheapest,
    /// runs it and lies; the honest provider and the witness audit it
    /// (one, then the other to break the tie): overturned, the cheater
    /// slashed. With `auditor_lies` the cheater's offer is withdrawn while
    /// the job is matched (to the honest provider) and posted again, so
    /// that the cheater may audit it (the matcher draws the auditor among
    /// the offers that may take the run), lie, and lose the witness's
    /// tie-break.
    Cheat { auditor_lies: bool },
    /// (7) A provider rotates its node key (its profile, then its offer);
    /// the old key then tries every provider call on the provider's jobs.
    RotateKey { provider: u8, nth: u8 },
    /// (7) A provider's rotated-out node key calls for one of its jobs:
    /// refused. A plain call, so it also interleaves.
    OldKey {
        provider: u8,
        nth: u8,
        call: ProviderCall,
    },
    /// Two to four of the plain calls above (see [`World::call_for`]) are
    /// submitted as ingress messages at once, so that their awaits
    /// interleave; the first `delivered` queued messages run one by one;
    /// then, with the rest still in flight, `upgrade` (if any) upgrades its
    /// target to the same module, dropping the callbacks it waits for;
    /// then every message runs and every reply is awaited.
    Interleave {
        calls: Vec<Action>,
        delivered: u8,
        upgrade: Option<Target>,
    },
}

/// What a [`Action::Flood`] fills, and the honest call it surrounds.
#[derive(Clone, Copy, Debug)]
enum Flood {
    /// Strangers' `post_offer`s (each waits on the registry) around a
    /// buyer's `submit_job`.
    Offers,
    /// Strangers' `submit_job`s (unfunded; each waits on the escrow) around
    /// a buyer's `submit_job`.
    Submits,
    /// Strangers' `notify_deposit`s for a buyer around that buyer's
    /// `withdraw`.
    Notify,
    /// A provider's own `stake(1)` calls, a few each 10 s while the clock
    /// runs, so that one is in flight whenever its slash may come.
    Stake,
}

/// A call only a job's holder may make.
#[derive(Clone, Copy, Debug)]
enum ProviderCall {
    Heartbeat,
    HandBack,
    Result,
}

/// The attackers' actions; [`Action::Oversized`] and [`Action::OldKey`]
/// are plain calls and also come in interleavings.
fn attack() -> impl Strategy<Value = Action> {
    let flood = prop_oneof![
        Just(Flood::Offers),
        Just(Flood::Submits),
        Just(Flood::Notify),
        Just(Flood::Stake),
    ];
    prop_oneof![
        (any::<u8>(), 1..4u8)
            .prop_map(|(attacker, rounds)| Action::SubmitCancel { attacker, rounds }),
        (flood, 20..130u8, any::<u8>()).prop_map(|(kind, strangers, victim)| Action::Flood {
            kind,
            strangers,
            victim
        }),
        any::<bool>().prop_map(|deregister| Action::Zombie { deregister }),
        (any::<u8>(), any::<bool>()).prop_map(|(attacker, big)| Action::Pin { attacker, big }),
        (any::<u8>(), any::<u8>(), any_provider_call()).prop_map(|(provider, nth, call)| {
            Action::Late {
                provider,
                nth,
                call,
            }
        }),
        (any::<u8>(), any::<u8>()).prop_map(|(provider, nth)| Action::RotateKey { provider, nth }),
        Just(Action::Claim),
        any::<bool>().prop_map(|auditor_lies| Action::Cheat { auditor_lies }),
    ]
}

fn any_provider_call() -> impl Strategy<Value = ProviderCall> {
    prop_oneof![
        Just(ProviderCall::Heartbeat),
        Just(ProviderCall::HandBack),
        Just(ProviderCall::Result),
    ]
}

/// The actions of [`action`] mixed with reservations and their jobs, and
/// interleavings of calls half of which are the reservations'.
fn action_with_reservations() -> impl Strategy<Value = Action> {
    prop_oneof![
        6 => action(),
        5 => reservation_call(),
        1 => interleave(prop_oneof![call(), reservation_call()]),
    ]
}

/// The reservations' calls.
fn reservation_call() -> impl Strategy<Value = Action> {
    prop_oneof![
        1 => (any::<u8>(), 1..3u8, 1..5u8).prop_map(|(buyer, slots, price)| Action::Reserve { buyer, slots, price }),
        2 => (any::<bool>(), any::<u8>()).prop_map(|(delegate, nth)| Action::ReservedJob { delegate, nth }),
        1 => (any::<u8>(), 1..4u8).prop_map(|(nth, intervals)| Action::Extend { nth, intervals }),
        1 => any::<u8>().prop_map(|nth| Action::CancelReservation { nth }),
    ]
}

fn target() -> impl Strategy<Value = Target> + Clone {
    prop_oneof![
        Just(Target::Ledger),
        Just(Target::Registry),
        Just(Target::Escrow),
        Just(Target::Matcher),
    ]
}

/// The one-off jobs' plain calls: each one ingress message (see
/// [`World::call_for`]).
fn call() -> impl Strategy<Value = Action> {
    prop_oneof![
        4 => (any::<u8>(), 1..5u8, 0..3u8, any::<bool>()).prop_map(|(buyer, price, retries, xdr)| Action::Submit { buyer, price, retries, xdr }),
        2 => (any::<u8>(), 1..5u8, 1..3u8, any::<bool>()).prop_map(|(provider, price, slots, xdr)| Action::Offer { provider, price, slots, xdr }),
        1 => any::<u8>().prop_map(|provider| Action::WithdrawOffer { provider }),
        6 => any::<u8>().prop_map(|provider| Action::Heartbeat { provider }),
        2 => (any::<u8>(), any::<u8>(), any::<bool>()).prop_map(|(provider, nth, ok)| Action::Result { provider, nth, ok }),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(buyer, nth)| Action::Cancel { buyer, nth }),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(provider, nth)| Action::HandBack { provider, nth }),
        1 => (any::<u8>(), any::<bool>()).prop_map(|(who, provider)| Action::Withdraw { who, provider }),
        1 => any::<u8>().prop_map(|buyer| Action::PushDeposit { buyer }),
        1 => any::<u8>().prop_map(|provider| Action::Unstake { provider }),
        1 => any::<u8>().prop_map(|attacker| Action::Oversized { attacker }),
        1 => (any::<u8>(), any::<u8>(), any_provider_call()).prop_map(|(provider, nth, call)| Action::OldKey { provider, nth, call }),
    ]
}

/// An [`Action::Interleave`] of two to four of `calls`, an upgrade in half
/// of them.
fn interleave(calls: impl Strategy<Value = Action>) -> impl Strategy<Value = Action> {
    (
        prop::collection::vec(calls, 2..=4),
        0..10u8,
        prop::option::of(target()),
    )
        .prop_map(|(calls, delivered, upgrade)| Action::Interleave {
            calls,
            delivered,
            upgrade,
        })
}

fn action() -> impl Strategy<Value = Action> {
    let kind = prop_oneof![Just(Kind::Reject), Just(Kind::Trap), Just(Kind::Unknown)];
    prop_oneof![
        20 => call(),
        4 => (1..90u16).prop_map(|secs| Action::Advance { secs }),
        2 => (target(), kind).prop_map(|(target, kind)| Action::Fault { target, kind }),
        1 => target().prop_map(|target| Action::Upgrade { target }),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(who, nth)| Action::Adversary { who, nth }),
        1 => any::<u8>().prop_map(|rate| Action::Rate { rate }),
        1 => Just(Action::CyclesJob),
        2 => interleave(call()),
        5 => attack(),
    ]
}

/// One ingress call an action makes, and what its reply is kept for.
struct Call {
    canister: Principal,
    caller: Principal,
    method: &'static str,
    arg: Vec<u8>,
    reply: Reply,
}

/// What a [`Call`]'s reply tells the world.
#[derive(Clone)]
enum Reply {
    /// Nothing: answers, refusals and rejects alike are part of the game.
    Ignored,
    /// A submitted job's id, for its buyer, and the bytes its spec stores.
    Job(Principal, u64),
    /// A reservation's id, for its owner.
    Reservation(Principal),
    /// An attacker's call the market must refuse: an error, a reject, or
    /// (for a heartbeat) every item refused.
    Refused(&'static str),
    /// A one-off result for (job, attempt): kept unless refused.
    Result(JobId, u32, Report),
}

fn encode<A: candid::CandidType>(arg: &A) -> Vec<u8> {
    candid::encode_one(arg).expect("encodes")
}

/// The method and argument of `call` for assignment `a`, as its holder's
/// node would send them (a result is a forged one, a lie of `holder`'s).
fn provider_call(call: ProviderCall, a: &Assignment, holder: Principal) -> (&'static str, Vec<u8>) {
    match call {
        ProviderCall::Heartbeat => (
            "heartbeat",
            encode(&vec![heartbeat_item(a.job_id, a.attempt, a.fuel_reported)]),
        ),
        ProviderCall::HandBack => (
            "hand_back",
            candid::encode_args((a.job_id, a.attempt)).expect("encodes"),
        ),
        ProviderCall::Result => (
            "submit_result",
            encode(&SubmitResultArgs {
                job_id: a.job_id,
                attempt: a.attempt,
                result: result_of(&forged(a, holder)),
            }),
        ),
    }
}

/// The truth about a one-off job (and each of its audit runs, which have
/// its spec): every honest run of it exits with code 0 after
/// [`HONEST_RUN_FUEL`] (within the budget), its output the job's input.
fn truth(view: &JobView) -> Commitment {
    Commitment {
        outcome: RunOutcome::Exited { code: 0 },
        output_sha256: view.input_sha256,
        fuel_used: HONEST_RUN_FUEL.min(view.job.spec.limits.fuel),
    }
}

/// The output hash of `provider`'s lie about attempt `attempt` of job
/// `job_id`: its own, so that no two liars ever agree (and no lie is the
/// truth: a job's output is its input, whose hash this is not).
fn lie_sha(job_id: JobId, attempt: u32, provider: Principal) -> [u8; 32] {
    let mut sha = [0xBA; 32];
    sha[..8].copy_from_slice(&job_id.to_be_bytes());
    sha[8..12].copy_from_slice(&attempt.to_be_bytes());
    let p = provider.as_slice();
    let n = p.len().min(20);
    sha[12..12 + n].copy_from_slice(&p[..n]);
    sha
}

/// A forged result of `holder`'s for assignment `a`: a lie reporting the
/// fuel reported so far.
fn forged(a: &Assignment, holder: Principal) -> Commitment {
    Commitment {
        outcome: RunOutcome::Exited { code: 0 },
        output_sha256: lie_sha(a.job_id, a.attempt, holder),
        fuel_used: a.fuel_reported,
    }
}

/// A result committing to `c`.
fn result_of(c: &Commitment) -> JobResult {
    JobResult {
        output: b"out".to_vec(),
        output_sha256: c.output_sha256,
        fuel_used: c.fuel_used,
        outcome: c.outcome.clone(),
        engine: "chaos".into(),
    }
}

/// A one-off result sent, as the world knows it: who sent it, what it
/// committed to, the truth about its job, and the bond that answers for
/// it (what losing an audit costs).
#[derive(Clone, Debug)]
struct Report {
    provider: Principal,
    commitment: Commitment,
    truth: Commitment,
    bond: Tokens,
}

impl Report {
    fn lie(&self) -> bool {
        self.commitment != self.truth
    }
}

/// Whether `a`'s heartbeat window is open at `now`: from half an interval
/// before its heartbeat is due (its deadline less the grace).
fn heartbeat_due(a: &Assignment, now: u64) -> bool {
    let due = a.next_deadline_ns.saturating_sub(GRACE_SECS * NANOS);
    let window = heartbeat_window_opens_ns(due, a.interval_secs * NANOS);
    a.next_deadline_ns != 0 && now >= window
}

/// The most cumulative fuel attempt `a` of a job with `budget` may report
/// at `now`: its declared speed times the seconds since its bond held,
/// within the budget.
fn allowed_fuel(a: &Assignment, budget: u64, now: u64) -> u64 {
    let Some(from) = a.counting_from_ns else {
        return 0;
    };
    let allowed =
        u128::from(a.fuel_per_sec) * u128::from(now.saturating_sub(from)) / u128::from(NANOS);
    u64::try_from(allowed).unwrap_or(u64::MAX).min(budget)
}

/// Fails unless `answer` refuses: a reject, an error, or a heartbeat batch
/// whose every item is refused.
fn assert_refused(what: &str, answer: &Result<Vec<u8>, Reject>) {
    REFUSALS_ASSERTED.fetch_add(1, Ordering::Relaxed);
    let Ok(bytes) = answer else {
        return;
    };
    match candid::decode_one::<Result<Vec<HeartbeatAck>, MatcherError>>(bytes) {
        Ok(Ok(acks)) => assert!(
            !acks.is_empty()
                && acks
                    .iter()
                    .all(|a| matches!(a, HeartbeatAck::Refused { .. })),
            "{what} was accepted: {acks:?}"
        ),
        Ok(Err(_)) => {}
        Err(_) => {
            let r: Result<candid::Reserved, MatcherError> =
                candid::decode_one(bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert!(r.is_err(), "{what} was accepted");
        }
    }
}

/// A provider whose node the world plays by a script (see
/// [`World::scripted_turn`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scripted {
    Honest,
    Witness,
    Cheater,
}

impl Scripted {
    fn provider(self) -> Principal {
        match self {
            Scripted::Honest => HONEST,
            Scripted::Witness => WITNESS,
            Scripted::Cheater => CHEATER,
        }
    }

    fn node(self) -> Principal {
        match self {
            Scripted::Honest => HONEST_NODE,
            Scripted::Witness => WITNESS_NODE,
            Scripted::Cheater => CHEATER_NODE,
        }
    }
}

struct World {
    net: MarketFixture,
    jobs: Vec<(Principal, JobId)>,
    /// Reservations with their owners.
    reservations: Vec<(Principal, u64)>,
    /// Every assignment seen, by (job, attempt): its provider and what a
    /// missed deadline of it must cost that provider (the price times the
    /// slash multiple). Assignments are looked up after every step, and a
    /// deadline passes at least an interval after its assignment, so each
    /// is seen before it can be slashed.
    assigned: BTreeMap<(JobId, u32), (Principal, Tokens)>,
    /// Buyers whose submission or reservation was answered with a reject
    /// (its reply lost): they look up their jobs and reservations once the
    /// marketplace is quiet.
    unanswered: BTreeSet<Principal>,
    /// Each provider's current node key, by index.
    nodes: Vec<Principal>,
    /// Node keys rotated out, with their provider's index.
    retired: Vec<(u8, Principal)>,
    /// Key rotations so far (the next key's generation).
    rotations: u8,
    /// Throwaway principals used so far.
    strangers: u64,
    /// The bytes each known job's spec stores.
    spec_bytes: BTreeMap<JobId, u64>,
    /// Modules the attackers stored, with their size and uploader.
    modules: Vec<([u8; 32], u64, Principal)>,
    /// Assignments the honest provider has read (and so started).
    honest_read: BTreeSet<(JobId, u32)>,
    /// Deadlines a provider called past: each must end in a slash.
    late: Vec<(JobId, u32, Principal)>,
    /// Whether the zombie provider ever offered.
    zombie_offered: bool,
    /// Whether the claimer's offer is posted.
    claimer_offered: bool,
    /// The fuel budget of each one-off job seen held, read from `job_view`.
    budgets: BTreeMap<JobId, u64>,
    /// Jobs (and audit runs) whose result the honest provider or the
    /// witness reported (taken), by provider.
    truthful_reported: BTreeSet<(Principal, JobId)>,
    /// Every one-off result taken (or perhaps taken: its answer was a
    /// reject), by (job or audit run, attempt).
    reported: BTreeMap<(JobId, u32), Report>,
    /// Audits whose verdict was checked (see [`World::check_verdict`]).
    verdicts_checked: BTreeSet<JobId>,
    /// The [`Action::Cheat`] jobs.
    cheats: Vec<JobId>,
    /// Whether an [`Action::Cheat`] came: the witness and the cheater
    /// play from then on.
    cheaters_in_play: bool,
    /// Each canister's stable memory size when the case began, and the
    /// most live work it held since (stable memory never shrinks).
    memory: BTreeMap<Principal, (u64, u64)>,
    /// The ICP/XDR rate the stand-in gives, in cycles per e8.
    rate: u64,
    /// Whether the honest provider's cycles-ledger offer is posted.
    cycles_offered: bool,
}

impl World {
    fn new() -> World {
        let net = MarketFixture::deploy(Settings {
            grace_secs: 10,
            min_audit_ppm: MIN_AUDIT_PPM,
            market_fee_ppm: Some(MARKET_FEE_PPM),
            cycles_top_up_threshold: Some(TOP_UP_THRESHOLD),
            pricing: Some(market_fixture::PricingSettings {
                xdr_permyriad_per_icp: START_RATE,
                ..Default::default()
            }),
            ..Settings::default()
        })
        .expect("deploy");
        // Installing the canisters is paid once; what the market's fee
        // must cover is their running.
        net.devnet().reset_cycles_burned();
        let cycles = net.pricing_ids().cycles_ledger;
        net.mint_on(cycles, CYCLES_BUYER, 1_000 * CYCLES_PER_XDR)
            .unwrap();
        net.deposit_on(cycles, CYCLES_BUYER, 100 * CYCLES_PER_XDR)
            .unwrap();
        for b in 0..BUYERS {
            net.mint(buyer(b), 1_000 * ICP).unwrap();
            net.deposit(buyer(b), 100 * ICP).unwrap();
        }
        for p in 0..PROVIDERS {
            net.onboard_provider(provider(p), node(p), 50 * ICP)
                .unwrap();
        }
        net.onboard_provider(HONEST, HONEST_NODE, 50 * ICP).unwrap();
        for a in 0..ATTACKERS {
            net.mint(attacker(a), 1_000 * ICP).unwrap();
            net.deposit(attacker(a), 100 * ICP).unwrap();
        }
        net.onboard_provider(CLAIMER, CLAIMER_NODE, 50 * ICP)
            .unwrap();
        net.mint(PATRON, 100 * ICP).unwrap();
        net.deposit(PATRON, 50 * ICP).unwrap();
        net.onboard_provider(WITNESS, WITNESS_NODE, 50 * ICP)
            .unwrap();
        net.onboard_provider(CHEATER, CHEATER_NODE, 50 * ICP)
            .unwrap();
        net.mint(PLAINTIFF, 100 * ICP).unwrap();
        net.deposit(PLAINTIFF, 50 * ICP).unwrap();
        World {
            net,
            jobs: vec![],
            reservations: vec![],
            assigned: BTreeMap::new(),
            unanswered: BTreeSet::new(),
            nodes: (0..PROVIDERS).map(node).collect(),
            retired: vec![],
            rotations: 0,
            strangers: 0,
            spec_bytes: BTreeMap::new(),
            modules: vec![],
            honest_read: BTreeSet::new(),
            late: vec![],
            zombie_offered: false,
            claimer_offered: false,
            budgets: BTreeMap::new(),
            truthful_reported: BTreeSet::new(),
            reported: BTreeMap::new(),
            verdicts_checked: BTreeSet::new(),
            cheats: vec![],
            cheaters_in_play: false,
            memory: BTreeMap::new(),
            rate: START_RATE,
            cycles_offered: false,
        }
    }

    /// Provider `p`'s current node key.
    fn node_of(&self, p: u8) -> Principal {
        self.nodes[usize::from(p % PROVIDERS)]
    }

    /// A fresh throwaway principal.
    fn next_stranger(&mut self) -> Principal {
        self.strangers += 1;
        STRANGERS.fetch_add(1, Ordering::Relaxed);
        stranger(self.strangers)
    }

    /// The offer the random actions and the honest provider post.
    fn offer_spec(&self, price: Tokens, slots: u32) -> OfferSpec {
        OfferSpec {
            currency: None,
            slots,
            memory_per_slot_mib: 256,
            max_fuel_per_interval: 1_000_000,
            price_per_gfuel: price,
            fuel_per_sec: FUEL_PER_SEC,
            price_per_interval: price,
            ledger: self.net.ids.ledger,
            min_interval_secs: 1,
            max_interval_secs: 3_600,
            tags: vec![],
            audits: None,
        }
    }

    /// The largest job a buyer may submit (about 1.2 MiB: 1 MiB of input,
    /// 64 args and 64 env pairs of 1 KiB), at `price` per billion fuel.
    fn largest_job(&self, price: Tokens, fill: u8) -> JobSpec {
        let text = |c: char| c.to_string().repeat(MAX_ARG_LEN);
        JobSpec {
            input: vec![fill; MAX_INPUT_BYTES],
            args: (0..MAX_ARGS).map(|_| text('a')).collect(),
            env: (0..MAX_ARGS)
                .map(|i| (format!("{i:0>width$}", width = MAX_ARG_LEN), text('v')))
                .collect(),
            ..self.spec(price, 0)
        }
    }

    /// An offer at `price` e8s, in XDR at the current rate.
    fn xdr_offer_spec(&self, price: Tokens, slots: u32) -> OfferSpec {
        OfferSpec {
            currency: Some(Currency::Xdr),
            ..self.offer_spec(price * Tokens::from(self.rate), slots)
        }
    }

    /// A job of [`JOB_GFUEL`] billion fuel at up to `price` e8s per
    /// billion, priced in XDR at the current rate.
    fn xdr_spec(&self, price: Tokens, retries: u32) -> JobSpec {
        JobSpec {
            currency: Some(Currency::Xdr),
            ..self.spec(price * Tokens::from(self.rate), retries)
        }
    }

    /// A job of [`JOB_GFUEL`] billion fuel at up to `price` per billion.
    fn spec(&self, price: Tokens, retries: u32) -> JobSpec {
        JobSpec {
            max_retries: retries,
            ..self.net.url_job(INTERVAL, JOB_GFUEL, price)
        }
    }

    /// The fuel budget of job `id`, as its provider reads it (`job_view`).
    fn budget(&mut self, id: JobId) -> u64 {
        if let Some(b) = self.budgets.get(&id) {
            return *b;
        }
        let net = &self.net;
        let view: Option<JobView> = net.query(net.ids.matcher, "job_view", &id).unwrap();
        let budget = view
            .unwrap_or_else(|| panic!("job {id} is held but has no view"))
            .job
            .spec
            .limits
            .fuel;
        self.budgets.insert(id, budget);
        budget
    }

    /// `provider`'s result for one-off assignment `a` (a job or an audit
    /// run), committing to what `make` makes of the truth (see [`truth`],
    /// read from `job_view` while the job is held). Its bond is the
    /// attempt's value (its budget at its price) times the bond multiple,
    /// or the smallest slash if more: an audited job's bond is also at
    /// least its value over the audit probability, but here that is at
    /// most twice the value.
    fn report(
        &self,
        a: &Assignment,
        provider: Principal,
        make: impl FnOnce(&Commitment) -> Commitment,
    ) -> Report {
        let net = &self.net;
        let view: Option<JobView> = net.query(net.ids.matcher, "job_view", &a.job_id).unwrap();
        let view = view.unwrap_or_else(|| panic!("job {} is held but has no view", a.job_id));
        let truth = truth(&view);
        let value = fuel_cost(view.job.spec.limits.fuel, a.price).expect("a job's value fits");
        Report {
            provider,
            commitment: make(&truth),
            truth,
            bond: (value * Tokens::from(BOND_MULTIPLE)).max(DEFAULT_MIN_SLASH),
        }
    }

    fn canister(&self, t: Target) -> Principal {
        let ids = self.net.ids;
        match t {
            Target::Ledger => ids.ledger,
            Target::Registry => ids.registry,
            Target::Escrow => ids.escrow,
            Target::Matcher => ids.matcher,
        }
    }

    fn assignments(&self, p: u8) -> Vec<Assignment> {
        self.net.assignments(provider(p)).unwrap()
    }

    /// Counts an attacker's call of `bytes`.
    fn attack_call(bytes: usize) {
        ATTACK_CALLS.fetch_add(1, Ordering::Relaxed);
        ATTACK_BYTES.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Calls a matcher update; a reject (an injected fault on ingress does
    /// not exist, but a trap would) is tolerated and returned as `None`.
    fn matcher<A: candid::CandidType, T: candid::CandidType + serde::de::DeserializeOwned>(
        &self,
        caller: Principal,
        method: &str,
        arg: &A,
    ) -> Option<T> {
        self.net
            .update(self.net.ids.matcher, caller, method, arg)
            .ok()
    }

    fn apply(&mut self, a: &Action) {
        match *a {
            Action::Submit { .. }
            | Action::Offer { .. }
            | Action::WithdrawOffer { .. }
            | Action::Heartbeat { .. }
            | Action::Result { .. }
            | Action::HandBack { .. }
            | Action::Cancel { .. }
            | Action::Withdraw { .. }
            | Action::PushDeposit { .. }
            | Action::Unstake { .. }
            | Action::Reserve { .. }
            | Action::Extend { .. }
            | Action::Oversized { .. }
            | Action::OldKey { .. } => self.call(a),
            Action::Advance { secs } => self.advance(u64::from(secs)),
            Action::SubmitCancel { attacker, rounds } => self.submit_cancel(attacker, rounds),
            Action::Flood {
                kind,
                strangers,
                victim,
            } => self.flood(kind, strangers, victim),
            Action::Zombie { deregister } => self.zombie(deregister),
            Action::Pin { attacker, big } => self.pin(attacker, big),
            Action::Late {
                provider,
                nth,
                call,
            } => self.late(provider, nth, call),
            Action::RotateKey { provider, nth } => self.rotate_key(provider, nth),
            Action::Claim => self.claim(),
            Action::Rate { rate } => self.move_rate(RATES[usize::from(rate) % RATES.len()]),
            Action::CyclesJob => self.cycles_job(),
            Action::Cheat { auditor_lies } => self.cheat(auditor_lies),
            Action::Fault { target, kind } => {
                let kind = match kind {
                    Kind::Reject => FaultKind::Reject {
                        code: RejectCode::SysTransient,
                        message: "chaos".into(),
                    },
                    Kind::Trap => FaultKind::Trap,
                    Kind::Unknown => FaultKind::Timeout,
                };
                self.net
                    .devnet()
                    .inject_fault(Fault::new(self.canister(target), kind, 1));
                FAULTS.fetch_add(1, Ordering::Relaxed);
            }
            Action::Upgrade { target } => self.upgrade(target),
            Action::Adversary { who, nth } => {
                let net = &self.net;
                let Some(&(owner, id)) = self.jobs.get(usize::from(nth) % self.jobs.len().max(1))
                else {
                    return;
                };
                let job: Option<Job> = net.query(net.ids.matcher, "get_job", &id).unwrap();
                let holder = job.as_ref().and_then(|j| j.provider);
                let stranger = provider(who);
                if Some(stranger) != holder {
                    let items = vec![heartbeat_item(id, 1, 0)];
                    let acks: Option<Result<Vec<HeartbeatAck>, MatcherError>> =
                        self.matcher(self.node_of(who), "heartbeat", &items);
                    if let Some(Ok(acks)) = acks {
                        assert!(
                            acks.iter()
                                .all(|a| matches!(a, HeartbeatAck::Refused { .. })),
                            "a stranger's heartbeat for job {id} was accepted"
                        );
                    }
                }
                let thief = buyer(who);
                if thief != owner {
                    let r: Option<Result<(), MatcherError>> =
                        self.matcher(thief, "cancel_job", &id);
                    assert!(
                        !matches!(r, Some(Ok(()))),
                        "buyer {thief} cancelled job {id} of {owner}"
                    );
                }
            }
            Action::ReservedJob { nth, .. } => {
                self.call(a);
                let Some(&(owner, rid)) = self.nth_reservation(nth) else {
                    return;
                };
                let owner_index = (0..BUYERS).find(|b| buyer(*b) == owner).unwrap_or(0);
                let outsider = buyer(owner_index.wrapping_add(2));
                if outsider != owner && outsider != buyer(owner_index.wrapping_add(1)) {
                    let args = ReservedJobArgs {
                        reservation: rid,
                        spec: self.spec(0, 1),
                    };
                    let r: Option<Result<JobId, MatcherError>> =
                        self.matcher(outsider, "submit_reserved_job", &args);
                    assert!(
                        !matches!(r, Some(Ok(_))),
                        "{outsider} ran a job in reservation {rid} of {owner}"
                    );
                }
            }
            Action::CancelReservation { nth } => {
                if let Some(&(owner, rid)) = self.nth_reservation(nth) {
                    let args = CancelReservationArgs { reservation: rid };
                    for thief in (0..BUYERS).map(buyer).filter(|b| *b != owner) {
                        let r: Option<Result<(), MatcherError>> =
                            self.matcher(thief, "cancel_reservation", &args);
                        assert!(
                            !matches!(r, Some(Ok(()))),
                            "{thief} cancelled reservation {rid} of {owner}"
                        );
                    }
                }
                self.call(a);
            }
            Action::Interleave {
                ref calls,
                delivered,
                upgrade,
            } => self.interleave(calls, delivered, upgrade),
        }
    }

    /// Makes an action's call (see [`World::call_for`]) and awaits it.
    fn call(&mut self, a: &Action) {
        if let Some(c) = self.call_for(a) {
            self.send(c);
        }
    }

    /// Makes a call, awaits it and keeps what its answer tells (see
    /// [`World::take_reply`]).
    fn send(&mut self, c: Call) {
        let answer = self
            .net
            .devnet()
            .update_call(c.canister, c.caller, c.method, c.arg);
        self.take_reply(c.reply, answer);
    }

    /// The one ingress call a plain action makes, or `None` if it has
    /// nothing to do (no job held to heartbeat, say) or is not a plain
    /// call. A push deposit's ledger transfer is made here, to completion;
    /// its call is the `notify_deposit`.
    fn call_for(&self, a: &Action) -> Option<Call> {
        let net = &self.net;
        let ids = net.ids;
        let to = |canister, caller, method, arg| Call {
            canister,
            caller,
            method,
            arg,
            reply: Reply::Ignored,
        };
        let call = match *a {
            Action::Submit {
                buyer: b,
                price,
                retries,
                xdr,
            } => {
                let (price, retries) = (Tokens::from(price) * 100_000, u32::from(retries));
                let spec = if xdr {
                    XDR_SUBMITS.fetch_add(1, Ordering::Relaxed);
                    self.xdr_spec(price, retries)
                } else {
                    self.spec(price, retries)
                };
                Call {
                    reply: Reply::Job(buyer(b), spec_bytes(&spec)),
                    ..to(ids.matcher, buyer(b), "submit_job", encode(&spec))
                }
            }
            Action::Offer {
                provider: p,
                price,
                slots,
                xdr,
            } => {
                let (price, slots) = (Tokens::from(price) * 100_000, u32::from(slots));
                let spec = if xdr {
                    self.xdr_offer_spec(price, slots)
                } else {
                    self.offer_spec(price, slots)
                };
                to(ids.matcher, provider(p), "post_offer", encode(&spec))
            }
            Action::Oversized { attacker: a } => {
                let spec = self.largest_job(HONEST_PRICE, a);
                let arg = encode(&spec);
                Self::attack_call(arg.len());
                OVERSIZED.fetch_add(1, Ordering::Relaxed);
                Call {
                    reply: Reply::Job(attacker(a), spec_bytes(&spec)),
                    ..to(ids.matcher, attacker(a), "submit_job", arg)
                }
            }
            Action::OldKey {
                provider: p,
                nth,
                call,
            } => {
                let &(_, old) = self
                    .retired
                    .iter()
                    .rev()
                    .find(|(i, _)| *i == p % PROVIDERS)?;
                let held = self.assignments(p);
                let a = held.get(usize::from(nth) % held.len().max(1))?;
                let (method, arg) = provider_call(call, a, provider(p));
                Self::attack_call(arg.len());
                Call {
                    reply: Reply::Refused("a rotated-out node key's call"),
                    ..to(ids.matcher, old, method, arg)
                }
            }
            Action::WithdrawOffer { provider: p } => {
                let offers: Vec<market_api::matcher::Offer> =
                    net.query(ids.matcher, "offers_of", &provider(p)).unwrap();
                let o = offers.first()?;
                to(ids.matcher, provider(p), "withdraw_offer", encode(&o.id))
            }
            Action::Heartbeat { provider: p } => {
                // Half a billion fuel more than before: refused as too
                // fast early in an attempt, taken (into pending pay) later.
                let items = heartbeat_items(&self.assignments(p), GFUEL / 2);
                if items.is_empty() {
                    return None;
                }
                to(ids.matcher, self.node_of(p), "heartbeat", encode(&items))
            }
            Action::Result {
                provider: p,
                nth,
                ok,
            } => {
                let held = self.assignments(p);
                let a = held.get(usize::from(nth) % held.len().max(1))?;
                let more_fuel = (a.fuel_reported + GFUEL).min(JOB_GFUEL as u64 * GFUEL);
                if a.kind != JobKind::OneOff {
                    // Nothing runs in a slot: its result commits to nothing.
                    let args = SubmitResultArgs {
                        job_id: a.job_id,
                        attempt: a.attempt,
                        result: result_of(&Commitment {
                            outcome: RunOutcome::Exited {
                                code: if ok { 0 } else { 1 },
                            },
                            output_sha256: [0; 32],
                            fuel_used: more_fuel,
                        }),
                    };
                    return Some(to(
                        ids.matcher,
                        self.node_of(p),
                        "submit_result",
                        encode(&args),
                    ));
                }
                // The truth, unless the heartbeats claimed more fuel than
                // it (a result can't report less: it inflates the fuel and
                // lies); or, not `ok`, a failed run of its own.
                let lie = lie_sha(a.job_id, a.attempt, provider(p));
                let report = self.report(a, provider(p), |truth| match ok {
                    true if a.fuel_reported <= truth.fuel_used => truth.clone(),
                    true => Commitment {
                        output_sha256: lie,
                        fuel_used: a.fuel_reported,
                        ..truth.clone()
                    },
                    false => Commitment {
                        outcome: RunOutcome::Exited { code: 1 },
                        output_sha256: lie,
                        fuel_used: more_fuel,
                    },
                });
                let args = SubmitResultArgs {
                    job_id: a.job_id,
                    attempt: a.attempt,
                    result: result_of(&report.commitment),
                };
                Call {
                    reply: Reply::Result(a.job_id, a.attempt, report),
                    ..to(ids.matcher, self.node_of(p), "submit_result", encode(&args))
                }
            }
            Action::HandBack { provider: p, nth } => {
                let held = self.assignments(p);
                let a = held.get(usize::from(nth) % held.len().max(1))?;
                let arg = candid::encode_args((a.job_id, a.attempt)).expect("encodes");
                to(ids.matcher, self.node_of(p), "hand_back", arg)
            }
            Action::Cancel { buyer: b, nth } => {
                let mine: Vec<JobId> = self
                    .jobs
                    .iter()
                    .filter(|(o, _)| *o == buyer(b))
                    .map(|(_, id)| *id)
                    .collect();
                let id = mine.get(usize::from(nth) % mine.len().max(1))?;
                to(ids.matcher, buyer(b), "cancel_job", encode(id))
            }
            Action::Withdraw { who, provider: p } => {
                let owner = if p { provider(who) } else { buyer(who) };
                let args = WithdrawArgs {
                    ledger: ids.ledger,
                    amount: ICP / 10,
                    to: account(owner),
                };
                to(ids.escrow, owner, "withdraw", encode(&args))
            }
            Action::PushDeposit { buyer: b } => {
                let deposit: market_api::Account =
                    net.query(ids.escrow, "deposit_account", &buyer(b)).unwrap();
                net.transfer(buyer(b), deposit, ICP).ok()?;
                let args = NotifyDepositArgs {
                    ledger: ids.ledger,
                    beneficiary: buyer(b),
                };
                to(ids.escrow, buyer(b), "notify_deposit", encode(&args))
            }
            Action::Unstake { provider: p } => {
                to(ids.registry, provider(p), "unstake", encode(&(5 * ICP)))
            }
            Action::Reserve {
                buyer: b,
                slots,
                price,
            } => {
                let spec = ReservationSpec {
                    currency: None,
                    slots: u32::from(slots),
                    memory_mib: 64,
                    fuel_per_interval: 1_000,
                    interval_secs: INTERVAL,
                    intervals: 4,
                    max_price_per_interval: Tokens::from(price) * 100_000,
                    ledger: ids.ledger,
                    min_provider_stake: 0,
                    max_rematches: 1,
                    delegates: vec![buyer(b.wrapping_add(1))],
                    service: None,
                };
                Call {
                    reply: Reply::Reservation(buyer(b)),
                    ..to(ids.matcher, buyer(b), "reserve", encode(&spec))
                }
            }
            Action::ReservedJob { delegate, nth } => {
                let &(owner, rid) = self.nth_reservation(nth)?;
                let owner_index = (0..BUYERS).find(|b| buyer(*b) == owner).unwrap_or(0);
                let who = if delegate {
                    buyer(owner_index.wrapping_add(1))
                } else {
                    owner
                };
                let args = ReservedJobArgs {
                    reservation: rid,
                    spec: self.spec(0, 1),
                };
                to(ids.matcher, who, "submit_reserved_job", encode(&args))
            }
            Action::Extend { nth, intervals } => {
                let &(owner, rid) = self.nth_reservation(nth)?;
                let args = ExtendReservationArgs {
                    reservation: rid,
                    intervals: u32::from(intervals),
                };
                to(ids.matcher, owner, "extend_reservation", encode(&args))
            }
            Action::CancelReservation { nth } => {
                let &(owner, rid) = self.nth_reservation(nth)?;
                let args = CancelReservationArgs { reservation: rid };
                to(ids.matcher, owner, "cancel_reservation", encode(&args))
            }
            Action::Advance { .. }
            | Action::Fault { .. }
            | Action::Upgrade { .. }
            | Action::Adversary { .. }
            | Action::Interleave { .. }
            | Action::Rate { .. }
            | Action::CyclesJob
            | Action::SubmitCancel { .. }
            | Action::Flood { .. }
            | Action::Zombie { .. }
            | Action::Pin { .. }
            | Action::Late { .. }
            | Action::Claim
            | Action::Cheat { .. }
            | Action::RotateKey { .. } => return None,
        };
        Some(call)
    }

    /// Keeps what a call's answer tells: a new job's or reservation's id.
    /// A submission whose answer is lost (a reject: the matcher was
    /// upgraded while it awaited the escrow) may still have made its job;
    /// its buyer looks its jobs up once the marketplace is quiet (see
    /// [`World::find_unanswered`]).
    fn take_reply(&mut self, reply: Reply, answer: Result<Vec<u8>, Reject>) {
        let (owner, id) = match reply {
            Reply::Ignored => return,
            Reply::Result(job_id, attempt, report) => {
                // Taken, or (a reject) perhaps taken: kept either way.
                let taken = answer.as_ref().map_or(true, |bytes| {
                    matches!(
                        candid::decode_one::<Result<(), MatcherError>>(bytes),
                        Ok(Ok(()))
                    )
                });
                if taken {
                    self.reported.insert((job_id, attempt), report);
                }
                return;
            }
            Reply::Refused(what) => {
                assert_refused(what, &answer);
                return;
            }
            Reply::Job(owner, _) | Reply::Reservation(owner) => match answer {
                Ok(bytes) => match candid::decode_one::<Result<u64, MatcherError>>(&bytes) {
                    Ok(Ok(id)) => (owner, id),
                    _ => return,
                },
                Err(_) => {
                    self.unanswered.insert(owner);
                    return;
                }
            },
        };
        if let Reply::Job(_, bytes) = reply {
            self.spec_bytes.insert(id, bytes);
            self.jobs.push((owner, id));
            JOBS.fetch_add(1, Ordering::Relaxed);
        } else {
            self.reservations.push((owner, id));
            RESERVATIONS.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Upgrades a canister to the same module, whatever it has in flight.
    fn upgrade(&self, target: Target) {
        let name = match target {
            Target::Ledger => "ledger",
            Target::Registry => "registry",
            Target::Escrow => "escrow",
            Target::Matcher => "matcher",
        };
        let wasm = market_fixture::canister_wasm(name).unwrap();
        self.net
            .devnet()
            .upgrade_canister(
                self.canister(target),
                &wasm,
                candid::encode_args(()).unwrap(),
                admin(),
            )
            .unwrap_or_else(|e| panic!("upgrading {name}: {e}"));
        UPGRADES.fetch_add(1, Ordering::Relaxed);
    }

    /// [`Action::Interleave`]: the calls go in as ingress messages at once,
    /// `delivered` messages run one by one, the mid-flight checks run with
    /// the calls in flight, the upgrade (if any) happens, and then every
    /// message runs and every answer is awaited.
    fn interleave(&mut self, calls: &[Action], delivered: u8, upgrade: Option<Target>) {
        let calls: Vec<Call> = calls.iter().filter_map(|a| self.call_for(a)).collect();
        let mut sent = vec![];
        let mut refused = vec![];
        {
            let mut dn = self.net.devnet();
            for c in calls {
                match dn.submit_call(c.canister, c.caller, c.method, c.arg) {
                    Ok(id) => sent.push((c.reply, id)),
                    Err(e) => refused.push((c.reply, Err(e))),
                }
            }
            for _ in 0..delivered {
                if !dn.step() {
                    break;
                }
            }
        }
        INTERLEAVINGS.fetch_add(1, Ordering::Relaxed);
        INTERLEAVED_CALLS.fetch_add(sent.len() as u64, Ordering::Relaxed);
        // What holds at every moment holds between any two messages.
        self.observe_assignments();
        self.check_mid_flight();
        if let Some(target) = upgrade {
            let in_flight = {
                let dn = self.net.devnet();
                sent.iter()
                    .any(|(_, id)| dn.ingress_status(*id) == IngressStatus::Pending)
            };
            self.upgrade(target);
            if in_flight {
                UPGRADES_IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
            }
        }
        for (reply, id) in sent {
            let answer = self.net.devnet().await_call(id);
            if answer.is_err() {
                REJECTED.fetch_add(1, Ordering::Relaxed);
            }
            self.take_reply(reply, answer);
        }
        for (reply, answer) in refused {
            self.take_reply(reply, answer);
        }
    }

    /// Adds the one-off jobs and reservations that buyers whose submission
    /// went unanswered have, as such a buyer would look them up. Jobs are
    /// read one a page: a default page of `list_jobs` holding two of the
    /// largest jobs passes the 2 MiB reply limit (see
    /// `a_buyer_with_large_jobs_can_still_list_them` in `attacks.rs`).
    fn find_unanswered(&mut self) {
        let net = &self.net;
        for owner in std::mem::take(&mut self.unanswered) {
            let mut start = None;
            loop {
                let page = PageRequest {
                    start,
                    limit: Some(1),
                };
                let (jobs,): (Vec<Job>,) = net
                    .query_args(net.ids.matcher, "list_jobs", (owner, page))
                    .unwrap();
                let Some(job) = jobs.first() else {
                    break;
                };
                start = Some(job.id + 1);
                if job.kind == JobKind::OneOff && !self.jobs.contains(&(owner, job.id)) {
                    self.jobs.push((owner, job.id));
                    JOBS.fetch_add(1, Ordering::Relaxed);
                }
            }
            for r in net.reservations_of(owner).unwrap() {
                if !self.reservations.contains(&(owner, r.id)) {
                    self.reservations.push((owner, r.id));
                    RESERVATIONS.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    fn nth_reservation(&self, nth: u8) -> Option<&(Principal, u64)> {
        self.reservations
            .get(usize::from(nth) % self.reservations.len().max(1))
    }

    /// Moves the clock `secs` seconds, at most [`HONEST_TURN_SECS`] at a
    /// time, running what falls due after each move, then the honest
    /// provider's turn.
    fn advance(&mut self, secs: u64) {
        let mut left = secs;
        while left > 0 {
            let by = left.min(HONEST_TURN_SECS);
            self.net.advance(Duration::from_secs(by));
            self.observe_assignments();
            self.provider_turns();
            left -= by;
        }
    }

    /// One turn of the [`HONEST`] provider's node (see there).
    fn honest_turn(&mut self) {
        self.scripted_turn(Scripted::Honest);
    }

    /// One turn of a scripted provider's node: the [`HONEST`] provider's
    /// (see there), and the same for the [`WITNESS`] and the [`CHEATER`],
    /// but that the cheater reports a lie of its own for each one-off job.
    fn scripted_turn(&mut self, who: Scripted) {
        let held = self
            .net
            .assignments(who.provider())
            .unwrap_or_else(|e| panic!("{who:?} could not read its jobs: {e}"));
        let now = self.net.time_ns();
        let mut items = vec![];
        let mut done = vec![];
        for a in &held {
            let runs = !matches!(a.kind, JobKind::ReservedSlot { .. });
            if runs && self.honest_read.insert((a.job_id, a.attempt)) {
                let spec = self
                    .net
                    .job_to_run(a.job_id)
                    .unwrap_or_else(|e| panic!("{who:?} could not read job {}: {e}", a.job_id));
                assert_eq!(spec.input.len() as u64, a.input_bytes, "job {}", a.job_id);
                self.budgets.insert(a.job_id, spec.limits.fuel);
            }
            // A one-off job's run: the fuel burnt so far at the declared
            // speed, up to the whole run.
            let one_off = a.kind == JobKind::OneOff;
            let (burnt, run) = if one_off {
                let budget = self.budget(a.job_id);
                let run = HONEST_RUN_FUEL.min(budget);
                (allowed_fuel(a, budget, now).min(run), run)
            } else {
                (0, 0)
            };
            if !a.acknowledged || heartbeat_due(a, now) {
                items.push(heartbeat_item(
                    a.job_id,
                    a.attempt,
                    burnt.max(a.fuel_reported),
                ));
            }
            let finished = if one_off {
                burnt == run
            } else {
                a.intervals_paid >= HONEST_RUN_INTERVALS
            };
            if a.acknowledged && runs && finished {
                done.push((a.clone(), run.max(a.fuel_reported)));
            }
        }
        if !items.is_empty() {
            if who == Scripted::Honest {
                HONEST_HEARTBEATS.fetch_add(items.len() as u64, Ordering::Relaxed);
            }
            self.scripted_call(who, "heartbeat", encode(&items));
        }
        // Jobs that have run: report them.
        for (a, fuel) in done {
            let (job_id, attempt) = (a.job_id, a.attempt);
            let report = (a.kind == JobKind::OneOff).then(|| {
                let report = self.report(&a, who.provider(), |truth| match who {
                    Scripted::Cheater => Commitment {
                        output_sha256: lie_sha(job_id, attempt, CHEATER),
                        ..truth.clone()
                    },
                    Scripted::Honest | Scripted::Witness => truth.clone(),
                });
                assert_eq!(
                    report.truth.fuel_used, fuel,
                    "{who:?} ran job {job_id} as long as it takes"
                );
                report
            });
            // A job in a reservation's slot commits to nothing.
            let commitment = report.as_ref().map_or(
                Commitment {
                    outcome: RunOutcome::Exited { code: 0 },
                    output_sha256: [0; 32],
                    fuel_used: fuel,
                },
                |r| r.commitment.clone(),
            );
            let args = SubmitResultArgs {
                job_id,
                attempt,
                result: result_of(&commitment),
            };
            if self.scripted_call(who, "submit_result", encode(&args)) {
                if who == Scripted::Honest {
                    HONEST_RESULTS.fetch_add(1, Ordering::Relaxed);
                }
                if who != Scripted::Cheater {
                    self.truthful_reported.insert((who.provider(), job_id));
                }
                if let Some(report) = report {
                    self.reported.insert((job_id, attempt), report);
                }
            }
        }
    }

    /// One turn of the [`CLAIMER`]'s node: a heartbeat for each job it
    /// holds whose heartbeat is due, claiming all the fuel the declared
    /// speed allows by now. It never reports a result.
    fn claimer_turn(&mut self) {
        if !self.claimer_offered {
            return;
        }
        let held = self.net.assignments(CLAIMER).unwrap();
        let now = self.net.time_ns();
        let mut items = vec![];
        for a in held
            .iter()
            .filter(|a| !a.acknowledged || heartbeat_due(a, now))
        {
            let budget = self.budget(a.job_id);
            items.push(heartbeat_item(
                a.job_id,
                a.attempt,
                allowed_fuel(a, budget, now).max(a.fuel_reported),
            ));
        }
        if !items.is_empty() {
            Self::attack_call(items.len() * 16);
            CLAIMED_HEARTBEATS.fetch_add(items.len() as u64, Ordering::Relaxed);
            let _ = self.net.devnet().update_call(
                self.net.ids.matcher,
                CLAIMER_NODE,
                "heartbeat",
                encode(&items),
            );
        }
    }

    /// The turns of the scripted providers and of the claimer.
    fn provider_turns(&mut self) {
        self.honest_turn();
        if self.cheaters_in_play {
            self.scripted_turn(Scripted::Witness);
            self.scripted_turn(Scripted::Cheater);
        }
        self.claimer_turn();
    }

    /// [`Action::Cheat`].
    fn cheat(&mut self, auditor_lies: bool) {
        self.cheaters_in_play = true;
        let offers = |w: &World, p: Principal| -> Vec<Offer> {
            let net = &w.net;
            let offers: Vec<Offer> = net.query(net.ids.matcher, "offers_of", &p).unwrap();
            offers
                .into_iter()
                .filter(|o| o.spec.memory_per_slot_mib == CHEAT_MEMORY_MIB)
                .collect()
        };
        // A fault on the way (the registry can't be reached) ends the
        // attempt; the next one posts again.
        for (p, price) in [(HONEST, HONEST_CHEAT_PRICE), (WITNESS, WITNESS_PRICE)] {
            if offers(self, p).is_empty() {
                let spec = OfferSpec {
                    memory_per_slot_mib: CHEAT_MEMORY_MIB,
                    ..self.offer_spec(price, 1)
                };
                if self.net.post_offer(p, &spec).is_err() {
                    return;
                }
            }
        }
        let cheater_offer = OfferSpec {
            memory_per_slot_mib: CHEAT_MEMORY_MIB,
            ..self.offer_spec(CHEATER_PRICE, 1)
        };
        let mine = offers(self, CHEATER);
        Self::attack_call(200);
        if auditor_lies {
            for o in mine {
                let r: Option<Result<(), MatcherError>> =
                    self.matcher(CHEATER, "withdraw_offer", &o.id);
                if !matches!(r, Some(Ok(()))) {
                    return;
                }
            }
        } else if mine.is_empty() && self.net.post_offer(CHEATER, &cheater_offer).is_err() {
            return;
        }
        let spec = JobSpec {
            limits: JobLimits {
                memory_mib: CHEAT_MEMORY_MIB,
                fuel: u64::from(JOB_GFUEL) * GFUEL,
            },
            audit_ppm: Some(AUDIT_ALWAYS_PPM),
            ..self.spec(CHEAT_JOB_PRICE, 0)
        };
        let before = self.jobs.len();
        self.send(Call {
            canister: self.net.ids.matcher,
            caller: PLAINTIFF,
            method: "submit_job",
            arg: encode(&spec),
            reply: Reply::Job(PLAINTIFF, spec_bytes(&spec)),
        });
        if self.jobs.len() > before {
            let (_, id) = self.jobs[before];
            self.cheats.push(id);
            CHEATS.fetch_add(1, Ordering::Relaxed);
        }
        if auditor_lies {
            // Matched (to the honest provider) by now: the cheater's offer
            // returns, to audit it if drawn.
            Self::attack_call(200);
            let _ = self.net.post_offer(CHEATER, &cheater_offer);
        }
    }

    /// [`Action::Claim`].
    fn claim(&mut self) {
        if !self.claimer_offered {
            let spec = OfferSpec {
                memory_per_slot_mib: CLAIMER_MEMORY_MIB,
                ..self.offer_spec(CLAIMER_PRICE, 1)
            };
            Self::attack_call(200);
            // A fault on the way (the registry can't be reached) ends the
            // attempt; the next one posts again.
            if self.net.post_offer(CLAIMER, &spec).is_err() {
                return;
            }
            self.claimer_offered = true;
        }
        CLAIMS.fetch_add(1, Ordering::Relaxed);
        let spec = JobSpec {
            limits: JobLimits {
                memory_mib: CLAIMER_MEMORY_MIB,
                fuel: u64::from(JOB_GFUEL) * GFUEL,
            },
            ..self.spec(CLAIMER_PRICE, 0)
        };
        self.send(Call {
            canister: self.net.ids.matcher,
            caller: PATRON,
            method: "submit_job",
            arg: encode(&spec),
            reply: Reply::Job(PATRON, spec_bytes(&spec)),
        });
    }

    /// [`Action::Rate`]: the stand-in gives `rate` from now on, and the
    /// matcher is asked to read it (a fault may refuse the ask: the
    /// matcher's own timer reads it later).
    fn move_rate(&mut self, rate: u64) {
        self.net.set_icp_xdr_rate(rate).unwrap();
        let net = &self.net;
        let _ = net
            .devnet()
            .update::<(), ()>(net.ids.matcher, admin(), "refresh_rates", &());
        for _ in 0..4 {
            self.net.tick();
        }
        self.rate = rate;
        RATE_MOVES.fetch_add(1, Ordering::Relaxed);
    }

    /// [`Action::CyclesJob`].
    fn cycles_job(&mut self) {
        let cycles = self.net.pricing_ids().cycles_ledger;
        if !self.cycles_offered {
            let spec = OfferSpec {
                ledger: cycles,
                currency: Some(Currency::Xdr),
                ..self.offer_spec(CYCLES_PRICE, 2)
            };
            if self.net.post_offer(HONEST, &spec).is_err() {
                return;
            }
            self.cycles_offered = true;
        }
        CYCLES_JOBS.fetch_add(1, Ordering::Relaxed);
        let spec = JobSpec {
            ledger: cycles,
            currency: Some(Currency::Xdr),
            ..self.spec(CYCLES_PRICE, 0)
        };
        self.send(Call {
            canister: self.net.ids.matcher,
            caller: CYCLES_BUYER,
            method: "submit_job",
            arg: encode(&spec),
            reply: Reply::Job(CYCLES_BUYER, spec_bytes(&spec)),
        });
    }

    /// A call of a scripted provider's node, made again at once (up to
    /// four times) while it is answered `Busy` or rejected; whether it
    /// ended in `Ok`.
    fn scripted_call(&self, who: Scripted, method: &str, arg: Vec<u8>) -> bool {
        for _ in 0..5 {
            let answer = self.net.devnet().update_call(
                self.net.ids.matcher,
                who.node(),
                method,
                arg.clone(),
            );
            if let Ok(bytes) = answer {
                let r: Result<candid::Reserved, MatcherError> =
                    candid::decode_one(&bytes).unwrap_or_else(|e| panic!("{method}: {e}"));
                if r != Err(MatcherError::Busy) {
                    return r.is_ok();
                }
            }
            HONEST_RETRIES.fetch_add(1, Ordering::Relaxed);
            self.net.tick();
        }
        false
    }

    /// [`Action::SubmitCancel`].
    fn submit_cancel(&mut self, a: u8, rounds: u8) {
        let who = attacker(a);
        let spec = self.largest_job(1, a);
        let bytes = spec_bytes(&spec);
        let arg = encode(&spec);
        for _ in 0..rounds {
            Self::attack_call(arg.len());
            let answer =
                self.net
                    .devnet()
                    .update_call(self.net.ids.matcher, who, "submit_job", arg.clone());
            let Ok(reply) = answer else {
                self.unanswered.insert(who);
                continue;
            };
            let r: Result<JobId, MatcherError> = candid::decode_one(&reply).unwrap();
            let id = match r {
                Ok(id) => id,
                Err(e) => {
                    assert!(
                        !matches!(e, MatcherError::Busy | MatcherError::InvalidArgument { .. }),
                        "the largest job at 1 e8s was refused: {e:?}"
                    );
                    continue;
                }
            };
            self.jobs.push((who, id));
            self.spec_bytes.insert(id, bytes);
            JOBS.fetch_add(1, Ordering::Relaxed);
            // A job whose lock is still being made (its first call to the
            // escrow failed, and the outbox makes it again) answers `Busy`
            // until the lock is made: the attacker tries again each second.
            let mut r = Err(MatcherError::Busy);
            for _ in 0..30 {
                Self::attack_call(8);
                r = self
                    .net
                    .update(self.net.ids.matcher, who, "cancel_job", &id)
                    .unwrap();
                if r != Err(MatcherError::Busy) {
                    break;
                }
                self.advance(1);
            }
            assert_eq!(r, Ok(()), "the attacker could not cancel its job {id}");
            SUBMIT_CANCEL_ROUNDS.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// [`Action::Flood`].
    fn flood(&mut self, kind: Flood, count: u8, victim: u8) {
        FLOODS.fetch_add(1, Ordering::Relaxed);
        let ids = self.net.ids;
        let (canister, method, arg) = match kind {
            Flood::Stake => return self.stake_flood(victim, count),
            Flood::Offers => (ids.matcher, "post_offer", encode(&self.offer_spec(1, 1))),
            Flood::Submits => (
                ids.matcher,
                "submit_job",
                encode(&self.spec(HONEST_PRICE, 0)),
            ),
            Flood::Notify => (
                ids.escrow,
                "notify_deposit",
                encode(&NotifyDepositArgs {
                    ledger: ids.ledger,
                    beneficiary: buyer(victim),
                }),
            ),
        };
        let honest_call = match kind {
            Flood::Notify => Call {
                canister: ids.escrow,
                caller: buyer(victim),
                method: "withdraw",
                arg: encode(&WithdrawArgs {
                    ledger: ids.ledger,
                    amount: ICP / 10,
                    to: account(buyer(victim)),
                }),
                reply: Reply::Ignored,
            },
            _ => {
                let spec = self.spec(3 * HONEST_PRICE, 0);
                Call {
                    canister: ids.matcher,
                    caller: buyer(victim),
                    method: "submit_job",
                    arg: encode(&spec),
                    reply: Reply::Job(buyer(victim), spec_bytes(&spec)),
                }
            }
        };
        let strangers: Vec<Principal> = (0..count).map(|_| self.next_stranger()).collect();
        let answer = {
            let mut dn = self.net.devnet();
            let mut sent = vec![];
            for s in strangers {
                Self::attack_call(arg.len());
                if let Ok(id) = dn.submit_call(canister, s, method, arg.clone()) {
                    sent.push(id);
                }
            }
            // Each runs up to its first await and waits there.
            for _ in 0..sent.len() {
                if !dn.step() {
                    break;
                }
            }
            let honest = dn.submit_call(
                honest_call.canister,
                honest_call.caller,
                honest_call.method,
                honest_call.arg,
            );
            dn.tick();
            let answer = honest.and_then(|id| dn.await_call(id));
            for id in sent {
                let _ = dn.await_call(id);
            }
            answer
        };
        if let Ok(bytes) = &answer {
            let busy = match kind {
                Flood::Notify => matches!(
                    candid::decode_one::<Result<Tokens, EscrowError>>(bytes),
                    Ok(Err(EscrowError::Busy))
                ),
                _ => matches!(
                    candid::decode_one::<Result<JobId, MatcherError>>(bytes),
                    Ok(Err(MatcherError::Busy))
                ),
            };
            assert!(
                !busy,
                "{count} strangers' {method} calls locked {}'s {} out",
                honest_call.caller, honest_call.method
            );
        }
        self.take_reply(honest_call.reply, answer);
    }

    /// [`Flood::Stake`]: provider `p` keeps `stake(1)` calls of its own in
    /// flight while the clock runs for 30 s, so that any slash of it
    /// arrives with one queued ahead; the slash must land all the same
    /// (see [`World::check_slashes_asked`] and the final audit).
    fn stake_flood(&mut self, p: u8, count: u8) {
        let per_turn = (count / 20).max(1);
        for _ in 0..3 {
            {
                let mut dn = self.net.devnet();
                for _ in 0..per_turn {
                    let arg = encode(&candid::Nat::from(1u8));
                    Self::attack_call(arg.len());
                    let _ = dn.submit_call(self.net.ids.registry, provider(p), "stake", arg);
                }
            }
            self.advance(HONEST_TURN_SECS);
        }
    }

    /// [`Action::Zombie`].
    fn zombie(&mut self, deregister: bool) {
        let net = &self.net;
        let ids = net.ids;
        // (Re)registered and staked to the minimum; a refusal (a fault on
        // the way, a jail) ends the attempt.
        let _ = net.register_provider(ZOMBIE, ZOMBIE_NODE);
        let e: Eligibility = net.query(ids.registry, "eligibility", &ZOMBIE).unwrap();
        if e.ineligible.is_some() {
            let min = net.settings.min_stake;
            if net.mint(ZOMBIE, min + 2 * net.settings.fee).is_err()
                || net.stake(ZOMBIE, min).is_err()
            {
                return;
            }
        }
        Self::attack_call(200);
        let spec = self.offer_spec(ZOMBIE_PRICE, 2);
        self.zombie_offered = true;
        if self.net.post_offer(ZOMBIE, &spec).is_err() {
            return;
        }
        ZOMBIE_OFFERS.fetch_add(1, Ordering::Relaxed);
        Self::attack_call(16);
        if deregister {
            let _: Result<(Result<(), RegistryError>,), _> =
                net.update_args(ids.registry, ZOMBIE, "deregister", ());
        } else {
            let e: Eligibility = net.query(ids.registry, "eligibility", &ZOMBIE).unwrap();
            if e.free_stake > 0 {
                let _: Result<candid::Reserved, _> =
                    net.update(ids.registry, ZOMBIE, "unstake", &e.free_stake);
            }
        }
        // A job only the zombie's price meets, while the registry can't be
        // reached for its bond.
        self.net.devnet().inject_fault(Fault {
            caller: Some(ids.matcher),
            callee: ids.registry,
            method: Some("bond".into()),
            kind: FaultKind::Reject {
                code: RejectCode::SysTransient,
                message: "registry unreachable".into(),
            },
            count: 1,
        });
        let spec = self.spec(ZOMBIE_PRICE, 0);
        self.send(Call {
            canister: ids.matcher,
            caller: attacker(0),
            method: "submit_job",
            arg: encode(&spec),
            reply: Reply::Job(attacker(0), spec_bytes(&spec)),
        });
        self.net.tick();
        // A forged result, at once, for every job it holds: none whose
        // bond has not held may be taken.
        for a in self.net.assignments(ZOMBIE).unwrap() {
            let (method, arg) = provider_call(ProviderCall::Result, &a, ZOMBIE);
            Self::attack_call(arg.len());
            let answer = self
                .net
                .devnet()
                .update_call(ids.matcher, ZOMBIE_NODE, method, arg);
            if a.next_deadline_ns == 0 {
                assert_refused("a zombie's result before its bond held", &answer);
                ZOMBIE_RESULTS_REFUSED.fetch_add(1, Ordering::Relaxed);
            } else if a.kind == JobKind::OneOff {
                let report = self.report(&a, ZOMBIE, |_| forged(&a, ZOMBIE));
                self.take_reply(Reply::Result(a.job_id, a.attempt, report), answer);
            }
        }
    }

    /// The attackers' modules still in the store.
    fn live_modules(&self) -> Vec<([u8; 32], u64, Principal)> {
        let net = &self.net;
        self.modules
            .iter()
            .filter(|(sha, ..)| {
                let m: Option<ModuleInfo> = net
                    .query(net.ids.matcher, "module_info_of", &sha.to_vec())
                    .unwrap();
                m.is_some()
            })
            .copied()
            .collect()
    }

    /// [`Action::Pin`].
    fn pin(&mut self, a: u8, big: bool) {
        let who = attacker(a);
        let size = if big { MAX_CHUNK_BYTES } else { 1_024 };
        let mut bytes = format!("chaos module {} of {who}", self.modules.len()).into_bytes();
        bytes.resize(size, 0xEE);
        Self::attack_call(bytes.len());
        let sha256 = match self.net.store_module(who, &bytes).unwrap() {
            Ok(sha) => sha,
            Err(MatcherError::LimitReached { .. }) => {
                let held = self.live_modules().iter().filter(|m| m.2 == who).count();
                assert!(
                    held >= MAX_MODULES_PER_UPLOADER as usize,
                    "{who} was refused a module with {held} stored"
                );
                return;
            }
            // The escrow, asked for the uploader's balance, was hit by an
            // injected fault: the attempt ends, as a refusal would.
            Err(MatcherError::Downstream { .. }) => return,
            Err(e) => panic!("storing a module of {size} bytes: {e:?}"),
        };
        self.modules.push((sha256, size as u64, who));
        MODULES_PINNED.fetch_add(1, Ordering::Relaxed);
        let held = self.live_modules().iter().filter(|m| m.2 == who).count();
        assert!(
            held <= MAX_MODULES_PER_UPLOADER as usize,
            "{who} stores {held} modules"
        );
        let budget = u64::from(JOB_GFUEL) * GFUEL;
        let job_on = |memory_mib: u32, fuel: u64| JobSpec {
            module: ModuleSource::Stored { sha256 },
            limits: JobLimits { memory_mib, fuel },
            ..self.spec(HONEST_PRICE, 0)
        };
        let to = |spec: &JobSpec, reply| Call {
            canister: self.net.ids.matcher,
            caller: who,
            method: "submit_job",
            arg: encode(spec),
            reply,
        };
        let extreme = [
            (job_on(u32::MAX, budget), "a job asking for u32::MAX MiB"),
            (
                job_on(64, MAX_JOB_FUEL + 1),
                "a job asking for more than the most fuel",
            ),
        ];
        let mut calls: Vec<Call> = extreme
            .iter()
            .map(|(spec, what)| to(spec, Reply::Refused(what)))
            .collect();
        // No offer has 4 GiB: it rests, to expire after a day.
        let resting = job_on(MAX_JOB_MEMORY_MIB, budget);
        calls.push(to(&resting, Reply::Job(who, spec_bytes(&resting))));
        for c in calls {
            Self::attack_call(c.arg.len());
            self.send(c);
        }
    }

    /// [`Action::Late`].
    fn late(&mut self, p: u8, nth: u8, call: ProviderCall) {
        let now = self.net.time_ns();
        let held: Vec<(u8, Assignment)> = (0..PROVIDERS)
            .map(|i| p.wrapping_add(i) % PROVIDERS)
            .flat_map(|i| self.assignments(i).into_iter().map(move |a| (i, a)))
            .filter(|(_, a)| a.next_deadline_ns > now)
            .collect();
        let Some((p, a)) = held.get(usize::from(nth) % held.len().max(1)).cloned() else {
            return;
        };
        // The scripted providers beat first, so their deadlines are as late
        // as they can be.
        self.provider_turns();
        let honest_deadline = [HONEST, WITNESS, CHEATER]
            .into_iter()
            .flat_map(|p| self.net.assignments(p).unwrap())
            .filter(|h| h.next_deadline_ns != 0)
            .map(|h| h.next_deadline_ns)
            .min()
            .unwrap_or(u64::MAX);
        let past = a.next_deadline_ns + NANOS;
        let job_now = |net: &MarketFixture| -> Job {
            let job: Option<Job> = net.query(net.ids.matcher, "get_job", &a.job_id).unwrap();
            job.expect("a held job exists")
        };
        let retries_before = job_now(&self.net).retries_used;
        let (method, arg) = provider_call(call, &a, provider(p));
        let node = self.node_of(p);
        let matcher = self.net.ids.matcher;
        LATE_CALLS.fetch_add(1, Ordering::Relaxed);
        let answer = if past < honest_deadline {
            // The matcher runs its timers until a second or two before the
            // deadline (a clock that jumped there with no run between would
            // be the matcher's own outage, which moves deadlines: see
            // `matcher::market::outages`); then the clock passes the
            // deadline with no timer run, and the late call is the first
            // message the matcher executes.
            LATE_BEFORE_TIMER.fetch_add(1, Ordering::Relaxed);
            loop {
                let left = a
                    .next_deadline_ns
                    .saturating_sub(NANOS)
                    .saturating_sub(self.net.time_ns())
                    / NANOS;
                if left == 0 {
                    break;
                }
                self.advance(left.min(HONEST_TURN_SECS));
            }
            let mut dn = self.net.devnet();
            let now = dn.time_nanos();
            dn.advance_time(Duration::from_nanos(past - now));
            dn.submit_call(matcher, node, method, arg).and_then(|id| {
                dn.step();
                dn.await_call(id)
            })
        } else {
            // A scripted provider's deadline comes first: they take their
            // turns on the way, and the deadline's timer may run before the
            // call.
            while self.net.time_ns() < past {
                let left = (past - self.net.time_ns()).div_ceil(NANOS);
                self.advance(left.min(HONEST_TURN_SECS));
            }
            self.net.devnet().update_call(matcher, node, method, arg)
        };
        assert_refused("a provider's call past its deadline", &answer);
        let after = job_now(&self.net);
        let missed = after.retries_used > retries_before || after.status == JobStatus::Failed;
        if missed || after.kind == JobKind::OneOff {
            self.late.push((a.job_id, a.attempt, provider(p)));
        } else {
            // No deadline was missed: the term ended first. A reserved
            // slot's paid intervals ran out (it expires unslashed), or a
            // job in a slot lost its slot that way and went back to its
            // reservation's queue (or ended with the reservation).
            assert!(
                matches!(
                    after.status,
                    JobStatus::Expired | JobStatus::Open | JobStatus::Assigned
                ),
                "job {} called past its deadline was neither slashed nor out of its term: {:?}",
                a.job_id,
                after.status
            );
            LATE_TERM_ENDED.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// [`Action::RotateKey`].
    fn rotate_key(&mut self, p: u8, nth: u8) {
        let i = p % PROVIDERS;
        let net = &self.net;
        let ids = net.ids;
        let offers: Vec<Offer> = net.query(ids.matcher, "offers_of", &provider(i)).unwrap();
        let Some(offer) = offers.first().cloned() else {
            return;
        };
        let new = rotated_node(i, self.rotations.wrapping_add(1));
        let profile = ProviderProfile {
            display_name: format!("provider {i}"),
            region: "local".into(),
            node: new,
            total_slots: 4,
            memory_per_slot_mib: 512,
            tags: vec![],
            endpoint: None,
        };
        let r: Result<Result<(), RegistryError>, _> =
            net.update(ids.registry, provider(i), "update_profile", &profile);
        if !matches!(r, Ok(Ok(()))) {
            return;
        }
        let r: Result<(Result<u64, MatcherError>,), _> = net.update_args(
            ids.matcher,
            provider(i),
            "update_offer",
            (offer.id, offer.spec.clone()),
        );
        if !matches!(r, Ok((Ok(_),))) {
            return;
        }
        self.rotations = self.rotations.wrapping_add(1);
        ROTATIONS.fetch_add(1, Ordering::Relaxed);
        let old = std::mem::replace(&mut self.nodes[usize::from(i)], new);
        self.retired.push((i, old));
        for call in [
            ProviderCall::Heartbeat,
            ProviderCall::Result,
            ProviderCall::HandBack,
        ] {
            self.call(&Action::OldKey {
                provider: i,
                nth,
                call,
            });
        }
    }

    /// Invariants that hold at every moment, even with retries pending:
    /// no canister trapped, the ledger creates nothing, every escrow lock
    /// belongs to a job of the matcher and pays no more than it holds, and
    /// the registry slashes each deadline at most once, only as the matcher
    /// recorded it (see `MarketFixture::audit_in_flight`) and for exactly what
    /// the matcher asks of a missed deadline.
    fn check_mid_flight(&mut self) {
        self.check_traps();
        self.net.audit_in_flight().unwrap_or_else(|e| panic!("{e}"));
        self.check_events();
        CHECKS.fetch_add(1, Ordering::Relaxed);
    }

    /// The checks that read the registry's and the matcher's logs: the
    /// slashes asked and taken ([`World::check_slashes_asked`], whose total
    /// it returns), the honest provider never slashed, the audits' rejections
    /// and verdicts ([`World::check_audits`]), and each canister's stable
    /// memory within its bound.
    fn check_events(&mut self) -> Tokens {
        let net = &self.net;
        let registry = events::<RegistryEvent>(net, net.ids.registry);
        let matcher = events::<MatcherEvent>(net, net.ids.matcher);
        let total = self.check_slashes_asked(&registry, &matcher);
        check_honest_not_slashed(&registry, &matcher);
        self.check_audits(&matcher);
        self.check_stable_memory(&registry, &matcher);
        total
    }

    /// The audits as far as they went: every result that lost an audit
    /// (`ResultRejected`) was a lie (see [`World::check_rejected`]), and
    /// every verdict is right about the result it judged (see
    /// [`World::check_verdict`]), and each audit has at most one.
    fn check_audits(&mut self, matcher: &[MatcherEvent]) {
        let mut verdicts = BTreeSet::new();
        for e in matcher {
            match e {
                MatcherEvent::ResultRejected {
                    job_id,
                    provider,
                    attempt,
                    slashed,
                } => {
                    self.check_rejected((*job_id, *attempt), *provider, *slashed, "ResultRejected")
                }
                MatcherEvent::AuditSettled { job_id, verdict } => {
                    assert!(
                        verdicts.insert(*job_id),
                        "job {job_id}'s audit reached a second verdict, {verdict:?}"
                    );
                    if !self.verdicts_checked.contains(job_id) {
                        self.check_verdict(*job_id, *verdict, matcher);
                        self.verdicts_checked.insert(*job_id);
                    }
                }
                _ => {}
            }
        }
    }

    /// A result rejected by an audit (its provider slashed `amount` for
    /// it, as `what` records) was a lie that provider told: no true result
    /// is ever rejected. And the slash took its whole bond.
    fn check_rejected(
        &self,
        (job, attempt): (JobId, u32),
        provider: Principal,
        amount: Tokens,
        what: &str,
    ) {
        let r = self.reported.get(&(job, attempt)).unwrap_or_else(|| {
            panic!("{what}: {provider}'s result for job {job} attempt {attempt} was rejected, but no such result was taken")
        });
        assert!(
            r.provider == provider && r.lie(),
            "{what}: a true result was rejected: job {job} attempt {attempt} of {provider}, {r:?}"
        );
        assert_eq!(
            amount, r.bond,
            "{what}: the lie of job {job} attempt {attempt} cost {provider} {amount}, not its bond"
        );
    }

    /// Job `id`'s audit reached `verdict`: the result it judged (the one
    /// its `ResultReported` names) was a lie if and only if it was
    /// overturned; an overturned result is replaced by the truth, and any
    /// other stands unchanged.
    fn check_verdict(&self, id: JobId, verdict: AuditVerdict, matcher: &[MatcherEvent]) {
        let (provider, attempt) = reported_by(matcher, id)
            .unwrap_or_else(|| panic!("job {id} was audited but no result was reported"));
        let judged = self.reported.get(&(id, attempt)).unwrap_or_else(|| {
            panic!("job {id}: {provider}'s result of attempt {attempt} was taken, but no such result was sent")
        });
        assert_eq!(judged.provider, provider, "job {id} attempt {attempt}");
        let net = &self.net;
        let job: Option<Job> = net.query(net.ids.matcher, "get_job", &id).unwrap();
        let job = job.unwrap_or_else(|| panic!("job {id} has a verdict and no record"));
        let now = job
            .result
            .as_ref()
            .unwrap_or_else(|| {
                panic!(
                    "job {id}'s audit has a verdict, {verdict:?}, and its result is still withheld"
                )
            })
            .commitment();
        match verdict {
            AuditVerdict::Overturned => {
                assert!(
                    judged.lie(),
                    "job {id}'s true result was overturned: {judged:?}, now {now:?}"
                );
                assert_eq!(
                    now, judged.truth,
                    "job {id}'s overturned lie was replaced by something other than the truth"
                );
            }
            AuditVerdict::Agreed | AuditVerdict::Inconclusive => {
                // Two runs agree only on the truth: no lie is ever agreed.
                assert!(
                    verdict != AuditVerdict::Agreed || !judged.lie(),
                    "job {id}'s lie was agreed with: {judged:?}"
                );
                assert_eq!(
                    now, judged.commitment,
                    "job {id}'s result changed though its audit was {verdict:?}"
                );
            }
        }
    }

    /// Each canister's stable memory size stays at most
    ///
    /// `base + slack x BUCKET + 3/2 x (the most live work it has held)`,
    ///
    /// where `base` is its size when the case began; `slack` is one bucket
    /// (two for the matcher, whose jobs and module store are the two
    /// structures that grow by megabytes) for the memory manager's rounding
    /// of each growing structure up to whole 8 MiB buckets; and its live
    /// work is, for the matcher, the stored bytes (input, args, env, URL) of
    /// its unfinished jobs plus its stored modules' bytes plus
    /// [`RECORD_BYTES`] per job record and per event, for the escrow and the
    /// registry `RECORD_BYTES` per event of their logs (each lock, balance,
    /// stake record comes with events), and for the ledger nothing beyond
    /// the slack (its block log grows by a few hundred bytes a transfer).
    /// The most live work since the case began counts, not the current
    /// one, as stable memory never shrinks: freed space is reused.
    ///
    /// Measured (`CHAOS_CASES=30 CHAOS_STEPS=60`, see RELIABILITY.md) every
    /// canister stays in its first buckets while the matcher's live jobs
    /// sit below a few MiB, so the factor 3/2 and the slack are headroom
    /// for the encoding and B-tree nodes, not for history: a matcher that
    /// kept finished jobs' inputs (1.2 MiB per cancelled largest job) would
    /// pass the bound after about 22 submit-and-cancel rounds
    /// ([`the_memory_bound_is_tight_enough_to_catch_kept_inputs`]).
    fn check_stable_memory(&mut self, registry: &[RegistryEvent], matcher: &[MatcherEvent]) {
        let net = &self.net;
        let ids = net.ids;
        let finished: BTreeSet<JobId> = matcher
            .iter()
            .filter_map(|e| match e {
                MatcherEvent::JobFinished { job_id, .. } => Some(*job_id),
                _ => None,
            })
            .collect();
        let records = matcher
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    MatcherEvent::JobSubmitted { .. }
                        | MatcherEvent::ReservationMade { .. }
                        | MatcherEvent::AuditStarted { .. }
                )
            })
            .count() as u64;
        // An audit run stores its job's spec again, until its job ends at
        // the latest.
        let runs = matcher.iter().filter_map(|e| match e {
            MatcherEvent::AuditStarted { job_id, .. } => {
                Some((job_id, self.spec_bytes.get(job_id).copied().unwrap_or(0)))
            }
            _ => None,
        });
        let (live_bytes, retained): (u64, u64) = self
            .spec_bytes
            .iter()
            .map(|(id, bytes)| (id, *bytes))
            .chain(runs)
            .fold((0, 0), |(live, kept), (id, bytes)| {
                if finished.contains(id) {
                    (live, kept + bytes)
                } else {
                    (live + bytes, kept)
                }
            });
        let modules: u64 = self.live_modules().iter().map(|m| m.1).sum();
        let escrow = events::<EscrowEvent>(net, ids.escrow).len() as u64;
        let works = [
            (
                ids.matcher,
                "matcher",
                live_bytes + modules + RECORD_BYTES * (records + matcher.len() as u64),
                2,
            ),
            (ids.escrow, "escrow", RECORD_BYTES * escrow, 1),
            (
                ids.registry,
                "registry",
                RECORD_BYTES * registry.len() as u64,
                1,
            ),
            (ids.ledger, "ledger", 0, 1),
        ];
        for (canister, name, work, slack) in works {
            let size = net.devnet().stable_memory_size(canister).unwrap() as u64;
            let (base, most) = self.memory.entry(canister).or_insert((size, 0));
            *most = (*most).max(work);
            let bound = memory_bound(*base, *most, slack);
            assert!(
                size <= bound,
                "the {name}'s stable memory is {size} bytes, over its bound of {bound}: \
                 {base} at the start, {slack} buckets of slack, live work of at most {most} bytes"
            );
            MEMORY_USE_PERMILLE
                .fetch_max((size - *base) * 1_000 / (bound - *base), Ordering::Relaxed);
        }
        RETAINED_IF_KEPT.fetch_max(retained, Ordering::Relaxed);
        MEMORY_CHECKS.fetch_add(1, Ordering::Relaxed);
    }

    /// Records the assignments the matcher holds now, with what a missed
    /// deadline of each costs its provider: the slash multiple times what
    /// the attempt answers for, never below the market's smallest slash. A
    /// one-off job answers for its value (its fuel budget at the agreed
    /// price per billion fuel), a reserved slot for its price per interval;
    /// a job in a reserved slot is paid nothing of its own, but answers at
    /// the price of the slot it runs in (held by the same provider).
    fn observe_assignments(&mut self) {
        let watched: Vec<Principal> = watched_providers()
            .filter(|p| *p != ZOMBIE || self.zombie_offered)
            .filter(|p| *p != CLAIMER || self.claimer_offered)
            .filter(|p| ![WITNESS, CHEATER].contains(p) || self.cheaters_in_play)
            .collect();
        for p in watched {
            let held = self.net.assignments(p).unwrap();
            let slot_price = |reservation: u64| {
                held.iter().find_map(|s| match s.kind {
                    JobKind::ReservedSlot { reservation: r, .. } if r == reservation => {
                        Some(s.price)
                    }
                    _ => None,
                })
            };
            for a in &held {
                let value = match a.kind {
                    JobKind::InReservation { reservation } => {
                        slot_price(reservation).unwrap_or(a.price)
                    }
                    JobKind::OneOff => {
                        let budget = self.budget(a.job_id);
                        fuel_cost(budget, a.price).expect("a job's value fits")
                    }
                    _ => a.price,
                };
                let slash = (value * Tokens::from(SLASH_MULTIPLE)).max(DEFAULT_MIN_SLASH);
                self.assigned.insert((a.job_id, a.attempt), (p, slash));
            }
        }
    }

    /// Each of the registry's slashes, and each deadline the matcher
    /// recorded as missed, is of an assignment seen, takes its provider's
    /// stake, and takes what the matcher asks for that assignment (every
    /// stake here covers it: none runs short). And every slash the matcher
    /// asked for is taken: here every one is due (providers stay
    /// registered, every amount is above the fee), so the matcher must never
    /// drop one the registry refused; its log is the only record of such an
    /// ask (it prints the refusal and records no event). A slash of a
    /// result that lost its audit (key `job/<id>/caught/<attempt>`) is of
    /// a lie, for its whole bond (see [`World::check_rejected`]). Returns
    /// the registry's total.
    fn check_slashes_asked(&self, registry: &[RegistryEvent], matcher: &[MatcherEvent]) -> Tokens {
        let dropped = self.dropped_slashes();
        assert!(
            dropped.is_empty(),
            "the matcher dropped a slash it asked for: {dropped:?}"
        );
        let mut total = 0;
        for e in registry {
            if let RegistryEvent::Slashed {
                key,
                provider,
                amount,
                ..
            } = e
            {
                let named = |what: &str| {
                    key.strip_prefix("job/")
                        .and_then(|k| k.split_once(what))
                        .and_then(|(j, a)| Some((j.parse().ok()?, a.parse().ok()?)))
                };
                if let Some(caught) = named("/caught/") {
                    self.check_rejected(caught, *provider, *amount, &format!("slash {key}"));
                    total += *amount;
                    continue;
                }
                let deadline = named("/slash/");
                let asked = deadline.and_then(|d| self.assigned.get(&d));
                assert_eq!(
                    asked,
                    Some(&(*provider, *amount)),
                    "the registry slashed {amount} from {provider} under {key}; the matcher asked (provider, amount) {asked:?}"
                );
                total += *amount;
            }
        }
        for e in matcher {
            if let MatcherEvent::DeadlineMissed {
                job_id,
                provider,
                attempt,
                slashed,
            } = e
            {
                let asked = self.assigned.get(&(*job_id, *attempt));
                assert_eq!(
                    asked,
                    Some(&(*provider, *slashed)),
                    "job {job_id} attempt {attempt}: the matcher recorded {slashed} slashed from {provider}, but asked (provider, amount) {asked:?}"
                );
            }
        }
        total
    }

    /// The matcher's log lines of slashes it asked for, the registry
    /// refused, and it gave up.
    fn dropped_slashes(&self) -> Vec<String> {
        let net = &self.net;
        net.devnet()
            .canister_logs(net.ids.matcher)
            .into_iter()
            .filter(|l| l.contains("slash refused"))
            .collect()
    }

    /// Fails on any trap in the marketplace's canisters since the last
    /// check. An injected fault never shows here: the devnet answers a
    /// faulted call itself (an injected trap is a reject it makes up
    /// without running the callee), so every trap recorded is one the
    /// canister's own code hit, which rolls back a message a user or the
    /// outbox relied on.
    fn check_traps(&self) {
        let ids = self.net.ids;
        let ours = [ids.ledger, ids.registry, ids.escrow, ids.matcher];
        let executions = self.net.devnet().take_executions();
        EXECUTIONS.fetch_add(executions.len() as u64, Ordering::Relaxed);
        for e in executions {
            if let Some(message) = &e.trap
                && ours.contains(&e.canister)
            {
                let name = ["ledger", "registry", "escrow", "matcher"]
                    [ours.iter().position(|c| *c == e.canister).unwrap_or(0)];
                panic!("{name} trapped in {}: {message}", e.entry);
            }
        }
    }

    /// A new world in which every provider offers, so that jobs run from
    /// the start.
    fn with_offers() -> World {
        let mut world = World::new();
        for p in 0..PROVIDERS {
            world.apply(&Action::Offer {
                provider: p,
                price: 2 + p,
                slots: 2,
                xdr: false,
            });
            world.apply(&Action::Offer {
                provider: p,
                price: 2 + p,
                slots: 1,
                xdr: true,
            });
        }
        world
    }

    /// [`World::with_offers`], and the [`HONEST`] provider offers 2 slots
    /// at [`HONEST_PRICE`], below the others.
    fn with_honest() -> World {
        let world = World::with_offers();
        let spec = world.offer_spec(HONEST_PRICE, 2);
        world.net.post_offer(HONEST, &spec).unwrap();
        world
    }

    /// Runs a case: [`World::steps`], then [`World::finish`].
    fn run(&mut self, actions: &[Action]) {
        self.steps(actions);
        self.finish();
    }

    /// Each action, then what the marketplace does at once, then the checks
    /// of [`World::check_mid_flight`].
    fn steps(&mut self, actions: &[Action]) {
        self.observe_assignments();
        if self.memory.is_empty() {
            self.check_events();
        }
        for a in actions {
            self.apply(a);
            self.net.tick();
            self.observe_assignments();
            self.provider_turns();
            self.check_mid_flight();
            STEPS.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Moves the clock `steps` times 10 s, watching assignments and traps;
    /// the scripted providers take their turns after each.
    fn pass_time(&mut self, steps: u32) {
        for _ in 0..steps {
            self.net.advance(Duration::from_secs(10));
            self.observe_assignments();
            self.check_traps();
            self.provider_turns();
        }
    }

    /// Faults stop, providers go silent (but the scripted ones), time runs
    /// out every job and every audit reaches its verdict (see
    /// [`World::settle_audits`]); then the full audit. A zombie provider
    /// that ended ineligible is offered one more job at its price: its
    /// offers must leave the book. Every deadline a provider called past
    /// was slashed.
    fn finish(&mut self) {
        self.net.devnet().clear_faults();
        let net = &self.net;
        let zombie_probe = self.zombie_offered && {
            let e: Eligibility = net.query(net.ids.registry, "eligibility", &ZOMBIE).unwrap();
            e.ineligible.is_some()
        };
        if zombie_probe {
            let spec = self.spec(ZOMBIE_PRICE, 0);
            self.send(Call {
                canister: self.net.ids.matcher,
                caller: attacker(1),
                method: "submit_job",
                arg: encode(&spec),
                reply: Reply::Job(attacker(1), spec_bytes(&spec)),
            });
        }
        // Long enough for every job to miss its deadlines through all its
        // retries and for every backoff (at most 5 minutes) to retry.
        self.pass_time(240);
        self.find_unanswered();
        let net = &self.net;
        for (_, id) in &self.jobs {
            let job: Option<Job> = net.query(net.ids.matcher, "get_job", id).unwrap();
            let job = job.expect("job exists");
            // A reported job waits for its audit's verdict.
            let audited = job.status == JobStatus::Reported
                && job.audit.as_ref().is_some_and(|a| a.verdict.is_none());
            assert!(
                job.status.is_terminal() || job.status == JobStatus::Open || audited,
                "job {id} still {:?} after every deadline passed",
                job.status
            );
        }
        // Resting bids are cancelled by their buyers so that every lock settles.
        for (owner, id) in &self.jobs {
            let job: Option<Job> = net.query(net.ids.matcher, "get_job", id).unwrap();
            if job.is_some_and(|j| j.status == JobStatus::Open) {
                let r: Result<(), MatcherError> = net
                    .update(net.ids.matcher, *owner, "cancel_job", id)
                    .unwrap();
                r.unwrap_or_else(|e| panic!("cancel {id}: {e:?}"));
            }
        }
        // Reservations whose slots still wait for capacity are cancelled too.
        for (owner, id) in &self.reservations {
            let r: Option<Reservation> = net.query(net.ids.matcher, "get_reservation", id).unwrap();
            if r.is_some_and(|r| r.status == ReservationStatus::Active) {
                let r: Result<(), MatcherError> = net
                    .update(
                        net.ids.matcher,
                        *owner,
                        "cancel_reservation",
                        &CancelReservationArgs { reservation: *id },
                    )
                    .unwrap();
                r.unwrap_or_else(|e| panic!("cancel reservation {id}: {e:?}"));
            }
        }
        self.settle_audits();
        self.pass_time(60);
        let net = &self.net;
        if zombie_probe {
            let offers: Vec<Offer> = net.query(net.ids.matcher, "offers_of", &ZOMBIE).unwrap();
            assert!(
                offers.is_empty(),
                "the offers of an ineligible provider are still in the book: {offers:?}"
            );
        }
        let missed: BTreeSet<(JobId, u32, Principal)> =
            events::<MatcherEvent>(net, net.ids.matcher)
                .into_iter()
                .filter_map(|e| match e {
                    MatcherEvent::DeadlineMissed {
                        job_id,
                        provider,
                        attempt,
                        ..
                    } => Some((job_id, attempt, provider)),
                    _ => None,
                })
                .collect();
        for late in &self.late {
            assert!(
                missed.contains(late),
                "(job, attempt, provider) {late:?} called past its deadline and was not slashed"
            );
        }
        // Escrow and registry ledger calls with unknown outcomes are
        // reconciled by their owners' next operation, and a push deposit
        // whose notify failed is credited by notifying again: do what a
        // user would.
        for b in 0..BUYERS {
            let args = NotifyDepositArgs {
                ledger: net.ids.ledger,
                beneficiary: buyer(b),
            };
            let _: Result<Result<Tokens, EscrowError>, _> =
                net.update(net.ids.escrow, buyer(b), "notify_deposit", &args);
            for owner in [buyer(b), provider(b), HONEST, ZOMBIE, attacker(b)] {
                let _: Result<Result<bool, EscrowError>, _> = net.update(
                    net.ids.escrow,
                    owner,
                    "reconcile",
                    &market_api::escrow::ReconcileArgs {
                        owner,
                        ledger: net.ids.ledger,
                    },
                );
                let _: Result<Result<(), RegistryError>, _> =
                    net.update(net.ids.registry, owner, "settle_pending", &owner);
            }
        }
        net.advance(Duration::from_secs(1));
        self.check_traps();
        let audit = net.audit().unwrap_or_else(|e| panic!("{e}"));
        // Converged, the audit found every registry slash recorded by the
        // matcher for the same amount and the other way round; each of them
        // took what the matcher asked.
        assert_eq!(
            audit.slashed,
            self.check_events(),
            "the audit and the registry's log disagree on what was slashed"
        );
        self.check_honest_paid();
        self.check_claims();
        self.check_audits_ended();
        SLASHES.fetch_add(audit.slashes as u64, Ordering::Relaxed);
        SLASHED.fetch_add(audit.slashed as u64, Ordering::Relaxed);
        LOCKS.fetch_add(audit.locks as u64, Ordering::Relaxed);
        DROPPED.fetch_add(self.dropped_slashes().len() as u64, Ordering::Relaxed);
        CHECKS.fetch_add(1, Ordering::Relaxed);
        self.count_cycles();
    }

    /// Adds what each canister burned in this case, and the jobs settled,
    /// to the run's totals for [`report`].
    fn count_cycles(&self) {
        let net = &self.net;
        let settled = self
            .jobs
            .iter()
            .filter(|(_, id)| {
                let job: Option<Job> = net.query(net.ids.matcher, "get_job", id).unwrap();
                job.is_some_and(|j| j.status.is_terminal())
            })
            .count();
        JOBS_SETTLED.fetch_add(settled as u64, Ordering::Relaxed);
        let (income, market) = self.earned_and_burned();
        let ids = net.ids;
        let dn = net.devnet();
        eprintln!(
            "chaos: this case the market earned {income} cycles and its canisters burned {market} ({settled} jobs settled)"
        );
        {
            let mut earned = MARKET_EARNED.lock().unwrap_or_else(|e| e.into_inner());
            earned.0 += income;
            earned.1 += market;
        }
        let mut totals = CYCLES_BURNED.lock().unwrap_or_else(|e| e.into_inner());
        for (name, id) in [
            ("registry", ids.registry),
            ("escrow", ids.escrow),
            ("matcher", ids.matcher),
            ("ledger", ids.ledger),
        ] {
            let burned = dn.cycles_burned(id).expect("the canister exists");
            let total = totals.entry(name).or_default();
            *total = add_burned(*total, burned);
        }
    }
}

impl World {
    /// What the market earned in the case and what its three canisters
    /// burned since they were installed, in cycles.
    fn earned_and_burned(&self) -> (u128, u128) {
        let ids = self.net.ids;
        let burned = {
            let dn = self.net.devnet();
            [ids.registry, ids.escrow, ids.matcher]
                .into_iter()
                .map(|id| dn.cycles_burned(id).expect("the canister exists").total())
                .sum()
        };
        (self.income_cycles(), burned)
    }

    /// What the market earned in the case, in cycles: what its top-ups
    /// bought, and what it still holds of its fees and the jobs' storage
    /// fees (ICP, in the escrow or withdrawn for a top-up, at the case's
    /// last rate; cycles on the cycles ledger as they are).
    fn income_cycles(&self) -> u128 {
        let net = &self.net;
        let matcher = net.ids.matcher;
        let bought: Vec<u128> = events::<MatcherEvent>(net, matcher)
            .iter()
            .filter_map(|e| match e {
                MatcherEvent::CyclesToppedUp { cycles, .. } => Some(*cycles),
                _ => None,
            })
            .collect();
        TOP_UPS.fetch_add(bought.len() as u64, Ordering::Relaxed);
        let bought: u128 = bought.iter().sum();
        let held = |ledger| {
            let b = net.escrow_balance_on(ledger, matcher).unwrap();
            b.free + b.claimable + b.pending
        };
        let icp = held(net.ids.ledger) + net.balance(account(matcher)).unwrap();
        bought + icp * Tokens::from(self.rate) + held(net.pricing_ids().cycles_ledger)
    }
}

/// The sum of two counts of burned cycles, category by category.
fn add_burned(a: CyclesBurned, b: CyclesBurned) -> CyclesBurned {
    CyclesBurned {
        execution: a.execution.saturating_add(b.execution),
        messages: a.messages.saturating_add(b.messages),
        storage: a.storage.saturating_add(b.storage),
        outcalls: a.outcalls.saturating_add(b.outcalls),
        vetkd: a.vetkd.saturating_add(b.vetkd),
        creation: a.creation.saturating_add(b.creation),
    }
}

/// Prints the cycles each canister burned over the run, by category, and
/// what the market's three canisters burned per job settled.
fn report_cycles() {
    let totals = CYCLES_BURNED.lock().unwrap_or_else(|e| e.into_inner());
    for (name, b) in totals.iter() {
        eprintln!(
            "chaos: {name} burned {} cycles: {} execution, {} messages, {} storage, {} outcalls, {} vetKD",
            b.total(),
            b.execution,
            b.messages,
            b.storage,
            b.outcalls,
            b.vetkd,
        );
    }
    let market: u128 = totals
        .iter()
        .filter(|(name, _)| **name != "ledger")
        .map(|(_, b)| b.total())
        .sum();
    let settled = JOBS_SETTLED.load(Ordering::Relaxed);
    eprintln!(
        "chaos: registry, escrow and matcher burned {market} cycles for {settled} jobs settled: {} per job",
        market.checked_div(u128::from(settled)).unwrap_or(0),
    );
    let (earned, burned) = *MARKET_EARNED.lock().unwrap_or_else(|e| e.into_inner());
    eprintln!(
        "chaos: at a fee of {} %, the market earned {earned} cycles, {} per mille of the {burned} its canisters burned; {} top-ups",
        MARKET_FEE_PPM / 10_000,
        (earned * 1_000).checked_div(burned).unwrap_or(0),
        TOP_UPS.load(Ordering::Relaxed),
    );
}

impl World {
    /// Brings every audit to its verdict. The scripted providers run the
    /// audit runs they hold; the silent random providers' miss their
    /// deadlines and go back to the book; a run that no offer takes (every
    /// provider that could is excluded: it ran or audited the job, say)
    /// rests until the matcher's sweep expires it after
    /// [`MAX_RESTING_SECS`], so the clock jumps that far once no scripted
    /// provider holds work that could miss a deadline.
    fn settle_audits(&mut self) {
        for _ in 0..40 {
            let net = &self.net;
            let matcher = events::<MatcherEvent>(net, net.ids.matcher);
            let settled: BTreeSet<JobId> = matcher
                .iter()
                .filter_map(|e| match e {
                    MatcherEvent::AuditSettled { job_id, .. } => Some(*job_id),
                    _ => None,
                })
                .collect();
            let pending = matcher.iter().any(|e| {
                matches!(e, MatcherEvent::AuditStarted { job_id, .. } if !settled.contains(job_id))
            });
            if !pending {
                return;
            }
            let busy = [HONEST, WITNESS, CHEATER]
                .into_iter()
                .any(|p| !self.net.assignments(p).unwrap().is_empty());
            if busy {
                self.pass_time(6);
            } else {
                AUDIT_DAY_JUMPS.fetch_add(1, Ordering::Relaxed);
                self.net.advance(Duration::from_secs(MAX_RESTING_SECS));
                self.observe_assignments();
                self.check_traps();
                self.provider_turns();
                self.pass_time(1);
            }
        }
    }

    /// Once every job has ended: every audit reached a verdict, its job
    /// settled and its runs ended; an overturned result's provider was
    /// slashed and its pay for the job forfeited (see
    /// [`World::check_forfeited`]). Every cheat job was reported and
    /// audited by scripted providers only, so each lie about one was
    /// overturned and each true result agreed with; and the cheater, which
    /// only ever lied, was paid nothing. Counts the audits, verdicts, lies
    /// and rejections.
    fn check_audits_ended(&self) {
        let net = &self.net;
        let matcher = events::<MatcherEvent>(net, net.ids.matcher);
        let escrow = events::<EscrowEvent>(net, net.ids.escrow);
        let get = |id: &JobId| -> Job {
            let job: Option<Job> = net.query(net.ids.matcher, "get_job", id).unwrap();
            job.unwrap_or_else(|| panic!("job {id} exists"))
        };
        let mut runs: BTreeMap<JobId, Vec<JobId>> = BTreeMap::new();
        for e in &matcher {
            if let MatcherEvent::AuditStarted { job_id, run, .. } = e {
                runs.entry(*job_id).or_default().push(*run);
            }
        }
        for (id, started) in &runs {
            let job = get(id);
            let audit = job
                .audit
                .as_ref()
                .unwrap_or_else(|| panic!("job {id} was audited and shows no audit"));
            let verdict = audit
                .verdict
                .unwrap_or_else(|| panic!("job {id}'s audit has no verdict at the end"));
            assert!(
                job.status.is_terminal(),
                "audited job {id} is still {:?} at the end",
                job.status
            );
            assert_eq!(&audit.runs, started, "job {id}'s audit runs");
            for run in started {
                let r = get(run);
                assert_eq!(r.kind, JobKind::Audit { of: *id }, "run {run}");
                assert!(
                    r.status.is_terminal(),
                    "audit run {run} is still {:?}",
                    r.status
                );
            }
            AUDITS.fetch_add(1, Ordering::Relaxed);
            AUDIT_RUNS.fetch_add(started.len() as u64, Ordering::Relaxed);
            match verdict {
                AuditVerdict::Agreed => &AGREED,
                AuditVerdict::Overturned => {
                    check_forfeited(*id, &matcher, &escrow);
                    &OVERTURNED
                }
                AuditVerdict::Inconclusive => &INCONCLUSIVE,
            }
            .fetch_add(1, Ordering::Relaxed);
        }
        for id in &self.cheats {
            let (_, attempt) = reported_by(&matcher, *id)
                .unwrap_or_else(|| panic!("cheat job {id} was never reported"));
            let judged = &self.reported[&(*id, attempt)];
            let expected = if judged.lie() {
                AuditVerdict::Overturned
            } else {
                AuditVerdict::Agreed
            };
            assert_eq!(
                get(id).audit.and_then(|a| a.verdict),
                Some(expected),
                "cheat job {id}, reported by {}, lie: {}",
                judged.provider,
                judged.lie()
            );
        }
        let b = net.escrow_balance(CHEATER).unwrap();
        assert_eq!(
            (b.pending, b.claimable),
            (0, 0),
            "the cheater was paid for lies"
        );
        let rejected = matcher
            .iter()
            .filter(|e| matches!(e, MatcherEvent::ResultRejected { .. }))
            .count();
        RESULTS_REJECTED.fetch_add(rejected as u64, Ordering::Relaxed);
        let lies = self.reported.values().filter(|r| r.lie()).count() as u64;
        LIES.fetch_add(lies, Ordering::Relaxed);
        TRUTHS.fetch_add(self.reported.len() as u64 - lies, Ordering::Relaxed);
    }

    /// Once every job has ended, for the honest provider and the witness:
    /// each job whose result it reported became final (its challenge
    /// window closed) and succeeded on it; each audit run it reported was
    /// paid from the audited job's lock what its fuel earns if it sided
    /// with the verdict (which, telling the truth, it does whenever the
    /// verdict is `Agreed` or `Overturned`), and nothing if the audit was
    /// inconclusive; nothing of its pay is still pending, and its
    /// claimable balance on each ledger holds at least its final jobs' bills and its
    /// audit pay (it never withdraws; reserved slots and cancelled jobs
    /// pay it too).
    fn check_honest_paid(&self) {
        let net = &self.net;
        let matcher = events::<MatcherEvent>(net, net.ids.matcher);
        let get = |id: &JobId| -> Job {
            let job: Option<Job> = net.query(net.ids.matcher, "get_job", id).unwrap();
            job.unwrap_or_else(|| panic!("job {id} exists"))
        };
        let bills_of: BTreeMap<(JobId, Principal), Tokens> = matcher
            .iter()
            .filter_map(|e| match e {
                MatcherEvent::ResultReported {
                    job_id,
                    provider,
                    bill,
                    ..
                } => Some(((*job_id, *provider), *bill)),
                _ => None,
            })
            .collect();
        let fuel_paid = |job: JobId, to: Principal| -> Tokens {
            matcher
                .iter()
                .filter_map(|e| match e {
                    MatcherEvent::FuelPaid {
                        job_id,
                        provider,
                        amount,
                        ..
                    } if *job_id == job && *provider == to => Some(*amount),
                    _ => None,
                })
                .sum()
        };
        // By provider and ledger: a job paid in cycles is owed in cycles.
        let mut bills: BTreeMap<(Principal, Principal), Tokens> = BTreeMap::new();
        for &(p, id) in &self.truthful_reported {
            let job = get(&id);
            let ledger = job.spec.ledger;
            if let JobKind::Audit { of } = job.kind {
                let verdict = get(&of).audit.and_then(|a| a.verdict);
                let paid = fuel_paid(of, p);
                if verdict == Some(AuditVerdict::Inconclusive) {
                    assert_eq!(
                        paid, 0,
                        "{p} was paid for audit run {id} of job {of}, which was inconclusive"
                    );
                    continue;
                }
                assert_eq!(
                    (job.status, job.provider),
                    (JobStatus::Succeeded, Some(p)),
                    "{p}'s true audit run {id} of job {of} ({verdict:?}) did not succeed"
                );
                let price = job.price.expect("a run's price");
                let pay = fuel_cost(job.fuel_reported, price).expect("pay fits");
                assert_eq!(
                    paid, pay,
                    "{p}'s audit run {id} of job {of} ({verdict:?}) was paid {paid} from its lock, not {pay}"
                );
                *bills.entry((p, ledger)).or_default() += pay;
                continue;
            }
            assert_eq!(
                (job.status, job.provider),
                (JobStatus::Succeeded, Some(p)),
                "job {id}, whose result {p} reported, did not become final"
            );
            if job.kind == JobKind::OneOff {
                *bills.entry((p, ledger)).or_default() += bills_of
                    .get(&(id, p))
                    .unwrap_or_else(|| panic!("job {id}: no ResultReported event"));
                if p == HONEST {
                    HONEST_FINAL.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let ledgers = [net.ids.ledger, net.pricing_ids().cycles_ledger];
        for (p, ledger) in [HONEST, WITNESS]
            .into_iter()
            .flat_map(|p| ledgers.map(|l| (p, l)))
        {
            let owed = bills.get(&(p, ledger)).copied().unwrap_or(0);
            let b = net.escrow_balance_on(ledger, p).unwrap();
            assert_eq!(b.pending, 0, "{p}'s pay is still pending on {ledger}");
            assert!(
                b.claimable >= owed,
                "{p} can claim {} on {ledger}, less than its final jobs' bills and audit pay {owed}",
                b.claimable
            );
        }
    }

    /// Once every job has ended: the first cheat job, made before any
    /// random action (so it went to the cheater, the cheapest of the
    /// offers that take it), was audited, its lie overturned and the
    /// cheater slashed for it, whatever came after.
    fn check_first_cheat_overturned(&self) {
        let net = &self.net;
        let id = *self.cheats.first().expect("a cheat job was submitted");
        let matcher = events::<MatcherEvent>(net, net.ids.matcher);
        assert_eq!(
            reported_by(&matcher, id).map(|(p, _)| p),
            Some(CHEATER),
            "the first cheat job went to the cheater"
        );
        let job: Option<Job> = net.query(net.ids.matcher, "get_job", &id).unwrap();
        assert_eq!(
            job.and_then(|j| j.audit).and_then(|a| a.verdict),
            Some(AuditVerdict::Overturned),
            "the cheater's lie about job {id} was overturned"
        );
        assert!(
            matcher.iter().any(
                |e| matches!(e, MatcherEvent::ResultRejected { job_id, provider, .. }
                if *job_id == id && *provider == CHEATER)
            ),
            "the cheater was slashed for its lie about job {id}"
        );
    }

    /// Once every job has ended: the claimer, which claimed fuel and never
    /// reported a result, was slashed for every attempt it held and paid
    /// nothing (no pending pay, nothing claimable), and the patron got the
    /// lock of each of its jobs back whole.
    fn check_claims(&self) {
        let net = &self.net;
        let missed: BTreeSet<(JobId, u32)> = events::<MatcherEvent>(net, net.ids.matcher)
            .into_iter()
            .filter_map(|e| match e {
                MatcherEvent::DeadlineMissed {
                    job_id,
                    provider,
                    attempt,
                    slashed,
                } if provider == CLAIMER && slashed > 0 => Some((job_id, attempt)),
                _ => None,
            })
            .collect();
        for (job, attempt) in self
            .assigned
            .iter()
            .filter(|(_, (p, _))| *p == CLAIMER)
            .map(|(k, _)| *k)
        {
            assert!(
                missed.contains(&(job, attempt)),
                "the claimer held job {job} attempt {attempt} without a result and was not slashed"
            );
            CLAIMS_SLASHED.fetch_add(1, Ordering::Relaxed);
        }
        let b = net.escrow_balance(CLAIMER).unwrap();
        assert_eq!(
            (b.pending, b.claimable),
            (0, 0),
            "the claimer was paid for fuel it never delivered"
        );
        for (_, id) in self.jobs.iter().filter(|(o, _)| *o == PATRON) {
            let lock: Option<market_api::escrow::JobLock> = net
                .query(net.ids.escrow, "get_lock", &format!("job/{id}"))
                .unwrap();
            let lock = lock.unwrap_or_else(|| panic!("job {id}: no lock"));
            assert!(
                lock.settled
                    && lock.released == 0
                    && lock.pending.is_empty()
                    && lock.refunded == lock.total,
                "the patron lost part of job {id}'s lock: {lock:?}"
            );
        }
    }
}

/// A canister's stable memory bound (see [`World::check_stable_memory`]).
fn memory_bound(base: u64, most_work: u64, slack_buckets: u64) -> u64 {
    base + slack_buckets * BUCKET + most_work * 3 / 2
}

/// Every event of a canister's log.
fn events<E: candid::CandidType + serde::de::DeserializeOwned>(
    net: &MarketFixture,
    canister: Principal,
) -> Vec<E> {
    let mut out = vec![];
    let mut start = Some(0);
    while let Some(s) = start {
        let page: EventPage<E> = net
            .query(
                canister,
                "get_events",
                &PageRequest {
                    start: Some(s),
                    limit: None,
                },
            )
            .unwrap();
        out.extend(page.events.into_iter().map(|e| e.event));
        start = page.next;
    }
    out
}

fn env(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `cases` runs, shrinking at most 200 times, failures kept in `regressions`.
fn chaos_config(cases: u32, regressions: &'static str) -> ProptestConfig {
    ProptestConfig {
        cases,
        max_shrink_iters: 200,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct(regressions),
        )),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(chaos_config(env("CHAOS_CASES", 6), "tests/chaos.proptest-regressions"))]

    #[test]
    fn nothing_is_lost_under_faults_upgrades_and_adversaries(
        actions in prop::collection::vec(action(), 1..=env("CHAOS_STEPS", 30) as usize)
    ) {
        let mut world = World::with_honest();
        world.apply(&Action::Cheat { auditor_lies: false });
        world.run(&actions);
        world.check_first_cheat_overturned();
        CASES.fetch_add(1, Ordering::Relaxed);
        report();
    }
}

fn report() {
    eprintln!(
        "chaos: {} XDR-priced submissions, {} jobs paid in cycles, {} rate moves",
        XDR_SUBMITS.load(Ordering::Relaxed),
        CYCLES_JOBS.load(Ordering::Relaxed),
        RATE_MOVES.load(Ordering::Relaxed),
    );
    eprintln!(
        "chaos: {} audits of {} runs: {} agreed, {} overturned, {} inconclusive; {} results rejected; \
         {} lies and {} true one-off results taken; {} cheat jobs; {} day-long waits for an auditor",
        AUDITS.load(Ordering::Relaxed),
        AUDIT_RUNS.load(Ordering::Relaxed),
        AGREED.load(Ordering::Relaxed),
        OVERTURNED.load(Ordering::Relaxed),
        INCONCLUSIVE.load(Ordering::Relaxed),
        RESULTS_REJECTED.load(Ordering::Relaxed),
        LIES.load(Ordering::Relaxed),
        TRUTHS.load(Ordering::Relaxed),
        CHEATS.load(Ordering::Relaxed),
        AUDIT_DAY_JUMPS.load(Ordering::Relaxed),
    );
    eprintln!(
        "chaos: {} cases, {} steps, {} jobs, {} faults, {} upgrades, {} slashes, {} invariant checks passed",
        CASES.load(Ordering::Relaxed),
        STEPS.load(Ordering::Relaxed),
        JOBS.load(Ordering::Relaxed),
        FAULTS.load(Ordering::Relaxed),
        UPGRADES.load(Ordering::Relaxed),
        SLASHES.load(Ordering::Relaxed),
        CHECKS.load(Ordering::Relaxed),
    );
    eprintln!(
        "chaos: {} reservations, {} escrow locks matched to jobs, {} e8s slashed, {} slashes dropped by the matcher, {} executions checked for traps",
        RESERVATIONS.load(Ordering::Relaxed),
        LOCKS.load(Ordering::Relaxed),
        SLASHED.load(Ordering::Relaxed),
        DROPPED.load(Ordering::Relaxed),
        EXECUTIONS.load(Ordering::Relaxed),
    );
    eprintln!(
        "chaos: {} interleavings of {} calls, {} upgrades with calls in flight, {} interleaved calls answered with a reject",
        INTERLEAVINGS.load(Ordering::Relaxed),
        INTERLEAVED_CALLS.load(Ordering::Relaxed),
        UPGRADES_IN_FLIGHT.load(Ordering::Relaxed),
        REJECTED.load(Ordering::Relaxed),
    );
    eprintln!(
        "chaos: attackers made {} calls ({} bytes) from {} throwaway principals and {} funded ones: \
         {} oversized jobs, {} submit-and-cancel rounds, {} floods, {} zombie offers \
         ({} early results refused), {} modules pinned, {} late calls ({} before the timer, {} after \
         their term ended), {} key rotations; {} refusals asserted",
        ATTACK_CALLS.load(Ordering::Relaxed),
        ATTACK_BYTES.load(Ordering::Relaxed),
        STRANGERS.load(Ordering::Relaxed),
        ATTACKERS + 1,
        OVERSIZED.load(Ordering::Relaxed),
        SUBMIT_CANCEL_ROUNDS.load(Ordering::Relaxed),
        FLOODS.load(Ordering::Relaxed),
        ZOMBIE_OFFERS.load(Ordering::Relaxed),
        ZOMBIE_RESULTS_REFUSED.load(Ordering::Relaxed),
        MODULES_PINNED.load(Ordering::Relaxed),
        LATE_CALLS.load(Ordering::Relaxed),
        LATE_BEFORE_TIMER.load(Ordering::Relaxed),
        LATE_TERM_ENDED.load(Ordering::Relaxed),
        ROTATIONS.load(Ordering::Relaxed),
        REFUSALS_ASSERTED.load(Ordering::Relaxed),
    );
    eprintln!(
        "chaos: the claimer took {} jobs, sent {} heartbeat items claiming fuel, and was slashed for {} attempts, paid nothing",
        CLAIMS.load(Ordering::Relaxed),
        CLAIMED_HEARTBEATS.load(Ordering::Relaxed),
        CLAIMS_SLASHED.load(Ordering::Relaxed),
    );
    eprintln!(
        "chaos: the honest provider sent {} heartbeat items and {} results ({} calls retried; {} one-off jobs final and paid), never slashed; \
         {} stable memory checks, highest use {} per mille of a bound's headroom; \
         finished jobs held up to {} bytes in one case",
        HONEST_HEARTBEATS.load(Ordering::Relaxed),
        HONEST_RESULTS.load(Ordering::Relaxed),
        HONEST_RETRIES.load(Ordering::Relaxed),
        HONEST_FINAL.load(Ordering::Relaxed),
        MEMORY_CHECKS.load(Ordering::Relaxed),
        MEMORY_USE_PERMILLE.load(Ordering::Relaxed),
        RETAINED_IF_KEPT.load(Ordering::Relaxed),
    );
    report_cycles();
}

/// Fails if the honest provider or the witness was ever slashed, jailed,
/// recorded as missing a deadline or had a result rejected by an audit.
fn check_honest_not_slashed(registry: &[RegistryEvent], matcher: &[MatcherEvent]) {
    let honest = |p: &Principal| *p == HONEST || *p == WITNESS;
    for e in registry {
        match e {
            RegistryEvent::Slashed {
                provider,
                key,
                amount,
                ..
            } if honest(provider) => {
                panic!("{provider} (honest) was slashed {amount} e8s under {key}")
            }
            RegistryEvent::JailChanged {
                provider,
                jailed: true,
            } if honest(provider) => panic!("{provider} (honest) was jailed"),
            _ => {}
        }
    }
    for e in matcher {
        match e {
            MatcherEvent::DeadlineMissed {
                job_id,
                provider,
                attempt,
                ..
            } if honest(provider) => {
                panic!("{provider} (honest) missed the deadline of job {job_id} attempt {attempt}")
            }
            MatcherEvent::ResultRejected {
                job_id,
                provider,
                attempt,
                ..
            } if honest(provider) => {
                panic!(
                    "{provider}'s (honest) result of job {job_id} attempt {attempt} was rejected"
                )
            }
            _ => {}
        }
    }
}

/// The provider and attempt whose result of job `id` was taken (its
/// `ResultReported` event; a job is reported once).
fn reported_by(matcher: &[MatcherEvent], id: JobId) -> Option<(Principal, u32)> {
    matcher.iter().find_map(|e| match e {
        MatcherEvent::ResultReported {
            job_id,
            provider,
            attempt,
            ..
        } if *job_id == id => Some((*provider, *attempt)),
        _ => None,
    })
}

/// Job `id`'s result was overturned: its provider was slashed for it
/// (`ResultRejected`), and its pay for the job, if it earned any, was
/// forfeited (`PayForfeited`) and never paid out of the lock.
fn check_forfeited(id: JobId, matcher: &[MatcherEvent], escrow: &[EscrowEvent]) {
    let (liar, attempt) = reported_by(matcher, id).expect("an overturned job was reported");
    let earned: Tokens = matcher
        .iter()
        .filter_map(|e| match e {
            MatcherEvent::FuelPaid {
                job_id,
                provider,
                amount,
                ..
            } if *job_id == id && *provider == liar => Some(*amount),
            _ => None,
        })
        .sum();
    let forfeited = matcher.iter().any(|e| {
        matches!(e, MatcherEvent::PayForfeited { job_id, provider, attempt: a }
            if *job_id == id && *provider == liar && *a == attempt)
    });
    assert!(
        earned == 0 || forfeited,
        "job {id}: {liar}'s result was overturned, and it kept the {earned} it earned"
    );
    let key = format!("job/{id}");
    assert!(
        !escrow.iter().any(
            |e| matches!(e, EscrowEvent::PendingPaid { job_key, provider, .. }
            if *job_key == key && *provider == liar)
        ),
        "job {id}: {liar}'s result was overturned, and its pay was paid out"
    );
    assert!(
        matcher.iter().any(
            |e| matches!(e, MatcherEvent::ResultRejected { job_id, provider, attempt: a, .. }
            if *job_id == id && *provider == liar && *a == attempt)
        ),
        "job {id}: {liar}'s result was overturned, and it was not slashed"
    );
}

proptest! {
    #![proptest_config(chaos_config(
        env("CHAOS_CASES", 6) / 2,
        "tests/chaos-reservations.proptest-regressions",
    ))]

    /// The same under reservations: slots held, paid and matched anew, jobs
    /// run in them, extensions, cancellations; strangers refused.
    #[test]
    fn reservations_keep_the_books_under_faults_upgrades_and_adversaries(
        actions in prop::collection::vec(action_with_reservations(), 1..=env("CHAOS_STEPS", 30) as usize)
    ) {
        let mut world = World::with_honest();
        world.apply(&Action::Reserve { buyer: 0, slots: 2, price: 4 });
        world.apply(&Action::Cheat { auditor_lies: false });
        world.run(&actions);
        world.check_first_cheat_overturned();
        CASES.fetch_add(1, Ordering::Relaxed);
        report();
    }
}

/// The market's fee pays for its canisters: over a run of random cases
/// (drawn from a fixed seed, `CHAOS_FEE_CASES` of them, 2 by default, of
/// `CHAOS_STEPS` steps), what the market earned (the fee on providers' pay
/// and the jobs' storage fees, turned into cycles by the matcher's top-ups
/// or still held, see [`World::income_cycles`]) covers every cycle the
/// registry, the escrow and the matcher burned once installed:
/// jobs, audits, slashes, faults and retries, upgrades, the adversaries'
/// refused calls, and their timers.
#[test]
fn the_market_fee_covers_what_its_canisters_burn() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let steps = env("CHAOS_STEPS", 30) as usize;
    let (mut earned, mut burned) = (0u128, 0u128);
    for case in 0..env("CHAOS_FEE_CASES", 2) {
        let actions = prop::collection::vec(action(), steps..=steps)
            .new_tree(&mut runner)
            .expect("actions")
            .current();
        let mut world = World::with_honest();
        world.apply(&Action::Cheat {
            auditor_lies: false,
        });
        world.run(&actions);
        let (e, b) = world.earned_and_burned();
        eprintln!("chaos fee: case {case} earned {e} cycles, burned {b}");
        earned += e;
        burned += b;
    }
    eprintln!(
        "chaos fee: at {} %, the market earned {earned} cycles for the {burned} its canisters burned",
        MARKET_FEE_PPM / 10_000
    );
    assert!(
        earned >= burned,
        "the market earned {earned} cycles and burned {burned}"
    );
}

/// The stable memory bound is tight enough to matter: after 24 rounds of
/// the largest job submitted and cancelled by one attacker (about 29 MiB
/// of specs) the matcher stays within its bound, and a matcher that kept
/// those bytes (as it did before a finished job dropped its input) could
/// not: even if the jobs' memory had a whole bucket free at the start, the
/// bytes kept would take it past the bound.
#[test]
fn the_memory_bound_is_tight_enough_to_catch_kept_inputs() {
    let mut world = World::with_honest();
    world.steps(&vec![
        Action::SubmitCancel {
            attacker: 0,
            rounds: 3
        };
        8
    ]);
    let matcher = world.net.ids.matcher;
    let (base, most) = world.memory[&matcher];
    let bound = memory_bound(base, most, 2);
    let size = world.net.devnet().stable_memory_size(matcher).unwrap() as u64;
    let kept: u64 = world.spec_bytes.values().sum();
    eprintln!(
        "matcher stable memory {size} bytes from {base}; bound {bound}; \
         finished jobs' specs {kept} bytes"
    );
    assert_eq!(world.spec_bytes.len(), 24, "every round submitted a job");
    assert!(size <= bound);
    assert!(
        base + kept - BUCKET > bound,
        "{kept} bytes kept would still fit the bound of {bound}"
    );
}

/// RELIABILITY.md's finding 1, replayed with its shrunk actions: the
/// ledger rejects the escrow's call during `notify_deposit`, so the pushed
/// tokens wait in the buyer's deposit account (the audit names them)
/// until the buyer notifies again, as `finish` does; then the books close.
#[test]
fn a_push_deposit_whose_notify_failed_waits_to_be_notified_again() {
    let mut world = World::with_offers();
    world.steps(&[
        Action::Fault {
            target: Target::Ledger,
            kind: Kind::Reject,
        },
        Action::PushDeposit { buyer: 0 },
    ]);
    let net = &world.net;
    let to: market_api::Account = net
        .query(net.ids.escrow, "deposit_account", &buyer(0))
        .unwrap();
    assert_eq!(net.balance(to).unwrap(), ICP, "the pushed tokens wait");
    let e = net.audit().unwrap_err().to_string();
    assert!(e.contains("sits in deposit accounts, not notified"), "{e}");
    world.finish();
    assert_eq!(world.net.balance(to).unwrap(), 0, "notified again");
}

/// RELIABILITY.md's finding 2, replayed with its shrunk actions: the
/// matcher's timer run after a submission traps (the fault hits its
/// self-call). The job, matched at once and never heartbeated, must still
/// miss its deadline, be slashed and fail, not stay assigned for ever.
#[test]
fn a_lost_timer_run_still_fails_the_silent_job() {
    let mut world = World::with_offers();
    world.steps(&[
        Action::Fault {
            target: Target::Matcher,
            kind: Kind::Trap,
        },
        Action::Submit {
            xdr: false,
            buyer: 0,
            price: 2,
            retries: 0,
        },
    ]);
    let (_, id) = world.jobs[0];
    let logs = world.net.devnet().canister_logs(world.net.ids.matcher);
    assert!(
        logs.iter()
            .any(|l| l.contains("injected fault in '<ic-cdk internal> timer_executor'")),
        "the fault hit the timer run: {logs:?}"
    );
    world.finish();
    let net = &world.net;
    let job: Option<Job> = net.query(net.ids.matcher, "get_job", &id).unwrap();
    assert_eq!(job.unwrap().status, market_api::matcher::JobStatus::Failed);
    assert_eq!(net.audit().unwrap().slashes, 1);
}

/// RELIABILITY.md's finding 5, replayed with its shrunk actions (after the
/// reservations test's first reservation): the escrow's answer to an
/// extension is lost. The matcher must retry it until the escrow answers
/// and apply it once, so that the reservation and its lock agree.
#[test]
fn an_extension_whose_answer_is_lost_is_applied_once() {
    let mut world = World::with_offers();
    world.apply(&Action::Reserve {
        buyer: 0,
        slots: 2,
        price: 4,
    });
    let (_, rid) = world.reservations[0];
    world.steps(&[
        Action::Submit {
            xdr: false,
            buyer: 0,
            price: 1,
            retries: 0,
        },
        Action::Fault {
            target: Target::Escrow,
            kind: Kind::Unknown,
        },
        Action::Extend {
            nth: 0,
            intervals: 1,
        },
    ]);
    // The escrow applied the extension when its answer was lost.
    assert_eq!(locks_extended(&world.net, rid), 1);
    world.finish();
    let net = &world.net;
    assert_eq!(
        locks_extended(net, rid),
        1,
        "applied once, however often asked"
    );
    let r: Option<Reservation> = net.query(net.ids.matcher, "get_reservation", &rid).unwrap();
    let r = r.unwrap();
    assert_eq!(
        r.spec.intervals, 5,
        "four intervals and the extension's one"
    );
    // The audit (run by `finish`) found the lock equal to `r.locked`.
    assert_eq!(
        r.locked,
        with_fee(5 * 2 * 400_000),
        "five intervals of two slots at 4 x 100,000, and the market's fee"
    );
}

/// RELIABILITY.md's finding 7, replayed with the reservations
/// test's shrunk actions (after its first reservation): an extension and a
/// submission go in at once; the extension's ingress message runs (the
/// matcher records the extension as pending and calls the escrow's
/// `extend_lock`), then the matcher is upgraded before the escrow's answer
/// comes back, so the callback is dropped. The escrow extends the lock; the
/// matcher must still apply the extension once (or learn it was refused),
/// as it does for an answer lost to a fault (finding 5).
#[test]
fn an_extension_whose_callback_an_upgrade_dropped_is_applied_once() {
    let mut world = World::with_offers();
    world.apply(&Action::Reserve {
        buyer: 0,
        slots: 2,
        price: 4,
    });
    let (_, rid) = world.reservations[0];
    world.steps(&[Action::Interleave {
        calls: vec![
            Action::Extend {
                nth: 0,
                intervals: 1,
            },
            Action::Submit {
                xdr: false,
                buyer: 0,
                price: 1,
                retries: 0,
            },
        ],
        delivered: 1,
        upgrade: Some(Target::Matcher),
    }]);
    assert_eq!(
        locks_extended(&world.net, rid),
        1,
        "the escrow extended the lock"
    );
    // Before the fix the audit failed here: the reservation said 3,200,000
    // locked, its lock held 4,000,000.
    world.finish();
    let net = &world.net;
    assert_eq!(locks_extended(net, rid), 1, "applied once");
    let r: Option<Reservation> = net.query(net.ids.matcher, "get_reservation", &rid).unwrap();
    let r = r.unwrap();
    assert_eq!(
        r.spec.intervals, 5,
        "four intervals and the extension's one"
    );
    assert_eq!(r.locked, with_fee(5 * 2 * 400_000));
}

/// A lock for `cost` with the market's fee on it.
fn with_fee(cost: Tokens) -> Tokens {
    market_api::matcher::with_market_fee(cost, MARKET_FEE_PPM).unwrap()
}

/// How many times the escrow extended reservation `rid`'s lock.
fn locks_extended(net: &MarketFixture, rid: u64) -> usize {
    events::<EscrowEvent>(net, net.ids.escrow)
        .iter()
        .filter(|e| matches!(e, EscrowEvent::LockExtended { job_key, .. } if *job_key == format!("job/{rid}")))
        .count()
}

/// The trap check fails a step on a trap in a canister's own code: here
/// the matcher cannot decode an argument.
#[test]
#[should_panic(expected = "matcher trapped in canister_update submit_job")]
fn a_trap_in_a_canister_fails_the_step() {
    let world = World::with_offers();
    let nat = candid::encode_one(42u64).unwrap();
    let r = world
        .net
        .devnet()
        .update_call(world.net.ids.matcher, buyer(0), "submit_job", nat);
    assert!(r.is_err(), "a number is not a job spec");
    world.check_traps();
}

/// RELIABILITY.md's finding 6: a missed deadline whose slash meets a
/// transient ledger error. The registry reads the ledger's fee first; that
/// call is rejected, trapped or its outcome lost; the registry answers
/// `Err(Ledger(..))`, and the matcher takes it as a final refusal and never
/// asks again. The provider keeps its stake and the buyer gets nothing for
/// the missed deadline; the audit, which compares the slashes made, passes.
/// Replays the hand-made sequence for each fault kind, then the two the
/// randomized tests shrank to (`CHAOS_CASES=100 CHAOS_STEPS=60`, with the
/// reservations test's first reservation for the second); each fails on
/// the dropped slash until the matcher retries such refusals.
#[test]
fn a_slash_meeting_a_ledger_fault_is_not_dropped() {
    let submit = |price| Action::Submit {
        xdr: false,
        buyer: 0,
        price,
        retries: 0,
    };
    let ledger_fault = |kind| Action::Fault {
        target: Target::Ledger,
        kind,
    };
    // (what, reserve first, actions); the deadline is 30 s (the interval)
    // and 10 s (the grace) after the assignment.
    let mut cases: Vec<(String, bool, Vec<Action>)> = [Kind::Reject, Kind::Unknown, Kind::Trap]
        .into_iter()
        .map(|kind| {
            let actions = vec![
                submit(2),
                Action::Advance { secs: 35 },
                ledger_fault(kind),
                Action::Advance { secs: 10 },
            ];
            (
                format!("a ledger {kind:?} just before the deadline"),
                false,
                actions,
            )
        })
        .collect();
    cases.push((
        "the first test's shrunk case".into(),
        false,
        vec![
            ledger_fault(Kind::Reject),
            submit(2),
            Action::Advance { secs: 40 },
        ],
    ));
    cases.push((
        "the reservations test's shrunk case".into(),
        true,
        vec![
            submit(1),
            ledger_fault(Kind::Reject),
            Action::Advance { secs: 40 },
        ],
    ));
    let mut dropped = vec![];
    for (what, reserve, actions) in cases {
        let run = std::panic::catch_unwind(|| {
            let mut world = World::with_offers();
            if reserve {
                world.apply(&Action::Reserve {
                    buyer: 0,
                    slots: 2,
                    price: 4,
                });
            }
            world.run(&actions);
        });
        if let Err(panic) = run {
            let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
            if !message.contains("the matcher dropped a slash") {
                std::panic::resume_unwind(panic);
            }
            dropped.push(what);
        }
    }
    assert!(dropped.is_empty(), "slashes dropped in: {dropped:?}");
}

/// An injected trap is the devnet's reject, not a trap of the callee: the
/// submission whose lock call it hits is retried by the outbox, and no step
/// fails.
#[test]
fn an_injected_trap_is_not_taken_for_a_canister_trap() {
    let mut world = World::with_offers();
    world.steps(&[
        Action::Fault {
            target: Target::Escrow,
            kind: Kind::Trap,
        },
        Action::Submit {
            xdr: false,
            buyer: 0,
            price: 4,
            retries: 0,
        },
    ]);
    assert_eq!(world.jobs.len(), 1, "the lock's answer is retried");
    world.finish();
}

/// The claimer on its own: the patron's job goes to it, it heartbeats all
/// the fuel its speed allows (paid into its pending balance) and never
/// reports; its attempt is slashed at the deadline and forfeits that pay,
/// and the patron's lock comes back whole (see [`World::check_claims`],
/// which `finish` runs).
#[test]
fn a_provider_claiming_fuel_without_results_is_slashed_and_paid_nothing() {
    let mut world = World::with_honest();
    world.steps(&[
        Action::Claim,
        Action::Advance { secs: 60 },
        Action::Advance { secs: 60 },
    ]);
    let net = &world.net;
    let claimed: Tokens = events::<MatcherEvent>(net, net.ids.matcher)
        .into_iter()
        .filter_map(|e| match e {
            MatcherEvent::FuelPaid {
                provider, amount, ..
            } if provider == CLAIMER => Some(amount),
            _ => None,
        })
        .sum();
    assert!(claimed > 0, "the claimer's heartbeats were paid nothing");
    let held: Vec<(JobId, u32)> = world
        .assigned
        .iter()
        .filter(|(_, (p, _))| *p == CLAIMER)
        .map(|(k, _)| *k)
        .collect();
    assert_eq!(held.len(), 1, "the claimer took the patron's job");
    world.finish();
}

/// The registry's slash keys of `provider`.
fn slash_keys(net: &MarketFixture, of: Principal) -> Vec<String> {
    events::<RegistryEvent>(net, net.ids.registry)
        .into_iter()
        .filter_map(|e| match e {
            RegistryEvent::Slashed { key, provider, .. } if provider == of => Some(key),
            _ => None,
        })
        .collect()
}

/// (9) on its own: the cheater runs the cheat job and lies; the honest
/// provider and the witness audit it (in the order the matcher draws
/// them), both with the truth. The lie is overturned and replaced by the truth, the cheater
/// slashed its bond and paid nothing, both auditors paid from the job's
/// lock (see [`World::check_audits_ended`] and
/// [`World::check_honest_paid`], which `finish` runs).
#[test]
fn a_lie_is_overturned_by_an_honest_audit_and_tie_break() {
    let mut world = World::with_honest();
    world.steps(&[
        Action::Cheat {
            auditor_lies: false,
        },
        Action::Advance { secs: 90 },
        Action::Advance { secs: 90 },
        Action::Advance { secs: 90 },
    ]);
    let net = &world.net;
    let id = world.cheats[0];
    let job: Option<Job> = net.query(net.ids.matcher, "get_job", &id).unwrap();
    let job = job.unwrap();
    let audit = job.audit.clone().unwrap();
    assert_eq!(audit.verdict, Some(AuditVerdict::Overturned));
    // The matcher draws each run's auditor among the offers that may
    // take it: the honest provider's and the witness's, in either order.
    let runs: BTreeSet<Option<Principal>> = audit
        .runs
        .iter()
        .map(|r| {
            let run: Option<Job> = net.query(net.ids.matcher, "get_job", r).unwrap();
            run.unwrap().provider
        })
        .collect();
    assert_eq!(runs, BTreeSet::from([Some(HONEST), Some(WITNESS)]));
    let (_, attempt) =
        reported_by(&events::<MatcherEvent>(net, net.ids.matcher), id).expect("reported");
    assert_eq!(
        slash_keys(net, CHEATER),
        vec![format!("job/{id}/caught/{attempt}")]
    );
    let judged = &world.reported[&(id, attempt)];
    assert_eq!(job.result.unwrap().commitment(), judged.truth);
    world.finish();
}

/// (9) with a lying auditor: the honest provider runs the cheat job and
/// tells the truth; the cheater audits it (the witness's offer is away
/// until then, so the cheater is the only auditor to draw) and lies; the
/// witness breaks the tie with the truth. The result stands, the cheater
/// is slashed its audit run's bond and paid nothing, the witness is paid.
#[test]
fn a_lying_auditor_loses_the_tie_break() {
    let mut world = World::with_honest();
    world.steps(&[Action::Cheat { auditor_lies: true }]);
    let id = world.cheats[0];
    let witness_offer = |w: &World| -> Vec<Offer> {
        w.net
            .query(w.net.ids.matcher, "offers_of", &WITNESS)
            .unwrap()
    };
    let away = witness_offer(&world)[0].clone();
    let r: Option<Result<(), MatcherError>> = world.matcher(WITNESS, "withdraw_offer", &away.id);
    assert_eq!(r, Some(Ok(())));
    let mut audited = false;
    for _ in 0..12 {
        world.advance(10);
        let held = world.net.assignments(CHEATER).unwrap();
        if held.iter().any(|a| a.job_id != id) {
            audited = true;
            break;
        }
    }
    assert!(audited, "the cheater took job {id}'s audit run");
    world.net.post_offer(WITNESS, &away.spec).unwrap();
    world.steps(&[
        Action::Advance { secs: 90 },
        Action::Advance { secs: 90 },
        Action::Advance { secs: 90 },
    ]);
    let net = &world.net;
    let job: Option<Job> = net.query(net.ids.matcher, "get_job", &id).unwrap();
    let job = job.unwrap();
    assert_eq!(job.provider, Some(HONEST));
    let audit = job.audit.clone().unwrap();
    assert_eq!(audit.verdict, Some(AuditVerdict::Agreed));
    let runs: Vec<(JobId, Option<Principal>)> = audit
        .runs
        .iter()
        .map(|r| {
            let run: Option<Job> = net.query(net.ids.matcher, "get_job", r).unwrap();
            (*r, run.unwrap().provider)
        })
        .collect();
    assert_eq!(
        runs.iter().map(|r| r.1).collect::<Vec<_>>(),
        vec![Some(CHEATER), Some(WITNESS)]
    );
    assert_eq!(
        slash_keys(net, CHEATER),
        vec![format!("job/{}/caught/1", runs[0].0)]
    );
    world.finish();
}
