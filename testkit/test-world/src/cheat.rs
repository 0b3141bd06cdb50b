//! A provider node that cheats, for the tests that show audits catch it.
//!
//! The node is a real daemon with a real sandbox: it runs every job it is
//! given, audit runs included (it can't tell them from jobs). It lies only
//! in what it reports: [`Cheating`] rewrites each `submit_result` on its
//! way to the matcher, after the sandbox ran the job and the daemon built
//! its honest report. Nothing in the daemon knows: its heartbeats report
//! the run's true progress, as an honest node's do. The market sees
//! exactly what a modified node would send.

use candid::Principal;
use market_api::matcher::{MAX_OUTPUT_BYTES, SubmitResultArgs};
use market_client::transport::{Call, Transport, TransportError};
use market_client::{CanisterIds, MarketClient};
use provider_node::daemon::Daemon;
use provider_node::daemon::metrics::Metrics;
use provider_node::sandbox::SandboxConfig;
use sha2::Digest;

use crate::{DaemonSetup, daemon_with_sandbox};

/// How a cheating node lies in the results it reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cheat {
    /// It reports what its sandbox ran: an honest node.
    Honest,
    /// It reports [`FORGED_OUTPUT`] (or, if the run printed exactly that,
    /// the same with one more line) with the sha256 of what it reports,
    /// so the result is consistent in itself, and the fuel the run used.
    WrongOutput,
    /// It reports the run's output and more fuel than the run used
    /// ([`inflated_fuel`]): within the job's budget, and no more than its
    /// offer's declared speed allows by the time the result reaches the
    /// matcher (the result is held back until it does).
    InflatedFuel,
    /// It heartbeats what the run burns, and so is paid into its pending
    /// balance as it goes, but never delivers the result: every
    /// `submit_result` reads as a dropped connection.
    NoResult,
}

/// What a [`Cheat::WrongOutput`] node reports as the output of every job.
pub const FORGED_OUTPUT: &[u8] = b"forged output\n";

/// The fuel a [`Cheat::InflatedFuel`] node reports for a run that used
/// `used` of `budget`: half as much again (at least one more), within the
/// budget. Equal to `used` only when the run used its whole budget.
pub fn inflated_fuel(used: u64, budget: u64) -> u64 {
    used.saturating_add((used / 2).max(1)).min(budget).max(used)
}

/// The result a [`Cheat::WrongOutput`] node reports instead of `output`.
fn forged(output: &[u8]) -> Vec<u8> {
    let mut forged = FORGED_OUTPUT.to_vec();
    if output == FORGED_OUTPUT {
        forged.extend_from_slice(FORGED_OUTPUT);
    }
    forged.truncate(MAX_OUTPUT_BYTES);
    forged
}

/// The transport of a cheating node: calls pass through unchanged but
/// `submit_result`, whose result it rewrites as its [`Cheat`] says.
#[derive(Clone)]
pub struct Cheating<T> {
    inner: T,
    ids: CanisterIds,
    provider: Principal,
    cheat: Cheat,
}

impl<T: Transport + Clone> Cheating<T> {
    /// Calls through `inner` for a node of `provider`, lying as `cheat`
    /// says.
    pub fn new(inner: T, ids: CanisterIds, provider: Principal, cheat: Cheat) -> Self {
        Self {
            inner,
            ids,
            provider,
            cheat,
        }
    }

    /// The result to send instead of `args`, or an error that reads as a
    /// dropped connection while an inflated count would be faster than
    /// the declared speed (the daemon retries with backoff).
    async fn lie(&self, mut args: SubmitResultArgs) -> Result<SubmitResultArgs, TransportError> {
        match self.cheat {
            Cheat::Honest => {}
            Cheat::NoResult => {
                return Err(TransportError::Network("the result never leaves".into()));
            }
            Cheat::WrongOutput => {
                let output = forged(&args.result.output);
                args.result.output_sha256 = sha2::Sha256::digest(&output).into();
                args.result.output = output;
            }
            Cheat::InflatedFuel => {
                let held =
                    || TransportError::Network("held back until the fuel is plausible".into());
                let client = MarketClient::new(self.inner.clone(), self.ids);
                let job = client
                    .get_job(args.job_id)
                    .await
                    .ok()
                    .flatten()
                    .ok_or_else(held)?;
                let fuel = inflated_fuel(args.result.fuel_used, job.spec.limits.fuel);
                let (now, listed) = (
                    client.time_ns().await,
                    client.assignments(self.provider).await,
                );
                let (Ok(now), Ok(listed)) = (now, listed) else {
                    return Err(held());
                };
                let allowed = listed
                    .iter()
                    .find(|a| a.job_id == args.job_id && a.attempt == args.attempt)
                    .and_then(|a| {
                        let from = a.counting_from_ns?;
                        let ns = u128::from(now.saturating_sub(from));
                        u64::try_from(u128::from(a.fuel_per_sec) * ns / 1_000_000_000).ok()
                    })
                    .unwrap_or(0);
                if fuel > allowed {
                    return Err(held());
                }
                args.result.fuel_used = fuel;
            }
        }
        Ok(args)
    }
}

impl<T: Transport + Clone> Transport for Cheating<T> {
    fn sender(&self) -> Principal {
        self.inner.sender()
    }

    async fn update(&self, call: Call<'_>) -> Result<Vec<u8>, TransportError> {
        if call.method != "submit_result" || call.canister != self.ids.matcher {
            return self.inner.update(call).await;
        }
        let Ok(args) = candid::decode_one::<SubmitResultArgs>(&call.arg) else {
            return self.inner.update(call).await;
        };
        let args = self.lie(args).await?;
        let arg = candid::encode_one(&args)
            .map_err(|e| TransportError::Network(format!("encoding the result: {e}")))?;
        self.inner.update(Call { arg, ..call }).await
    }

    async fn query(&self, call: Call<'_>) -> Result<Vec<u8>, TransportError> {
        self.inner.query(call).await
    }

    async fn time_ns(&self) -> Result<u64, TransportError> {
        self.inner.time_ns().await
    }
}

/// A daemon as [`daemon_with_sandbox`] makes, calling through `client`'s
/// transport wrapped in [`Cheating`]: it runs its jobs in the sandbox
/// `sandbox` and reports them as `cheat` says.
pub fn cheating_daemon<T: Transport + Clone>(
    client: MarketClient<T>,
    setup: DaemonSetup<'_>,
    sandbox: SandboxConfig,
    cheat: Cheat,
) -> (Daemon<Cheating<T>>, Metrics) {
    let ids = *client.ids();
    let transport = Cheating::new(client.transport().clone(), ids, setup.provider, cheat);
    daemon_with_sandbox(MarketClient::new(transport, ids), setup, sandbox)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inflated_fuel_is_more_than_used_within_the_budget() {
        assert_eq!(inflated_fuel(100, 1_000), 150);
        assert_eq!(inflated_fuel(1, 1_000), 2);
        assert_eq!(inflated_fuel(0, 1_000), 1);
        assert_eq!(inflated_fuel(900, 1_000), 1_000);
        assert_eq!(inflated_fuel(1_000, 1_000), 1_000, "no room left");
    }

    #[test]
    fn the_forged_output_differs_from_the_real_one() {
        assert_eq!(forged(b"hello\n"), FORGED_OUTPUT);
        assert_ne!(forged(FORGED_OUTPUT), FORGED_OUTPUT);
    }
}
