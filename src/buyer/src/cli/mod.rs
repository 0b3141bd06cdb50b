//! The `market` command line: its flags, parsed with clap, and how they
//! become a [`JobRequest`]. The network, identity and canister flags (and
//! the config file) are [`NetworkArgs`], under `market`'s own names
//! (`MARKET_*`, `~/.config/market/`).

use std::path::PathBuf;

use candid::Principal;
use clap::{Args, Parser, Subcommand};
use market_api::matcher::ReservationId;
use market_api::{JobId, Tokens};

pub mod parse;
pub mod serve;
pub mod sns;

use market::{BuyerError, JobRequest, Sealing, parse_audit_ppm};
use market_client::IdentityCommand;
use market_client::client::prices::Price;
use market_client::config::NetworkArgs;
use parse::{SecretEnv, amount, env_pair, positive_amount, price, read, read_module, secret_env};
use serve::ServeArgs;
use sns::{ReserveArgs, SnsCommand};

/// `market`: the buyer's tool.
#[derive(Parser, Debug)]
#[command(
    name = "market",
    version,
    about = "Run WASI jobs on the ICP compute marketplace and pay providers in ICP",
    after_help = "Example:\n  market deposit 1\n  market run job.wasm --input data.bin --max-price-per-gfuel 0.001\n\n\
                  Reserved capacity: `market reserve --intervals 60 --max-price 0.01`, then \
                  `market run job.wasm --reservation ID` (you or your delegates).\n\n\
                  Private jobs: `market run job.wasm --private --secret-env API_KEY ...` seals \
                  the input, secret variables and stdout to the job (only you and the provider \
                  running it read them).\n\n\
                  SNS DAOs buy by proposal: `market sns functions`, `market sns fund`, \
                  `market sns payload <action>` print what to propose.\n\n\
                  Settings come from ~/.config/market/config.toml, MARKET_* variables \
                  and the flags above."
)]
pub struct Cli {
    /// Network, identity and canister settings.
    #[command(flatten, next_help_heading = "Settings")]
    pub global: NetworkArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Upload the module if the matcher lacks it, submit the job, follow it,
    /// then print its stdout (exit status 0 only if it exited with 0); a
    /// sealed stdout is opened with the job's key.
    Run(RunArgs),
    /// Like `run` without waiting: prints the job id.
    Submit(JobArgs),
    /// Upload a module to the matcher's store (skipped if already there);
    /// prints its sha256.
    Upload(UploadArgs),
    /// Follow a job until it ends and print its summary.
    Watch(JobIdArgs),
    /// Print a finished job's stdout (or write it to a file) and its
    /// summary; a sealed stdout is opened with the job's key (yours only).
    Result(ResultArgs),
    /// Cancel a job; what was not yet paid returns to your escrow balance.
    Cancel(JobIdArgs),
    /// Dispute a job's result within its challenge window: another provider
    /// runs the job again, paid from the job's lock.
    ///
    /// The result is withheld until the audit's verdict (`market watch`
    /// waits for it). If the majority of runs disagrees with it, the
    /// provider is slashed in your favour, forfeits its pay, and the
    /// majority's result replaces it. Only a job whose result may be
    /// audited (--audit-ppm, or a market minimum above 0) can be disputed,
    /// once, by its owner.
    Dispute(JobIdArgs),
    /// List your jobs, oldest first, one page at a time.
    Jobs(JobsArgs),
    /// Move ICP from your wallet into your escrow balance (approve + deposit).
    Deposit(AmountArgs),
    /// Show your wallet and escrow balances.
    Balance,
    /// Move ICP from your escrow balance back to your wallet (or elsewhere).
    Withdraw(WithdrawArgs),
    /// Reserve slots for a number of intervals; prints the reservation id.
    ///
    /// Locks slots × intervals × max price from your escrow balance
    /// (checked first), pays providers per interval whether or not a job
    /// runs, and lets you and your delegates run jobs in the slots
    /// (`market run job.wasm --reservation ID`).
    Reserve(ReserveArgs),
    /// Lease replicas of a network service (a wasi:http component) and
    /// follow their endpoints until Ctrl-C (the lease goes on) or its end.
    ///
    /// Uploads the component unless the matcher has it, locks replicas ×
    /// intervals × max price (and what the matcher's health probes cost)
    /// from your escrow balance (checked first), and prints each replica's
    /// URL as its provider starts it. Each replica runs on a different
    /// provider; the matcher probes its health path, and a replica that
    /// stops answering is slashed and matched to another provider.
    Serve(ServeArgs),
    /// Show a service lease: each replica's provider, endpoint and health,
    /// and what the lease locked and paid.
    Service(ReservationIdArgs),
    /// Show a reservation: its slots, money, queued jobs and delegates.
    ///
    /// Each slot with its provider, price, intervals paid, re-matches and
    /// running job; what is locked and paid.
    Reservation(ReservationIdArgs),
    /// List your reservations, oldest first, one page at a time.
    Reservations(JobsArgs),
    /// Add intervals to every live slot of one of your reservations.
    ///
    /// Locks live slots × intervals × max price more; the balance is
    /// checked first.
    Extend(ExtendArgs),
    /// Add or remove principals that may run jobs in one of your reservations.
    Delegates(DelegatesArgs),
    /// Cancel one of your reservations: intervals already paid stay paid,
    /// the rest of its lock returns to your escrow balance.
    CancelReservation(ReservationIdArgs),
    /// List the providers that may take work, with their stake and track
    /// record (jobs completed, audits, missed deadlines, slashes).
    Providers(ProvidersArgs),
    /// List the rate each ledger's token is valued at in XDR, where it
    /// comes from and how old it is, and what XDR-priced locks hold above
    /// their cost.
    ///
    /// A price in XDR (`--max-price 0.02xdr`) is paid in ICP: its lock
    /// converts at the rate when it is made (plus the buffer), the price
    /// agreed at the rate when it is matched; the unused lock returns at
    /// settle.
    Rates,
    /// Create or show your identity (PEM files as dfx writes them).
    #[command(subcommand)]
    Identity(IdentityCommand),
    /// For SNS DAOs: print what proposers paste into their proposals (the
    /// functions to register, the treasury transfer, action payloads).
    /// Makes no calls.
    #[command(subcommand)]
    Sns(SnsCommand),
}

