//! `provider-node offer post|update|withdraw|list`.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use market_api::OfferId;
use market_api::matcher::{Offer, OfferSpec};
use market_client::client::prices::{Price, Quote, TokenUnit, parse_price};
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
    /// Price of one-off jobs per billion fuel, in ICP (`0.0001`,
    /// `0.0001icp`) or e8s (`10000e8s`), or in XDR (`0.00002xdr`: the offer
    /// takes XDR bids and is paid in ICP at the rate when each job is
    /// matched); a job pays for the fuel it uses.
    #[arg(long, value_name = "PRICE")]
    pub price_per_gfuel: String,
    /// The speed you guarantee, in fuel per second: heartbeats may report
    /// no more fuel than this allows, and a job naming no deadline must
    /// finish within twice its budget at this speed. `provider-node exec`
    /// measures a job's fuel and time.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub fuel_per_sec: u64,
    /// Price of a reserved slot per interval, in ICP (`0.001`) or e8s
    /// (`100000e8s`), or in XDR (`0.0002xdr`); in the same currency as
    /// --price-per-gfuel.
    #[arg(long, value_name = "PRICE")]
    pub price_per_interval: String,
    /// Jobs this offer runs at once.
    #[arg(long, default_value_t = 1)]
    pub slots: u32,
    /// Memory per slot in MiB.
    #[arg(long, default_value_t = 256)]
    pub memory_mib: u32,
    /// Largest fuel per interval a reserved slot may ask for.
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
    /// Take no audit runs (re-runs of other providers' jobs, paid like
    /// jobs, that check their results); by default an offer takes them.
    #[arg(long, env = "PROVIDER_NODE_NO_AUDITS", hide_env_values = true)]
    pub no_audits: bool,
}

impl OfferTerms {
    fn spec(&self, ledger: candid::Principal) -> anyhow::Result<OfferSpec> {
        let unit = TokenUnit::icp();
        let gfuel = parse_price(&self.price_per_gfuel, &unit)
            .map_err(|e| anyhow::anyhow!("--price-per-gfuel: {e}"))?;
        let interval = parse_price(&self.price_per_interval, &unit)
            .map_err(|e| anyhow::anyhow!("--price-per-interval: {e}"))?;
        anyhow::ensure!(
            gfuel.amount > 0 && interval.amount > 0,
            "--price-per-gfuel and --price-per-interval: more than zero"
        );
        // One currency per offer: its books are per currency.
        anyhow::ensure!(
            gfuel.currency == interval.currency,
            "--price-per-gfuel ({}) and --price-per-interval ({}): both in XDR (`0.0002xdr`) or \
             both in ICP",
            gfuel.format(&unit),
            interval.format(&unit)
        );
        anyhow::ensure!(
            self.min_interval_secs <= self.max_interval_secs,
            "--min-interval-secs ({}) is above --max-interval-secs ({})",
            self.min_interval_secs,
            self.max_interval_secs
        );
        anyhow::ensure!(self.slots > 0, "--slots: at least 1");
        Ok(OfferSpec {
            currency: gfuel.spec_currency(),
            slots: self.slots,
            memory_per_slot_mib: self.memory_mib,
            max_fuel_per_interval: self.max_fuel_per_interval,
            price_per_gfuel: gfuel.amount,
            fuel_per_sec: self.fuel_per_sec,
            price_per_interval: interval.amount,
            ledger,
            min_interval_secs: self.min_interval_secs,
            max_interval_secs: self.max_interval_secs,
            tags: self.tags.clone(),
            audits: self.no_audits.then_some(false),
        })
    }
}

