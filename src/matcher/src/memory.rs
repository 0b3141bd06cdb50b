//! The matcher's stable memory layout. Every stable structure has its own
//! `MemoryId`, declared here and never reused for anything else (`memory_ids!`
//! refuses, when the canister compiles, an id declared twice); the
//! configuration cell and the event log have the ids every canister gives
//! them (0, 201 and 202, from `canister_common::memory`).

pub use canister_common::memory::{CONFIG, EVENT_LOG_BLOCKS, EVENT_LOG_META, Memory, get};

canister_common::memory_ids! {
    /// Offers by id.
    OFFERS = 3;
    /// Offers with a free slot, by ledger, price and age.
    OFFERS_BY_PRICE = 4;
    /// Resting bids by job id.
    BIDS = 5;
    /// Resting bids by ledger, price (descending) and age.
    BIDS_BY_PRICE = 6;
    /// Job module metadata by sha256.
    MODULE_META = 7;
    /// Job module chunks by (sha256, index).
    MODULE_CHUNKS = 8;
    /// Outbox steps by sequence number.
    OUTBOX_STEPS = 9;
    /// Outbox step numbers by (job, sequence number).
    OUTBOX_BY_JOB = 10;
    /// Jobs by id.
    JOBS = 11;
    /// (owner, job id) pairs.
    JOBS_BY_OWNER = 12;
    /// (deadline, job id, attempt) triples.
    DEADLINES = 13;
    /// Node principal to provider.
    NODES = 14;
    /// Reservations by id.
    RESERVATIONS = 15;
    /// (reservation, job) pairs of jobs waiting for a reserved slot.
    RESERVED_QUEUE = 16;
    /// Registered DAOs: governance canister to name.
    DAOS = 17;
    /// (owner, job) pairs of jobs not yet terminal, for the per-owner limit.
    ACTIVE_BY_OWNER = 18;
    /// (provider, job) pairs of jobs assigned to a provider and not finished.
    ASSIGNED_BY_PROVIDER = 19;
    /// Provider to the node principal its latest offer named.
    NODE_OF_PROVIDER = 20;
    /// (uploader, sha256) pairs of the module store.
    MODULES_BY_UPLOADER = 21;
    /// (idle since, sha256) pairs of modules no job uses.
    MODULES_IDLE = 22;
    /// Bytes of all stored modules.
    MODULE_BYTES = 23;
    /// (finished at, job id) pairs of finished one-off jobs, oldest first.
    FINISHED_JOBS = 24;
    /// The version of the layout the state was last brought to (absent: 0,
    /// from a module that built its indexes at every upgrade).
    LAYOUT_VERSION = 25;
    /// Counts of audits: runs started and verdicts by kind.
    AUDIT_COUNTS = 26;
    /// (due, slot job id, attempt) triples of service replicas' next probes.
    PROBES_DUE = 27;
    /// Counts of probes made and failed.
    PROBE_COUNTS = 28;
    /// The rates last read of each ledger's token (see `crate::rates`).
    RATES = 29;
    /// The matcher's vetKD public key for job keys, once read (see
    /// `market_api::privacy`).
    PRIVACY_KEY = 30;
    /// Counts of job keys derived and refused (see `crate::state::KeyCounts`).
    JOB_KEY_COUNTS = 31;
    /// The top-ups of the canisters' cycles (see `crate::top_up`).
    TOP_UPS = 32;
    /// The matcher's last run and recent outages (see
    /// `crate::market::outages`).
    OUTAGES = 33;
}
