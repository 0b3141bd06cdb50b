//! Types of the matcher canister: modules, offers, bids (jobs), assignments,
//! heartbeats and results.

use crate::prices::{Currency, PriceConversion, XdrTerms};
use crate::{JobId, OfferId, Principal, Tokens};
use candid::{CandidType, Deserialize};
use serde::Serialize;

/// Largest job input, in bytes.
pub const MAX_INPUT_BYTES: usize = 1024 * 1024;
/// Largest job output kept by the matcher, in bytes.
pub const MAX_OUTPUT_BYTES: usize = 1024 * 1024;
/// Largest chunk of a module upload or download, in bytes (under the 2 MiB message limit).
pub const MAX_CHUNK_BYTES: usize = 1024 * 1024;
/// Largest job module, in bytes.
pub const MAX_MODULE_BYTES: usize = 16 * 1024 * 1024;
/// Most args or env entries of a job.
pub const MAX_ARGS: usize = 64;
/// Longest arg, env name or env value, in bytes.
pub const MAX_ARG_LEN: usize = 1024;
/// Most memory a job or reserved slot may ask for, in MiB: all a wasm32
/// module can address.
pub const MAX_JOB_MEMORY_MIB: u32 = 4_096;
/// Most fuel a reserved slot may ask for per interval.
pub const MAX_FUEL_PER_INTERVAL: u64 = 100_000_000_000_000;
/// Most fuel a job may ask for: about eleven days at a billion fuel a second.
pub const MAX_JOB_FUEL: u64 = 1_000_000_000_000_000;
/// Fuel a price per billion fuel is quoted for.
pub const GFUEL: u64 = 1_000_000_000;
/// How long a job's result stays open to challenge when the matcher's
/// configuration does not say (`MatcherInit::challenge_window_secs`).
pub const DEFAULT_CHALLENGE_WINDOW_SECS: u64 = 3_600;
/// When a bid names no deadline, an attempt may take this many times as
/// long as its fuel budget needs at the provider's declared speed, plus one
/// heartbeat interval.
pub const DEADLINE_MARGIN: u64 = 2;
/// Most modules one principal may have in the store, used or not.
pub const MAX_MODULES_PER_UPLOADER: u32 = 32;
/// How long a finished one-off job is kept (with its result) before it is
/// deleted; its events stay in the log. Its input, args and env are dropped
/// as soon as it finishes.
pub const FINISHED_JOB_RETENTION_SECS: u64 = 30 * 86_400;
/// How long a job's bid may rest in the book unmatched before the job
/// expires and its lock is refunded: a bid no offer will take does not hold
/// its funds, or its module in the store, for ever.
pub const MAX_RESTING_SECS: u64 = 86_400;

/// A sha256 digest.
pub type Sha256 = [u8; 32];

/// Init and upgrade argument of the matcher canister.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct MatcherInit {
    /// The registry canister.
    pub registry: Principal,
    /// The escrow canister.
    pub escrow: Principal,
    /// Extra time after an interval before a missing heartbeat counts as missed.
    pub grace_secs: u64,
    /// Stake bonded per job, as a multiple of one interval's price.
    pub bond_multiple: u32,
    /// Amount slashed for one missed deadline, as a multiple of one interval's price.
    pub slash_multiple: u32,
    /// The ledger stakes (and so slash payouts) are in: the registry's ledger.
    pub stake_ledger: Principal,
    /// The smallest slash for a missed deadline, whatever the job's price
    /// (default 100 000, ten ICP ledger fees). Set it well above the stake ledger's
    /// fee: the registry moves nothing for a slash at or below the fee, so
    /// without a floor a provider pricing low enough could miss deadlines
    /// for free.
    #[serde(default)]
    pub min_slash: Option<Tokens>,
    /// How long a one-off job's result stays open to challenge before its
    /// provider's pending pay becomes claimable and the rest of the lock
    /// goes back to the buyer (default [`DEFAULT_CHALLENGE_WINDOW_SECS`]).
    #[serde(default)]
    pub challenge_window_secs: Option<u64>,
    /// The least probability that a one-off job's result is audited (run
    /// again by another provider and compared), in parts per million
    /// (default [`DEFAULT_MIN_AUDIT_PPM`], at most [`AUDIT_ALWAYS_PPM`]). A
    /// bid may ask for more. A job's bond covers its value divided by its
    /// probability, so a lie's expected slash exceeds what it earns. 0
    /// turns random audits off (a test market): only jobs whose bids ask
    /// for audits are audited or may be disputed, and nothing makes a lie
    /// in the others unprofitable.
    #[serde(default)]
    pub min_audit_ppm: Option<u32>,
    /// How often each acknowledged replica of a service is probed, in
    /// seconds (default `DEFAULT_PROBE_INTERVAL_SECS`, from
    /// `MIN_PROBE_INTERVAL_SECS` to a day).
    #[serde(default)]
    pub probe_interval_secs: Option<u64>,
    /// Failed probes in a row that count as a missed heartbeat deadline
    /// (default `DEFAULT_PROBE_FAILURES`, 1 to `MAX_PROBE_FAILURES`).
    #[serde(default)]
    pub probe_failures: Option<u32>,
    /// What one probe costs a service lease, in its ledger's smallest unit
    /// (default `DEFAULT_PROBE_FEE`): locked with the lease and paid to
    /// the matcher's own escrow account for the probes made when it
    /// settles. Fees are in the lease's token for now; valuing them in XDR
    /// (cycles) is to come.
    #[serde(default)]
    pub probe_fee: Option<Tokens>,
    /// How tokens are valued: XDR prices, and the ledgers besides the
    /// stake ledger that jobs may pay with. `None`: only the stake
    /// ledger's token, priced in its own units.
    #[serde(default)]
    pub pricing: Option<crate::prices::PricingConfig>,
    /// The market's fee, in parts per million of the provider's pay, on
    /// top of it in the token the buyer pays with (default 0, at most
    /// [`MAX_MARKET_FEE_PPM`]; controllers change it with
    /// `set_market_fee`). A job's lock holds its maximum cost plus
    /// [`market_fee_ceil`] of it; each release pays the provider its pay
    /// and the market [`market_fee_floor`] of it, so the fees never
    /// exceed what was locked for them. A job (or reservation) pays the
    /// rate in force when it was submitted. The fees collect in the
    /// matcher's escrow balance; ICP fees are turned into cycles.
    #[serde(default)]
    pub market_fee_ppm: Option<u32>,
    /// Turning the market's ICP into cycles (`None`: it accumulates).
    #[serde(default)]
    pub cycles_top_up: Option<CyclesTopUpConfig>,
    /// The vetKD key private jobs are sealed with (see [`crate::privacy`]);
    /// `None`: the market takes no sealed jobs or services.
    #[serde(default)]
    pub privacy: Option<crate::privacy::PrivacyConfig>,
    /// The SNS governance canister that administers this canister beside
    /// its controllers, once the market is handed to an SNS: its adopted
    /// proposals call the controllers-only methods (see
    /// `canister_common::admin`).
    #[serde(default)]
    pub governance: Option<Principal>,
}

/// [`MatcherInit::probe_interval_secs`] when unset.
pub const DEFAULT_PROBE_INTERVAL_SECS: u64 = 60;
/// The shortest probe interval: an outcall costs some 70 M cycles.
pub const MIN_PROBE_INTERVAL_SECS: u64 = 10;
/// [`MatcherInit::probe_failures`] when unset.
pub const DEFAULT_PROBE_FAILURES: u32 = 3;
/// The most failed probes in a row a configuration may tolerate.
pub const MAX_PROBE_FAILURES: u32 = 100;
/// [`MatcherInit::probe_fee`] when unset: 4 000 e8s (0.00004 ICP). A probe
/// costs at most 73.2 M cycles on a 13-node subnet
/// ([`crate::outcall::http_request_cycles`] of a 527-byte request, the
/// longest endpoint and health path, and a 2 KiB response), 0.0000732 XDR;
/// at 2 XDR per ICP (below the rate of recent years, so the fee covers the
/// cycles when ICP is cheap) that is 3 660 e8s, rounded up. For a ledger
/// whose unit is not an e8 (the cycles ledger, say), set the fee.
pub const DEFAULT_PROBE_FEE: Tokens = 4_000;

/// [`MatcherInit::min_audit_ppm`] when unset: one result in twenty.
pub const DEFAULT_MIN_AUDIT_PPM: u32 = 50_000;
/// An audit probability of one: every result is audited.
pub const AUDIT_ALWAYS_PPM: u32 = 1_000_000;

/// [`MatcherInit::min_slash`] when unset: ten ICP ledger fees.
pub const DEFAULT_MIN_SLASH: Tokens = 100_000;

/// How the matcher turns the market's ICP (its escrow balance on the
/// stake ledger: market and storage fees) into cycles: once the balance
/// reaches `threshold`, it withdraws it to its own account, sends it to
/// the cycles minting canister's account for the next canister in turn
/// (registry, escrow, matcher) with the memo TPUP and calls
/// `notify_top_up`. Other tokens' fees accumulate.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct CyclesTopUpConfig {
    /// The cycles minting canister (`rkp4c-7iaaa-aaaaa-aaaca-cai` on
    /// mainnet).
    pub cmc: Principal,
    /// The balance, in e8s, from which a top-up starts: at least
    /// [`MIN_TOP_UP_THRESHOLD`] (the CMC wants 0.001 ICP, and the two
    /// ledger fees of the way come out of it).
    pub threshold: Tokens,
}

/// The least [`CyclesTopUpConfig::threshold`]: 0.002 ICP.
pub const MIN_TOP_UP_THRESHOLD: Tokens = 200_000;

/// The highest market fee a configuration may set: 10 % of the
/// provider's pay (100 000 parts per million).
pub const MAX_MARKET_FEE_PPM: u32 = 100_000;

