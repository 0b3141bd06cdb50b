//! `market`: the buyer's command-line tool. Upload a WASI module, pay a
//! provider to run it, get its stdout:
//!
//! ```sh
//! market run job.wasm --input data.bin --max-price 0.01
//! ```
//!
//! Reserved capacity: `market reserve ...` locks slots for a number of
//! intervals; `market run job.wasm --reservation ID` runs jobs in them.
//!
//! Services: `market serve service.wasm --replicas 2 --intervals N
//! --max-price P` leases replicas of a wasi:http component and prints
//! their endpoints; `market service ID` shows them.
//!
//! Private jobs: `--seal-input`, `--secret-env`, `--seal-output` or
//! `--private` seal a job's contents to it; `market serve --secret-env`
//! seals a lease's secrets.
//!
//! SNS DAOs buy by proposal; `market sns` prints what their proposals carry.
//!
//! The logic lives in the `market` library; this file and [`cli`] connect it
//! to the command line, the configured network, the terminal and Ctrl-C.
//! Settings (network, identity, canister ids) are the buyer's own:
//! `~/.config/market/config.toml`, `MARKET_*` variables and flags.

mod cli;

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use cli::serve::ServeArgs;
use cli::sns::{ReserveArgs, SnsCommand};
use cli::{
    AmountArgs, Cli, Command, DelegatesArgs, ExtendArgs, JobArgs, JobIdArgs, JobsArgs,
    ProvidersArgs, ReservationIdArgs, ResultArgs, RunArgs, UploadArgs, WithdrawArgs,
};
use market::{self as buyer, BuyerError, Console, RunOptions, RunReport};
use market_api::matcher::Job;
use market_api::{Account, PageRequest};
use market_client::IdentityCommand;
use market_client::client::prices::Price;
use market_client::client::tokens::format_tokens;
use market_client::config::{self, App, NetworkArgs, Settings};
use market_client::session::{self, Session};

/// The buyer's settings: `~/.config/market/`, `MARKET_*` variables.
pub const APP: App = App {
    name: "market",
    env_prefix: "MARKET",
};

/// Exit status when waiting was interrupted (as a shell reports SIGINT).
const INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    let cli = match config::parse::<Cli>(&APP, std::env::args_os(), |cli| &mut cli.global.sources) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The buyer's settings from the file, the environment and the flags.
fn settings(flags: &NetworkArgs) -> anyhow::Result<Settings> {
    Ok(config::load(&APP, flags, &|name| std::env::var(name).ok())?)
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let settings = settings(&cli.global)?;
    match cli.command {
        Command::Identity(c) => identity_command(&settings, c),
        Command::Run(args) => run(&settings, args),
        Command::Submit(job) => run(&settings, RunArgs { job, detach: true }),
        Command::Sns(c) => sns(&settings, &c),
        command => session::runtime()?.block_on(async move {
            let s = session::connect(&settings).await?;
            match command {
                Command::Upload(a) => upload(&s, a).await,
                Command::Watch(a) => watch(&s, a).await,
                Command::Result(a) => result(&s, a).await,
                Command::Cancel(a) => cancel(&s, a).await,
                Command::Dispute(a) => dispute(&s, a).await,
                Command::Jobs(a) => jobs(&s, a).await,
                Command::Deposit(a) => deposit(&s, a).await,
                Command::Balance => balance(&s).await,
                Command::Withdraw(a) => withdraw(&s, a).await,
                Command::Reserve(a) => reserve(&s, a).await,
                Command::Reservation(a) => show_reservation(&s, a).await,
                Command::Reservations(a) => reservations(&s, a).await,
                Command::Extend(a) => extend(&s, a).await,
                Command::Delegates(a) => delegates(&s, a).await,
                Command::CancelReservation(a) => cancel_reservation(&s, a).await,
                Command::Providers(a) => providers(&s, a).await,
                Command::Serve(a) => serve(&s, a).await,
                Command::Service(a) => show_service(&s, a).await,
                Command::Rates => rates(&s).await,
                Command::Identity(_) | Command::Run(_) | Command::Submit(_) | Command::Sns(_) => {
                    unreachable!()
                }
            }
        }),
    }
}

