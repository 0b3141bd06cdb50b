//! `provider-node offer post|update|withdraw|list`.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use market_api::OfferId;
use market_api::matcher::{Offer, OfferSpec};
use market_client::client::tokens::{format_tokens, parse_tokens};
use provider_node::config::GlobalArgs;

use super::context;

/// Offer subcommands.
#[derive(Subcommand, Debug)]
pub enum OfferCommand {
    /// Post a standing offer; resting bids it can serve are matched at once.
    Post(OfferTerms),
    /// Change the terms of one of your offers.
    Update {
        /// The offer's id (see `offer list`).
        id: OfferId,
        #[command(flatten)]
        terms: OfferTerms,
    },
    /// Withdraw one of your offers; jobs running on it go on.
    Withdraw {
        /// The offer's id.
        id: OfferId,
    },
    /// List your offers.
    List,
}

/// The terms of an offer.
#[derive(Args, Debug)]
pub struct OfferTerms {
    /// Price per interval in ICP (`0.001`) or e8s (`100000e8s`).
    #[arg(long)]
    pub price: String,
    /// Jobs this offer runs at once.
    #[arg(long, default_value_t = 1)]
    pub slots: u32,
    /// Memory per slot in MiB.
    #[arg(long, default_value_t = 256)]
    pub memory_mib: u32,
    /// Largest fuel per interval a job may ask for.
    #[arg(long, default_value_t = 10_000_000_000)]
    pub max_fuel_per_interval: u64,
    /// Shortest heartbeat interval accepted, seconds.
    #[arg(long, default_value_t = 10)]
    pub min_interval_secs: u64,
    /// Longest heartbeat interval accepted, seconds.
    #[arg(long, default_value_t = 3600)]
    pub max_interval_secs: u64,
    /// Capability tag (repeatable).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
}

impl OfferTerms {
    fn spec(&self, ledger: candid::Principal) -> anyhow::Result<OfferSpec> {
        let price = parse_tokens(&self.price).map_err(|e| anyhow::anyhow!("--price: {e}"))?;
        anyhow::ensure!(
            self.min_interval_secs <= self.max_interval_secs,
            "--min-interval-secs ({}) is above --max-interval-secs ({})",
            self.min_interval_secs,
            self.max_interval_secs
        );
        anyhow::ensure!(self.slots > 0, "--slots: at least 1");
        Ok(OfferSpec {
            slots: self.slots,
            memory_per_slot_mib: self.memory_mib,
            max_fuel_per_interval: self.max_fuel_per_interval,
            price_per_interval: price,
            ledger,
            min_interval_secs: self.min_interval_secs,
            max_interval_secs: self.max_interval_secs,
            tags: self.tags.clone(),
        })
    }
}

pub fn run(global: &GlobalArgs, command: OfferCommand) -> anyhow::Result<ExitCode> {
    context::runtime()?.block_on(async {
        let s = context::connect(global).await?;
        match command {
            OfferCommand::Post(terms) => {
                let spec = terms.spec(s.ids().ledger)?;
                let id = s.client.post_offer(spec).await?;
                println!("offer {id} posted");
            }
            OfferCommand::Update { id, terms } => {
                let spec = terms.spec(s.ids().ledger)?;
                let id = s.client.update_offer(id, spec).await?;
                println!("offer {id} updated");
            }
            OfferCommand::Withdraw { id } => {
                s.client.withdraw_offer(id).await?;
                println!("offer {id} withdrawn");
            }
            OfferCommand::List => {
                let offers = s.client.offers_of(s.provider).await?;
                if offers.is_empty() {
                    eprintln!("no offers (post one with `provider-node offer post --price ...`)");
                }
                for o in offers {
                    println!(
                        "{}\t{}\t{}..{} s\t{}",
                        o.id,
                        offer_terms(&o).join("\t"),
                        o.spec.min_interval_secs,
                        o.spec.max_interval_secs,
                        o.spec.tags.join(",")
                    );
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// An offer's price, slots in use, memory and fuel, as the CLI shows them.
pub(super) fn offer_terms(o: &Offer) -> [String; 4] {
    [
        format!("{} per interval", format_tokens(o.spec.price_per_interval)),
        format!("{}/{} slots used", o.slots_used, o.spec.slots),
        format!("{} MiB", o.spec.memory_per_slot_mib),
        format!("fuel/interval <= {}", o.spec.max_fuel_per_interval),
    ]
}