/// The market's fee on `amount` at `fee_ppm` parts per million, rounded
/// up: what a lock sets aside for the fees on pay of up to `amount`.
/// `None` on overflow.
pub fn market_fee_ceil(amount: Tokens, fee_ppm: u32) -> Option<Tokens> {
    let (whole, rest) = fee_parts(amount, fee_ppm)?;
    whole.checked_add(rest.div_ceil(1_000_000))
}

/// `amount` × `fee_ppm` as (the part in whole millions of `amount`, the
/// rest still to divide by a million), computed without overflow for any
/// rate up to a million parts per million.
fn fee_parts(amount: Tokens, fee_ppm: u32) -> Option<(Tokens, Tokens)> {
    let ppm = Tokens::from(fee_ppm);
    let whole = (amount / 1_000_000).checked_mul(ppm)?;
    Some((whole, (amount % 1_000_000) * ppm))
}

/// The market's fee on one release of `amount`, rounded down, so the fees
/// of any releases never exceed [`market_fee_ceil`] of their sum. `None`
/// on overflow.
pub fn market_fee_floor(amount: Tokens, fee_ppm: u32) -> Option<Tokens> {
    let (whole, rest) = fee_parts(amount, fee_ppm)?;
    whole.checked_add(rest / 1_000_000)
}

/// What a lock for pay of up to `cost` holds: `cost` plus
/// [`market_fee_ceil`] of it. `None` on overflow.
pub fn with_market_fee(cost: Tokens, fee_ppm: u32) -> Option<Tokens> {
    cost.checked_add(market_fee_ceil(cost, fee_ppm)?)
}

impl MatcherInit {
    /// A matcher working with `registry`, `escrow` and the stakes of
    /// `stake_ledger`, allowing `grace_secs` past an interval: a bond and a
    /// slash of one interval's price, every other setting at its default.
    pub fn new(
        registry: Principal,
        escrow: Principal,
        stake_ledger: Principal,
        grace_secs: u64,
    ) -> Self {
        MatcherInit {
            registry,
            escrow,
            grace_secs,
            bond_multiple: 1,
            slash_multiple: 1,
            stake_ledger,
            min_slash: None,
            challenge_window_secs: None,
            min_audit_ppm: None,
            probe_interval_secs: None,
            probe_failures: None,
            probe_fee: None,
            pricing: None,
            privacy: None,
            governance: None,
            market_fee_ppm: None,
            cycles_top_up: None,
        }
    }

    /// The smallest slash for a missed deadline.
    pub fn min_slash(&self) -> Tokens {
        self.min_slash.unwrap_or(DEFAULT_MIN_SLASH)
    }

    /// How long a result stays open to challenge.
    pub fn challenge_window_secs(&self) -> u64 {
        self.challenge_window_secs
            .unwrap_or(DEFAULT_CHALLENGE_WINDOW_SECS)
    }

    /// The least audit probability of a one-off job, in parts per million.
    pub fn min_audit_ppm(&self) -> u32 {
        self.min_audit_ppm
            .unwrap_or(DEFAULT_MIN_AUDIT_PPM)
            .min(AUDIT_ALWAYS_PPM)
    }

    /// How often each acknowledged replica of a service is probed.
    pub fn probe_interval_secs(&self) -> u64 {
        self.probe_interval_secs
            .unwrap_or(DEFAULT_PROBE_INTERVAL_SECS)
    }

    /// Failed probes in a row that count as a missed heartbeat deadline.
    pub fn probe_failures(&self) -> u32 {
        self.probe_failures.unwrap_or(DEFAULT_PROBE_FAILURES)
    }

    /// What one probe costs a service lease.
    pub fn probe_fee(&self) -> Tokens {
        self.probe_fee.unwrap_or(DEFAULT_PROBE_FEE)
    }

    /// The market's fee in parts per million of the provider's pay.
    pub fn market_fee_ppm(&self) -> u32 {
        self.market_fee_ppm.unwrap_or(0)
    }

    /// Checks the configuration: an audit probability is at most one, a
    /// bond at least the job's value (so a caught lie always costs more
    /// than the job paid), and probes neither too frequent nor too
    /// lenient.
    pub fn check(&self) -> Result<(), String> {
        if self
            .probe_interval_secs
            .is_some_and(|s| !(MIN_PROBE_INTERVAL_SECS..=86_400).contains(&s))
        {
            return Err(format!(
                "probe_interval_secs is from {MIN_PROBE_INTERVAL_SECS} to 86400"
            ));
        }
        if self
            .probe_failures
            .is_some_and(|n| n == 0 || n > MAX_PROBE_FAILURES)
        {
            return Err(format!("probe_failures is from 1 to {MAX_PROBE_FAILURES}"));
        }
        if self.min_audit_ppm.is_some_and(|p| p > AUDIT_ALWAYS_PPM) {
            return Err(format!(
                "min_audit_ppm is at most {AUDIT_ALWAYS_PPM} (always)"
            ));
        }
        if self.bond_multiple == 0 {
            return Err("bond_multiple must be at least 1".into());
        }
        if self.market_fee_ppm.is_some_and(|p| p > MAX_MARKET_FEE_PPM) {
            return Err(format!("market_fee_ppm is at most {MAX_MARKET_FEE_PPM}"));
        }
        if self
            .cycles_top_up
            .as_ref()
            .is_some_and(|t| t.threshold < MIN_TOP_UP_THRESHOLD)
        {
            return Err(format!(
                "cycles_top_up.threshold is at least {MIN_TOP_UP_THRESHOLD}"
            ));
        }
        if let Some(p) = &self.pricing {
            p.check(self.stake_ledger)?;
        }
        if let Some(p) = &self.privacy {
            p.check()?;
        }
        Ok(())
    }
}

/// The seed of a job's deterministic random sources (its clocks and random
/// bytes): a function of the job's id, so anyone re-running the job derives
/// the same one. An audit run is given the seed of the job it re-runs.
pub fn job_seed(job_id: JobId) -> Sha256 {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(b"market-job-seed");
    h.update(job_id.to_le_bytes());
    h.finalize().into()
}

/// What `fuel` costs at `price_per_gfuel` per billion fuel, rounded down:
/// what a provider is paid for it. `None` if it overflows.
pub fn fuel_cost(fuel: u64, price_per_gfuel: Tokens) -> Option<Tokens> {
    Tokens::from(fuel)
        .checked_mul(price_per_gfuel)
        .map(|t| t / Tokens::from(GFUEL))
}

/// What `fuel` costs at `price_per_gfuel`, rounded up: what a buyer locks
/// for a budget, never less than any bill for that fuel at that price.
pub fn fuel_cost_ceil(fuel: u64, price_per_gfuel: Tokens) -> Option<Tokens> {
    Tokens::from(fuel)
        .checked_mul(price_per_gfuel)
        .map(|t| t.div_ceil(Tokens::from(GFUEL)))
}

/// The wall-clock time one attempt of a job with `fuel` may take at a
/// provider declaring `fuel_per_sec`: the bid's own deadline if it names
/// one, else [`DEADLINE_MARGIN`] times what the budget needs at that speed
/// plus one heartbeat interval.
pub fn attempt_secs(
    fuel: u64,
    fuel_per_sec: u64,
    deadline_secs: Option<u64>,
    interval_secs: u64,
) -> u64 {
    deadline_secs.unwrap_or_else(|| {
        fuel.div_ceil(fuel_per_sec.max(1))
            .saturating_mul(DEADLINE_MARGIN)
            .saturating_add(interval_secs)
    })
}

/// Arguments of `begin_module_upload`.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct ModuleUpload {
    /// The module's sha256, checked when the upload is committed.
    pub sha256: Sha256,
    /// The module's size in bytes.
    pub size: u64,
}

/// A module in the store.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct ModuleInfo {
    /// Its sha256.
    pub sha256: Sha256,
    /// Its size in bytes.
    pub size: u64,
    /// Number of chunks to download.
    pub chunks: u32,
    /// Whether it is complete and verified.
    pub committed: bool,
    /// Jobs using it.
    pub refs: u64,
}

/// Book depth of one ledger: one book per unit a price is quoted in.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct BookDepth {
    /// One-off jobs' bids per price per billion fuel, highest first.
    pub bids: Vec<PriceLevel>,
    /// Free offer slots per price per billion fuel, lowest first.
    pub asks: Vec<PriceLevel>,
    /// Reserved slots' bids per price per interval, highest first.
    pub slot_bids: Vec<PriceLevel>,
    /// Free offer slots per price per interval, lowest first.
    pub slot_asks: Vec<PriceLevel>,
}

/// What a price is quoted per.
#[derive(
    CandidType, Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord,
)]
pub enum PriceUnit {
    /// Per billion fuel: one-off jobs.
    Gfuel,
    /// Per interval: reserved slots.
    Interval,
}

/// Where a job's module comes from.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub enum ModuleSource {
    /// Stored in the matcher's module store under its sha256.
    Stored { sha256: Sha256 },
    /// Fetched by the provider from a URL and checked against the sha256.
    Url { url: String, sha256: Sha256 },
}

/// Resource limits of a job.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct JobLimits {
    /// Linear memory limit in MiB.
    pub memory_mib: u32,
    /// The fuel budget (deterministic instruction count) of a run: the
    /// most it may use, and so the most a one-off job is billed for. For a
    /// reserved slot's record, the fuel per interval the slot offers.
    pub fuel: u64,
}