async fn ctrl_c() {
    // If the handler can't be installed, Ctrl-C keeps its default effect.
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn run(settings: &Settings, args: RunArgs) -> anyhow::Result<ExitCode> {
    let RunArgs { job, detach } = args;
    let (wasm, request) = JobArgs::load(&job)?;
    session::runtime()?.block_on(async {
        let s = session::connect(settings).await?;
        let mut console = Console::stderr();
        let options = RunOptions {
            detach,
            reservation: job.reservation,
            ..RunOptions::default()
        };
        let report =
            buyer::run(&s.client, &wasm, &request, &options, &mut console, ctrl_c()).await?;
        match report {
            RunReport::Detached(id) => {
                println!("{id}");
                console.line(format!(
                    "follow it with `market watch {id}`, get its stdout with `market result {id}`"
                ));
                Ok(ExitCode::SUCCESS)
            }
            RunReport::Interrupted(id) => {
                console.line(buyer::interrupted_message(id));
                Ok(ExitCode::from(INTERRUPTED))
            }
            RunReport::Finished { job, settlement } => {
                write_output(&s, &job, None, &mut console).await?;
                console.line(buyer::summary(&job, &settlement));
                Ok(ExitCode::from(buyer::exit_code(&job)))
            }
        }
    })
}

/// Writes the job's stdout, byte for byte, to `file` or stdout; a stdout
/// its provider sealed is opened with the job's key first (and said so).
async fn write_output(
    s: &Session,
    job: &Job,
    file: Option<&std::path::Path>,
    console: &mut Console,
) -> anyhow::Result<()> {
    let Some(stdout) = buyer::job_stdout(&s.client, job).await? else {
        return Ok(());
    };
    match file {
        Some(path) => std::fs::write(path, &stdout.bytes)
            .with_context(|| format!("writing the job's stdout to {}", path.display()))?,
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(&stdout.bytes)
                .and_then(|()| out.flush())
                .context("writing the job's stdout")?
        }
    }
    if stdout.sealed {
        console.line(format!(
            "job {}'s stdout was sealed to the job; opened with its key ({} bytes)",
            job.id,
            stdout.bytes.len()
        ));
    }
    Ok(())
}

async fn upload(s: &Session, args: UploadArgs) -> anyhow::Result<ExitCode> {
    let wasm = cli::parse::read_module(&args.module)?;
    let mut console = Console::stderr();
    let module = buyer::ensure_module(&s.client, &wasm, &mut console).await?;
    println!("{}", hex::encode(module.sha256));
    Ok(ExitCode::SUCCESS)
}

async fn watch(s: &Session, args: JobIdArgs) -> anyhow::Result<ExitCode> {
    let mut console = Console::stderr();
    let poll = RunOptions::default().poll_interval;
    match buyer::watch(&s.client, args.id, poll, &mut console, ctrl_c()).await? {
        None => {
            console.line(buyer::interrupted_message(args.id));
            Ok(ExitCode::from(INTERRUPTED))
        }
        Some(job) => {
            let settlement = buyer::settlement(&s.client, &job).await;
            console.line(buyer::summary(&job, &settlement));
            if job.result.is_some() {
                console.line(format!("its stdout: `market result {}`", job.id));
            }
            Ok(ExitCode::from(buyer::exit_code(&job)))
        }
    }
}

async fn result(s: &Session, args: ResultArgs) -> anyhow::Result<ExitCode> {
    let job = s
        .client
        .get_job(args.id)
        .await?
        .ok_or(BuyerError::UnknownJob(args.id))?;
    if let Some(audit) = job.audit.as_ref().filter(|_| buyer::audit_pending(&job)) {
        return Err(BuyerError::BeingAudited {
            id: job.id,
            disputed: audit.disputed,
        }
        .into());
    }
    if !buyer::result_in(&job) {
        return Err(BuyerError::NotFinished {
            id: job.id,
            status: job.status,
        }
        .into());
    }
    let mut console = Console::stderr();
    write_output(s, &job, args.output.as_deref(), &mut console).await?;
    let settlement = buyer::settlement(&s.client, &job).await;
    console.line(buyer::summary(&job, &settlement));
    Ok(ExitCode::from(buyer::exit_code(&job)))
}