pub fn run(global: &GlobalArgs, command: OfferCommand) -> anyhow::Result<ExitCode> {
    context::runtime()?.block_on(async {
        let s = context::connect(global).await?;
        match command {
            OfferCommand::Post(terms) => {
                let spec = terms.spec(s.ids().ledger)?;
                let id = s.client.post_offer(spec.clone()).await?;
                println!("offer {id} posted: {}", prices(&spec, &quote(&s).await));
            }
            OfferCommand::Update { id, terms } => {
                let spec = terms.spec(s.ids().ledger)?;
                let id = s.client.update_offer(id, spec.clone()).await?;
                println!("offer {id} updated: {}", prices(&spec, &quote(&s).await));
            }
            OfferCommand::Withdraw { id } => {
                s.client.withdraw_offer(id).await?;
                println!("offer {id} withdrawn");
            }
            OfferCommand::List => {
                let offers = s.client.offers_of(s.provider).await?;
                let quote = quote(&s).await;
                if offers.is_empty() {
                    eprintln!(
                        "no offers (post one with `provider-node offer post --price-per-gfuel ...`)"
                    );
                }
                for o in offers {
                    println!(
                        "{}\t{}\t{}..{} s\t{}",
                        o.id,
                        offer_terms(&o, &quote).join("\t"),
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

/// The matcher's rates for the configured ledger, to show prices with
/// their ICP equivalent; none (prices in their own unit) when the matcher
/// does not answer `get_rates`.
pub(super) async fn quote(s: &context::ProviderSession) -> Quote {
    match s.client.rates().await {
        Ok(rates) => Quote::at(&rates, s.ids().ledger, TokenUnit::icp()),
        Err(_) => Quote::offline(TokenUnit::icp()),
    }
}

/// An offer's two prices in the unit they were set in, each with what it
/// is worth in ICP at `quote` when that unit is XDR.
fn prices(spec: &OfferSpec, quote: &Quote) -> String {
    format!(
        "{} per Gfuel, {} per interval",
        quote.format(&Price::of_spec(spec.price_per_gfuel, spec.currency)),
        quote.format(&Price::of_spec(spec.price_per_interval, spec.currency)),
    )
}

/// An offer's prices (in the unit they were set in, with their ICP
/// equivalent at `quote`), speed, slots in use, memory, fuel and whether
/// it takes audit runs, as the CLI shows them.
pub(super) fn offer_terms(o: &Offer, quote: &Quote) -> [String; 7] {
    let price = |amount| quote.format(&Price::of_spec(amount, o.spec.currency));
    [
        format!("{} per Gfuel", price(o.spec.price_per_gfuel)),
        format!("{} fuel/s", o.spec.fuel_per_sec),
        format!("{} per interval", price(o.spec.price_per_interval)),
        format!("{}/{} slots used", o.slots_used, o.spec.slots),
        format!("{} MiB", o.spec.memory_per_slot_mib),
        format!("fuel/interval <= {}", o.spec.max_fuel_per_interval),
        if o.spec.audits == Some(false) {
            "no audits".into()
        } else {
            "takes audits".into()
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: OfferCommand,
    }

    fn terms(args: &[&str]) -> Result<OfferTerms, String> {
        let argv = ["offer", "post"].iter().chain(args);
        match Cli::try_parse_from(argv)
            .map_err(|e| e.to_string())?
            .command
        {
            OfferCommand::Post(t) => Ok(t),
            _ => unreachable!(),
        }
    }

    /// [`terms`] of flags written as a command line (no value with a
    /// space in it).
    fn terms_of(flags: &str) -> Result<OfferTerms, String> {
        terms(&flags.split_whitespace().collect::<Vec<_>>())
    }

    #[test]
    fn an_offer_names_both_prices_and_its_speed() {
        let ledger = candid::Principal::anonymous();
        let t = terms_of(
            "--price-per-gfuel 0.0001 --fuel-per-sec 500000000 --price-per-interval 0.001",
        )
        .unwrap();
        let spec = t.spec(ledger).unwrap();
        assert_eq!(
            (
                spec.price_per_gfuel,
                spec.fuel_per_sec,
                spec.price_per_interval
            ),
            (10_000, 500_000_000, 100_000)
        );
        let e = terms_of("--price-per-gfuel 1 --price-per-interval 1").unwrap_err();
        assert!(e.contains("--fuel-per-sec"), "{e}");
        let e =
            terms_of("--price-per-gfuel 1 --price-per-interval 1 --fuel-per-sec 0").unwrap_err();
        assert!(e.contains("--fuel-per-sec"), "{e}");
        let t = terms_of("--price-per-gfuel 0e8s --price-per-interval 1 --fuel-per-sec 1").unwrap();
        let e = t.spec(ledger).unwrap_err().to_string();
        assert!(e.contains("more than zero"), "{e}");
        let o = Offer {
            id: 3,
            provider: ledger,
            spec,
            slots_used: 1,
            created_at_ns: 0,
        };
        let shown = offer_terms(&o, &Quote::offline(TokenUnit::icp())).join(", ");
        assert!(
            shown.contains("per Gfuel") && shown.contains("500000000 fuel/s"),
            "{shown}"
        );
    }

    #[test]
    fn an_offer_priced_in_xdr_counts_cycles_and_shows_icp() {
        use market_api::prices::{Currency, RatesView, Valuation};
        let ledger = candid::Principal::anonymous();
        let xdr = |gfuel: &str, interval: &str| {
            terms(&[
                "--price-per-gfuel",
                gfuel,
                "--fuel-per-sec",
                "1",
                "--price-per-interval",
                interval,
            ])
            .unwrap()
            .spec(ledger)
        };
        let spec = xdr("0.02xdr", "0.5 XDR").unwrap();
        assert_eq!(
            (spec.currency, spec.price_per_gfuel, spec.price_per_interval),
            (Some(Currency::Xdr), 20_000_000_000, 500_000_000_000)
        );
        let spec = xdr("0.0001icp", "100000e8s").unwrap();
        assert_eq!(
            (spec.currency, spec.price_per_gfuel, spec.price_per_interval),
            (None, 10_000, 100_000)
        );
        let e = xdr("0.02xdr", "0.001").unwrap_err().to_string();
        assert!(
            e.contains("both in XDR") && e.contains("0.02 XDR") && e.contains("0.001 ICP"),
            "{e}"
        );
        let e = xdr("0.0000000000001xdr", "1xdr").unwrap_err().to_string();
        assert!(
            e.contains("--price-per-gfuel") && e.contains("at most 12 decimals of XDR"),
            "{e}"
        );
        let e = xdr("0xdr", "1xdr").unwrap_err().to_string();
        assert!(e.contains("more than zero"), "{e}");

        let rates = RatesView::stake_only(ledger, Valuation::icp(40_000, 1));
        let quote = Quote::at(&rates, ledger, TokenUnit::icp());
        let spec = xdr("0.02xdr", "0.5xdr").unwrap();
        assert_eq!(
            prices(&spec, &quote),
            "0.02 XDR (about 0.005 ICP) per Gfuel, 0.5 XDR (about 0.125 ICP) per interval"
        );
        let o = Offer {
            id: 1,
            provider: ledger,
            spec,
            slots_used: 0,
            created_at_ns: 0,
        };
        assert_eq!(
            offer_terms(&o, &quote)[0],
            "0.02 XDR (about 0.005 ICP) per Gfuel"
        );
        assert_eq!(
            offer_terms(&o, &Quote::offline(TokenUnit::icp()))[2],
            "0.5 XDR per interval"
        );
    }

    #[test]
    fn no_audits_keeps_the_offer_out_of_audit_runs() {
        let ledger = candid::Principal::anonymous();
        let base = [
            "--price-per-gfuel",
            "0.0001",
            "--fuel-per-sec",
            "1",
            "--price-per-interval",
            "0.001",
        ];
        let spec = terms(&base).unwrap().spec(ledger).unwrap();
        assert_eq!(spec.audits, None, "takes audits by default");
        let mut with_flag = base.to_vec();
        with_flag.push("--no-audits");
        let spec = terms(&with_flag).unwrap().spec(ledger).unwrap();
        assert_eq!(spec.audits, Some(false));
        let mut o = Offer {
            id: 1,
            provider: ledger,
            spec,
            slots_used: 0,
            created_at_ns: 0,
        };
        let offline = Quote::offline(TokenUnit::icp());
        assert!(offer_terms(&o, &offline).contains(&"no audits".to_string()));
        o.spec.audits = None;
        assert!(offer_terms(&o, &offline).contains(&"takes audits".to_string()));
        // Its variable, as the other settings have one.
        use clap::CommandFactory;
        let cmd = Cli::command();
        let post = cmd.find_subcommand("post").unwrap();
        let arg = post
            .get_arguments()
            .find(|a| a.get_long() == Some("no-audits"))
            .unwrap();
        assert_eq!(
            arg.get_env().and_then(|e| e.to_str()),
            Some("PROVIDER_NODE_NO_AUDITS")
        );
        assert!(
            cmd.find_subcommand("update")
                .unwrap()
                .get_arguments()
                .any(|a| a.get_long() == Some("no-audits")),
            "update takes it too"
        );
    }
}
