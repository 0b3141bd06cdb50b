//! `register`, `stake`, `unstake`, `withdraw` and `status`.

use std::process::ExitCode;

use candid::Principal;
use clap::Args;
use market_api::Account;
use market_api::matcher::{Assignment, JobKind};
use market_api::registry::{ProviderProfile, RegistryError};
use market_client::client::ClientError;
use market_client::client::time::format_time;
use market_client::client::tokens::{format_tokens, parse_tokens};
use provider_node::config::GlobalArgs;
use provider_node::provider::{self, EarningsWithdrawal};

use super::context;

/// Flags of `register`.
#[derive(Args, Debug)]
pub struct RegisterArgs {
    /// Display name of the provider.
    #[arg(long)]
    pub name: String,
    /// Region of the machines, e.g. `eu-west`.
    #[arg(long)]
    pub region: String,
    /// Jobs run at once.
    #[arg(long, default_value_t = 2)]
    pub slots: u32,
    /// Memory per slot in MiB.
    #[arg(long, default_value_t = 1024)]
    pub memory_per_slot_mib: u32,
    /// Capability tag (repeatable).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Public URL of the provider.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// The principal the daemon signs heartbeats with (default: this identity).
    #[arg(long)]
    pub node: Option<Principal>,
    /// Replace the profile of an already registered provider.
    #[arg(long)]
    pub update: bool,
}

/// An amount of ICP: `10`, `0.5`, or `150000e8s`.
#[derive(Args, Debug)]
pub struct AmountArgs {
    /// Amount in ICP (`1.5`) or e8s (`150000000e8s`).
    pub amount: String,
}

/// Flags of `withdraw`.
#[derive(Args, Debug)]
pub struct WithdrawFlags {
    /// Only withdraw earnings from the escrow.
    #[arg(long, conflicts_with = "stake_only")]
    pub earnings_only: bool,
    /// Only withdraw unbonded stake from the registry.
    #[arg(long)]
    pub stake_only: bool,
    /// Send the earnings to this principal instead of the identity's own
    /// account (the registry returns unbonded stake to the identity only).
    #[arg(long)]
    pub to: Option<Principal>,
}