/// A buyer's bid: everything needed to run and pay for a job.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct JobSpec {
    /// The WASI command module to run.
    pub module: ModuleSource,
    /// Bytes given to the job on stdin.
    #[serde(with = "serde_bytes")]
    pub input: Vec<u8>,
    /// Command-line arguments (argv[1..]).
    pub args: Vec<String>,
    /// Environment variables.
    pub env: Vec<(String, String)>,
    /// Resource limits: memory, and the fuel budget the job is billed by.
    pub limits: JobLimits,
    /// Highest price per billion fuel the buyer accepts (ignored for a job
    /// in a reservation, which its slot pays for), in `currency`.
    pub max_price_per_gfuel: Tokens,
    /// What the price is counted in (`None`: the ledger's token). An XDR
    /// price (in cycles) is matched with XDR offers and paid in `ledger`'s
    /// token at the rate of the day: see [`crate::prices`].
    #[serde(default)]
    pub currency: Option<Currency>,
    /// The wall-clock time one attempt may take, from the assignment's
    /// bond holding to its result; `None`: derived from the fuel budget
    /// and the provider's declared speed (see [`attempt_secs`]). An offer
    /// too slow to run the budget in time is not matched.
    pub deadline_secs: Option<u64>,
    /// A heartbeat is due each interval while the job runs.
    pub interval_secs: u64,
    /// Ledger to pay with.
    pub ledger: Principal,
    /// Smallest provider stake the buyer accepts.
    pub min_provider_stake: Tokens,
    /// The track record a provider must have to be given the job (none:
    /// any provider).
    pub min_record: Option<crate::registry::RecordRequirement>,
    /// How many times the job is re-queued after a provider fails it.
    pub max_retries: u32,
    /// A method on the calling canister to receive the result, if any.
    pub callback: Option<String>,
    /// The probability that the result is audited, in parts per million
    /// ([`AUDIT_ALWAYS_PPM`]: always); the market's minimum applies if this
    /// is lower or unset. An audit runs the job again on another provider,
    /// paid from the lock, which holds a second budget for it.
    pub audit_ppm: Option<u32>,
    /// What of the job is sealed to its key (see [`crate::privacy`]):
    /// its input, a secret env, its output. `None`: nothing is.
    #[serde(default)]
    pub sealed: Option<crate::privacy::Sealed>,
}

impl JobSpec {
    /// The most a one-off job's run can cost: its fuel budget at its
    /// highest price, rounded up; `None` if it overflows. The lock holds it
    /// twice (the storage fee aside) when the job may be audited: once for
    /// the run and once for the audit's re-run (a tie-break's third run is
    /// paid from what the losing side forfeits).
    pub fn max_cost(&self) -> Option<Tokens> {
        fuel_cost_ceil(self.limits.fuel, self.max_price_per_gfuel)
    }

    /// Bytes of the job's contents the matcher stores while it lives (see
    /// [`stored_bytes`]).
    pub fn stored_bytes(&self) -> u64 {
        stored_bytes(&self.input, &self.args, &self.env)
            + self.sealed.as_ref().map_or(0, |s| s.stored_bytes())
    }
}

/// Bytes of a job's contents the matcher stores while the job lives, and
/// its one-off buyer pays the storage fee for
/// ([`crate::escrow::storage_fee`]): its input, args and env (the module
/// is stored apart).
pub fn stored_bytes(input: &[u8], args: &[String], env: &[(String, String)]) -> u64 {
    let args: usize = args.iter().map(String::len).sum();
    let env: usize = env.iter().map(|(k, v)| k.len() + v.len()).sum();
    (input.len() + args + env) as u64
}

/// A provider's standing offer.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct OfferSpec {
    /// How many jobs this offer runs at once.
    pub slots: u32,
    /// Memory per slot in MiB.
    pub memory_per_slot_mib: u32,
    /// Largest fuel per interval a reserved slot may ask for.
    pub max_fuel_per_interval: u64,
    /// Price per billion fuel of a one-off job.
    pub price_per_gfuel: Tokens,
    /// The speed the provider guarantees, in fuel per second: heartbeats
    /// may report no more fuel than this allows, and a job's default
    /// deadline is derived from it.
    pub fuel_per_sec: u64,
    /// Price per interval of a reserved slot.
    pub price_per_interval: Tokens,
    /// Ledger the provider is paid in.
    pub ledger: Principal,
    /// What both prices are counted in (`None`: the ledger's token). An
    /// XDR offer (prices in cycles) takes XDR bids paying in `ledger`, and
    /// is paid in its token at the rate when each job is matched.
    #[serde(default)]
    pub currency: Option<Currency>,
    /// Shortest interval accepted, in seconds.
    pub min_interval_secs: u64,
    /// Longest interval accepted, in seconds.
    pub max_interval_secs: u64,
    /// Capability tags.
    pub tags: Vec<String>,
    /// Whether the offer takes audit runs (re-runs of other providers'
    /// jobs, paid like jobs); `None`: it does.
    pub audits: Option<bool>,
}

/// An offer as the matcher holds it.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Offer {
    /// The offer's id.
    pub id: OfferId,
    /// The provider behind it.
    pub provider: Principal,
    /// Its terms.
    pub spec: OfferSpec,
    /// Slots taken by running jobs.
    pub slots_used: u32,
    /// When it was posted (ties in price go to the oldest).
    pub created_at_ns: u64,
}

/// Where a job is in its lifecycle.
#[derive(CandidType, Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobStatus {
    /// Waiting in the book for capacity.
    Open,
    /// Matched to a provider, funds locked; waiting for the provider to start it.
    Assigned,
    /// The provider acknowledged it and heartbeats.
    Running,
    /// The provider reported its result; the challenge window is open and
    /// the provider's pay is pending until it closes.
    Reported,
    /// Finished with a result.
    Succeeded,
    /// Failed (retries used up, or the job itself failed).
    Failed,
    /// Cancelled by the buyer.
    Cancelled,
    /// Ran out of paid intervals without a result.
    Expired,
}

impl JobStatus {
    /// Whether the job is finished for good.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled | JobStatus::Expired
        )
    }
}

/// How a job's run ended, as reported by the provider.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub enum RunOutcome {
    /// `_start` returned or the job called `proc_exit` with this code.
    Exited { code: i32 },
    /// The fuel budget ran out.
    OutOfFuel,
    /// The memory limit was hit.
    OutOfMemory,
    /// The wall-clock deadline passed.
    Deadline,
    /// stdout or stderr exceeded the cap.
    OutputTooLarge,
    /// The module trapped.
    Trap { message: String },
    /// The module could not be compiled or instantiated.
    InvalidModule { message: String },
    /// A sealed part of the job (`input` or `env`) did not decrypt with
    /// the job's key, or its plaintext broke the spec's bounds: the buyer's
    /// fault, found the same way by any provider, so an audit agrees.
    Undecryptable { part: String },
}

/// A job's result.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct JobResult {
    /// How the run ended.
    pub outcome: RunOutcome,
    /// The job's stdout (up to [`MAX_OUTPUT_BYTES`]).
    #[serde(with = "serde_bytes")]
    pub output: Vec<u8>,
    /// sha256 of the full stdout.
    pub output_sha256: Sha256,
    /// Fuel the run consumed.
    pub fuel_used: u64,
    /// Sandbox engine and version, part of what makes the run reproducible.
    pub engine: String,
}

/// What a result commits to, the part an audit compares: how the run
/// ended, the sha256 of its whole output and the fuel it used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commitment {
    /// How the run ended.
    pub outcome: RunOutcome,
    /// sha256 of the whole output.
    pub output_sha256: Sha256,
    /// Fuel used.
    pub fuel_used: u64,
}

impl JobResult {
    /// What the result commits to.
    pub fn commitment(&self) -> Commitment {
        Commitment {
            outcome: self.outcome.clone(),
            output_sha256: self.output_sha256,
            fuel_used: self.fuel_used,
        }
    }
}

/// A job as the matcher holds it.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// The job's id.
    pub id: JobId,
    /// Who submitted (and pays for) it.
    pub owner: Principal,
    /// What it runs.
    pub spec: JobSpec,
    /// Lifecycle state.
    pub status: JobStatus,
    /// The provider it is assigned to, or for a finished job the provider
    /// that held it last.
    pub provider: Option<Principal>,
    /// Price of that provider's assignment: per billion fuel for a one-off
    /// job, per interval for a reserved slot, 0 for a job in a reservation.
    pub price: Option<Tokens>,
    /// Intervals paid so far over all assignments (reserved slots).
    pub intervals_paid: u32,
    /// Fuel the current (or last) assignment reported, by heartbeat or result.
    pub fuel_reported: u64,
    /// Paid to providers so far, pending or claimable.
    pub paid: Tokens,
    /// When the challenge window of the result closes (while `Reported`).
    pub window_closes_at_ns: Option<u64>,
    /// Retries used so far.
    pub retries_used: u32,
    /// The result, once there is one.
    pub result: Option<JobResult>,
    /// When it was submitted.
    pub submitted_at_ns: u64,
    /// A one-off job, or its part in a reservation.
    pub kind: JobKind,
    /// The audit of the result, if one was drawn or asked for. While it
    /// runs the result is withheld (an auditor must not see what it is
    /// checking) and the challenge window waits for its verdict.
    pub audit: Option<JobAudit>,
    /// For a job priced in XDR: the rate its lock converted at, and the
    /// rate its current (or last) price converted at.
    #[serde(default)]
    pub pricing: Option<JobPricing>,
    /// The market's fee, shown in every quote: the rate the job pays, the
    /// fee locked beside its cost and the fee paid so far (pending or
    /// claimable). For a job in a reservation, the reservation's.
    #[serde(default)]
    pub market_fee: MarketFee,
}

/// The market's fee of a job or reservation.
#[derive(CandidType, Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MarketFee {
    /// Parts per million of the provider's pay, fixed when it was
    /// submitted.
    pub fee_ppm: u32,
    /// Locked beside the cost for the fee (part of the escrow lock).
    pub locked: Tokens,
    /// Paid to the market so far (held with pending pay, or claimable);
    /// what a forfeit returns is not counted.
    pub paid: Tokens,
}

/// How a job priced in XDR is paid in its token.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct JobPricing {
    /// The bid's XDR terms and the lock's rate.
    pub terms: XdrTerms,
    /// How the price of the current (or last) assignment converted.
    pub conversion: Option<PriceConversion>,
}

