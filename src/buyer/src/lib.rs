//! The buyer's side of the marketplace, behind the `market` tool (whose
//! command line lives with its binary): upload a
//! WASI module once, lock funds and submit a job, follow it until it ends,
//! read its result, dispute it ([`dispute`]); deposit, check and withdraw
//! the escrow balance; reserve slots and run jobs in them (`market reserve`, `run --reservation`);
//! lease replicas of a network service and follow their endpoints (`market
//! serve`, `market service`); list
//! providers with their stake and track record (`market providers`); print
//! what an SNS DAO proposes to buy capacity ([`sns`]); seal a job's input,
//! secret env and output, or a lease's secret env, to the job's key, and
//! open a sealed output ([`Sealing`], [`job_stdout`]).
//!
//! Every function takes a [`MarketClient`](market_client::MarketClient)
//! over any [`Transport`](market_client::transport::Transport), so tests drive the
//! same code against the in-process devnet that `market` runs against the IC.
//! Progress goes to a [`Console`]; the job's stdout is returned as bytes and
//! never mixed with it.

mod candid_text;
mod console;
mod dispute;
mod error;
mod funds;
mod module;
mod pricing;
mod privacy;
mod providers;
mod request;
mod reserve;
mod run;
mod service;
pub mod sns;
mod watch;

pub use candid_text::{blob_text, candid_line, candid_text};
pub use console::Console;
pub use dispute::{dispute, dispute_message, why_not_disputable};
pub use error::BuyerError;
pub use funds::{Funds, check_funds, deposit, funds, withdraw};
pub use module::{ModuleUpload, ensure_module, sha256_of};
pub use pricing::{job_locked, job_pricing_text, lock_now, paying_unit, quote, rates_text};
pub use privacy::{
    MAX_SEALED_INPUT_BYTES, Sealer, Sealing, Stdout, check_secret_env_flags, job_spec, job_stdout,
    output_sealed, seal_lease_env,
};
pub use providers::{LIST_HEADER as PROVIDERS_HEADER, list_row as provider_row, providers};
pub use request::{JobRequest, audit_ppm_of, format_ppm, job_lock, parse_audit_ppm};
pub use reserve::{
    LIST_HEADER as RESERVATIONS_HEADER, cancel as cancel_reservation,
    describe as describe_reservation, extend as extend_reservation, list_row as reservation_row,
    reservation, reserve, set_delegates, submit_reserved,
};
pub use run::{RunOptions, RunReport, interrupted_message, run, sealed_parts, submit};
pub use service::{
    describe_service, follow_service, is_component, lease_over, lease_service, replica_changes,
    service,
};
pub use watch::{
    JobEvent, Settlement, audit_pending, audit_reason, audit_state, bill, describe_outcome,
    exit_code, format_time, job_events, output_truncated, result_in, settlement, summary,
    verdict_text, watch,
};

use market_client::retry::with_retries;