pub fn register(global: &GlobalArgs, args: RegisterArgs) -> anyhow::Result<ExitCode> {
    context::runtime()?.block_on(async {
        let s = context::connect(global).await?;
        let profile = ProviderProfile {
            display_name: args.name,
            region: args.region,
            node: args.node.unwrap_or(s.identity.principal),
            total_slots: args.slots,
            memory_per_slot_mib: args.memory_per_slot_mib,
            tags: args.tags,
            endpoint: args.endpoint,
        };
        if args.update {
            s.client.update_profile(profile).await?;
            println!("profile of {} updated", s.identity.principal);
        } else {
            match s.client.register_provider(profile).await {
                Err(ClientError::Registry(RegistryError::AlreadyRegistered)) => {
                    anyhow::bail!(
                        "{} is already registered; pass --update to change its profile",
                        s.identity.principal
                    )
                }
                other => other?,
            }
            println!("registered {} as a provider", s.identity.principal);
            eprintln!("next: `provider-node stake <ICP>`, then `provider-node offer post ...`");
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn amount(args: &AmountArgs) -> anyhow::Result<u128> {
    let a = parse_tokens(&args.amount).map_err(|e| anyhow::anyhow!("amount: {e}"))?;
    anyhow::ensure!(a > 0, "amount: must be more than zero");
    Ok(a)
}

pub fn stake(global: &GlobalArgs, args: AmountArgs) -> anyhow::Result<ExitCode> {
    let amount = amount(&args)?;
    context::runtime()?.block_on(async {
        let s = context::connect(global).await?;
        eprintln!(
            "approving the registry to take {} and the ledger fee, then staking...",
            format_tokens(amount)
        );
        let staked = provider::stake(&s.client, amount).await?;
        println!(
            "staked {} (ledger block {}; the wallet paid {} in fees)",
            format_tokens(staked.amount),
            staked.block,
            format_tokens(2 * staked.fee)
        );
        Ok(ExitCode::SUCCESS)
    })
}

pub fn unstake(global: &GlobalArgs, args: AmountArgs) -> anyhow::Result<ExitCode> {
    let amount = amount(&args)?;
    context::runtime()?.block_on(async {
        let s = context::connect(global).await?;
        let entry = s.client.unstake(amount).await?;
        println!(
            "{} is unbonding until {} (then `provider-node withdraw`)",
            format_tokens(entry.amount),
            format_time(entry.release_at_ns)
        );
        Ok(ExitCode::SUCCESS)
    })
}

pub fn withdraw(global: &GlobalArgs, args: WithdrawFlags) -> anyhow::Result<ExitCode> {
    context::runtime()?.block_on(async {
        let s = context::connect(global).await?;
        let to = Account::from(args.to.unwrap_or(s.identity.principal));
        let mut did_something = false;
        if !args.stake_only {
            match provider::withdraw_earnings(&s.client, to).await? {
                EarningsWithdrawal::Withdrawn(w) => {
                    println!(
                        "withdrew {} of earnings ({} after the fee) to {} (ledger block {})",
                        format_tokens(w.amount),
                        format_tokens(w.received()),
                        to.owner,
                        w.block
                    );
                    did_something = true;
                }
                EarningsWithdrawal::TooSmall { claimable, fee } => eprintln!(
                    "earnings: {} claimable, not more than the ledger fee of {}",
                    format_tokens(claimable),
                    format_tokens(fee)
                ),
            }
        }
        if !args.earnings_only {
            match provider::withdraw_unbonded(&s.client).await? {
                Some(w) => {
                    println!(
                        "withdrew {} of unbonded stake ({} after the fee) to {} (ledger block {})",
                        format_tokens(w.amount),
                        format_tokens(w.received()),
                        s.identity.principal,
                        w.block
                    );
                    did_something = true;
                }
                None => eprintln!("no unbonded stake is ready to withdraw"),
            }
        }
        if !did_something {
            eprintln!("nothing was withdrawn");
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn status(global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    context::runtime()?.block_on(async {
        let s = context::connect(global).await?;
        let c = &s.client;
        println!("provider     {}", s.provider);
        if s.provider != s.identity.principal {
            println!("node         {}", s.identity.principal);
        }
        println!("network      {}", s.settings.network);
        let wallet = c.balance_of(Account::from(s.identity.principal)).await?;
        println!("wallet       {}", format_tokens(wallet));
        match c.get_provider(s.provider).await? {
            None => println!("registry     not registered (run `provider-node register`)"),
            Some(p) => {
                let unbonding: u128 = p.stake.unbonding.iter().map(|u| u.amount).sum();
                println!(
                    "profile      {} ({}), {} slots x {} MiB{}{}",
                    p.profile.display_name,
                    p.profile.region,
                    p.profile.total_slots,
                    p.profile.memory_per_slot_mib,
                    if p.jailed { ", JAILED" } else { "" },
                    if p.deregistered { ", deregistered" } else { "" },
                );
                println!(
                    "stake        free {}, bonded {}, unbonding {}, slashed so far {}",
                    format_tokens(p.stake.free),
                    format_tokens(p.stake.bonded),
                    format_tokens(unbonding),
                    format_tokens(p.slashed_total)
                );
                for u in &p.stake.unbonding {
                    println!(
                        "               {} free at {}",
                        format_tokens(u.amount),
                        format_time(u.release_at_ns)
                    );
                }
                let e = c.eligibility(s.provider).await?;
                match e.ineligible {
                    None => println!("eligible     yes"),
                    Some(why) => println!("eligible     no: {why:?}"),
                }
            }
        }
        let balance = c.escrow_balance(s.provider).await?;
        println!(
            "earnings     {} claimable (withdraw with `provider-node withdraw`)",
            format_tokens(balance.claimable)
        );
        let offers = c.offers_of(s.provider).await?;
        let quote = super::offer::quote(&s).await;
        println!("offers       {}", offers.len());
        for o in &offers {
            println!(
                "  #{:<4} {}, intervals {}..{} s",
                o.id,
                super::offer::offer_terms(o, &quote).join(", "),
                o.spec.min_interval_secs,
                o.spec.max_interval_secs
            );
        }
        let jobs = c.assignments(s.provider).await?;
        println!("jobs         {} assigned", jobs.len());
        for a in &jobs {
            println!("  {}", assignment_line(a));
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// One assignment as `status` shows it: its price in its unit, the fuel
/// reported, and its deadlines.
fn assignment_line(a: &Assignment) -> String {
    let state = if a.acknowledged {
        "running"
    } else {
        "waiting for the node"
    };
    let head = format!("job {:<5} attempt {} {state}", a.job_id, a.attempt);
    match a.kind {
        JobKind::ReservedSlot { reservation, slot } => format!(
            "{head}: slot {slot} of reservation {reservation} at {} per interval, next heartbeat by {}",
            format_tokens(a.price),
            format_time(a.next_deadline_ns)
        ),
        kind => {
            let price = match kind {
                JobKind::InReservation { reservation } => format!("in reservation {reservation}"),
                _ => format!("at {} per Gfuel", format_tokens(a.price)),
            };
            let result = a
                .result_deadline_ns
                .map_or_else(|| "not yet set".to_string(), format_time);
            format!(
                "{head} {price}, {} fuel reported, next heartbeat by {}, result due {result}",
                a.fuel_reported,
                format_time(a.next_deadline_ns)
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_show_their_price_unit_fuel_and_deadlines() {
        let mut a = Assignment {
            job_id: 4,
            attempt: 2,
            price: 10_000,
            next_deadline_ns: 0,
            result_deadline_ns: Some(60_000_000_000),
            fuel_reported: 1_500,
            fuel_per_sec: 100,
            counting_from_ns: Some(0),
            acknowledged: true,
            kind: JobKind::OneOff,
            interval_secs: 10,
            intervals_paid: 0,
            input_bytes: 0,
            seed: [0; 32],
        };
        assert_eq!(
            assignment_line(&a),
            "job 4     attempt 2 running at 0.0001 ICP per Gfuel, 1500 fuel reported, \
             next heartbeat by 1970-01-01 00:00:00 UTC, result due 1970-01-01 00:01:00 UTC"
        );
        a.kind = JobKind::ReservedSlot {
            reservation: 9,
            slot: 1,
        };
        assert!(
            assignment_line(&a).contains("slot 1 of reservation 9 at 0.0001 ICP per interval"),
            "{}",
            assignment_line(&a)
        );
        a.kind = JobKind::InReservation { reservation: 9 };
        a.result_deadline_ns = None;
        let line = assignment_line(&a);
        assert!(
            line.contains("in reservation 9") && line.contains("result due not yet set"),
            "{line}"
        );
    }
}