/// Where the audit of a one-off job's result stands.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct JobAudit {
    /// Whether the buyer asked for it (`dispute_job`) rather than the draw.
    pub disputed: bool,
    /// Whether the draw deciding if the result is audited is still to come
    /// back (the result is withheld meanwhile; a draw that passes it over
    /// leaves the job with no audit).
    pub drawing: bool,
    /// `None` while it runs.
    pub verdict: Option<AuditVerdict>,
    /// The audit runs (jobs of kind [`JobKind::Audit`]), once there is a
    /// verdict: the re-run, and the tie-break if the first two disagreed.
    pub runs: Vec<JobId>,
}

/// How an audit ended.
#[derive(CandidType, Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditVerdict {
    /// The re-run (or the tie-break) agreed with the result: it stands.
    Agreed,
    /// The majority of runs disagreed with the result: the provider was
    /// slashed and forfeited its pay, and the buyer has the majority's result.
    Overturned,
    /// No majority, or no auditor answered: the result stands, and no one
    /// is slashed by the audit.
    Inconclusive,
}

/// What a job record stands for.
#[derive(CandidType, Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum JobKind {
    /// A job paid from its own lock.
    #[default]
    OneOff,
    /// The record of a reservation (its id is the reservation's id): it
    /// holds the reservation's lock; nothing runs.
    Reservation,
    /// One reserved slot: the provider holding it heartbeats it every
    /// interval, busy or idle, and is paid per interval from the
    /// reservation's lock. Nothing runs for it.
    ReservedSlot {
        reservation: ReservationId,
        slot: u32,
    },
    /// A job of the reservation's owner or delegates, run inside one of its
    /// slots and paid by the slot: it costs nothing of its own.
    InReservation { reservation: ReservationId },
    /// A re-run of job `of`'s result by another provider, paid from `of`'s
    /// lock. Until its audit has a verdict it shows as `OneOff`, so the
    /// provider running it can't tell it from any job.
    Audit { of: JobId },
}

/// Identifies a reservation: the id of its [`JobKind::Reservation`] record.
pub type ReservationId = u64;

/// Reserved capacity: `slots` slots of the given size for `intervals`
/// intervals each, at up to `max_price_per_interval` per slot and interval.
/// The maximum cost, slots x intervals x max price, is locked up front.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct ReservationSpec {
    /// Number of slots (K), from one or more providers.
    pub slots: u32,
    /// Memory per slot in MiB.
    pub memory_mib: u32,
    /// Fuel per interval each slot must offer.
    pub fuel_per_interval: u64,
    /// Length of one paid interval.
    pub interval_secs: u64,
    /// Intervals reserved (N) per slot.
    pub intervals: u32,
    /// Highest price per slot and interval, in `currency`.
    pub max_price_per_interval: Tokens,
    /// What the price is counted in (`None`: the ledger's token); see
    /// [`JobSpec::currency`].
    #[serde(default)]
    pub currency: Option<Currency>,
    /// Ledger to pay with.
    pub ledger: Principal,
    /// Smallest provider stake accepted.
    pub min_provider_stake: Tokens,
    /// How many times one slot is matched anew after its provider fails it.
    pub max_rematches: u32,
    /// Principals (besides the owner) that may run jobs in the slots.
    pub delegates: Vec<Principal>,
    /// A network service to run in the slots, one replica per slot, each
    /// on a different provider (a service lease); `None` for plain
    /// reserved capacity that the owner and delegates run jobs in.
    #[serde(default)]
    pub service: Option<ServiceSpec>,
}

/// Most hosts a service may call out to.
pub const MAX_ALLOWED_HOSTS: usize = 16;
/// Longest host name a service may list.
pub const MAX_HOST_LEN: usize = 253;
/// Longest health path.
pub const MAX_HEALTH_PATH_LEN: usize = 256;
/// Longest endpoint URL a provider may report for a replica.
pub const MAX_ENDPOINT_LEN: usize = 256;
/// Most fuel one request to a service may burn.
pub const MAX_REQUEST_FUEL: u64 = 100_000_000_000;
/// Longest time one request to a service may take, in milliseconds.
pub const MAX_REQUEST_TIMEOUT_MS: u64 = 300_000;
/// Most requests one replica serves at once.
pub const MAX_CONCURRENT_REQUESTS: u32 = 1_024;
/// Largest request or response body a service may be given limits for.
pub const MAX_SERVICE_BODY_BYTES: u64 = 64 * 1024 * 1024;

/// A network service: a WASI 0.2 component for the `wasi:http/proxy`
/// world, run by each replica's provider behind its HTTP ingress at
/// `<endpoint>` = `<provider's base URL>/<reservation id>/`, a fresh
/// instance per request; or, with `tcp`, a `wasi:cli/run` command serving
/// TCP clients on a port its provider assigns (`tcp_address`), one
/// long-lived instance per replica, whose health the provider's ingress
/// answers at `<endpoint>`.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct ServiceSpec {
    /// The component: stored in the matcher's module store like a job's
    /// module, or fetched by the provider from a URL; named by sha256.
    pub component: ModuleSource,
    /// Environment variables the component sees (`wasi:cli/environment`).
    pub env: Vec<(String, String)>,
    /// Host names (lowercase DNS names, no scheme or port) the component
    /// may send HTTP requests to through `wasi:http/outgoing-handler`;
    /// everything else is refused, as is any address that is loopback,
    /// private, link-local or otherwise not public, whatever its name.
    pub allowed_hosts: Vec<String>,
    /// The path the matcher probes on each replica (`/healthz`, say): a 2xx
    /// answer is healthy; consecutive failures count as a missed heartbeat.
    pub health_path: String,
    /// A method of the owner's canister told of every change of a
    /// replica's endpoint, with a [`ServiceNotice`].
    pub callback: Option<String>,
    /// What one request may use. For a TCP service only the reservation's
    /// memory bounds the instance; these per-request limits are checked but
    /// not used (`tcp` has its own).
    pub limits: ServiceLimits,
    /// Serve TCP instead of HTTP: the component is a `wasi:cli/run`
    /// command listening on the port its provider assigns; `None` for a
    /// `wasi:http/proxy` service.
    #[serde(default)]
    pub tcp: Option<TcpSpec>,
    /// A secret env sealed to the lease's key (`env` only: see
    /// [`crate::privacy::Sealed::check_service`]); its provider decrypts it
    /// with the key of the replica's slot. `None`: no secret env.
    #[serde(default)]
    pub sealed: Option<crate::privacy::Sealed>,
}

/// Most client connections one replica of a TCP service may be allowed.
pub const MAX_TCP_CONNECTIONS: u32 = 4_096;
/// Most bytes per second one TCP connection may be allowed each way.
pub const MAX_TCP_BYTES_PER_SECOND: u64 = 1 << 30;
/// Longest idle timeout of a TCP connection, in seconds.
pub const MAX_TCP_IDLE_TIMEOUT_SECS: u64 = 86_400;
/// Most fuel per second a TCP service's instance may burn.
pub const MAX_TCP_FUEL_PER_SECOND: u64 = 10_000_000_000;
/// Longest `host:port` a provider may report for a TCP replica.
pub const MAX_TCP_ADDRESS_LEN: usize = 256;

/// How a TCP service's replicas serve: its one long-lived instance per
/// replica and the connections to it. Memory is the reservation's
/// `memory_mib`.
#[derive(CandidType, Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpSpec {
    /// Client connections open at once per replica; more are closed on
    /// arrival (at most [`MAX_TCP_CONNECTIONS`]).
    pub max_connections: u32,
    /// Bytes per second each connection may move in each direction; a
    /// faster sender is slowed (at most [`MAX_TCP_BYTES_PER_SECOND`]).
    pub max_bytes_per_second: u64,
    /// A connection with no byte either way for this long is closed, in
    /// seconds (at most [`MAX_TCP_IDLE_TIMEOUT_SECS`]).
    pub idle_timeout_secs: u64,
    /// Fuel the instance may burn per second; one that burns it sooner
    /// traps and is restarted (at most [`MAX_TCP_FUEL_PER_SECOND`]).
    pub fuel_per_second: u64,
}

impl Default for TcpSpec {
    fn default() -> Self {
        TcpSpec {
            max_connections: 64,
            max_bytes_per_second: 1 << 20,
            idle_timeout_secs: 300,
            fuel_per_second: 500_000_000,
        }
    }
}

impl TcpSpec {
    /// Checks every limit against its bound.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.max_connections == 0 || self.max_connections > MAX_TCP_CONNECTIONS {
            return Err(("max_connections", format!("1 to {MAX_TCP_CONNECTIONS}")));
        }
        if self.max_bytes_per_second == 0 || self.max_bytes_per_second > MAX_TCP_BYTES_PER_SECOND {
            return Err((
                "max_bytes_per_second",
                format!("1 to {MAX_TCP_BYTES_PER_SECOND}"),
            ));
        }
        if self.idle_timeout_secs == 0 || self.idle_timeout_secs > MAX_TCP_IDLE_TIMEOUT_SECS {
            return Err((
                "idle_timeout_secs",
                format!("1 to {MAX_TCP_IDLE_TIMEOUT_SECS}"),
            ));
        }
        if self.fuel_per_second == 0 || self.fuel_per_second > MAX_TCP_FUEL_PER_SECOND {
            return Err(("fuel_per_second", format!("1 to {MAX_TCP_FUEL_PER_SECOND}")));
        }
        Ok(())
    }
}

/// Limits on each request to a service's replica. Memory per instance is
/// the reservation's `memory_mib`.
#[derive(CandidType, Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceLimits {
    /// Fuel one request may burn (at most [`MAX_REQUEST_FUEL`]).
    pub fuel_per_request: u64,
    /// Wall time of one request, in milliseconds, response body included
    /// (at most [`MAX_REQUEST_TIMEOUT_MS`]).
    pub timeout_ms: u64,
    /// Requests served at once by one replica; more are answered 503 (at
    /// most [`MAX_CONCURRENT_REQUESTS`]).
    pub max_concurrent: u32,
    /// Largest request body and largest response body, in bytes (at most
    /// [`MAX_SERVICE_BODY_BYTES`]); a larger request is answered 413.
    pub max_body_bytes: u64,
}

