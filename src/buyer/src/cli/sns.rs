//! `market sns ...` and `market reserve`: the flags of each SNS action and
//! how they become the values [`market::sns`] prints.

use std::path::PathBuf;

use candid::Principal;
use clap::{Args, Subcommand};
use market::sns::{
    FIRST_FUNCTION_ID, Fund, FundTarget, check_function_id, check_principal, default_function_id,
    functions_text, fund_text, payload_text, xdr_summary,
};
use market::{BuyerError, JobRequest, Sealer, Sealing, parse_audit_ppm};
use market_api::escrow::WithdrawArgs;
use market_api::matcher::{
    CancelReservationArgs, ExtendReservationArgs, ModuleSource, ReservationId, ReservationSpec,
    SetDelegatesArgs, Sha256, reservation_cost,
};
use market_api::prices::RatesView;
use market_api::privacy::PrivacyKey;
use market_api::sns::SnsAction;
use market_api::{Account, Tokens};
use market_client::client::prices::Quote;
use market_client::config::{Canister, ConfigError, Settings};

use super::parse::{
    SecretEnv, account, amount, env_pair, https_url, positive_amount, price, read, secret_env,
    sha256_hex,
};
use market_client::client::prices::Price;

/// `market sns`.
// Parsed once per run: the size of its largest variant (the lease flags of
// `payload serve`) costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum SnsCommand {
    /// Print the AddGenericNervousSystemFunction values that register the
    /// matcher's DAO actions with an SNS (one proposal each).
    Functions(FunctionsArgs),
    /// Print the TransferSnsTreasuryFunds value that moves ICP from a DAO's
    /// treasury into its escrow balance, and the call that credits it.
    Fund(FundArgs),
    /// Print an action's payload (Candid text and hex) and the
    /// ExecuteGenericNervousSystemFunction value that proposes it.
    Payload(PayloadArgs),
}

/// Flags of `sns functions`.
#[derive(Args, Debug, Clone)]
pub struct FunctionsArgs {
    /// Id of the first function; the others follow in order (reserve,
    /// extend, set_delegates, cancel, submit_job, withdraw).
    #[arg(long, default_value_t = FIRST_FUNCTION_ID, value_name = "ID")]
    pub first_id: u64,
}

/// Flags of `sns fund`.
#[derive(Args, Debug, Clone)]
pub struct FundArgs {
    /// The DAO's SNS governance canister (its escrow balance is credited).
    #[arg(long, value_name = "PRINCIPAL")]
    pub governance: Principal,
    /// Amount in ICP (`1.5`) or e8s (`150000000e8s`).
    #[arg(long, value_name = "ICP", value_parser = positive_amount)]
    pub amount: Tokens,
    /// Memo of the ledger transfer.
    #[arg(long, value_name = "U64")]
    pub memo: Option<u64>,
}

/// Flags of `sns payload`.
#[derive(Args, Debug, Clone)]
pub struct PayloadArgs {
    /// The id under which the action's function is registered [default:
    /// 1000 + the action's place, as `market sns functions` numbers them].
    #[arg(long, global = true, value_name = "ID")]
    pub function_id: Option<u64>,
    /// The DAO's SNS governance canister: the owner of the job or lease the
    /// payload makes, and so whom --secret-env and --seal-input are sealed
    /// for (needed with them; the matcher's privacy key is read then).
    #[arg(long, global = true, value_name = "PRINCIPAL")]
    pub governance: Option<Principal>,
    /// The action.
    #[command(subcommand)]
    pub action: ActionArgs,
}

/// The actions of `sns payload`, each with the flags of its payload.
#[derive(Subcommand, Debug, Clone)]
pub enum ActionArgs {
    /// Reserve capacity (`sns_reserve`), paid from the DAO's escrow balance
    /// on the configured ledger (`--ledger`).
    Reserve(ReserveArgs),
    /// Lease replicas of a network service (`sns_reserve` with a service),
    /// paid from the DAO's escrow balance on the configured ledger
    /// (`--ledger`); the component must be in the matcher's store (`market
    /// upload`) or at `--component-url`.
    Serve(super::serve::SnsServeArgs),
    /// Add intervals to every slot of a reservation (`sns_extend`).
    Extend(ExtendArgs),
    /// Add or remove principals that may run jobs in a reservation
    /// (`sns_set_delegates`).
    SetDelegates(SetDelegatesFlags),
    /// Cancel a reservation (`sns_cancel`).
    Cancel(ReservationArg),
    /// Submit a one-off job (`sns_submit_job`), paid on the configured
    /// ledger (`--ledger`).
    SubmitJob(SubmitJobArgs),
    /// Withdraw from the DAO's escrow balance on the configured ledger
    /// (`--ledger`) (`sns_withdraw`).
    Withdraw(WithdrawFlags),
}

/// Flags of `market reserve` and `sns payload reserve`. The ledger is the
/// configured one (`--ledger`).
#[derive(Args, Debug, Clone)]
pub struct ReserveArgs {
    /// Slots held, from one or more providers.
    #[arg(long, default_value_t = 1, value_name = "K", value_parser = clap::value_parser!(u32).range(1..))]
    pub slots: u32,
    /// Memory of each slot.
    #[arg(long, default_value_t = 64, value_name = "M", value_parser = clap::value_parser!(u32).range(1..))]
    pub memory_mib: u32,
    /// Fuel per interval each slot must offer.
    #[arg(long, default_value_t = 1_000_000_000, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub fuel: u64,
    /// Length of one paid interval.
    #[arg(long, default_value_t = 60, value_name = "S", value_parser = clap::value_parser!(u64).range(1..))]
    pub interval_secs: u64,
    /// Intervals reserved per slot; each is paid whether or not a job runs.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub intervals: u32,
    /// Highest price per slot and interval, in ICP (`0.01`, `0.01icp`) or
    /// e8s, or in XDR (`0.02xdr`: paid in ICP, locked at the rate when the
    /// reservation is made plus the market's buffer).
    #[arg(long, value_name = "PRICE", value_parser = price)]
    pub max_price: Price,
    /// Smallest stake a provider must hold.
    #[arg(long, default_value = "0", value_name = "ICP", value_parser = amount)]
    pub min_stake: Tokens,
    /// Times one slot is matched anew after its provider fails it.
    #[arg(long, default_value_t = 3, value_name = "R")]
    pub max_rematches: u32,
    /// A principal that may run jobs in the slots (repeatable).
    #[arg(long = "delegate", value_name = "PRINCIPAL")]
    pub delegates: Vec<Principal>,
}