async fn cancel(s: &Session, args: JobIdArgs) -> anyhow::Result<ExitCode> {
    s.client.cancel_job(args.id).await?;
    println!(
        "cancelled job {}: fuel already reported stays paid, the rest of its lock returns to \
         your escrow balance (`market balance`)",
        args.id
    );
    Ok(ExitCode::SUCCESS)
}

async fn dispute(s: &Session, args: JobIdArgs) -> anyhow::Result<ExitCode> {
    buyer::dispute(&s.client, args.id).await?;
    println!("{}", buyer::dispute_message(args.id));
    Ok(ExitCode::SUCCESS)
}

async fn jobs(s: &Session, args: JobsArgs) -> anyhow::Result<ExitCode> {
    let jobs = s
        .client
        .list_jobs(s.identity.principal, page(&args))
        .await?;
    if jobs.is_empty() {
        say_none("jobs", &args);
        return Ok(ExitCode::SUCCESS);
    }
    let quote = buyer::quote(&s.client).await;
    println!(
        "{:<8} {:<10} {:>14} {:>16}  {:<22} OUTCOME",
        "ID", "STATUS", "PAID", "MAX PER GFUEL", "AUDIT"
    );
    for j in &jobs {
        let outcome = match &j.result {
            Some(r) => buyer::describe_outcome(&r.outcome),
            None if buyer::audit_pending(j) => "withheld until the audit's verdict".into(),
            None => String::new(),
        };
        println!(
            "{:<8} {:<10} {:>14} {:>16}  {:<22} {outcome}",
            j.id,
            format!("{:?}", j.status),
            format_tokens(j.paid),
            quote.format(&Price::of_spec(j.spec.max_price_per_gfuel, j.spec.currency)),
            buyer::audit_state(j),
        );
    }
    say_more("jobs", &args, jobs.len(), jobs.last().map(|j| j.id));
    Ok(ExitCode::SUCCESS)
}

/// The page of a listing that `args` asks for.
fn page(args: &JobsArgs) -> PageRequest {
    PageRequest {
        start: args.start,
        limit: Some(args.limit),
    }
}

/// Says on stderr that there are no `what` (jobs, reservations) to list.
fn say_none(what: &str, args: &JobsArgs) {
    eprintln!(
        "no {what}{}",
        args.start
            .map_or(String::new(), |id| format!(" from id {id} on"))
    );
}

/// Says on stderr how to list the next page of `what` when the page of
/// `listed` entries, the last of id `last`, is full.
fn say_more(what: &str, args: &JobsArgs, listed: usize, last: Option<u64>) {
    if listed == args.limit as usize
        && let Some(last) = last
    {
        eprintln!("more: market {what} --start {}", last + 1);
    }
}

async fn deposit(s: &Session, args: AmountArgs) -> anyhow::Result<ExitCode> {
    eprintln!(
        "approving the escrow and depositing {}...",
        format_tokens(args.amount)
    );
    let free = buyer::deposit(&s.client, args.amount).await?;
    println!(
        "deposited {}; {} free in your escrow balance",
        format_tokens(args.amount),
        format_tokens(free)
    );
    Ok(ExitCode::SUCCESS)
}

async fn balance(s: &Session) -> anyhow::Result<ExitCode> {
    let f = buyer::funds(&s.client).await?;
    println!("principal  {}", s.identity.principal);
    println!("wallet     {}", format_tokens(f.wallet));
    println!(
        "escrow     {} free, {} locked for jobs{}",
        format_tokens(f.escrow.free),
        format_tokens(f.escrow.locked),
        if f.escrow.claimable > 0 {
            format!(", {} claimable earnings", format_tokens(f.escrow.claimable))
        } else {
            String::new()
        }
    );
    Ok(ExitCode::SUCCESS)
}

