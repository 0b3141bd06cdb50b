//! The matcher's stable memory layout. Every stable structure has its own
//! `MemoryId`, declared here and never reused for anything else; the
//! configuration cell and the event log have the ids every canister gives
//! them (0, 201 and 202, from `canister_common::memory`).

pub use canister_common::memory::{CONFIG, EVENT_LOG_BLOCKS, EVENT_LOG_META, Memory, get};
use ic_stable_structures::memory_manager::MemoryId;

/// Offers by id.
pub const OFFERS: MemoryId = MemoryId::new(3);
/// Offers with a free slot, by ledger, price and age.
pub const OFFERS_BY_PRICE: MemoryId = MemoryId::new(4);
/// Resting bids by job id.
pub const BIDS: MemoryId = MemoryId::new(5);
/// Resting bids by ledger, price (descending) and age.
pub const BIDS_BY_PRICE: MemoryId = MemoryId::new(6);
/// Job module metadata by sha256.
pub const MODULE_META: MemoryId = MemoryId::new(7);
/// Job module chunks by (sha256, index).
pub const MODULE_CHUNKS: MemoryId = MemoryId::new(8);
/// Outbox steps by sequence number.
pub const OUTBOX_STEPS: MemoryId = MemoryId::new(9);
/// Outbox step numbers by (job, sequence number).
pub const OUTBOX_BY_JOB: MemoryId = MemoryId::new(10);
/// Jobs by id.
pub const JOBS: MemoryId = MemoryId::new(11);
/// (owner, job id) pairs.
pub const JOBS_BY_OWNER: MemoryId = MemoryId::new(12);
/// (deadline, job id, attempt) triples.
pub const DEADLINES: MemoryId = MemoryId::new(13);
/// Node principal to provider.
pub const NODES: MemoryId = MemoryId::new(14);
/// Reservations by id.
pub const RESERVATIONS: MemoryId = MemoryId::new(15);
/// (reservation, job) pairs of jobs waiting for a reserved slot.
pub const RESERVED_QUEUE: MemoryId = MemoryId::new(16);
/// Registered DAOs: governance canister to name.
pub const DAOS: MemoryId = MemoryId::new(17);
/// (owner, job) pairs of jobs not yet terminal, for the per-owner limit.
pub const ACTIVE_BY_OWNER: MemoryId = MemoryId::new(18);
/// (provider, job) pairs of jobs assigned to a provider and not finished.
pub const ASSIGNED_BY_PROVIDER: MemoryId = MemoryId::new(19);
/// Provider to the node principal its latest offer named.
pub const NODE_OF_PROVIDER: MemoryId = MemoryId::new(20);
/// (uploader, sha256) pairs of the module store.
pub const MODULES_BY_UPLOADER: MemoryId = MemoryId::new(21);
/// (idle since, sha256) pairs of modules no job uses.
pub const MODULES_IDLE: MemoryId = MemoryId::new(22);
/// Bytes of all stored modules.
pub const MODULE_BYTES: MemoryId = MemoryId::new(23);
/// (finished at, job id) pairs of finished one-off jobs, oldest first.
pub const FINISHED_JOBS: MemoryId = MemoryId::new(24);
/// The version of the layout the state was last brought to (absent: 0,
/// from a module that built its indexes at every upgrade).
pub const LAYOUT_VERSION: MemoryId = MemoryId::new(25);
/// Counts of audits: runs started and verdicts by kind.
pub const AUDIT_COUNTS: MemoryId = MemoryId::new(26);
/// (due, slot job id, attempt) triples of service replicas' next probes.
pub const PROBES_DUE: MemoryId = MemoryId::new(27);
/// Counts of probes made and failed.
pub const PROBE_COUNTS: MemoryId = MemoryId::new(28);
/// The rates last read of each ledger's token (see `crate::rates`).
pub const RATES: MemoryId = MemoryId::new(29);
/// The matcher's vetKD public key for job keys, once read (see
/// `market_api::privacy`).
pub const PRIVACY_KEY: MemoryId = MemoryId::new(30);
/// Counts of job keys derived and refused (see `crate::state::KeyCounts`).
pub const JOB_KEY_COUNTS: MemoryId = MemoryId::new(31);
/// The top-ups of the canisters' cycles (see `crate::top_up`).
pub const TOP_UPS: MemoryId = MemoryId::new(32);
/// The matcher's last run and recent outages (see
/// `crate::market::outages`).
pub const OUTAGES: MemoryId = MemoryId::new(33);