impl Default for ServiceLimits {
    fn default() -> Self {
        ServiceLimits {
            fuel_per_request: 1_000_000_000,
            timeout_ms: 10_000,
            max_concurrent: 32,
            max_body_bytes: 1024 * 1024,
        }
    }
}

impl ServiceLimits {
    /// Checks every limit against its bound.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.fuel_per_request == 0 || self.fuel_per_request > MAX_REQUEST_FUEL {
            return Err(("fuel_per_request", format!("1 to {MAX_REQUEST_FUEL}")));
        }
        if self.timeout_ms == 0 || self.timeout_ms > MAX_REQUEST_TIMEOUT_MS {
            return Err(("timeout_ms", format!("1 to {MAX_REQUEST_TIMEOUT_MS}")));
        }
        if self.max_concurrent == 0 || self.max_concurrent > MAX_CONCURRENT_REQUESTS {
            return Err(("max_concurrent", format!("1 to {MAX_CONCURRENT_REQUESTS}")));
        }
        if self.max_body_bytes == 0 || self.max_body_bytes > MAX_SERVICE_BODY_BYTES {
            return Err(("max_body_bytes", format!("1 to {MAX_SERVICE_BODY_BYTES}")));
        }
        Ok(())
    }
}

/// How a replica's last probes went.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct ReplicaHealth {
    /// When it was last probed, if it was.
    pub last_probe_ns: Option<u64>,
    /// Whether the last probe answered 2xx.
    pub last_ok: Option<bool>,
    /// Probes failed in a row since the last success.
    pub consecutive_failures: u32,
    /// Probes made of this replica by its current provider.
    pub probes: u64,
}

/// One replica of a service: one slot of its lease.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct ReplicaView {
    /// The slot's index in the lease.
    pub slot: u32,
    /// The slot's job record.
    pub job_id: JobId,
    /// The slot's state (Open: waiting for a provider; Running: acknowledged).
    pub status: JobStatus,
    /// The provider holding it.
    pub provider: Option<Principal>,
    /// Where it answers, as its provider reported when it acknowledged the
    /// slot; `None` until then and after the provider lost the slot.
    pub endpoint: Option<String>,
    /// For a TCP service: the `host:port` clients connect to, reported
    /// and cleared with the endpoint.
    #[serde(default)]
    pub tcp_address: Option<String>,
    /// What the matcher's probes saw.
    pub health: ReplicaHealth,
    /// Times the slot was matched anew after a provider failed it.
    pub rematches: u32,
}

/// A service lease as `get_service` shows it: what anyone may read.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct ServiceView {
    /// The lease's reservation id, also the service's id in its URLs.
    pub id: ReservationId,
    /// Who pays for it.
    pub owner: Principal,
    /// Where the lease is.
    pub status: ReservationStatus,
    /// sha256 of the component.
    pub component_sha256: Sha256,
    /// The probed path.
    pub health_path: String,
    /// Hosts it may call.
    pub allowed_hosts: Vec<String>,
    /// Its per-request limits.
    pub limits: ServiceLimits,
    /// Its TCP limits, for a TCP service.
    #[serde(default)]
    pub tcp: Option<TcpSpec>,
    /// Its replicas, in slot order.
    pub replicas: Vec<ReplicaView>,
    /// Length of one paid interval.
    pub interval_secs: u64,
    /// Intervals reserved per replica.
    pub intervals: u32,
    /// Total locked for it.
    pub locked: Tokens,
    /// Paid so far, to providers and for probes.
    pub paid: Tokens,
}

/// What a service owner's callback receives when a replica's endpoint
/// changes: a provider acknowledged its slot (`endpoint` set) or lost it
/// (`endpoint` none; a new provider is being matched).
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct ServiceNotice {
    /// The service (its lease's reservation id).
    pub service: ReservationId,
    /// The replica's slot.
    pub slot: u32,
    /// The provider now holding the slot, if any.
    pub provider: Option<Principal>,
    /// Where the replica answers now, if it does.
    pub endpoint: Option<String>,
    /// For a TCP service: the `host:port` clients connect to now, if any.
    #[serde(default)]
    pub tcp_address: Option<String>,
}

/// The most a reservation can cost, locked up front: slots x intervals x
/// max price per interval; `None` if it overflows.
pub fn reservation_cost(spec: &ReservationSpec) -> Option<Tokens> {
    spec.max_price_per_interval
        .checked_mul(Tokens::from(spec.slots))?
        .checked_mul(Tokens::from(spec.intervals))
}

/// Probes of one replica per interval of a lease: one per started probe
/// interval, `ceil(interval_secs / probe_interval_secs)` (at least one).
pub fn probes_per_interval(interval_secs: u64, probe_interval_secs: u64) -> u64 {
    interval_secs.div_ceil(probe_interval_secs.max(1)).max(1)
}

/// What a service lease's probes can cost, locked with it besides its
/// slots: slots x intervals x probes per interval (see
/// [`probes_per_interval`]) x the fee per probe; 0 for reserved capacity
/// without a service, `None` if it overflows. The matcher's
/// `probe_interval_secs` and `probe_fee` are in its `get_config`.
pub fn service_probe_cost(
    spec: &ReservationSpec,
    probe_interval_secs: u64,
    probe_fee: Tokens,
) -> Option<Tokens> {
    if spec.service.is_none() {
        return Some(0);
    }
    Tokens::from(spec.slots)
        .checked_mul(Tokens::from(spec.intervals))?
        .checked_mul(Tokens::from(probes_per_interval(
            spec.interval_secs,
            probe_interval_secs,
        )))?
        .checked_mul(probe_fee)
}

/// All a reservation locks up front: [`reservation_cost`] plus, for a
/// service lease, [`service_probe_cost`]; `None` if it overflows.
pub fn lease_cost(
    spec: &ReservationSpec,
    probe_interval_secs: u64,
    probe_fee: Tokens,
) -> Option<Tokens> {
    reservation_cost(spec)?.checked_add(service_probe_cost(spec, probe_interval_secs, probe_fee)?)
}

/// Checks a replica's endpoint as a provider reports it for service
/// `service`: an `http://` or `https://` URL of at most
/// [`MAX_ENDPOINT_LEN`] bytes of printable ASCII with a host, ending in
/// `/<service>/`.
pub fn check_endpoint(url: &str, service: ReservationId) -> Result<(), String> {
    if url.len() > MAX_ENDPOINT_LEN {
        return Err(format!("at most {MAX_ENDPOINT_LEN} bytes"));
    }
    if !url.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("printable ASCII without spaces".into());
    }
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("an http:// or https:// URL")?;
    let suffix = format!("/{service}/");
    if !rest.ends_with(&suffix) {
        return Err(format!("ending in {suffix}"));
    }
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() || host.contains(['?', '#', '@']) || rest.contains(['?', '#']) {
        return Err("a host, and no user, query or fragment".into());
    }
    Ok(())
}

/// Checks a TCP replica's address as a provider reports it: `host:port`,
/// at most [`MAX_TCP_ADDRESS_LEN`] bytes, the host a DNS name (letters,
/// digits, `-` and `.`), an IPv4 literal or an IPv6 one in brackets, the
/// port 1 to 65535 in decimal.
pub fn check_tcp_address(address: &str) -> Result<(), String> {
    if address.is_empty() || address.len() > MAX_TCP_ADDRESS_LEN {
        return Err(format!("1 to {MAX_TCP_ADDRESS_LEN} bytes"));
    }
    let (host, port) = address.rsplit_once(':').ok_or("host:port")?;
    let port_ok = !port.is_empty()
        && port.len() <= 5
        && port.bytes().all(|b| b.is_ascii_digit())
        && !port.starts_with('0')
        && port.parse::<u32>().is_ok_and(|p| p <= 65_535);
    if !port_ok {
        return Err("a port from 1 to 65535".into());
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner
            .parse::<std::net::Ipv6Addr>()
            .map(|_| ())
            .map_err(|_| format!("{host:?} is not an IPv6 literal"));
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if !host.split('.').all(label_ok) {
        return Err(format!(
            "{host:?} is not a DNS name, an IPv4 literal or a bracketed IPv6 literal"
        ));
    }
    Ok(())
}

/// Checks a host a service may call out to: a lowercase DNS name or an IP
/// literal (an IPv6 one in brackets), at most [`MAX_HOST_LEN`] bytes, with
/// no scheme, port, path or wildcard.
pub fn check_allowed_host(host: &str) -> Result<(), String> {
    if host.is_empty() || host.len() > MAX_HOST_LEN {
        return Err(format!("1 to {MAX_HOST_LEN} bytes"));
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner
            .parse::<std::net::Ipv6Addr>()
            .map(|_| ())
            .map_err(|_| format!("{host:?} is not an IPv6 literal"));
    }
    if host.parse::<std::net::Ipv4Addr>().is_ok() {
        return Ok(());
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    if !host.split('.').all(label_ok) {
        return Err(format!(
            "{host:?} is not a lowercase DNS name or IP literal (no scheme, port, path or wildcard)"
        ));
    }
    Ok(())
}

/// Checks a health path: starts with `/`, at most [`MAX_HEALTH_PATH_LEN`]
/// bytes of printable ASCII, no spaces.
pub fn check_health_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') || path.len() > MAX_HEALTH_PATH_LEN {
        return Err(format!(
            "starting with / and at most {MAX_HEALTH_PATH_LEN} bytes"
        ));
    }
    if !path.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("printable ASCII without spaces".into());
    }
    Ok(())
}

/// Most bytes of a candid-encoded [`ServiceNotice`]: its endpoint is at
/// most [`MAX_ENDPOINT_LEN`] bytes, its TCP address at most
/// [`MAX_TCP_ADDRESS_LEN`].
pub const MAX_SERVICE_NOTICE_BYTES: usize = 1024;

