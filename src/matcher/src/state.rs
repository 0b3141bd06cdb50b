//! The matcher's durable state, reached only through [`read_state`] and
//! [`mutate_state`] so that no borrow is held across an `.await`.

use crate::lifecycle::Params;
use crate::market::{AuditCursor, Market, Memories};
use crate::memory::{self, Memory};
use crate::rates::{Pricing, RateCache};
use candid::Principal;
use canister_common::audit::{Books, BooksAudit};
use canister_common::codec::Cbor;
use canister_common::event_log::EventLog;
use ic_stable_structures::Cell;
use market_api::matcher::{MatcherEvent, MatcherInit};
use market_api::prices::Valuation;

/// Everything the matcher keeps across upgrades.
pub struct State {
    config: Cell<Cbor<Option<MatcherInit>>, Memory>,
    /// The public event log.
    pub events: EventLog<MatcherEvent, Memory>,
    /// Jobs, book, deadlines, modules and outbox.
    pub market: Market<Memory>,
    /// Which one-time migrations the state has had (see [`LAYOUT`]).
    layout: Cell<u32, Memory>,
    /// The background audit of the indexes (heap only: an upgrade starts
    /// its pass again).
    pub audit: BooksAudit<AuditCursor>,
    /// How many audit runs started and audits reached each verdict.
    pub audit_counts: Cell<Cbor<AuditCounts>, Memory>,
    /// How many probes of service replicas were made and failed.
    pub probe_counts: Cell<Cbor<ProbeCounts>, Memory>,
    /// The rates last read of each ledger's token.
    rates: Cell<Cbor<RateCache>, Memory>,
    /// The vetKD public key job contents are sealed under, with the name
    /// of the master key it was read for, once read.
    privacy_key: Cell<Cbor<Option<ReadKey>>, Memory>,
    /// How many job keys were derived and how many derivations failed.
    pub key_counts: Cell<Cbor<KeyCounts>, Memory>,
    /// The top-ups of the canisters' cycles made and under way.
    pub top_ups: Cell<Cbor<crate::top_up::TopUps>, Memory>,
}

/// How many job keys the matcher derived, for `/metrics`.
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyCounts {
    /// Keys derived and returned.
    #[serde(default)]
    pub derived: u64,
    /// Derivations the management canister rejected or left unanswered.
    #[serde(default)]
    pub failed: u64,
}

/// The matcher's vetKD public key as read, with the master key it was
/// read for.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ReadKey {
    /// The master key's name.
    pub key_name: String,
    /// The derived public key.
    #[serde(with = "serde_bytes")]
    pub public_key: Vec<u8>,
}

/// How many probes of service replicas were made and failed, for
/// `/metrics`.
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProbeCounts {
    /// Probes answered (or rejected).
    #[serde(default)]
    pub probes: u64,
    /// Probes that found no 2xx answer.
    #[serde(default)]
    pub failures: u64,
}

/// How many audit runs started and audits reached each verdict, for
/// `/metrics`.
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuditCounts {
    /// Audit runs started (re-runs and tie-breaks).
    pub runs: u64,
    /// Audits the buyer asked for.
    pub disputes: u64,
    /// Verdicts: the result stood.
    pub agreed: u64,
    /// Verdicts: the result was overturned.
    pub overturned: u64,
    /// Verdicts: no majority, or no auditor answered.
    pub inconclusive: u64,
}

/// The layout this module writes: 1 once the active-jobs, providers' and
/// module-store indexes exist (built once, at the first upgrade to a
/// module that has them; a fresh install starts with them).
pub const LAYOUT: u32 = 1;

impl State {
    fn open() -> Self {
        use memory::*;
        let mut state = Self {
            config: Cell::init(get(CONFIG), Cbor(None)),
            events: EventLog::init(get(EVENT_LOG_BLOCKS), get(EVENT_LOG_META)),
            market: Market::init(Memories {
                jobs: get(JOBS),
                jobs_by_owner: get(JOBS_BY_OWNER),
                active_by_owner: get(ACTIVE_BY_OWNER),
                assigned_by_provider: get(ASSIGNED_BY_PROVIDER),
                deadlines: get(DEADLINES),
                finished: get(FINISHED_JOBS),
                nodes: [get(NODES), get(NODE_OF_PROVIDER)],
                book: [
                    get(OFFERS),
                    get(OFFERS_BY_PRICE),
                    get(BIDS),
                    get(BIDS_BY_PRICE),
                ],
                modules: [
                    get(MODULE_META),
                    get(MODULE_CHUNKS),
                    get(MODULES_BY_UPLOADER),
                    get(MODULES_IDLE),
                    get(MODULE_BYTES),
                ],
                outbox: [get(OUTBOX_STEPS), get(OUTBOX_BY_JOB)],
                reservations: [get(RESERVATIONS), get(RESERVED_QUEUE), get(DAOS)],
                probes: get(PROBES_DUE),
                outages: get(OUTAGES),
            }),
            layout: Cell::init(get(LAYOUT_VERSION), 0),
            audit: BooksAudit::new(),
            audit_counts: Cell::init(get(AUDIT_COUNTS), Cbor(AuditCounts::default())),
            probe_counts: Cell::init(get(PROBE_COUNTS), Cbor(ProbeCounts::default())),
            rates: Cell::init(get(RATES), Cbor(RateCache::default())),
            privacy_key: Cell::init(get(PRIVACY_KEY), Cbor(None)),
            key_counts: Cell::init(get(JOB_KEY_COUNTS), Cbor(KeyCounts::default())),
            top_ups: Cell::init(get(TOP_UPS), Cbor(Default::default())),
        };
        state.sync_pricing();
        state
    }