/// A job: the module, its input and limits, and the price.
#[derive(Args, Debug, Clone)]
pub struct JobArgs {
    /// The WASI command module (.wasm, e.g. built for wasm32-wasip1).
    pub module: PathBuf,
    /// File given to the job on stdin (`-`: this command's stdin); at most 1 MiB.
    #[arg(long, short, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Highest price per billion fuel you pay, in ICP (`0.001`, `0.001icp`)
    /// or e8s (`100000e8s`), or in XDR (`0.0002xdr`: paid in ICP, locked at
    /// the rate now plus the market's buffer); the job locks this × --fuel
    /// until its result is final. Not needed (and ignored) with
    /// --reservation.
    #[arg(long, value_name = "PRICE", value_parser = price, required_unless_present = "reservation")]
    pub max_price_per_gfuel: Option<Price>,
    /// Fuel budget (deterministic instruction count): the most the job may
    /// use, and so the most it is billed for; it pays for what it uses.
    /// `provider-node exec` measures what it needs.
    #[arg(long, default_value_t = 10_000_000_000, value_name = "N")]
    pub fuel: u64,
    /// Wall-clock seconds one attempt may take [default: twice the budget
    /// at the provider's declared speed, plus one heartbeat interval].
    #[arg(long, value_name = "S")]
    pub deadline: Option<u64>,
    /// How often the provider heartbeats, seconds.
    #[arg(long, default_value_t = 60, value_name = "S")]
    pub interval_secs: u64,
    /// Memory limit of the job.
    #[arg(long, default_value_t = 64, value_name = "M")]
    pub memory_mib: u32,
    /// Times the job is re-queued when a provider fails it.
    #[arg(long, default_value_t = 2, value_name = "R")]
    pub retries: u32,
    /// Smallest stake a provider must hold to run the job (ignored with
    /// --reservation).
    #[arg(long, value_name = "ICP", value_parser = amount)]
    pub min_provider_stake: Option<Tokens>,
    /// Probability that the result is audited (run again on another
    /// provider), in parts per million: 0 to 1000000 (always) [default:
    /// the market's minimum, which applies if higher]. A job that may be
    /// audited locks its budget twice, for its run and an audit's re-run,
    /// and only such a job can be disputed (`market dispute`).
    #[arg(long, value_name = "PPM", value_parser = parse_audit_ppm)]
    pub audit_ppm: Option<u32>,
    /// Run the job in a slot of this reservation (yours, or one you are a
    /// delegate of). The slot pays: nothing is locked, your balance is not
    /// checked, and --max-price-per-gfuel and --min-provider-stake are
    /// ignored; --memory-mib must fit the slot, and the job runs at most
    /// --deadline (or, without one, twice the intervals its fuel takes at the
    /// slot's fuel per interval) of the reservation's intervals.
    #[arg(long, value_name = "ID")]
    pub reservation: Option<ReservationId>,
    /// An argument for the job (repeatable; arguments after `--` are added).
    #[arg(long = "arg", value_name = "X", allow_hyphen_values = true)]
    pub args: Vec<String>,
    /// An environment variable for the job (repeatable); nothing else of
    /// yours is passed on. A plain env is stored in the clear (shown only to
    /// the job's readers, but held in the matcher's state): put secrets in
    /// --secret-env.
    #[arg(long = "env", value_name = "K=V", value_parser = env_pair)]
    pub env: Vec<(String, String)>,
    /// A secret environment variable for the job (repeatable): `NAME=VALUE`,
    /// or `NAME` alone for the value of your own variable NAME (which keeps
    /// it out of your shell history and process list). Sealed to the job's
    /// key: only the provider running the job reads it (in plain, while it
    /// runs); the matcher stores ciphertext and shows it to no one. It
    /// replaces an --env variable of the same name. Needs a market with a
    /// privacy key.
    #[arg(long = "secret-env", value_name = "NAME[=VALUE]", value_parser = secret_env)]
    pub secret_env: Vec<SecretEnv>,
    /// Seal the input to the job's key: only the provider running the job
    /// reads it (in plain, while it runs). At most 1 MiB less 136 bytes.
    #[arg(long)]
    pub seal_input: bool,
    /// Have the provider seal the job's stdout to the job's key: only you
    /// read it (`market run` and `market result` open it with the job's
    /// key, which the matcher gives its owner only).
    #[arg(long)]
    pub seal_output: bool,
    /// --seal-input and --seal-output together (with any --secret-env):
    /// only you and the provider running the job see its contents.
    #[arg(long)]
    pub private: bool,
    /// More arguments for the job.
    #[arg(last = true, value_name = "ARGS")]
    pub rest: Vec<String>,
}