/// Flags of `sns payload extend`.
#[derive(Args, Debug, Clone)]
pub struct ExtendArgs {
    /// The reservation.
    #[arg(long, value_name = "ID")]
    pub reservation: ReservationId,
    /// Intervals added to every slot.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub intervals: u32,
}

/// Flags of `sns payload set-delegates`.
#[derive(Args, Debug, Clone)]
pub struct SetDelegatesFlags {
    /// The reservation.
    #[arg(long, value_name = "ID")]
    pub reservation: ReservationId,
    /// A principal to add (repeatable).
    #[arg(long, value_name = "PRINCIPAL")]
    pub add: Vec<Principal>,
    /// A principal to remove (repeatable).
    #[arg(long, value_name = "PRINCIPAL")]
    pub remove: Vec<Principal>,
}

/// A reservation id.
#[derive(Args, Debug, Clone)]
pub struct ReservationArg {
    /// The reservation.
    #[arg(long, value_name = "ID")]
    pub reservation: ReservationId,
}

/// Flags of `sns payload submit-job`. The ledger is the configured one
/// (`--ledger`).
#[derive(Args, Debug, Clone)]
pub struct SubmitJobArgs {
    /// sha256 of the module (64 hex digits): stored in the matcher, or the
    /// checksum of `--module-url`.
    #[arg(long, value_name = "HEX", value_parser = sha256_hex)]
    pub module_sha256: Sha256,
    /// Have the provider fetch the module from this https URL instead.
    #[arg(long, value_name = "URL", value_parser = https_url)]
    pub module_url: Option<String>,
    /// File given to the job on stdin (`-`: this command's stdin); at most 1 MiB.
    #[arg(long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// An argument for the job (repeatable).
    #[arg(long = "arg", value_name = "X", allow_hyphen_values = true)]
    pub args: Vec<String>,
    /// An environment variable for the job (repeatable). A proposal is
    /// public: put secrets in --secret-env.
    #[arg(long = "env", value_name = "K=V", value_parser = env_pair)]
    pub env: Vec<(String, String)>,
    /// A secret environment variable for the job (repeatable): `NAME=VALUE`,
    /// or `NAME` alone for the value of your own variable NAME. Sealed to
    /// the job's key for the DAO (--governance): the proposal carries
    /// ciphertext, and only the provider running the job reads it. (Its
    /// output can't be sealed: the DAO holds no key to open it.)
    #[arg(long = "secret-env", value_name = "NAME[=VALUE]", value_parser = secret_env)]
    pub secret_env: Vec<SecretEnv>,
    /// Seal the input to the job's key for the DAO (--governance): the
    /// proposal carries ciphertext, and only the provider running the job
    /// reads it.
    #[arg(long)]
    pub seal_input: bool,
    /// Memory limit of the job.
    #[arg(long, default_value_t = 64, value_name = "M")]
    pub memory_mib: u32,
    /// Fuel budget: the most the job may use and be billed for.
    #[arg(long, default_value_t = 10_000_000_000, value_name = "N")]
    pub fuel: u64,
    /// Highest price per billion fuel, in ICP (`0.001`) or e8s, or in XDR
    /// (`0.0002xdr`: locked in ICP at the rate when the proposal executes,
    /// plus the market's buffer); the DAO's escrow balance locks this ×
    /// --fuel until the result is final.
    #[arg(long, value_name = "PRICE", value_parser = price)]
    pub max_price_per_gfuel: Price,
    /// Wall-clock seconds one attempt may take [default: twice the budget
    /// at the provider's declared speed, plus one heartbeat interval].
    #[arg(long, value_name = "S")]
    pub deadline: Option<u64>,
    /// How often the provider heartbeats, seconds.
    #[arg(long, default_value_t = 60, value_name = "S")]
    pub interval_secs: u64,
    /// Times the job is re-queued when a provider fails it.
    #[arg(long, default_value_t = 2, value_name = "R")]
    pub retries: u32,
    /// Smallest stake a provider must hold.
    #[arg(long, default_value = "0", value_name = "ICP", value_parser = amount)]
    pub min_stake: Tokens,
    /// A method of the job's owner (the DAO's governance canister) to call
    /// with the result; SNS governance has no such method, so this is for
    /// governance canisters that do.
    #[arg(long, value_name = "METHOD")]
    pub callback: Option<String>,
    /// Probability that the result is audited, in parts per million: 0 to
    /// 1000000 (always) [default: the market's minimum, which applies if
    /// higher]. A job that may be audited locks its budget twice.
    #[arg(long, value_name = "PPM", value_parser = parse_audit_ppm)]
    pub audit_ppm: Option<u32>,
}

/// Flags of `sns payload withdraw`. The ledger is the configured one
/// (`--ledger`).
#[derive(Args, Debug, Clone)]
pub struct WithdrawFlags {
    /// Amount in ICP or e8s; the recipient gets it minus the ledger fee.
    #[arg(long, value_name = "ICP", value_parser = positive_amount)]
    pub amount: Tokens,
    /// Recipient: an ICRC-1 account in text form (`<principal>` or
    /// `<principal>-<checksum>.<subaccount hex>`).
    #[arg(long, value_name = "ACCOUNT", value_parser = account)]
    pub to: Account,
}

impl FundArgs {
    /// The transfer these flags describe.
    pub fn fund(&self) -> Fund {
        Fund {
            governance: self.governance,
            amount: self.amount,
            memo: self.memo,
        }
    }
}

impl ReserveArgs {
    /// The reservation these flags describe, paid on `ledger`; refused if
    /// a delegate can't be one or the cost overflows.
    pub fn spec(&self, ledger: Principal) -> Result<ReservationSpec, BuyerError> {
        for d in &self.delegates {
            check_principal("--delegate", d)?;
        }
        let spec = ReservationSpec {
            currency: self.max_price.spec_currency(),
            slots: self.slots,
            memory_mib: self.memory_mib,
            fuel_per_interval: self.fuel,
            interval_secs: self.interval_secs,
            intervals: self.intervals,
            max_price_per_interval: self.max_price.amount,
            ledger,
            min_provider_stake: self.min_stake,
            max_rematches: self.max_rematches,
            delegates: self.delegates.clone(),
            service: None,
        };
        if reservation_cost(&spec).is_none() {
            return Err(BuyerError::Request(
                "--max-price × --slots × --intervals overflows".into(),
            ));
        }
        Ok(spec)
    }
}