    /// Gives the market the configuration's pricing and the rates read
    /// (nothing before the configuration is set).
    fn sync_pricing(&mut self) {
        if let Some(config) = self.config.get().0.as_ref() {
            self.market.pricing = Pricing::of(config, &self.rates.get().0);
            self.market.sealing = config.privacy.is_some();
        }
    }

    /// The rates read so far.
    pub fn rates(&self) -> RateCache {
        self.rates.get().0.clone()
    }

    /// Records a read of `ledger`'s rate at `now_ns` (see
    /// [`RateCache::record`]); the market values with it from now on.
    pub fn record_rate(&mut self, now_ns: u64, ledger: Principal, read: Result<Valuation, String>) {
        let keep = self.market.pricing.ledgers();
        let mut cache = self.rates.get().0.clone();
        cache.record(now_ns, ledger, read, &keep);
        self.rates.set(Cbor(cache));
        self.sync_pricing();
    }

    /// Problems with the rate readings (see [`RateCache::problems`]).
    pub fn rate_problems(&self) -> Vec<String> {
        self.rates.get().0.problems(&self.market.pricing)
    }

    /// The configuration; set at install, so always present afterwards.
    pub fn config(&self) -> MatcherInit {
        self.config.get().installed("matcher")
    }

    /// The lifecycle parameters of the configuration.
    pub fn params(&self) -> Params {
        let c = self.config();
        Params {
            grace_secs: c.grace_secs,
            bond_multiple: c.bond_multiple,
            slash_multiple: c.slash_multiple,
            min_slash: c.min_slash(),
            challenge_window_secs: c.challenge_window_secs(),
            min_audit_ppm: c.min_audit_ppm(),
            probe_interval_secs: c.probe_interval_secs(),
            probe_failures: c.probe_failures(),
            probe_fee: c.probe_fee(),
            market_fee_ppm: c.market_fee_ppm(),
        }
    }

    /// Brings a state written by an older module to [`LAYOUT`]: the
    /// indexes it lacks are built from the jobs, once (this reads every
    /// job; later upgrades skip it). Returns whether it did anything.
    pub fn migrate_layout(&mut self) -> bool {
        if *self.layout.get() >= LAYOUT {
            return false;
        }
        self.market.index_active_jobs_if_missing();
        self.market.index_assignments_if_missing();
        self.market.modules.index_if_missing();
        self.layout.set(LAYOUT);
        true
    }

    /// Marks a fresh state as written in [`LAYOUT`].
    pub fn set_fresh_layout(&mut self) {
        self.layout.set(LAYOUT);
    }

    /// Runs one chunk of the background audit at `now_ns`, if a pass is
    /// due or under way; broken records go to `log`.
    pub fn run_audit_chunk(&mut self, now_ns: u64, budget: usize, log: impl FnMut(&str)) {
        let market = &self.market;
        self.audit
            .run_chunk(now_ns, budget, |request| market.audit_chunk(request), log);
    }

    /// The matcher's job key as `privacy_key` shows it: `None` without
    /// privacy configured or before its public key is read.
    pub fn privacy_key(&self) -> Option<market_api::privacy::PrivacyKey> {
        let config = self.config().privacy?;
        // A key read for another master key (the configuration changed
        // since) is no key until the new one is read.
        let read = self
            .privacy_key
            .get()
            .0
            .clone()
            .filter(|k| k.key_name == config.key_name)?;
        Some(market_api::privacy::PrivacyKey {
            key_name: read.key_name,
            context: market_api::privacy::JOB_KEY_CONTEXT.to_vec(),
            public_key: read.public_key,
        })
    }

    /// Records the public key read for master key `key_name`.
    pub fn set_privacy_key(&mut self, key_name: String, public_key: Vec<u8>) {
        self.privacy_key.set(Cbor(Some(ReadKey {
            key_name,
            public_key,
        })));
    }

    /// Counts a derivation: `ok` if its key was returned.
    pub fn count_derivation(&mut self, ok: bool) {
        let mut c = self.key_counts.get().0;
        if ok {
            c.derived = c.derived.saturating_add(1);
        } else {
            c.failed = c.failed.saturating_add(1);
        }
        self.key_counts.set(Cbor(c));
    }

    /// Sets the configuration.
    pub fn set_config(&mut self, init: MatcherInit) {
        self.config.set(Cbor(Some(init)));
        self.sync_pricing();
        let keep = self.market.pricing.ledgers();
        let mut cache = self.rates.get().0.clone();
        let before = cache.readings.len();
        cache.retain(&keep);
        if cache.readings.len() != before {
            self.rates.set(Cbor(cache));
        }
    }
}

canister_common::canister_state!(State, State::open());