async fn withdraw(s: &Session, args: WithdrawArgs) -> anyhow::Result<ExitCode> {
    let to = args.to.unwrap_or(s.identity.principal);
    let block = buyer::withdraw(&s.client, args.amount, Account::from(to)).await?;
    println!(
        "withdrew {} to {to} (it receives the amount minus the ledger fee; block {block})",
        format_tokens(args.amount)
    );
    Ok(ExitCode::SUCCESS)
}

async fn reserve(s: &Session, args: ReserveArgs) -> anyhow::Result<ExitCode> {
    let spec = args.spec(s.client.ids().ledger)?;
    let mut console = Console::stderr();
    let id = buyer::reserve(&s.client, spec, &mut console).await?;
    println!("{id}");
    console.line(format!(
        "see its slots with `market reservation {id}`; run jobs in it with `market run job.wasm \
         --reservation {id}`; share it with `market delegates {id} --add PRINCIPAL`"
    ));
    Ok(ExitCode::SUCCESS)
}

async fn serve(s: &Session, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let component = std::fs::read(&args.component)
        .with_context(|| format!("cannot read {}", args.component.display()))?;
    let mut spec = args.spec(s.client.ids().ledger);
    let secret_env =
        cli::parse::SecretEnv::resolve(&args.lease.secret_env, &|name| std::env::var(name).ok())?;
    buyer::seal_lease_env(&s.client, &mut spec, &secret_env, s.identity.principal).await?;
    let mut console = Console::stderr();
    let id = buyer::lease_service(&s.client, &component, spec, &mut console).await?;
    println!("{id}");
    if args.detach {
        console.line(format!(
            "follow it with `market service {id}`; end it with `market cancel-reservation {id}`"
        ));
        return Ok(ExitCode::SUCCESS);
    }
    console.line(format!(
        "service {id}: waiting for providers to start its replicas (Ctrl-C stops following; \
         the lease goes on)"
    ));
    let poll = RunOptions::default().poll_interval;
    match buyer::follow_service(&s.client, id, poll, &mut console, ctrl_c()).await? {
        Some(view) => {
            println!("{}", buyer::describe_service(&view));
            Ok(ExitCode::SUCCESS)
        }
        None => {
            console.line(format!(
                "stopped following service {id}; it keeps running: `market service {id}` shows \
                 it, `market cancel-reservation {id}` ends it"
            ));
            Ok(ExitCode::from(INTERRUPTED))
        }
    }
}