impl ActionArgs {
    /// What of the payload is sealed: a job's input and secret env, a
    /// lease's secret env (`--secret-env NAME` read from `lookup`).
    pub fn sealing(&self, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Sealing, BuyerError> {
        Ok(match self {
            ActionArgs::SubmitJob(j) => Sealing {
                input: j.seal_input,
                secret_env: SecretEnv::resolve(&j.secret_env, lookup)?,
                output: false,
            },
            ActionArgs::Serve(s) => Sealing {
                secret_env: SecretEnv::resolve(&s.lease.secret_env, lookup)?,
                ..Sealing::default()
            },
            _ => Sealing::default(),
        })
    }

    /// Whether the payload seals something (and so needs the matcher's
    /// privacy key and the DAO's principal).
    pub fn seals(&self) -> bool {
        match self {
            ActionArgs::SubmitJob(j) => j.seal_input || !j.secret_env.is_empty(),
            ActionArgs::Serve(s) => !s.lease.secret_env.is_empty(),
            _ => false,
        }
    }

    /// The action these flags describe. `ledger` is the configured ledger,
    /// needed by the actions that pay or withdraw. What it seals is sealed
    /// with `sealer` (for the DAO; refused without one), `--secret-env
    /// NAME` read from `lookup`.
    pub fn action(
        &self,
        ledger: Result<Principal, ConfigError>,
        sealer: Option<&Sealer>,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<SnsAction, BuyerError> {
        let bad = |m: String| Err(BuyerError::Request(m));
        let sealing = self.sealing(lookup)?;
        let sealer = match (sealing.is_none(), sealer) {
            (true, _) => None,
            (false, Some(s)) => Some(s),
            (false, None) => return Err(BuyerError::NoPrivacy),
        };
        Ok(match self {
            ActionArgs::Reserve(r) => SnsAction::Reserve(r.spec(ledger?)?),
            ActionArgs::Serve(s) => {
                let mut spec = s.spec(ledger?);
                if let (Some(sealer), Some(service)) = (sealer, spec.service.as_mut()) {
                    service.sealed = sealer.seal_service_env(&sealing.secret_env)?;
                }
                SnsAction::Reserve(spec)
            }
            ActionArgs::Extend(e) => SnsAction::Extend(ExtendReservationArgs {
                reservation: e.reservation,
                intervals: e.intervals,
            }),
            ActionArgs::SetDelegates(s) => {
                if s.add.is_empty() && s.remove.is_empty() {
                    return bad("set-delegates: give --add or --remove (or both)".into());
                }
                for p in &s.add {
                    check_principal("--add", p)?;
                }
                if let Some(p) = s.add.iter().find(|p| s.remove.contains(p)) {
                    return bad(format!("{p} is both in --add and --remove"));
                }
                SnsAction::SetDelegates(SetDelegatesArgs {
                    reservation: s.reservation,
                    add: s.add.clone(),
                    remove: s.remove.clone(),
                })
            }
            ActionArgs::Cancel(c) => SnsAction::Cancel(CancelReservationArgs {
                reservation: c.reservation,
            }),
            ActionArgs::SubmitJob(j) => {
                let input = match &j.input {
                    Some(path) => read(path, "input")?,
                    None => vec![],
                };
                let request = JobRequest {
                    input,
                    args: j.args.clone(),
                    env: j.env.clone(),
                    max_price_per_gfuel: j.max_price_per_gfuel.amount,
                    currency: j.max_price_per_gfuel.spec_currency(),
                    fuel: j.fuel,
                    deadline_secs: j.deadline,
                    interval_secs: j.interval_secs,
                    memory_mib: j.memory_mib,
                    max_retries: j.retries,
                    min_provider_stake: j.min_stake,
                    audit_ppm: j.audit_ppm,
                    sealing: sealing.clone(),
                };
                request.validate()?;
                if let Some(m) = &j.callback
                    && m.is_empty()
                {
                    return bad("--callback: a method name, not empty".into());
                }
                let mut spec = request.spec(j.module_sha256, ledger?);
                if let Some(url) = &j.module_url {
                    spec.module = ModuleSource::Url {
                        url: url.clone(),
                        sha256: j.module_sha256,
                    };
                }
                spec.callback = j.callback.clone();
                if let Some(sealer) = sealer {
                    spec = sealer.seal_job(spec, &sealing)?;
                }
                SnsAction::SubmitJob(spec)
            }
            ActionArgs::Withdraw(w) => {
                check_principal("--to", &w.to.owner)?;
                SnsAction::Withdraw(WithdrawArgs {
                    ledger: ledger?,
                    amount: w.amount,
                    to: w.to,
                })
            }
        })
    }
}

/// The matcher's rates when a payload is priced in XDR.
pub struct Rates {
    /// What `get_rates` answered.
    pub rates: RatesView,
    /// The IC's time then, in seconds.
    pub now_secs: u64,
    /// The market's least audit probability (a job's budget is locked
    /// twice when its result may be audited).
    pub min_audit_ppm: u32,
    /// The market's fee, locked on top of the provider's pay.
    pub market_fee_ppm: u32,
}

/// Whether the command's payload is priced in XDR, so that what it tells
/// voters needs the matcher's current rate.
pub fn needs_rates(command: &SnsCommand) -> bool {
    let SnsCommand::Payload(p) = command else {
        return false;
    };
    match &p.action {
        ActionArgs::Reserve(r) => r.max_price.is_xdr(),
        ActionArgs::Serve(s) => s.lease.max_price.is_xdr(),
        ActionArgs::SubmitJob(j) => j.max_price_per_gfuel.is_xdr(),
        _ => false,
    }
}

/// Whether the command's payload seals something, so that it needs the
/// matcher's privacy key.
pub fn needs_privacy_key(command: &SnsCommand) -> bool {
    matches!(command, SnsCommand::Payload(p) if p.action.seals())
}

impl PayloadArgs {
    /// The sealer for the DAO (`--governance`) with the matcher's `key`;
    /// `None` when the payload seals nothing.
    pub fn sealer(&self, key: Option<&PrivacyKey>) -> Result<Option<Sealer>, BuyerError> {
        if !self.action.seals() {
            return Ok(None);
        }
        let governance = self.governance.ok_or_else(|| {
            BuyerError::Request(
                "--governance: --secret-env and --seal-input are sealed for the DAO whose job or \
                 lease it is: give its SNS governance canister's principal"
                    .into(),
            )
        })?;
        let key = key.ok_or(BuyerError::NoPrivacy)?;
        Ok(Some(Sealer::new(key, governance)))
    }
}

/// What `market sns ...` prints, from the settings (canister ids) and the
/// command's flags; for a payload priced in XDR, with the most ICP it may
/// lock at `rates`. What the payload seals is sealed with the matcher's
/// `privacy_key` for the DAO (refused without it), `--secret-env NAME`
/// read from `lookup`; the payload's text then tells voters what is
/// sealed (by name, never a value).
pub fn output(
    settings: &Settings,
    command: &SnsCommand,
    rates: Option<&Rates>,
    privacy_key: Option<&PrivacyKey>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, BuyerError> {
    match command {
        SnsCommand::Functions(f) => {
            let matcher = settings.canister(Canister::Matcher)?;
            functions_text(matcher, f.first_id)
        }
        SnsCommand::Fund(f) => {
            let target = FundTarget {
                escrow: settings.canister(Canister::Escrow)?,
                ledger: settings.canister(Canister::Ledger)?,
                network: settings.network.clone(),
            };
            fund_text(&f.fund(), &target)
        }
        SnsCommand::Payload(p) => {
            let sealer = p.sealer(privacy_key)?;
            let action =
                p.action
                    .action(settings.canister(Canister::Ledger), sealer.as_ref(), lookup)?;
            let id = p
                .function_id
                .unwrap_or_else(|| default_function_id(action.name()));
            check_function_id(id, "--function-id")?;
            let mut out = payload_text(&action, id);
            if let (Some(parts), Some(dao)) = (
                market::sealed_parts(&p.action.sealing(lookup)?),
                p.governance,
            ) {
                out.push_str(&format!(
                    "// Sealed for {dao} to its key: {parts}. Voters see ciphertext; only \
                     the provider running it reads them.\n"
                ));
            }
            let ledger = settings.canister(Canister::Ledger);
            if let (Some(r), Ok(ledger)) = (rates, ledger) {
                let quote = Quote::at(&r.rates, ledger, market::paying_unit());
                let terms = market::sns::XdrSummaryTerms {
                    now_secs: r.now_secs,
                    min_audit_ppm: r.min_audit_ppm,
                    market_fee_ppm: r.market_fee_ppm,
                };
                if let Some(summary) = xdr_summary(&action, &quote, &terms) {
                    out.push('\n');
                    out.push_str(&summary);
                }
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;
    use market::sns::{SnsSubaccount, TransferSnsTreasuryFunds, treasury_transfer};
    use market::{blob_text, candid_line};
    use market_api::escrow::deposit_subaccount;
    use market_api::matcher::JobLimits;
    use market_api::sns::SNS_ACTIONS;
    use market_client::config::{self, FileConfig};

    const MATCHER: &str = "bkyz2-fmaaa-aaaaa-qaaaq-cai";
    const ESCROW: &str = "be2us-64aaa-aaaaa-qaabq-cai";
    const LEDGER: &str = "ryjl3-tyaaa-aaaaa-aaaba-cai";
    const DAO: &str = "rrkah-fqaaa-aaaaa-aaaaq-cai";
    const DELEGATE: &str = "r7inp-6aaaa-aaaaa-aaabq-cai";

    fn p(text: &str) -> Principal {
        Principal::from_text(text).unwrap()
    }

    /// `market --matcher .. --escrow .. --ledger .. <args>`, parsed, and
    /// the settings it resolves to (no file, no environment).
    fn parse(args: &[&str]) -> Result<(Settings, SnsCommand), String> {
        let ids = ["--matcher", MATCHER, "--escrow", ESCROW, "--ledger", LEDGER];
        let argv = std::iter::once("market")
            .chain(ids)
            .chain(args.iter().copied());
        let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        let settings = config::resolve(
            &crate::APP,
            PathBuf::from("/nonexistent/config.toml"),
            &FileConfig::default(),
            &cli.global,
            &|_| None,
        )
        .unwrap();
        match cli.command {
            Command::Sns(c) => Ok((settings, c)),
            other => panic!("not sns: {other:?}"),
        }
    }

    fn run(args: &[&str]) -> Result<String, String> {
        let (settings, command) = parse(args)?;
        output(&settings, &command, None, None, &|_| None).map_err(|e| e.to_string())
    }

    /// The action built from `sns payload <args>`.
    fn action(args: &[&str]) -> Result<SnsAction, String> {
        let mut argv = vec!["sns", "payload"];
        argv.extend_from_slice(args);
        let (_, command) = parse(&argv)?;
        let SnsCommand::Payload(payload) = command else {
            panic!("not payload")
        };
        payload
            .action
            .action(Ok(p(LEDGER)), None, &|_| None)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_sealed_payload_carries_ciphertext_and_tells_voters_what_is_sealed() {
        const SECRET: &str = "dao-s3cret-value";
        let key = market_fixture::vetkeys::TestKeys::new(b"sns sealing").privacy_key();
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.bin");
        std::fs::write(&input, b"dao-private-input").unwrap();
        let sha = "ab".repeat(32);
        let secret_flag = format!("API_KEY={SECRET}");
        let job = [
            "sns",
            "payload",
            "--governance",
            DAO,
            "submit-job",
            "--module-sha256",
            &sha,
            "--max-price-per-gfuel",
            "0.001",
            "--input",
            input.to_str().unwrap(),
            "--seal-input",
            "--secret-env",
            &secret_flag,
            "--secret-env",
            "TOKEN",
        ];
        let lookup = |name: &str| (name == "TOKEN").then(|| "from-the-environment".to_string());
        let (settings, command) = parse(&job).unwrap();
        assert!(needs_privacy_key(&command));
        let out = output(&settings, &command, None, Some(&key), &lookup).unwrap();
        for hidden in [SECRET, "from-the-environment", "dao-private-input"] {
            assert!(!out.contains(hidden), "{hidden}: {out}");
            assert!(!out.contains(&hex::encode(hidden)), "{hidden}: {out}");
        }
        assert!(
            out.contains(&format!(
                "// Sealed for {DAO} to its key: its input and its secret env (API_KEY, TOKEN)."
            )),
            "{out}"
        );
        let SnsCommand::Payload(payload) = &command else {
            unreachable!()
        };
        let sealer = payload.sealer(Some(&key)).unwrap().unwrap();
        let Ok(SnsAction::SubmitJob(spec)) =
            payload.action.action(Ok(p(LEDGER)), Some(&sealer), &lookup)
        else {
            panic!("not a job")
        };
        let sealed = spec.sealed.as_ref().unwrap();
        assert!(sealed.input && !sealed.output && sealed.env.is_some());
        sealed.check_job(&spec.input).unwrap();

        // Without the DAO's principal, or the matcher's key: refused.
        let (settings, no_dao) = parse(
            &job[..2]
                .iter()
                .chain(&job[4..])
                .copied()
                .collect::<Vec<_>>(),
        )
        .unwrap();
        let e = output(&settings, &no_dao, None, Some(&key), &lookup)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--governance"), "{e}");
        let e = output(&settings, &command, None, None, &|_| None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("takes no sealed jobs"), "{e}");
        let e = output(&settings, &command, None, Some(&key), &|_| None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--secret-env TOKEN"), "{e}");

        // A lease's secret env, sealed for the DAO.
        let (settings, serve) = parse(&[
            "sns",
            "payload",
            "serve",
            "--governance",
            DAO,
            "--component-sha256",
            &sha,
            "--intervals",
            "2",
            "--max-price",
            "0.01",
            "--secret-env",
            &secret_flag,
        ])
        .unwrap();
        assert!(needs_privacy_key(&serve));
        let out = output(&settings, &serve, None, Some(&key), &lookup).unwrap();
        assert!(!out.contains(SECRET) && !out.contains(&hex::encode(SECRET)));
        assert!(out.contains("its secret env (API_KEY)"), "{out}");
        let SnsCommand::Payload(payload) = &serve else {
            unreachable!()
        };
        let sealer = payload.sealer(Some(&key)).unwrap();
        let Ok(SnsAction::Reserve(spec)) =
            payload
                .action
                .action(Ok(p(LEDGER)), sealer.as_ref(), &lookup)
        else {
            panic!("not a lease")
        };
        let sealed = spec.service.unwrap().sealed.unwrap();
        sealed.check_service().unwrap();

        // A plain payload needs no key and says nothing of sealing.
        let (_, plain) = parse(&job[..11]).unwrap();
        assert!(!needs_privacy_key(&plain));
        let out = output(&settings, &plain, None, None, &|_| None).unwrap();
        assert!(!out.contains("Sealed"), "{out}");
    }

    #[test]
    fn a_service_lease_is_proposed_as_a_reservation_with_its_service() {
        let sha = "ab".repeat(32);
        let Ok(SnsAction::Reserve(spec)) = action(&[
            "serve",
            "--component-sha256",
            &sha,
            "--replicas",
            "2",
            "--intervals",
            "720",
            "--max-price",
            "0.001",
            "--allow-host",
            "API.example.com",
            "--health",
            "/up",
        ]) else {
            panic!("a reserve action")
        };
        assert_eq!((spec.slots, spec.intervals), (2, 720));
        assert_eq!(spec.max_price_per_interval, 100_000);
        assert_eq!(spec.ledger, p(LEDGER));
        let service = spec.service.expect("a service");
        assert_eq!(
            service.component,
            ModuleSource::Stored { sha256: [0xab; 32] }
        );
        assert_eq!(service.allowed_hosts, vec!["api.example.com".to_string()]);
        assert_eq!(service.health_path, "/up");
        assert_eq!(
            service.callback, None,
            "a DAO's governance takes no callbacks"
        );

        let Ok(SnsAction::Reserve(spec)) = action(&[
            "serve",
            "--component-sha256",
            &sha,
            "--component-url",
            "https://example.com/s.wasm",
            "--intervals",
            "1",
            "--max-price",
            "1",
        ]) else {
            panic!("a reserve action")
        };
        assert_eq!(
            spec.service.unwrap().component,
            ModuleSource::Url {
                url: "https://example.com/s.wasm".into(),
                sha256: [0xab; 32]
            }
        );
        assert!(
            action(&[
                "serve",
                "--component-sha256",
                "zz",
                "--intervals",
                "1",
                "--max-price",
                "1"
            ])
            .is_err()
        );
    }

    /// The command `sns payload <line>`, priced in XDR: it needs rates.
    fn xdr_payload(line: &str) -> (Settings, SnsCommand) {
        let argv: Vec<&str> = ["sns", "payload"]
            .into_iter()
            .chain(line.split_whitespace())
            .collect();
        let (settings, command) = parse(&argv).unwrap();
        assert!(needs_rates(&command), "{line}");
        (settings, command)
    }

    /// What `command` prints with a rate of 4 XDR per ICP set at 1,000 s.
    fn at_4_xdr_per_icp(settings: &Settings, command: &SnsCommand) -> String {
        output(
            settings,
            command,
            Some(&rates_at(40_000, 1_000)),
            None,
            &|_| None,
        )
        .unwrap()
    }

    fn rates_at(permyriad: u64, at: u64) -> Rates {
        use market_api::prices::Valuation;
        Rates {
            rates: RatesView::stake_only(p(LEDGER), Valuation::icp(permyriad, at)),
            now_secs: at + 60,
            min_audit_ppm: 0,
            market_fee_ppm: 0,
        }
    }

    #[test]
    fn an_xdr_payload_tells_voters_the_market_fee_it_locks() {
        let (settings, command) =
            xdr_payload("reserve --slots 2 --intervals 30 --max-price 0.02xdr");
        let rates = Rates {
            market_fee_ppm: 25_000,
            ..rates_at(40_000, 1_000)
        };
        let out = output(&settings, &command, Some(&rates), None, &|_| None).unwrap();
        // 0.33 ICP with its buffer, and 2.5 % of it.
        assert!(
            out.contains(
                "it locks at most 0.33825 ICP of the DAO's escrow balance, the \n// market's \
                 10% buffer and its 2.5% fee included"
            ),
            "{out}"
        );
    }

    #[test]
    fn an_xdr_payload_tells_voters_its_xdr_budget_and_most_icp() {
        use market_api::prices::Currency;
        let (settings, command) =
            xdr_payload("reserve --slots 2 --intervals 30 --max-price 0.02xdr");
        let SnsCommand::Payload(payload) = &command else {
            panic!("not payload")
        };
        let Ok(SnsAction::Reserve(spec)) = payload.action.action(Ok(p(LEDGER)), None, &|_| None)
        else {
            panic!("a reserve action")
        };
        assert_eq!(
            (spec.currency, spec.max_price_per_interval),
            (Some(Currency::Xdr), 20_000_000_000)
        );
        // 2 × 30 × 0.02 XDR = 1.2 XDR; at 4 XDR per ICP 0.3 ICP, and 10 %
        // more: 0.33 ICP.
        let out = at_4_xdr_per_icp(&settings, &command);
        for expected in [
            "For voters: priced in XDR, paid in ICP. Budget 1.2 XDR (2 slots × 30 intervals at \
             most 0.02 XDR each)",
            "at the current rate (1 ICP = 4 XDR) it locks at most 0.33 ICP of the DAO's escrow \
             balance, the \n// market's 10% buffer included",
            "older than 1800 s",
        ] {
            assert!(out.contains(expected), "{expected:?} in\n{out}");
        }
        // A stale rate is said, not hidden.
        let mut stale = rates_at(40_000, 1_000);
        stale.now_secs = 1_000 + 1_801;
        let out = output(&settings, &command, Some(&stale), None, &|_| None).unwrap();
        assert!(
            out.contains("the ICP it locks can't be stated now"),
            "{out}"
        );

        // A job: its budget twice when its result may be audited.
        let sha = "ab".repeat(32);
        let (settings, command) = xdr_payload(&format!(
            "submit-job --module-sha256 {sha} --fuel 5000000000 --max-price-per-gfuel 0.02xdr \
             --audit-ppm 50000"
        ));
        let out = at_4_xdr_per_icp(&settings, &command);
        // 2 × 5 × 0.02 XDR = 0.2 XDR = 0.05 ICP, plus 10 %.
        assert!(
            out.contains("Budget 0.2 XDR (twice (the run and an audit's re-run) 5000000000 fuel"),
            "{out}"
        );
        assert!(out.contains("locks at most 0.055 ICP"), "{out}");

        // Priced in ICP: no rates needed, no such lines.
        let (settings, command) = parse(&[
            "sns",
            "payload",
            "reserve",
            "--intervals",
            "30",
            "--max-price",
            "0.01icp",
        ])
        .unwrap();
        assert!(!needs_rates(&command));
        let out = output(&settings, &command, None, None, &|_| None).unwrap();
        assert!(!out.contains("For voters"), "{out}");
    }

    /// The line after the comment that introduces the hex.
    fn hex_line(text: &str) -> Vec<u8> {
        let mut lines = text.lines();
        lines
            .by_ref()
            .find(|l| l.contains("bytes, hex:"))
            .expect("a hex section");
        hex::decode(lines.next().expect("the hex")).expect("valid hex")
    }

    fn job(module: ModuleSource, input: Vec<u8>) -> market_api::matcher::JobSpec {
        market_api::matcher::JobSpec {
            sealed: None,
            currency: None,
            module,
            input,
            args: vec!["-v".into(), "x".into()],
            env: vec![("MODE".into(), "fast=1".into())],
            limits: JobLimits {
                memory_mib: 128,
                fuel: 5_000,
            },
            max_price_per_gfuel: 2_000_000,
            deadline_secs: Some(600),
            interval_secs: 30,
            ledger: p(LEDGER),
            min_provider_stake: 100_000_000,
            min_record: None,
            max_retries: 1,
            callback: Some("on_result".into()),
            audit_ppm: Some(250_000),
        }
    }

    #[test]
    fn every_action_prints_a_payload_that_decodes_to_what_the_flags_say() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.bin");
        std::fs::write(&input, b"\0data\xff").unwrap();
        let sha = [0xab; 32];
        let sha_hex = hex::encode(sha);
        let job_flags = |module: &[&str]| {
            let mut v = vec!["submit-job"];
            v.extend_from_slice(module);
            v.extend_from_slice(&[
                "--input",
                input.to_str().unwrap(),
                "--arg",
                "-v",
                "--arg",
                "x",
                "--env",
                "MODE=fast=1",
                "--memory-mib",
                "128",
                "--fuel",
                "5000",
                "--interval-secs",
                "30",
                "--deadline",
                "600",
                "--max-price-per-gfuel",
                "0.02",
                "--retries",
                "1",
                "--min-stake",
                "1",
                "--callback",
                "on_result",
                "--audit-ppm",
                "250000",
            ]);
            v.into_iter().map(String::from).collect::<Vec<_>>()
        };
        let cases: Vec<(Vec<String>, SnsAction)> = vec![
            (
                [
                    "reserve",
                    "--slots",
                    "2",
                    "--memory-mib",
                    "256",
                    "--fuel",
                    "7",
                    "--interval-secs",
                    "600",
                    "--intervals",
                    "144",
                    "--max-price",
                    "0.001",
                    "--min-stake",
                    "0.5",
                    "--max-rematches",
                    "5",
                    "--delegate",
                    DELEGATE,
                    "--delegate",
                    DAO,
                ]
                .map(String::from)
                .to_vec(),
                SnsAction::Reserve(ReservationSpec {
                    currency: None,
                    slots: 2,
                    memory_mib: 256,
                    fuel_per_interval: 7,
                    interval_secs: 600,
                    intervals: 144,
                    max_price_per_interval: 100_000,
                    ledger: p(LEDGER),
                    min_provider_stake: 50_000_000,
                    max_rematches: 5,
                    delegates: vec![p(DELEGATE), p(DAO)],
                    service: None,
                }),
            ),
            (
                ["extend", "--reservation", "42", "--intervals", "10"]
                    .map(String::from)
                    .to_vec(),
                SnsAction::Extend(ExtendReservationArgs {
                    reservation: 42,
                    intervals: 10,
                }),
            ),
            (
                [
                    "set-delegates",
                    "--reservation",
                    "42",
                    "--add",
                    DELEGATE,
                    "--remove",
                    DAO,
                    "--remove",
                    MATCHER,
                ]
                .map(String::from)
                .to_vec(),
                SnsAction::SetDelegates(SetDelegatesArgs {
                    reservation: 42,
                    add: vec![p(DELEGATE)],
                    remove: vec![p(DAO), p(MATCHER)],
                }),
            ),
            (
                ["cancel", "--reservation", "42"].map(String::from).to_vec(),
                SnsAction::Cancel(CancelReservationArgs { reservation: 42 }),
            ),
            (
                job_flags(&["--module-sha256", &sha_hex]),
                SnsAction::SubmitJob(job(
                    ModuleSource::Stored { sha256: sha },
                    b"\0data\xff".to_vec(),
                )),
            ),
            (
                job_flags(&[
                    "--module-sha256",
                    &sha_hex,
                    "--module-url",
                    "https://example.org/job.wasm",
                ]),
                SnsAction::SubmitJob(job(
                    ModuleSource::Url {
                        url: "https://example.org/job.wasm".into(),
                        sha256: sha,
                    },
                    b"\0data\xff".to_vec(),
                )),
            ),
            (
                [
                    "withdraw",
                    "--amount",
                    "1.25",
                    "--to",
                    "be2us-64aaa-aaaaa-qaabq-cai-kdwbfga.a00000000000000010101000000000000000000000000000000000000000000",
                ]
                .map(String::from)
                .to_vec(),
                SnsAction::Withdraw(WithdrawArgs {
                    ledger: p(LEDGER),
                    amount: 125_000_000,
                    to: Account {
                        owner: p(ESCROW),
                        subaccount: deposit_subaccount(p(DAO)),
                    },
                }),
            ),
        ];
        let mut seen = std::collections::BTreeSet::new();
        for (flags, expected) in cases {
            let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
            let built = action(&flags).unwrap_or_else(|e| panic!("{flags:?}: {e}"));
            assert_eq!(built, expected, "{flags:?}");
            let name = expected.name();
            seen.insert(name);

            let mut argv = vec!["sns", "payload"];
            argv.extend_from_slice(&flags);
            let text = run(&argv).unwrap();
            let bytes = hex_line(&text);
            assert_eq!(bytes, expected.payload(), "{name}: the printed hex");
            assert_eq!(SnsAction::decode(name, &bytes), Ok(expected.clone()));
            let id = default_function_id(name);
            assert!(
                text.contains(&format!("function_id = {};", candid_line(&id)))
                    && text.contains(&format!("payload = {};", blob_text(&bytes))),
                "{name}: the ExecuteGenericNervousSystemFunction value\n{text}"
            );
            assert!(text.contains(&format!("Payload of sns_{name} ")), "{text}");
        }
        assert_eq!(seen.len(), SNS_ACTIONS.len(), "every action is covered");
    }

    #[test]
    fn defaults_and_function_ids() {
        let built = action(&["reserve", "--intervals", "3", "--max-price", "1"]).unwrap();
        assert_eq!(
            built,
            SnsAction::Reserve(ReservationSpec {
                currency: None,
                slots: 1,
                memory_mib: 64,
                fuel_per_interval: 1_000_000_000,
                interval_secs: 60,
                intervals: 3,
                max_price_per_interval: 100_000_000,
                ledger: p(LEDGER),
                min_provider_stake: 0,
                max_rematches: 3,
                delegates: vec![],
                service: None,
            })
        );
        let ids: Vec<u64> = SNS_ACTIONS.iter().map(|a| default_function_id(a)).collect();
        assert_eq!(ids, [1000, 1001, 1002, 1003, 1004, 1005]);

        // --function-id goes before or after the action.
        let cancel_with_function_id = |id: &str, before_action: bool| {
            let (flag, cancel) = (["--function-id", id], ["cancel", "--reservation", "1"]);
            let mut args = vec!["sns", "payload"];
            if before_action {
                args.extend(flag.into_iter().chain(cancel));
            } else {
                args.extend(cancel.into_iter().chain(flag));
            }
            run(&args)
        };
        for (id, before_action) in [(2000u64, false), (2001, true)] {
            let text = cancel_with_function_id(&id.to_string(), before_action).unwrap();
            assert!(
                text.contains(&format!("function_id = {};", candid_line(&id))),
                "{text}"
            );
        }
        let e = cancel_with_function_id("999", false).unwrap_err();
        assert!(e.contains("--function-id") && e.contains("native"), "{e}");
    }

    #[test]
    fn bad_flags_are_refused_with_the_flag_named() {
        let sha = "ab".repeat(32);
        let max_u128_e8s = "340282366920938463463374607431768211455e8s";
        // Each case a command line of `sns payload`, and what its refusal
        // names.
        let cases = [
            (
                "reserve --slots 0 --intervals 1 --max-price 1".to_string(),
                "--slots",
            ),
            ("reserve --intervals 0 --max-price 1".into(), "--intervals"),
            (
                "reserve --intervals 1 --max-price 0".into(),
                "more than zero",
            ),
            ("reserve --intervals 1".into(), "--max-price"),
            (
                "reserve --intervals 1 --max-price 1 --delegate 2vxsx-fae".into(),
                "--delegate",
            ),
            (
                "reserve --intervals 1 --max-price 1 --delegate not-a-principal".into(),
                "--delegate",
            ),
            (
                format!(
                    "reserve --slots 4294967295 --intervals 4294967295 --max-price {max_u128_e8s}"
                ),
                "overflows",
            ),
            ("extend --reservation 1 --intervals 0".into(), "--intervals"),
            ("set-delegates --reservation 1".into(), "--add or --remove"),
            (
                format!("set-delegates --reservation 1 --add {DAO} --remove {DAO}"),
                "both in --add and --remove",
            ),
            ("cancel".into(), "--reservation"),
            (
                "submit-job --module-sha256 abcd --max-price-per-gfuel 1".into(),
                "32 bytes",
            ),
            (
                "submit-job --module-sha256 zz --max-price-per-gfuel 1".into(),
                "not hex",
            ),
            (
                format!(
                    "submit-job --module-sha256 {sha} --module-url http://example.org/a.wasm \
                     --max-price-per-gfuel 1"
                ),
                "https://",
            ),
            (
                "submit-job --module-url https://a/b --max-price-per-gfuel 1".into(),
                "--module-sha256",
            ),
            (
                format!("submit-job --module-sha256 {sha} --max-price-per-gfuel 1 --deadline 0"),
                "--deadline: at least 1 second",
            ),
            (
                format!(
                    "submit-job --module-sha256 {sha} --max-price-per-gfuel 1 --input /nonexistent/in"
                ),
                "cannot read input /nonexistent/in",
            ),
            ("withdraw --amount 1 --to nonsense".into(), "--to"),
            ("withdraw --amount 1 --to 2vxsx-fae".into(), "--to"),
            (format!("withdraw --amount 0 --to {DAO}"), "more than zero"),
        ];
        for (line, says) in &cases {
            let args: Vec<&str> = line.split_whitespace().collect();
            let e = action(&args).expect_err(&format!("{line} should be refused"));
            assert!(e.contains(says), "{line}: {e}");
        }
        // A job with one more flag whose value no command line of words
        // spells: an empty callback, a file's path.
        let job_with = |flag: &str, value: &str| {
            action(&[
                "submit-job",
                "--module-sha256",
                &sha,
                "--max-price-per-gfuel",
                "1",
                flag,
                value,
            ])
            .expect_err(&format!("{flag} {value:?} should be refused"))
        };
        let e = job_with("--callback", "");
        assert!(e.contains("--callback"), "{e}");

        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.bin");
        std::fs::write(&big, vec![0u8; market_api::matcher::MAX_INPUT_BYTES + 1]).unwrap();
        let e = job_with("--input", big.to_str().unwrap());
        assert!(e.contains("--input") && e.contains("at most"), "{e}");
    }

    #[test]
    fn a_missing_canister_id_names_its_flag() {
        let settings = config::resolve(
            &crate::APP,
            PathBuf::from("/nonexistent/config.toml"),
            &FileConfig::default(),
            &config::NetworkArgs::default(),
            &|_| None,
        )
        .unwrap();
        let output_of = |args: &[&str]| {
            let cli =
                Cli::try_parse_from(std::iter::once("market").chain(args.iter().copied())).unwrap();
            let Command::Sns(command) = cli.command else {
                unreachable!()
            };
            output(&settings, &command, None, None, &|_| None).map_err(|e| e.to_string())
        };
        for (args, names) in [
            (
                &["sns", "functions"][..],
                &["--matcher", "MARKET_MATCHER"][..],
            ),
            (
                &["sns", "fund", "--governance", DAO, "--amount", "1"],
                &["--escrow"],
            ),
            (
                &["sns", "payload", "withdraw", "--amount", "1", "--to", DAO],
                &["--ledger"],
            ),
        ] {
            let e = output_of(args).unwrap_err();
            assert!(names.iter().all(|name| e.contains(name)), "{e}");
        }

        // Actions that name no ledger don't need one.
        output_of(&["sns", "payload", "cancel", "--reservation", "3"]).unwrap();
    }

    #[test]
    fn functions_register_every_action_on_the_matcher() {
        let text = run(&["sns", "functions"]).unwrap();
        for (i, action) in SNS_ACTIONS.iter().enumerate() {
            let id = 1000 + i;
            for part in [
                format!("\n// {id} sns_{action}: topic "),
                format!("id = {};", candid_line(&(id as u64))),
                format!("target_method_name = opt \"sns_{action}\";"),
                format!("validator_method_name = opt \"sns_validate_{action}\";"),
            ] {
                assert!(text.contains(&part), "{part} in\n{text}");
            }
        }
        assert_eq!(
            text.matches(&format!("canister_id = opt principal \"{MATCHER}\";"))
                .count(),
            2 * SNS_ACTIONS.len(),
            "target and validator of each function are the matcher"
        );
        assert_eq!(
            text.matches("topic = opt variant { TreasuryAssetManagement };")
                .count(),
            4,
            "reserve, extend, submit_job and withdraw spend"
        );
        assert!(text.contains("// 1002 sns_set_delegates: topic ApplicationBusinessLogic"));

        let text = run(&["sns", "functions", "--first-id", "5000"]).unwrap();
        assert!(
            text.contains(&format!("id = {};", candid_line(&5005u64)))
                && !text.contains(&format!("id = {};", candid_line(&1000u64)))
        );
        let e = run(&["sns", "functions", "--first-id", "999"]).unwrap_err();
        assert!(e.contains("--first-id") && e.contains("native"), "{e}");
    }

    #[test]
    fn fund_sends_to_the_escrow_deposit_account_of_the_dao() {
        let text = run(&[
            "sns",
            "fund",
            "--governance",
            DAO,
            "--amount",
            "1.5",
            "--memo",
            "77",
        ])
        .unwrap();
        let sub = deposit_subaccount(p(DAO)).unwrap();
        for part in [
            format!("from_treasury = {};", candid_line(&1i32)),
            format!("to_principal = opt principal \"{ESCROW}\";"),
            format!("subaccount = {};", blob_text(&sub)),
            format!("memo = {};", candid_line(&Some(77u64))),
            format!("amount_e8s = {};", candid_line(&150_000_000u64)),
            format!(
                "ICRC-1 text: {}",
                Account {
                    owner: p(ESCROW),
                    subaccount: Some(sub)
                }
            ),
            format!(
                "dfx canister call --network ic {ESCROW} notify_deposit '(record {{ beneficiary \
                 = principal \"{DAO}\"; ledger = principal \"{LEDGER}\" }})'"
            ),
        ] {
            assert!(text.contains(&part), "{part} in\n{text}");
        }

        let args = Fund {
            governance: p(DAO),
            amount: 7,
            memo: None,
        };
        assert_eq!(
            treasury_transfer(&args, p(ESCROW)).unwrap(),
            TransferSnsTreasuryFunds {
                from_treasury: 1,
                to_principal: Some(p(ESCROW)),
                to_subaccount: Some(SnsSubaccount {
                    subaccount: sub.to_vec()
                }),
                memo: None,
                amount_e8s: 7,
            }
        );
        let e = run(&["sns", "fund", "--governance", "2vxsx-fae", "--amount", "1"]).unwrap_err();
        assert!(e.contains("--governance"), "{e}");
        let e = run(&[
            "sns",
            "fund",
            "--governance",
            DAO,
            "--amount",
            "18446744073709551616e8s",
        ])
        .unwrap_err();
        assert!(e.contains("--amount"), "{e}");
    }
}