/// When the matcher starts accepting the heartbeat of a running job that is
/// due at `due_ns`: half an interval (of `interval_ns`) before. A heartbeat
/// earlier than this is refused, so a provider can't drain a lock by
/// heartbeating fast; one missing at `due_ns` + grace is a missed deadline.
pub fn heartbeat_window_opens_ns(due_ns: u64, interval_ns: u64) -> u64 {
    due_ns.saturating_sub(interval_ns / 2)
}

/// Where a reservation is.
#[derive(CandidType, Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReservationStatus {
    /// Its lock is being confirmed by the escrow.
    Funding,
    /// Its slots are matched, held or waiting for capacity.
    Active,
    /// Every slot ended; what was not paid went back to the owner.
    Ended,
    /// The owner cancelled it; what was not paid went back to the owner.
    Cancelled,
}

/// One slot of a reservation.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct ReservedSlotView {
    /// The slot's job record.
    pub job_id: JobId,
    /// The slot's state (Open: waiting for a provider).
    pub status: JobStatus,
    /// The provider holding it (or, once ended, that held it last).
    pub provider: Option<Principal>,
    /// Its price per interval.
    pub price_per_interval: Option<Tokens>,
    /// Intervals paid for this slot.
    pub intervals_paid: u32,
    /// Times it was matched anew after a provider failed it.
    pub rematches: u32,
    /// The job running in it, if any.
    pub running: Option<JobId>,
}

/// A reservation as the matcher holds it.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Reservation {
    /// Its id.
    pub id: ReservationId,
    /// Who pays for it.
    pub owner: Principal,
    /// Its terms, with the current delegates and the intervals after any extension.
    pub spec: ReservationSpec,
    /// Where it is.
    pub status: ReservationStatus,
    /// Its slots.
    pub slots: Vec<ReservedSlotView>,
    /// Total locked for it, extensions and the market's fee included.
    pub locked: Tokens,
    /// Paid to providers so far, and once a service lease has settled,
    /// the fee of its probes.
    pub paid: Tokens,
    /// The market's fee: its rate, the part of `locked` held for it and
    /// what was paid of it.
    #[serde(default)]
    pub market_fee: MarketFee,
    /// Jobs waiting for a free slot.
    pub queued_jobs: u64,
    /// When it was made.
    pub created_at_ns: u64,
}

/// Arguments of `extend_reservation`.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct ExtendReservationArgs {
    /// The reservation.
    pub reservation: ReservationId,
    /// Intervals added to every slot.
    pub intervals: u32,
}

/// Arguments of `set_delegates`.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct SetDelegatesArgs {
    /// The reservation.
    pub reservation: ReservationId,
    /// Principals to add.
    pub add: Vec<Principal>,
    /// Principals to remove.
    pub remove: Vec<Principal>,
}

/// Arguments of `cancel_reservation`.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct CancelReservationArgs {
    /// The reservation.
    pub reservation: ReservationId,
}

/// Arguments of `submit_reserved_job`: a job to run in a reservation's
/// slots. Its price, ledger and stake fields are ignored (the slot pays);
/// its memory and fuel must fit the slot, and it runs for at most
/// `max_intervals` of the reservation's intervals.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct ReservedJobArgs {
    /// The reservation.
    pub reservation: ReservationId,
    /// The job.
    pub spec: JobSpec,
}

/// A DAO whose SNS governance canister may call the `sns_*` methods.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct DaoRegistration {
    /// The DAO's SNS governance canister.
    pub governance: Principal,
    /// The DAO's name, shown in proposal summaries.
    pub name: String,
}

/// Most assignments one page of `assignments` holds.
pub const MAX_ASSIGNMENTS_PAGE: u32 = 100;

/// A job handed to a provider, as its paged listing shows it: the terms it
/// is heartbeated and paid by, and the size of its input, never the bytes
/// of its spec. A page stays small whatever buyers put in their jobs; the
/// provider reads each job's spec with `job_view` and its input with
/// `job_chunk`.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// The job.
    pub job_id: JobId,
    /// Increases each time the job is assigned anew; heartbeats name it.
    pub attempt: u32,
    /// The price the provider is paid: per billion fuel for a one-off job,
    /// per interval for a reserved slot, 0 for a job in a reservation.
    pub price: Tokens,
    /// Deadline of the next heartbeat.
    pub next_deadline_ns: u64,
    /// When the attempt must have reported its result (none for a reserved
    /// slot, or before the bond holds).
    pub result_deadline_ns: Option<u64>,
    /// Fuel reported so far in this attempt.
    pub fuel_reported: u64,
    /// The declared speed of the offer the job runs on, in fuel per second:
    /// a heartbeat at time `t` may report at most `fuel_per_sec` times the
    /// seconds from `counting_from_ns` to `t` (and never more than the budget).
    pub fuel_per_sec: u64,
    /// When the attempt's time began to count: when its bond held.
    pub counting_from_ns: Option<u64>,
    /// Whether the provider already acknowledged it.
    pub acknowledged: bool,
    /// A one-off job, a job in a reservation, or a reserved slot (which is
    /// only held and heartbeated: nothing runs for it).
    pub kind: JobKind,
    /// Length of one paid interval; a heartbeat is due each interval.
    pub interval_secs: u64,
    /// Intervals paid so far over all the job's assignments.
    pub intervals_paid: u32,
    /// Size of the job's input in bytes.
    pub input_bytes: u64,
    /// The seed of the run's deterministic random sources (see [`job_seed`]).
    pub seed: Sha256,
}

/// One page of a provider's assignments, in job id order.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct AssignmentPage {
    /// At most [`MAX_ASSIGNMENTS_PAGE`] assignments.
    pub assignments: Vec<Assignment>,
    /// The job id the next page starts at, if there is one.
    pub next: Option<JobId>,
}

/// A job without its two large byte strings: `job.spec.input` and the
/// result's `output` are empty here, and the sizes and hash below say what
/// `job_chunk` gives for them. At most about 200 KiB encoded (64 args and
/// 64 env pairs of 1 KiB, a 2 KiB URL), so it always fits a reply, where
/// `get_job` of the largest job does not.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct JobView {
    /// The job, input and output left out.
    pub job: Job,
    /// Size of the job's input in bytes.
    pub input_bytes: u64,
    /// sha256 of the job's input.
    pub input_sha256: Sha256,
    /// Size of the stored output in bytes (0 until there is a result).
    pub output_bytes: u64,
    /// Whether the job's contents were left out because the caller may not
    /// read them: then its args, env and sealed env are empty too, and only
    /// the sizes and hashes here (and the result's `output_sha256`) tell of
    /// them. Its owner, the reservation's owner and delegates, and the
    /// provider (or node) holding its assignment read it whole.
    #[serde(default)]
    pub contents_hidden: bool,
    /// Bytes of its args, and of its env (plain and sealed).
    #[serde(default)]
    pub args_env_bytes: u64,
}

/// Which of a job's large byte strings `job_chunk` reads.
#[derive(CandidType, Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobPart {
    /// The bytes given to the job on stdin.
    Input,
    /// The stdout its result holds (empty until there is a result).
    Output,
}

/// Arguments of `job_chunk`.
#[derive(CandidType, Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobChunkRequest {
    /// The job.
    pub job_id: JobId,
    /// Its input or its output.
    pub part: JobPart,
    /// Where the chunk starts, in bytes from the start of the part.
    pub offset: u64,
}

/// Up to [`MAX_CHUNK_BYTES`] of a job's input or output, from the offset asked for.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct JobChunk {
    /// The bytes; empty at or past the end.
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
    /// Size of the whole part in bytes.
    pub total_bytes: u64,
    /// sha256 of the whole part: a reader checks the bytes it put together
    /// against it.
    pub sha256: Sha256,
}

/// One job's entry in a heartbeat batch.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatItem {
    /// The job.
    pub job_id: JobId,
    /// The assignment attempt the provider holds.
    pub attempt: u32,
    /// Fuel consumed so far.
    pub fuel_used: u64,
    /// For a service's slot: the replica's URL (`<base URL>/<reservation
    /// id>/`), required on the heartbeat that acknowledges the slot.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// For a TCP service's slot: the `host:port` clients connect to,
    /// required with the endpoint on the heartbeat that acknowledges the
    /// slot (see [`check_tcp_address`]); refused for an HTTP service.
    #[serde(default)]
    pub tcp_address: Option<String>,
}

/// What happened to one heartbeat item.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub enum HeartbeatAck {
    /// Accepted; the next heartbeat is due by this time. The first heartbeat
    /// of an assignment starts its first interval and pays nothing; each
    /// later one pays the interval it closes, while the job has intervals
    /// left to pay (`Job::intervals_paid` says how many were).
    Accepted { next_deadline_ns: u64 },
    /// Refused; the provider should stop the job.
    Refused { reason: String },
}

/// Arguments of `submit_result`.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct SubmitResultArgs {
    /// The job.
    pub job_id: JobId,
    /// The assignment attempt the provider holds.
    pub attempt: u32,
    /// The result.
    pub result: JobResult,
}

/// A recent match: the price a job was assigned at.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Trade {
    /// The job.
    pub job_id: JobId,
    /// Price agreed.
    pub price: Tokens,
    /// What the price is quoted per.
    pub unit: PriceUnit,
    /// When the assignment took effect (IC time, ns).
    pub time_ns: u64,
}

/// Book depth at one price.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct PriceLevel {
    /// Price (per billion fuel, or per interval: see [`BookDepth`]).
    pub price: Tokens,
    /// Slots (offers) or jobs (bids) at this price.
    pub count: u64,
}