async fn show_service(s: &Session, args: ReservationIdArgs) -> anyhow::Result<ExitCode> {
    let v = buyer::service(&s.client, args.id).await?;
    println!("{}", buyer::describe_service(&v));
    // The lease's price, in the unit it was set in, is in its reservation.
    if let Ok(r) = buyer::reservation(&s.client, args.id).await {
        let quote = buyer::quote(&s.client).await;
        println!(
            "  price      at most {} per replica and interval",
            quote.format(&Price::of_spec(
                r.spec.max_price_per_interval,
                r.spec.currency
            ))
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn show_reservation(s: &Session, args: ReservationIdArgs) -> anyhow::Result<ExitCode> {
    let r = buyer::reservation(&s.client, args.id).await?;
    let quote = buyer::quote(&s.client).await;
    println!("{}", buyer::describe_reservation(&r, &quote));
    Ok(ExitCode::SUCCESS)
}

async fn reservations(s: &Session, args: JobsArgs) -> anyhow::Result<ExitCode> {
    let list = s
        .client
        .list_reservations(s.identity.principal, page(&args))
        .await?;
    if list.is_empty() {
        say_none("reservations", &args);
        return Ok(ExitCode::SUCCESS);
    }
    let quote = buyer::quote(&s.client).await;
    println!("{}", buyer::RESERVATIONS_HEADER);
    for r in &list {
        println!("{}", buyer::reservation_row(r, &quote));
    }
    say_more("reservations", &args, list.len(), list.last().map(|r| r.id));
    Ok(ExitCode::SUCCESS)
}

async fn extend(s: &Session, args: ExtendArgs) -> anyhow::Result<ExitCode> {
    let locked = buyer::extend_reservation(&s.client, args.id, args.intervals).await?;
    println!(
        "extended reservation {} by {} interval{} per live slot: {} more locked",
        args.id,
        args.intervals,
        if args.intervals == 1 { "" } else { "s" },
        format_tokens(locked)
    );
    Ok(ExitCode::SUCCESS)
}

async fn delegates(s: &Session, args: DelegatesArgs) -> anyhow::Result<ExitCode> {
    let now = buyer::set_delegates(&s.client, args.id, args.add, args.remove).await?;
    if now.is_empty() {
        println!(
            "reservation {} has no delegates: only you run jobs in it",
            args.id
        );
    } else {
        println!("delegates of reservation {}:", args.id);
        for p in now {
            println!("  {p}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn cancel_reservation(s: &Session, args: ReservationIdArgs) -> anyhow::Result<ExitCode> {
    let r = buyer::cancel_reservation(&s.client, args.id).await?;
    println!(
        "cancelled reservation {} ({:?}): {} paid to providers stays paid, the rest of the {} \
         locked returns to your escrow balance (`market balance`)",
        args.id,
        r.status,
        format_tokens(r.paid),
        format_tokens(r.locked)
    );
    Ok(ExitCode::SUCCESS)
}

async fn providers(s: &Session, args: ProvidersArgs) -> anyhow::Result<ExitCode> {
    let list = buyer::providers(&s.client, args.filter()).await?;
    if list.is_empty() {
        eprintln!(
            "no providers{}",
            if args.all { "" } else { " may take work now" }
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}", buyer::PROVIDERS_HEADER);
    for p in &list {
        println!("{}", buyer::provider_row(p));
    }
    Ok(ExitCode::SUCCESS)
}

async fn rates(s: &Session) -> anyhow::Result<ExitCode> {
    let rates = s.client.rates().await?;
    let now_secs = s.client.time_ns().await? / 1_000_000_000;
    println!(
        "{}",
        buyer::rates_text(&rates, now_secs, s.client.ids().ledger)
    );
    Ok(ExitCode::SUCCESS)
}

/// `market sns ...`: prints proposal values from the settings and flags,
/// without connecting; a payload priced in XDR reads the matcher's rates
/// first, to tell voters the most it may lock in ICP.
fn sns(settings: &Settings, command: &SnsCommand) -> anyhow::Result<ExitCode> {
    let needs_rates = cli::sns::needs_rates(command);
    let needs_key = cli::sns::needs_privacy_key(command);
    let (rates, privacy_key) = if needs_rates || needs_key {
        session::runtime()?.block_on(async {
            let s = session::connect(settings).await?;
            let rates = if needs_rates {
                let rates = s.client.rates().await.context(
                    "an XDR price's ICP lock is stated at the matcher's current rate (get_rates)",
                )?;
                let now_secs = s.client.time_ns().await? / 1_000_000_000;
                let config = s.client.matcher_config().await?;
                Some(cli::sns::Rates {
                    rates,
                    now_secs,
                    min_audit_ppm: config.min_audit_ppm(),
                    market_fee_ppm: config.market_fee_ppm(),
                })
            } else {
                None
            };
            let key = if needs_key {
                let key = s.client.privacy_key().await.context(
                    "a sealed payload is sealed with the matcher's privacy key (privacy_key)",
                )?;
                Some(key.ok_or(BuyerError::NoPrivacy)?)
            } else {
                None
            };
            anyhow::Ok((rates, key))
        })?
    } else {
        (None, None)
    };
    print!(
        "{}",
        cli::sns::output(
            settings,
            command,
            rates.as_ref(),
            privacy_key.as_ref(),
            &|name| std::env::var(name).ok(),
        )?
    );
    Ok(ExitCode::SUCCESS)
}

fn identity_command(settings: &Settings, command: IdentityCommand) -> anyhow::Result<ExitCode> {
    command.run(
        settings,
        "keep a backup: it controls your escrow balance; fund it by sending ICP to this \
         principal, then `market deposit <ICP>`",
    )?;
    Ok(ExitCode::SUCCESS)
}