/// Flags of `run`.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// The job.
    #[command(flatten)]
    pub job: JobArgs,
    /// Submit and print the job id without waiting (same as `submit`).
    #[arg(long)]
    pub detach: bool,
}

/// Flags of `upload`.
#[derive(Args, Debug, Clone)]
pub struct UploadArgs {
    /// The module.
    pub module: PathBuf,
}

/// A job id.
#[derive(Args, Debug, Clone)]
pub struct JobIdArgs {
    /// The job's id (printed by `submit` and `run`; `market jobs` lists them).
    pub id: JobId,
}

/// Flags of `result`.
#[derive(Args, Debug, Clone)]
pub struct ResultArgs {
    /// The job's id.
    pub id: JobId,
    /// Write the job's stdout to this file instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// A reservation id.
#[derive(Args, Debug, Clone)]
pub struct ReservationIdArgs {
    /// The reservation's id (printed by `reserve`; `market reservations`
    /// lists them).
    pub id: ReservationId,
}

/// Flags of `extend`.
#[derive(Args, Debug, Clone)]
pub struct ExtendArgs {
    /// The reservation's id.
    pub id: ReservationId,
    /// Intervals added to every live slot.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub intervals: u32,
}

/// Flags of `delegates`.
#[derive(Args, Debug, Clone)]
pub struct DelegatesArgs {
    /// The reservation's id.
    pub id: ReservationId,
    /// A principal that may run jobs in the reservation (repeatable).
    #[arg(long, value_name = "PRINCIPAL", num_args = 1..)]
    pub add: Vec<Principal>,
    /// A principal that may no longer do so (repeatable).
    #[arg(long, value_name = "PRINCIPAL", num_args = 1..)]
    pub remove: Vec<Principal>,
}

/// Flags of `jobs` and `reservations`.
#[derive(Args, Debug, Clone)]
pub struct JobsArgs {
    /// First id to list.
    #[arg(long, value_name = "ID")]
    pub start: Option<JobId>,
    /// Entries per page (at most 500).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=500))]
    pub limit: u32,
}

/// Flags of `providers`.
#[derive(Args, Debug, Clone)]
pub struct ProvidersArgs {
    /// Also list providers that may not take work now (jailed, below the
    /// minimum stake, deregistered).
    #[arg(long)]
    pub all: bool,
    /// Only providers in this region.
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
}

impl ProvidersArgs {
    /// The registry's filter for these flags.
    pub fn filter(&self) -> market_api::registry::ProviderFilter {
        market_api::registry::ProviderFilter {
            active_only: !self.all,
            region: self.region.clone(),
            min_stake: None,
        }
    }
}

/// An amount.
#[derive(Args, Debug, Clone)]
pub struct AmountArgs {
    /// Amount in ICP (`1.5`) or e8s (`150000000e8s`).
    #[arg(value_parser = positive_amount)]
    pub amount: Tokens,
}

/// Flags of `withdraw`.
#[derive(Args, Debug, Clone)]
pub struct WithdrawArgs {
    /// Amount in ICP (`1.5`) or e8s; the recipient gets it minus the ledger fee.
    #[arg(value_parser = positive_amount)]
    pub amount: Tokens,
    /// Send to this principal's default account instead of yours.
    #[arg(long, value_name = "PRINCIPAL")]
    pub to: Option<Principal>,
}

impl JobArgs {
    /// Reads the module and the input and builds the checked request
    /// (a `--secret-env NAME` reads this process's environment).
    pub fn load(&self) -> Result<(Vec<u8>, JobRequest), BuyerError> {
        self.load_with(&|name| std::env::var(name).ok())
    }