/// Errors of the matcher's methods.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub enum MatcherError {
    /// The anonymous principal may not call this method.
    AnonymousCaller,
    /// The caller is not allowed to call this method.
    Unauthorized { reason: String },
    /// A field of the argument is out of bounds.
    InvalidArgument { field: String, reason: String },
    /// No such job.
    UnknownJob { job_id: JobId },
    /// No such offer.
    UnknownOffer { offer_id: OfferId },
    /// No such module.
    UnknownModule { sha256: Sha256 },
    /// The job is not in a state that allows this.
    InvalidState { status: JobStatus },
    /// A per-principal limit was reached.
    LimitReached { what: String, limit: u64 },
    /// Another operation for this principal or job is in flight; try again.
    Busy,
    /// A call to the escrow or registry failed; nothing changed.
    Downstream { canister: String, message: String },
    /// The escrow refused the operation (for want of funds, say); nothing
    /// changed.
    Escrow(crate::escrow::EscrowError),
    /// The registry refused the operation; nothing changed.
    Registry(crate::registry::RegistryError),
    /// The ledger's token has no rate source, so a bond in it can't be
    /// valued (or XDR prices are not taken: no cycles minting canister is
    /// configured).
    NoRateSource { ledger: Principal },
    /// The ledger's rate is older than the market accepts (or was never
    /// read: `timestamp_secs` 0); try again once it is read anew.
    StaleRate {
        ledger: Principal,
        timestamp_secs: u64,
        max_age_secs: u64,
    },
}

/// The matcher's public event log.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub enum MatcherEvent {
    /// A module was stored.
    ModuleStored {
        sha256: Sha256,
        size: u64,
        uploader: Principal,
    },
    /// An offer was posted, changed or withdrawn.
    OfferChanged {
        offer_id: OfferId,
        provider: Principal,
        withdrawn: bool,
    },
    /// A job was submitted and its funds locked.
    JobSubmitted {
        job_id: JobId,
        owner: Principal,
        max_cost: Tokens,
        ledger: Principal,
        /// For an XDR price: the bid's terms and the rate the lock
        /// (`max_cost`) converted at.
        #[serde(default)]
        xdr: Option<XdrTerms>,
    },
    /// A job was matched to a provider.
    JobAssigned {
        job_id: JobId,
        provider: Principal,
        attempt: u32,
        /// Per billion fuel (one-off job) or per interval (reserved slot),
        /// in the job's token.
        price: Tokens,
        /// For an XDR price: the offer's price in cycles and the rate it
        /// converted at.
        #[serde(default)]
        conversion: Option<PriceConversion>,
        /// What the attempt is worth in the stake ledger's smallest unit
        /// (e8s), whatever the job pays in: its bond and a missed
        /// deadline's slash are measured against it (a one-off job's fuel
        /// budget at the price, a slot's price per interval).
        #[serde(default)]
        stake_value: Option<Tokens>,
    },
    /// A heartbeat paid one interval of a reserved slot; or, with the
    /// matcher itself as `provider` and `seq` 0xFFFFFFFF00000000, a service
    /// lease (`job_id` its reservation) paid the fee of its probes.
    IntervalPaid {
        job_id: JobId,
        provider: Principal,
        seq: u64,
        amount: Tokens,
        /// The market's fee paid with `amount`.
        #[serde(default)]
        fee: Tokens,
    },
    /// A heartbeat or result reported fuel; its pay went to the provider's
    /// pending balance.
    FuelPaid {
        job_id: JobId,
        provider: Principal,
        seq: u64,
        /// Fuel reported in all by this attempt.
        fuel: u64,
        amount: Tokens,
        /// The market's fee held with `amount`.
        #[serde(default)]
        fee: Tokens,
    },
    /// A provider reported a job's result; its challenge window opened.
    ResultReported {
        job_id: JobId,
        provider: Principal,
        attempt: u32,
        fuel_used: u64,
        /// What the run costs the buyer: fuel used at the agreed price.
        bill: Tokens,
        window_closes_at_ns: u64,
    },
    /// A provider's pending pay for an attempt was taken back into the
    /// job's lock (no result by its deadline).
    PayForfeited {
        job_id: JobId,
        provider: Principal,
        attempt: u32,
    },
    /// A provider missed a deadline and was slashed.
    DeadlineMissed {
        job_id: JobId,
        provider: Principal,
        attempt: u32,
        slashed: Tokens,
    },
    /// The provider handed the job back before its deadline; it is matched
    /// again without a slash.
    JobHandedBack {
        job_id: JobId,
        provider: Principal,
        attempt: u32,
    },
    /// A reservation was funded.
    ReservationMade {
        reservation: ReservationId,
        owner: Principal,
        slots: u32,
        locked: Tokens,
        ledger: Principal,
    },
    /// A reservation was extended.
    ReservationExtended {
        reservation: ReservationId,
        intervals: u32,
        locked: Tokens,
    },
    /// A replica of a service got an endpoint (its provider acknowledged
    /// the slot) or lost it (`endpoint` none: the provider failed the slot
    /// or the lease ended); a TCP service's replica with its `host:port`.
    ServiceEndpoint {
        reservation: ReservationId,
        slot: u32,
        provider: Principal,
        endpoint: Option<String>,
        #[serde(default)]
        tcp_address: Option<String>,
    },
    /// A probe of a replica's health path failed.
    ProbeFailed {
        reservation: ReservationId,
        slot: u32,
        provider: Principal,
        consecutive: u32,
    },
    /// A reservation's delegates changed.
    DelegatesChanged {
        reservation: ReservationId,
        delegates: Vec<Principal>,
    },
    /// `amount` e8s of the market's ICP went to the cycles minting
    /// canister in `block_index` and became `cycles` of `canister`.
    CyclesToppedUp {
        number: u64,
        canister: Principal,
        amount: Tokens,
        block_index: u64,
        cycles: u128,
    },
    /// A top-up stopped for good; what it withdrew stays in the
    /// matcher's ICP account, where the next top-up uses it.
    CyclesTopUpFailed {
        number: u64,
        canister: Principal,
        reason: String,
    },
    /// A controller set the market's fee for jobs and reservations
    /// submitted from now on.
    MarketFeeSet { fee_ppm: u32, controller: Principal },
    /// A DAO's governance canister was registered or removed.
    DaoChanged {
        governance: Principal,
        name: String,
        registered: bool,
    },
    /// A result is audited: `run` re-runs the job (a tie-break if it is
    /// the second run).
    AuditStarted {
        job_id: JobId,
        run: JobId,
        disputed: bool,
    },
    /// An audit reached its verdict.
    AuditSettled {
        job_id: JobId,
        verdict: AuditVerdict,
    },
    /// A provider's result (`job_id` may be an audit run) lost an audit
    /// and its stake was slashed.
    ResultRejected {
        job_id: JobId,
        provider: Principal,
        attempt: u32,
        slashed: Tokens,
    },
    /// A job reached a final state.
    JobFinished {
        job_id: JobId,
        status: JobStatus,
        refunded: Tokens,
    },
}

/// Most bytes of a candid-encoded [`JobNotice`], whatever the job: the
/// notice never comes near the IC's 2 MiB limit on a call's argument.
pub const MAX_NOTICE_BYTES: usize = 2 * 1024;
/// Longest provider message (a trap's, say) a [`JobNotice`] carries, in
/// bytes; the whole message is in the job's result.
pub const MAX_NOTICE_MESSAGE_BYTES: usize = 256;

/// What a buyer's callback method receives when its job finishes: enough to
/// decide whether to read the output, in at most 2 KiB of Candid
/// (`MAX_NOTICE_BYTES`) however large the job's input, args, env and output
/// are. The output itself is read with the matcher's `job_output` query, in
/// chunks, and checked against `output_sha256`.
///
/// The callback is made once; a buyer's canister that traps or is stopped
/// misses it, and can still read the job with the matcher's queries.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct JobNotice {
    /// The job.
    pub job_id: JobId,
    /// The reservation it ran in, if any.
    pub reservation: Option<ReservationId>,
    /// Its final state.
    pub status: JobStatus,
    /// How its run ended, if it ran; a provider's message is cut to 256
    /// bytes (the job's result has all of it).
    pub outcome: Option<RunOutcome>,
    /// Fuel the run consumed, if it ran.
    pub fuel_used: Option<u64>,
    /// The provider that held the job last.
    pub provider: Option<Principal>,
    /// Its price (see [`Job::price`]).
    pub price: Option<Tokens>,
    /// Intervals paid over all assignments.
    pub intervals_paid: u32,
    /// Paid to providers in all (the rest of the lock went back to the buyer).
    pub paid: Tokens,
    /// Length of the output the matcher holds, in bytes.
    pub output_len: u64,
    /// sha256 of the output, as the provider reported it.
    pub output_sha256: Option<Sha256>,
}

impl RunOutcome {
    /// The outcome with any provider message cut to at most `max_bytes`
    /// (at a character boundary).
    pub fn truncated(&self, max_bytes: usize) -> RunOutcome {
        let cut = |m: &str| {
            let mut end = m.len().min(max_bytes);
            while !m.is_char_boundary(end) {
                end -= 1;
            }
            m[..end].to_string()
        };
        match self {
            RunOutcome::Trap { message } => RunOutcome::Trap {
                message: cut(message),
            },
            RunOutcome::InvalidModule { message } => RunOutcome::InvalidModule {
                message: cut(message),
            },
            RunOutcome::Undecryptable { part } => RunOutcome::Undecryptable { part: cut(part) },
            other => other.clone(),
        }
    }
}

/// A piece of a finished job's output, as `job_output` returns it.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct OutputChunk {
    /// The output from the offset asked for on, at most 1 MiB.
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
    /// The whole output's length.
    pub total_len: u64,
}

#[cfg(test)]
mod notice_tests {
    use super::*;

    #[test]
    fn the_largest_service_notice_stays_under_its_bound() {
        let notice = ServiceNotice {
            service: u64::MAX,
            slot: u32::MAX,
            provider: Some(Principal::from_slice(&[0xff; 29])),
            endpoint: Some("h".repeat(MAX_ENDPOINT_LEN)),
            tcp_address: Some("t".repeat(MAX_TCP_ADDRESS_LEN)),
        };
        let bytes = candid::encode_one(&notice).unwrap().len();
        assert!(bytes <= MAX_SERVICE_NOTICE_BYTES, "{bytes} bytes");
    }

    #[test]
    fn endpoints_hosts_and_health_paths_are_checked() {
        assert_eq!(check_endpoint("https://node.example/7/", 7), Ok(()));
        assert_eq!(check_endpoint("http://127.0.0.1:8080/base/7/", 7), Ok(()));
        for bad in [
            "https://node.example/8/",
            "https://node.example/7",
            "ftp://node.example/7/",
            "https:///7/",
            "https://node.example/7/?x=/7/",
            "https://no de.example/7/",
        ] {
            assert!(check_endpoint(bad, 7).is_err(), "{bad}");
        }
        let long = format!("https://{}/7/", "a".repeat(MAX_ENDPOINT_LEN));
        assert!(check_endpoint(&long, 7).is_err());

        for ok in [
            "api.example.org",
            "localhost",
            "10.0.0.1",
            "[::1]",
            "a-b.c1",
        ] {
            assert_eq!(check_allowed_host(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "Api.example.org",
            "https://api.example.org",
            "api.example.org:443",
            "api.example.org/x",
            "*.example.org",
            "-a.example",
            "a..b",
            "[nope]",
        ] {
            assert!(check_allowed_host(bad).is_err(), "{bad:?}");
        }
        assert!(check_allowed_host(&"a".repeat(MAX_HOST_LEN + 1)).is_err());

        assert_eq!(check_health_path("/healthz"), Ok(()));
        assert!(check_health_path("healthz").is_err());
        assert!(check_health_path("/health z").is_err());
        assert!(check_health_path(&format!("/{}", "a".repeat(MAX_HEALTH_PATH_LEN))).is_err());
    }

    #[test]
    fn tcp_addresses_and_limits_are_checked() {
        for ok in [
            "node.example:4000",
            "203.0.113.7:1",
            "[2001:db8::1]:65535",
            "Node-1.Example.org:443",
        ] {
            assert_eq!(check_tcp_address(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "node.example",
            "node.example:",
            "node.example:0",
            "node.example:65536",
            "node.example:080",
            "node.example:+80",
            ":4000",
            "node..example:4000",
            "no de.example:4000",
            "user@node.example:4000",
            "node.example/x:4000",
            "2001:db8::1:4000",
            "[nope]:4000",
            "tcp://node.example:4000",
        ] {
            assert!(check_tcp_address(bad).is_err(), "{bad:?}");
        }
        let long = format!("{}:4000", "a.".repeat(MAX_TCP_ADDRESS_LEN / 2));
        assert!(check_tcp_address(&long).is_err());

        assert_eq!(TcpSpec::default().check(), Ok(()));
        let bad = |f: fn(&mut TcpSpec)| {
            let mut t = TcpSpec::default();
            f(&mut t);
            t.check().unwrap_err().0
        };
        assert_eq!(bad(|t| t.max_connections = 0), "max_connections");
        assert_eq!(
            bad(|t| t.max_connections = MAX_TCP_CONNECTIONS + 1),
            "max_connections"
        );
        assert_eq!(bad(|t| t.max_bytes_per_second = 0), "max_bytes_per_second");
        assert_eq!(
            bad(|t| t.max_bytes_per_second = MAX_TCP_BYTES_PER_SECOND + 1),
            "max_bytes_per_second"
        );
        assert_eq!(bad(|t| t.idle_timeout_secs = 0), "idle_timeout_secs");
        assert_eq!(
            bad(|t| t.idle_timeout_secs = MAX_TCP_IDLE_TIMEOUT_SECS + 1),
            "idle_timeout_secs"
        );
        assert_eq!(bad(|t| t.fuel_per_second = 0), "fuel_per_second");
        assert_eq!(
            bad(|t| t.fuel_per_second = MAX_TCP_FUEL_PER_SECOND + 1),
            "fuel_per_second"
        );
    }

    #[test]
    fn a_service_lease_locks_its_probes_besides_its_slots() {
        assert_eq!(probes_per_interval(60, 60), 1);
        assert_eq!(probes_per_interval(61, 60), 2);
        assert_eq!(probes_per_interval(3_600, 60), 60);
        assert_eq!(probes_per_interval(10, 60), 1);
        let mut spec = ReservationSpec {
            currency: None,
            slots: 2,
            memory_mib: 64,
            fuel_per_interval: 1,
            interval_secs: 120,
            intervals: 5,
            max_price_per_interval: 100,
            ledger: Principal::anonymous(),
            min_provider_stake: 0,
            max_rematches: 0,
            delegates: vec![],
            service: None,
        };
        assert_eq!(service_probe_cost(&spec, 60, 7), Some(0));
        assert_eq!(lease_cost(&spec, 60, 7), reservation_cost(&spec));
        spec.service = Some(ServiceSpec {
            sealed: None,
            component: ModuleSource::Stored { sha256: [0; 32] },
            env: vec![],
            allowed_hosts: vec![],
            health_path: "/".into(),
            callback: None,
            limits: ServiceLimits::default(),
            tcp: None,
        });
        // 2 slots x 5 intervals x 2 probes x 7.
        assert_eq!(service_probe_cost(&spec, 60, 7), Some(140));
        assert_eq!(lease_cost(&spec, 60, 7), Some(2 * 5 * 100 + 140));
        assert_eq!(lease_cost(&spec, 60, Tokens::MAX), None);
    }

    #[test]
    fn probe_settings_are_checked() {
        let init = MatcherInit::new(
            Principal::anonymous(),
            Principal::anonymous(),
            Principal::anonymous(),
            1,
        );
        assert_eq!(init.check(), Ok(()));
        assert_eq!(init.market_fee_ppm(), 0);
        assert_eq!(init.probe_interval_secs(), DEFAULT_PROBE_INTERVAL_SECS);
        assert_eq!(init.probe_failures(), DEFAULT_PROBE_FAILURES);
        assert_eq!(init.probe_fee(), DEFAULT_PROBE_FEE);
        for bad in [
            MatcherInit {
                probe_interval_secs: Some(MIN_PROBE_INTERVAL_SECS - 1),
                ..init.clone()
            },
            MatcherInit {
                probe_interval_secs: Some(86_401),
                ..init.clone()
            },
            MatcherInit {
                probe_failures: Some(0),
                ..init.clone()
            },
            MatcherInit {
                probe_failures: Some(MAX_PROBE_FAILURES + 1),
                ..init.clone()
            },
            MatcherInit {
                market_fee_ppm: Some(MAX_MARKET_FEE_PPM + 1),
                ..init.clone()
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
        // The default fee covers the dearest probe at 2 XDR per ICP:
        // cycles / 1e12 XDR / 2 XDR per ICP * 1e8 e8s.
        let dearest = crate::outcall::http_request_cycles(
            (MAX_ENDPOINT_LEN + MAX_HEALTH_PATH_LEN + "transform_probe".len()) as u64,
            crate::outcall::PROBE_MAX_RESPONSE_BYTES,
        );
        assert!(
            dearest.div_ceil(2 * 10_000) <= DEFAULT_PROBE_FEE,
            "{dearest}"
        );
    }

    #[test]
    fn a_lock_covers_the_fees_of_any_releases_of_its_cost() {
        assert_eq!(market_fee_ceil(1_000, 25_000), Some(25));
        assert_eq!(market_fee_ceil(1_001, 25_000), Some(26));
        assert_eq!(market_fee_floor(1_001, 25_000), Some(25));
        assert_eq!(with_market_fee(1_001, 25_000), Some(1_027));
        assert_eq!(with_market_fee(1_001, 0), Some(1_001));
        assert_eq!(
            market_fee_ceil(Tokens::MAX, MAX_MARKET_FEE_PPM),
            Some(Tokens::MAX / 10 + 1)
        );
        assert_eq!(
            market_fee_floor(Tokens::MAX, MAX_MARKET_FEE_PPM),
            Some(Tokens::MAX / 10)
        );
        assert_eq!(with_market_fee(Tokens::MAX, 1), None);
        // Releases of one token each: every fee rounds down to nothing,
        // while the lock's fee rounds up.
        let pieces = [1, 39, 40, 999_999, 1];
        let cost: Tokens = pieces.iter().sum();
        for ppm in [1, 7, 25_000, MAX_MARKET_FEE_PPM] {
            let fees: Tokens = pieces
                .iter()
                .map(|a| market_fee_floor(*a, ppm).unwrap())
                .sum();
            assert!(fees <= market_fee_ceil(cost, ppm).unwrap(), "{ppm}");
        }
    }

    #[test]
    fn the_largest_notice_stays_under_its_bound() {
        let notice = JobNotice {
            job_id: u64::MAX,
            reservation: Some(u64::MAX),
            status: JobStatus::Succeeded,
            outcome: Some(
                RunOutcome::Trap {
                    message: "é".repeat(10_000),
                }
                .truncated(MAX_NOTICE_MESSAGE_BYTES),
            ),
            fuel_used: Some(u64::MAX),
            provider: Some(Principal::from_slice(&[0xff; 29])),
            price: Some(Tokens::MAX),
            intervals_paid: u32::MAX,
            paid: Tokens::MAX,
            output_len: u64::MAX,
            output_sha256: Some([0xff; 32]),
        };
        let Some(RunOutcome::Trap { message }) = &notice.outcome else {
            unreachable!()
        };
        assert_eq!(message.len(), MAX_NOTICE_MESSAGE_BYTES);
        let bytes = candid::encode_one(&notice).unwrap().len();
        assert!(bytes <= MAX_NOTICE_BYTES, "{bytes} bytes");
    }

    #[test]
    fn a_message_is_cut_at_a_character_boundary() {
        let cut = RunOutcome::InvalidModule {
            message: "aé".into(),
        }
        .truncated(2);
        assert_eq!(
            cut,
            RunOutcome::InvalidModule {
                message: "a".into()
            }
        );
        assert_eq!(RunOutcome::OutOfFuel.truncated(0), RunOutcome::OutOfFuel);
    }
}