    /// What the flags ask to seal, `--secret-env NAME` read from `lookup`.
    pub fn sealing(&self, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Sealing, BuyerError> {
        Ok(Sealing {
            input: self.seal_input || self.private,
            secret_env: SecretEnv::resolve(&self.secret_env, lookup)?,
            output: self.seal_output || self.private,
        })
    }

    /// [`JobArgs::load`], a `--secret-env NAME` read from `lookup`.
    pub fn load_with(
        &self,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(Vec<u8>, JobRequest), BuyerError> {
        let sealing = self.sealing(lookup)?;
        let wasm = read_module(&self.module)?;
        let input = match &self.input {
            Some(p) => read(p, "input")?,
            None => vec![],
        };
        let request = JobRequest {
            input,
            args: self.args.iter().chain(&self.rest).cloned().collect(),
            env: self.env.clone(),
            // A reserved job's price is ignored: the slot pays.
            max_price_per_gfuel: self.max_price_per_gfuel.map_or(0, |p| p.amount),
            currency: self.max_price_per_gfuel.and_then(|p| p.spec_currency()),
            fuel: self.fuel,
            deadline_secs: self.deadline,
            interval_secs: self.interval_secs,
            memory_mib: self.memory_mib,
            max_retries: self.retries,
            min_provider_stake: self.min_provider_stake.unwrap_or(0),
            audit_ppm: self.audit_ppm,
            sealing,
        };
        if self.reservation.is_some() {
            if self.audit_ppm.is_some() {
                return Err(BuyerError::Request(
                    "--audit-ppm: a job in a reservation is not audited (its slot pays for time, \
                     not for the job's fuel)"
                        .into(),
                ));
            }
            request.validate_run()?;
        } else {
            request.validate()?;
        }
        Ok((wasm, request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("market").chain(args.iter().copied()))
    }

    fn error(args: &[&str]) -> String {
        parse(args).expect_err("should not parse").to_string()
    }

    #[test]
    fn the_one_line_run_parses_with_defaults() {
        let cli = parse(&[
            "--network",
            "local",
            "run",
            "job.wasm",
            "--input",
            "data.bin",
            "--max-price-per-gfuel",
            "0.01",
            "--arg",
            "-v",
            "--env",
            "MODE=fast=1",
            "--",
            "x",
            "--y",
        ])
        .unwrap();
        assert_eq!(cli.global.network.as_deref(), Some("local"));
        let Command::Run(run) = cli.command else {
            panic!("not run")
        };
        assert!(!run.detach);
        let job = run.job;
        assert_eq!(
            job.max_price_per_gfuel,
            Some(Price::token(1_000_000)),
            "0.01 ICP in e8s"
        );
        assert_eq!(job.reservation, None);
        assert_eq!(job.deadline, None);
        assert_eq!(job.interval_secs, 60);
        assert_eq!(job.memory_mib, 64);
        assert_eq!(job.fuel, 10_000_000_000);
        assert_eq!(job.retries, 2);
        assert_eq!(job.args, ["-v"]);
        assert_eq!(job.rest, ["x", "--y"]);
        assert_eq!(job.env, [("MODE".to_string(), "fast=1".to_string())]);
        assert_eq!(job.input, Some(PathBuf::from("data.bin")));
    }

    #[test]
    fn other_subcommands_parse() {
        let cli = parse(&["result", "7", "-o", "out.bin"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Result(ResultArgs {
                id: 7,
                output: Some(_)
            })
        ));
        let cli = parse(&["withdraw", "150000e8s", "--to", "aaaaa-aa"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Withdraw(WithdrawArgs {
                amount: 150_000,
                to: Some(_)
            })
        ));
        let cli = parse(&["jobs", "--start", "3"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Jobs(JobsArgs {
                start: Some(3),
                limit: 20
            })
        ));
        for args in [
            &[
                "submit",
                "a.wasm",
                "--max-price-per-gfuel",
                "1",
                "--deadline",
                "90",
            ][..],
            &["upload", "a.wasm"],
            &["watch", "1"],
            &["cancel", "1"],
            &["deposit", "0.5"],
            &["balance"],
            &["identity", "show"],
            &["providers"],
        ] {
            parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        }
    }

    #[test]
    fn providers_lists_active_ones_unless_all() {
        let cli = parse(&["providers"]).unwrap();
        let Command::Providers(p) = cli.command else {
            panic!("not providers")
        };
        assert!(p.filter().active_only);
        assert_eq!(p.filter().region, None);
        let cli = parse(&["providers", "--all", "--region", "eu-west"]).unwrap();
        let Command::Providers(p) = cli.command else {
            panic!("not providers")
        };
        let f = p.filter();
        assert!(!f.active_only);
        assert_eq!(f.region.as_deref(), Some("eu-west"));
    }

    #[test]
    fn reservation_commands_parse() {
        let cli = parse(&[
            "reserve",
            "--slots",
            "2",
            "--intervals",
            "30",
            "--max-price",
            "0.01",
        ])
        .unwrap();
        let Command::Reserve(r) = cli.command else {
            panic!("not reserve")
        };
        assert_eq!(
            (r.slots, r.intervals, r.max_price),
            (2, 30, Price::token(1_000_000))
        );
        let spec = r.spec(Principal::anonymous()).unwrap();
        assert_eq!(
            market_api::matcher::reservation_cost(&spec),
            Some(60_000_000)
        );

        let cli = parse(&["extend", "4", "--intervals", "6"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Extend(ExtendArgs {
                id: 4,
                intervals: 6
            })
        ));
        let cli = parse(&[
            "delegates",
            "4",
            "--add",
            "aaaaa-aa",
            "2vxsx-fae",
            "--remove",
            "aaaaa-aa",
        ])
        .unwrap();
        let Command::Delegates(d) = cli.command else {
            panic!("not delegates")
        };
        assert_eq!((d.id, d.add.len(), d.remove.len()), (4, 2, 1));
        for args in [
            &["reservation", "4"][..],
            &["reservations", "--start", "2", "--limit", "5"],
            &["cancel-reservation", "4"],
        ] {
            parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        }

        // In a reservation the slot pays: no --max-price needed.
        let cli = parse(&["run", "job.wasm", "--reservation", "4"]).unwrap();
        let Command::Run(run) = cli.command else {
            panic!("not run")
        };
        assert_eq!(
            (run.job.reservation, run.job.max_price_per_gfuel),
            (Some(4), None)
        );
        let e = error(&["extend", "4", "--intervals", "0"]);
        assert!(e.contains("--intervals"), "{e}");
        let e = error(&["reserve", "--max-price", "1"]);
        assert!(e.contains("--intervals"), "{e}");
    }

    #[test]
    fn audit_ppm_and_dispute_parse_and_bad_values_say_the_range() {
        const PRICE: &str = "--max-price-per-gfuel";
        let cli = parse(&["run", "job.wasm", PRICE, "1", "--audit-ppm", "1000000"]).unwrap();
        let Command::Run(run) = cli.command else {
            panic!("not run")
        };
        assert_eq!(run.job.audit_ppm, Some(1_000_000));
        let cli = parse(&["submit", "job.wasm", PRICE, "1"]).unwrap();
        let Command::Submit(job) = cli.command else {
            panic!("not submit")
        };
        assert_eq!(job.audit_ppm, None, "the market's minimum");
        let cli = parse(&["submit", "job.wasm", PRICE, "1", "--audit-ppm", "0"]).unwrap();
        let Command::Submit(job) = cli.command else {
            panic!("not submit")
        };
        assert_eq!(job.audit_ppm, Some(0));
        for bad in ["1000001", "5%", "0.5"] {
            let e = error(&["run", "job.wasm", PRICE, "1", "--audit-ppm", bad]);
            assert!(
                e.contains("--audit-ppm")
                    && e.contains("parts per million, a whole number from 0 to 1000000"),
                "{bad}: {e}"
            );
        }
        assert!(matches!(
            parse(&["dispute", "7"]).unwrap().command,
            Command::Dispute(JobIdArgs { id: 7 })
        ));
        let e = error(&["dispute"]);
        assert!(e.contains("<ID>"), "{e}");
    }

    #[test]
    fn parse_errors_name_the_flag_and_the_fix() {
        const PRICE: &str = "--max-price-per-gfuel";
        let e = error(&["run", "job.wasm"]);
        assert!(e.contains(PRICE), "{e}");

        let e = error(&["run", "job.wasm", PRICE, "0.000000001"]);
        assert!(e.contains(PRICE) && e.contains("at most 8 decimals"), "{e}");

        let e = error(&["run", "job.wasm", PRICE, "1e-3"]);
        assert!(e.contains("a decimal amount such as 0.01"), "{e}");

        let e = error(&["run", "job.wasm", PRICE, "0"]);
        assert!(e.contains("more than zero"), "{e}");

        let e = error(&["run", "job.wasm", PRICE, "1", "--env", "NOEQUALS"]);
        assert!(e.contains("--env") && e.contains("NAME=VALUE"), "{e}");

        let e = error(&["run", "job.wasm", PRICE, "1", "--fuel", "many"]);
        assert!(e.contains("--fuel") && e.contains("many"), "{e}");

        let e = error(&["run", "job.wasm", PRICE, "1", "--intervals", "3"]);
        assert!(e.contains("--intervals"), "{e}");

        let e = error(&["deposit", "lots"]);
        assert!(e.contains("lots") && e.contains("decimal amount"), "{e}");

        let e = error(&["watch", "seven"]);
        assert!(e.contains("<ID>") && e.contains("seven"), "{e}");

        let e = error(&["jobs", "--limit", "0"]);
        assert!(e.contains("--limit"), "{e}");

        let kind = parse(&["frobnicate"]).unwrap_err().kind();
        assert_eq!(kind, ErrorKind::InvalidSubcommand);
    }

    #[test]
    fn an_xdr_price_sets_the_currency_and_counts_cycles() {
        use market_api::prices::Currency;
        let dir = tempfile::tempdir().unwrap();
        let module = dir.path().join("job.wasm");
        std::fs::write(&module, b"\0asm\x01\0\0\0").unwrap();
        let m = module.to_str().unwrap();
        for cmd in ["run", "submit"] {
            let job = match parse(&[cmd, m, "--max-price-per-gfuel", "0.02xdr"])
                .unwrap()
                .command
            {
                Command::Run(r) => r.job,
                Command::Submit(j) => j,
                _ => unreachable!(),
            };
            let (_, request) = job.load().unwrap();
            assert_eq!(request.currency, Some(Currency::Xdr), "{cmd}");
            let spec = request.spec([0; 32], Principal::anonymous());
            assert_eq!(spec.currency, Some(Currency::Xdr));
            assert_eq!(spec.max_price_per_gfuel, 20_000_000_000, "2*10^10 cycles");
            // Its budget is counted in cycles: ten billion fuel at 0.02 XDR.
            assert_eq!(spec.max_cost(), Some(200_000_000_000));
        }
        // ICP by its symbol, as a bare amount, or in e8s: the token, as before.
        for text in ["0.01icp", "0.01 ICP", "0.01", "1000000e8s"] {
            let Command::Run(run) = parse(&["run", m, "--max-price-per-gfuel", text])
                .unwrap()
                .command
            else {
                unreachable!()
            };
            let (_, request) = run.job.load().unwrap();
            assert_eq!(
                (request.max_price_per_gfuel, request.currency),
                (1_000_000, None),
                "{text}"
            );
        }
        let Command::Reserve(r) = parse(&["reserve", "--intervals", "3", "--max-price", "0.02xdr"])
            .unwrap()
            .command
        else {
            panic!("not reserve")
        };
        let spec = r.spec(Principal::anonymous()).unwrap();
        assert_eq!(
            (spec.currency, spec.max_price_per_interval),
            (Some(Currency::Xdr), 20_000_000_000)
        );
        let Command::Serve(s) = parse(&[
            "serve",
            "s.wasm",
            "--intervals",
            "3",
            "--max-price",
            "0.02 XDR",
        ])
        .unwrap()
        .command
        else {
            panic!("not serve")
        };
        let spec = s.spec(Principal::anonymous());
        assert_eq!(
            (spec.currency, spec.max_price_per_interval),
            (Some(Currency::Xdr), 20_000_000_000)
        );
        for (bad, says) in [
            ("0.0000000000001xdr", "at most 12 decimals of XDR"),
            ("1e3", "a decimal amount such as 0.01"),
            ("-1", "a decimal amount such as 0.01"),
            ("xdr", "not an amount"),
            ("0xdr", "more than zero"),
            ("2usd", "unknown unit \"usd\""),
        ] {
            let e = error(&["run", m, &format!("--max-price-per-gfuel={bad}")]);
            assert!(
                e.contains("--max-price-per-gfuel") && e.contains(says),
                "{bad}: {e}"
            );
            let e = error(&["reserve", "--intervals", "1", &format!("--max-price={bad}")]);
            assert!(e.contains("--max-price") && e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn sealing_flags_build_a_sealed_spec_that_never_carries_a_secret() {
        const SECRET: &str = "s3cret-from-the-command-line";
        const FROM_ENV: &str = "s3cret-from-the-environment";
        let dir = tempfile::tempdir().unwrap();
        let module = dir.path().join("job.wasm");
        std::fs::write(&module, b"\0asm\x01\0\0\0").unwrap();
        let input = dir.path().join("in.txt");
        std::fs::write(&input, b"private-input-text").unwrap();
        let m = module.to_str().unwrap();
        let lookup = |name: &str| (name == "TOKEN").then(|| FROM_ENV.to_string());
        let job = |extra: &[&str]| {
            let mut v = vec!["submit", m, "--max-price-per-gfuel", "0.01"];
            v.extend_from_slice(extra);
            match parse(&v).unwrap().command {
                Command::Submit(j) => j,
                _ => unreachable!(),
            }
        };

        let (_, plain) = job(&[]).load_with(&lookup).unwrap();
        assert!(plain.sealing.is_none());
        for (flags, input, output) in [
            (&["--seal-input"][..], true, false),
            (&["--seal-output"], false, true),
            (&["--private"], true, true),
            (&["--seal-input", "--seal-output"], true, true),
        ] {
            let (_, r) = job(flags).load_with(&lookup).unwrap();
            assert_eq!(
                (r.sealing.input, r.sealing.output),
                (input, output),
                "{flags:?}"
            );
        }

        let private = job(&[
            "--private",
            "--input",
            input.to_str().unwrap(),
            "--env",
            "MODE=fast",
            "--secret-env",
            &format!("API_KEY={SECRET}"),
            "--secret-env",
            "TOKEN",
        ]);
        let (_, request) = private.load_with(&lookup).unwrap();
        assert_eq!(
            request.sealing.secret_env,
            [
                ("API_KEY".to_string(), SECRET.to_string()),
                ("TOKEN".to_string(), FROM_ENV.to_string())
            ]
        );
        // Neither the parsed flags nor the request print a secret.
        for debug in [format!("{private:?}"), format!("{request:?}")] {
            assert!(
                !debug.contains(SECRET) && !debug.contains(FROM_ENV),
                "{debug}"
            );
        }
        let key = market_fixture::vetkeys::TestKeys::new(b"cli sealing").privacy_key();
        let spec = market::Sealer::new(&key, Principal::anonymous())
            .seal_job(
                request.spec([0; 32], Principal::anonymous()),
                &request.sealing,
            )
            .unwrap();
        let bytes = candid::encode_one(&spec).unwrap();
        let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        assert!(!has(SECRET.as_bytes()) && !has(FROM_ENV.as_bytes()));
        assert!(!has(b"private-input-text"));
        assert!(has(b"MODE") && has(b"fast"), "the plain env stays plain");
        let sealed = spec.sealed.unwrap();
        assert!(sealed.input && sealed.output && sealed.env.is_some());

        // A missing variable, a missing name or a name given twice is
        // refused, naming the flag, never quoting a value.
        let e = job(&["--secret-env", "NOT_SET"])
            .load_with(&lookup)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--secret-env NOT_SET: your environment has no variable NOT_SET"),
            "{e}"
        );
        let e = job(&["--secret-env", &format!("={SECRET}")])
            .load_with(&lookup)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--secret-env") && !e.contains(SECRET), "{e}");
        let e = job(&[
            "--secret-env",
            &format!("K={SECRET}"),
            "--secret-env",
            "K=2",
        ])
        .load_with(&lookup)
        .unwrap_err()
        .to_string();
        assert!(e.contains("K given twice") && !e.contains(SECRET), "{e}");
        let big = dir.path().join("big.bin");
        std::fs::write(&big, vec![0u8; market::MAX_SEALED_INPUT_BYTES + 1]).unwrap();
        let e = job(&["--seal-input", "--input", big.to_str().unwrap()])
            .load_with(&lookup)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--input") && e.contains("sealed"), "{e}");
        job(&["--input", big.to_str().unwrap()])
            .load_with(&lookup)
            .expect("unsealed, it fits");

        // `run` and a reserved job take them too; `serve` takes --secret-env.
        let Command::Run(run) = parse(&["run", m, "--reservation", "3", "--private"])
            .unwrap()
            .command
        else {
            panic!("not run")
        };
        let (_, r) = run.job.load_with(&lookup).unwrap();
        assert!(r.sealing.input && r.sealing.output);
        let Command::Serve(serve) = parse(&[
            "serve",
            "s.wasm",
            "--intervals",
            "1",
            "--max-price",
            "0.01",
            "--secret-env",
            "TOKEN",
        ])
        .unwrap()
        .command
        else {
            panic!("not serve")
        };
        assert_eq!(
            parse::SecretEnv::resolve(&serve.lease.secret_env, &lookup).unwrap(),
            [("TOKEN".to_string(), FROM_ENV.to_string())]
        );
        let spec = serve.spec(Principal::anonymous());
        let bytes = candid::encode_one(&spec).unwrap();
        assert!(
            !bytes
                .windows(FROM_ENV.len())
                .any(|w| w == FROM_ENV.as_bytes()),
            "the lease's plain spec has no secret"
        );
    }

    #[test]
    fn loading_reports_unreadable_files_and_bad_requests() {
        let dir = tempfile::tempdir().unwrap();
        let module = dir.path().join("job.wasm");
        let args = |extra: &[&str]| {
            let mut v = vec![
                "run",
                module.to_str().unwrap(),
                "--max-price-per-gfuel",
                "0.01",
            ];
            v.extend_from_slice(extra);
            match parse(&v).unwrap().command {
                Command::Run(r) => r.job,
                _ => unreachable!(),
            }
        };
        let e = args(&[]).load().unwrap_err().to_string();
        assert!(
            e.contains("cannot read module") && e.contains("job.wasm"),
            "{e}"
        );

        std::fs::write(&module, b"\0asm\x01\0\0\0").unwrap();
        let e = args(&["--input", "/nonexistent/data.bin"])
            .load()
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot read input /nonexistent/data.bin"), "{e}");

        let big = dir.path().join("big.bin");
        std::fs::write(&big, vec![0u8; market_api::matcher::MAX_INPUT_BYTES + 1]).unwrap();
        let e = args(&["--input", big.to_str().unwrap()])
            .load()
            .unwrap_err()
            .to_string();
        assert!(e.contains("--input") && e.contains("at most"), "{e}");

        let e = args(&["--deadline", "0"]).load().unwrap_err().to_string();
        assert!(e.contains("--deadline: at least 1 second"), "{e}");
        let e = args(&["--fuel", "0"]).load().unwrap_err().to_string();
        assert!(e.contains("--fuel: 1 to"), "{e}");
        let too_much = (market_api::matcher::MAX_JOB_FUEL + 1).to_string();
        let e = args(&["--fuel", &too_much]).load().unwrap_err().to_string();
        assert!(e.contains("--fuel: 1 to"), "{e}");

        let (wasm, request) = args(&["--arg", "a", "--", "b"]).load().unwrap();
        assert_eq!(wasm, b"\0asm\x01\0\0\0");
        assert_eq!(request.args, ["a", "b"]);
        assert_eq!(
            request.max_cost(),
            Some(10_000_000),
            "0.01 ICP per billion fuel × ten billion fuel"
        );
        let (_, request) = args(&["--audit-ppm", "50000"]).load().unwrap();
        assert_eq!(request.audit_ppm, Some(50_000));
        assert_eq!(
            request.lock(0),
            Some(20_000_000),
            "twice the budget's cost: the run and an audit's re-run"
        );
        let mut reserved = args(&["--audit-ppm", "50000"]);
        reserved.reservation = Some(4);
        let e = reserved.load().unwrap_err().to_string();
        assert!(
            e.contains("--audit-ppm: a job in a reservation is not audited"),
            "{e}"
        );
        let (_, request) = args(&["--fuel", "1500000001", "--deadline", "90"])
            .load()
            .unwrap();
        assert_eq!(request.deadline_secs, Some(90));
        assert_eq!(
            request.max_cost(),
            Some(1_500_001),
            "rounded up: never less than any bill"
        );
        let spec = request.spec([0; 32], Principal::anonymous());
        assert_eq!(
            spec.max_cost(),
            request.max_cost(),
            "what the matcher locks"
        );
    }
}
