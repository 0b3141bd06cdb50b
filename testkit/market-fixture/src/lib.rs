//! The whole marketplace on an in-process [`Devnet`]: the local ICRC-1/2
//! ledger, the registry, the escrow and the matcher, installed from their
//! real `.wasm` files and wired to each other, with typed calls for the
//! steps every test and the demo repeat (minting, approving, depositing,
//! registering and staking providers) and the money-conservation
//! [`audit`](MarketFixture::audit).
//!
//! The devnet sits behind an `Arc<Mutex<..>>` so that provider nodes running
//! on other threads (the provider node's devnet transport) share it with the
//! test or demo that drives time.
//!
//! ```no_run
//! use market_fixture::{MarketFixture, Settings};
//! let net = MarketFixture::deploy(Settings::default()).unwrap();
//! let buyer = market_fixture::principal(1);
//! net.mint(buyer, 100_000_000).unwrap();
//! net.deposit(buyer, 50_000_000).unwrap();
//! net.audit().unwrap();
//! ```

mod audit;
pub mod jobs;
pub mod ledger_types;
pub mod metrics;
pub mod pricing;
mod transport;
pub mod vetkeys;

use ledger_types::{approve_args, local_icp};

pub use audit::{Audit, LedgerAudit};
pub use pricing::{PricingIds, PricingSettings};
pub use transport::DevnetTransport;

use candid::utils::{ArgumentDecoder, ArgumentEncoder};
use candid::{CandidType, Nat, Principal};
use devnet::{Devnet, DevnetConfig};
use market_api::escrow::{Balance, EscrowError, EscrowInit, LedgerInfo};
use market_api::matcher::{
    Assignment, AssignmentPage, GFUEL, HeartbeatItem, Job, JobChunk, JobChunkRequest, JobLimits,
    JobPart, JobResult, JobSpec, JobView, MatcherError, MatcherInit, ModuleInfo, ModuleSource,
    ModuleUpload, OfferSpec, Reservation, ReservationSpec, RunOutcome, ServiceLimits, ServiceSpec,
};
use market_api::privacy::PrivacyConfig;
use market_api::registry::{ProviderProfile, RegistryError, RegistryInit};
use market_api::{Account, JobId, OfferId, PageRequest, Tokens};
pub use market_client::CanisterIds;
use market_client::MarketClient;
use serde::de::DeserializeOwned;
use sha2::Digest;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// One ICP in e8s.
pub const ICP: Tokens = 100_000_000;
/// The declared speed of the fixture's offers: a tenth of a billion fuel a
/// second, so a heartbeat may report a billion fuel for each ten seconds
/// since the bond held, and a job of ten billion has a default deadline
/// of 200 s plus an interval.
pub const FUEL_PER_SEC: u64 = 100_000_000;

/// What went wrong in a market fixture step.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A canister module is missing: build it first.
    #[error("cannot read {path}: {source}; build the canisters with scripts/build-canisters.sh")]
    MissingModule {
        /// The file looked for.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// Installing a canister failed.
    #[error("installing {canister}: {message}")]
    Install {
        /// Which canister.
        canister: &'static str,
        /// The devnet's error.
        message: String,
    },
    /// A call was rejected or its reply did not decode.
    #[error("{method}: {message}")]
    Call {
        /// The method called.
        method: String,
        /// The devnet's error.
        message: String,
    },
    /// A canister answered with an error.
    #[error("{method} refused: {message}")]
    Refused {
        /// The method called.
        method: String,
        /// The canister's error, debug-printed.
        message: String,
    },
    /// The money-conservation audit found a discrepancy.
    #[error("audit: {0}")]
    Audit(String),
}

/// Result of a market fixture step.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The marketplace's parameters on this market fixture.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The ledger's transfer fee.
    pub fee: Tokens,
    /// Smallest stake keeping a provider eligible.
    pub min_stake: Tokens,
    /// Unbonding period of unstaked tokens.
    pub unbonding_period_secs: u64,
    /// Grace after an interval before a missing heartbeat counts as missed.
    pub grace_secs: u64,
    /// Stake bonded per job, in intervals' prices.
    pub bond_multiple: u32,
    /// Stake slashed per missed deadline, in intervals' prices.
    pub slash_multiple: u32,
    /// How long a result stays open to challenge.
    pub challenge_window_secs: u64,
    /// The least audit probability, in parts per million (0 by default:
    /// only jobs whose bids ask for audits are audited).
    pub min_audit_ppm: u32,
    /// How often the matcher probes each replica of a service, in seconds
    /// (`None`: the matcher's default).
    pub probe_interval_secs: Option<u64>,
    /// Failed probes in a row that fail a replica (`None`: the default).
    pub probe_failures: Option<u32>,
    /// What one probe costs a service lease (`None`: the default).
    pub probe_fee: Option<Tokens>,
    /// The market's fee in parts per million of the provider's pay
    /// (`None`: the matcher's default, none).
    pub market_fee_ppm: Option<u32>,
    /// The balance of the market's ICP from which the matcher turns it
    /// into cycles through the devnet's cycles minting canister (`None`:
    /// it does not).
    pub cycles_top_up_threshold: Option<Tokens>,
    /// XDR prices and tokens besides ICP (`None`: ICP alone, priced in
    /// e8s, and no rate sources).
    pub pricing: Option<PricingSettings>,
    /// Whether the market takes sealed jobs: the matcher gets the devnet's
    /// `dfx_test_key` vetKD key (see `market_api::privacy`).
    pub privacy: bool,
    /// Gives the registry, the escrow and the matcher an archive canister
    /// each, keeping this many blocks of their event logs locally (`None`:
    /// no archives, every block stays local).
    pub archive_logs: Option<u64>,
    /// The devnet's limits.
    pub devnet: DevnetConfig,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            fee: 10_000,
            min_stake: 10 * ICP,
            unbonding_period_secs: 7 * 86_400,
            grace_secs: 30,
            bond_multiple: 10,
            slash_multiple: 5,
            challenge_window_secs: 60,
            min_audit_ppm: 0,
            probe_interval_secs: None,
            probe_failures: None,
            probe_fee: None,
            market_fee_ppm: None,
            cycles_top_up_threshold: None,
            pricing: None,
            privacy: false,
            archive_logs: None,
            devnet: DevnetConfig::default(),
        }
    }
}

/// A devnet shared between threads.
pub type SharedDevnet = Arc<Mutex<Devnet>>;

/// The marketplace deployed on a devnet.
pub struct MarketFixture {
    devnet: SharedDevnet,
    /// The canisters.
    pub ids: CanisterIds,
    /// The parameters it was deployed with.
    pub settings: Settings,
    /// The rate sources and extra ledgers, with [`Settings::pricing`].
    pub pricing: Option<PricingIds>,
}

/// The matcher's init argument on a market fixture with `ids` and
/// `settings`, valuing tokens by `pricing`.
pub fn matcher_init(
    ids: &CanisterIds,
    settings: &Settings,
    pricing: Option<market_api::prices::PricingConfig>,
) -> MatcherInit {
    MatcherInit {
        privacy: settings.privacy.then(|| PrivacyConfig {
            key_name: "dfx_test_key".into(),
            derive_key_cycles: None,
        }),
        pricing,
        bond_multiple: settings.bond_multiple,
        slash_multiple: settings.slash_multiple,
        challenge_window_secs: Some(settings.challenge_window_secs),
        min_audit_ppm: Some(settings.min_audit_ppm),
        probe_interval_secs: settings.probe_interval_secs,
        probe_failures: settings.probe_failures,
        probe_fee: settings.probe_fee,
        market_fee_ppm: settings.market_fee_ppm,
        cycles_top_up: settings.cycles_top_up_threshold.map(|threshold| {
            market_api::matcher::CyclesTopUpConfig {
                cmc: devnet::CMC_ID,
                threshold,
            }
        }),
        ..MatcherInit::new(ids.registry, ids.escrow, ids.ledger, settings.grace_secs)
    }
}

/// A deterministic test principal (29 bytes, like a self-authenticating one).
pub const fn principal(n: u8) -> Principal {
    Principal::from_slice(&[n; 29])
}

/// The `n`-th provider of a test or the demo.
pub fn provider(n: u8) -> Principal {
    principal(0x10 + n)
}

/// The node (the daemon's signing identity) of [`provider`]`(n)`.
pub fn node(n: u8) -> Principal {
    principal(0x20 + n)
}

/// The controller of every canister the market fixture installs.
pub fn admin() -> Principal {
    principal(0xAD)
}

/// The ledger's minting account's owner.
pub fn minter() -> Principal {
    principal(0x0E)
}

/// The default account of `owner`.
pub fn account(owner: Principal) -> Account {
    Account {
        owner,
        subaccount: None,
    }
}

/// Reads a built canister module (see [`market_artifacts::canister_dir`]).
pub fn canister_wasm(name: &str) -> Result<Vec<u8>> {
    market_artifacts::read_canister(name).map_err(|source| Error::MissingModule {
        path: market_artifacts::canister_path(name),
        source,
    })
}

fn call_error(method: &str, e: impl std::fmt::Display) -> Error {
    Error::Call {
        method: method.into(),
        message: e.to_string(),
    }
}

fn refused(method: &str, e: impl std::fmt::Debug) -> Error {
    Error::Refused {
        method: method.into(),
        message: format!("{e:?}"),
    }
}

/// The init argument of the local ledger as a token of its own.
fn token_ledger_arg(name: &str, symbol: &str, decimals: u8, fee: Tokens) -> Result<Vec<u8>> {
    candid::encode_one(pricing::ledger_arg(name, symbol, decimals, fee))
        .map_err(|e| call_error("encode init argument", e))
}

impl MarketFixture {
    /// Creates a devnet and installs the ledger, registry, escrow and
    /// matcher, each knowing the others; the escrow whitelists the ledger.
    pub fn deploy(settings: Settings) -> Result<MarketFixture> {
        let mut dn = Devnet::with_config(settings.devnet.clone());
        let install = |dn: &mut Devnet, id, name: &'static str, arg: Vec<u8>| {
            let wasm = canister_wasm(name)?;
            dn.install_canister(id, &wasm, arg, admin())
                .map_err(|e| Error::Install {
                    canister: name,
                    message: e.to_string(),
                })
        };
        let ids = CanisterIds {
            ledger: dn.create_canister(vec![admin()]),
            registry: dn.create_canister(vec![admin()]),
            escrow: dn.create_canister(vec![admin()]),
            matcher: dn.create_canister(vec![admin()]),
        };
        let enc = |v: &dyn Fn() -> candid::Result<Vec<u8>>| {
            v().map_err(|e| call_error("encode init argument", e))
        };
        let ledger_arg =
            enc(&|| candid::encode_one(local_icp(settings.fee, account(minter()), vec![])))?;
        install(&mut dn, ids.ledger, "ledger", ledger_arg)?;
        // The cycles minting canister's top-ups read this ledger's blocks.
        dn.set_icp_ledger(ids.ledger);
        let registry_arg = enc(&|| {
            candid::encode_one(RegistryInit {
                ledger: ids.ledger,
                matcher: Some(ids.matcher),
                min_stake: settings.min_stake,
                unbonding_period_secs: Some(settings.unbonding_period_secs),
                governance: None,
            })
        })?;
        install(&mut dn, ids.registry, "registry", registry_arg)?;
        let escrow_arg = enc(&|| {
            candid::encode_one(EscrowInit {
                matcher: Some(ids.matcher),
                ledgers: vec![],
                governance: None,
            })
        })?;
        install(&mut dn, ids.escrow, "escrow", escrow_arg)?;
        let pricing = match &settings.pricing {
            None => None,
            Some(p) => {
                let pids = PricingIds {
                    cmc: dn.create_canister(vec![admin()]),
                    xrc: dn.create_canister(vec![admin()]),
                    cycles_ledger: dn.create_canister(vec![admin()]),
                    eth_ledger: dn.create_canister(vec![admin()]),
                    unrated_ledger: dn.create_canister(vec![admin()]),
                };
                let none = enc(&|| candid::encode_args(()))?;
                install(&mut dn, pids.cmc, "rates-standin", none.clone())?;
                install(&mut dn, pids.xrc, "rates-standin", none)?;
                for (id, name, symbol, decimals, fee) in [
                    (
                        pids.cycles_ledger,
                        "Trillion Cycles",
                        "TCYCLES",
                        12,
                        pricing::CYCLES_LEDGER_FEE,
                    ),
                    (
                        pids.eth_ledger,
                        "ckETH (local)",
                        "ckETH",
                        18,
                        pricing::ETH_FEE,
                    ),
                    (pids.unrated_ledger, "Unrated (local)", "XTK", 8, 10_000),
                ] {
                    install(
                        &mut dn,
                        id,
                        "ledger",
                        token_ledger_arg(name, symbol, decimals, fee)?,
                    )?;
                }
                Some((pids, pricing::config(&pids, p)))
            }
        };
        let matcher_arg = enc(&|| {
            let pricing = pricing.as_ref().map(|(_, c)| c.clone());
            candid::encode_one(matcher_init(&ids, &settings, pricing))
        })?;
        install(&mut dn, ids.matcher, "matcher", matcher_arg)?;
        let net = MarketFixture {
            devnet: Arc::new(Mutex::new(dn)),
            ids,
            pricing: pricing.as_ref().map(|(ids, _)| *ids),
            settings,
        };
        let mut ledgers = vec![ids.ledger];
        if let Some(p) = net.pricing {
            ledgers.extend([p.cycles_ledger, p.eth_ledger, p.unrated_ledger]);
        }
        for ledger in ledgers {
            let info: std::result::Result<LedgerInfo, EscrowError> =
                net.update(ids.escrow, admin(), "add_ledger", &ledger)?;
            info.map_err(|e| refused("add_ledger", e))?;
        }
        if let Some(p) = &net.settings.pricing {
            net.set_icp_xdr_rate(p.xdr_permyriad_per_icp)?;
            net.set_eth_xdr_rate(p.eth_xdr_rate)?;
        }
        if let Some(keep) = net.settings.archive_logs {
            for owner in [ids.registry, ids.escrow, ids.matcher] {
                net.deploy_archive(owner, keep)?;
            }
        }
        Ok(net)
    }

    /// Deploys an archive canister for `owner`'s event log and names it
    /// to `owner`, which then keeps `keep` blocks locally.
    pub fn deploy_archive(&self, owner: Principal, keep: u64) -> Result<Principal> {
        let wasm = canister_wasm("archive")?;
        let arg = candid::encode_one(market_api::blocks::ArchiveInit {
            owner,
            capacity_blocks: None,
        })
        .map_err(|e| call_error("encode init argument", e))?;
        let archive = {
            let mut dn = self.devnet();
            let id = dn.create_canister(vec![admin()]);
            dn.install_canister(id, &wasm, arg, admin())
                .map_err(|e| Error::Install {
                    canister: "archive",
                    message: e.to_string(),
                })?;
            id
        };
        let set: std::result::Result<(), market_api::blocks::LogArchivingError> = self.update(
            owner,
            admin(),
            "set_log_archiving",
            &market_api::blocks::LogArchiving {
                archive: Some(archive),
                max_local_blocks: Some(keep),
            },
        )?;
        set.map_err(|e| refused("set_log_archiving", e))?;
        Ok(archive)
    }

    /// The devnet, shared (for provider nodes on other threads).
    pub fn shared(&self) -> SharedDevnet {
        self.devnet.clone()
    }

    /// Locks the devnet for direct use (time, faults, upgrades, ticks).
    pub fn devnet(&self) -> MutexGuard<'_, Devnet> {
        transport::lock(&self.devnet)
    }

    /// A transport calling the canisters as `who`.
    pub fn transport(&self, who: Principal) -> DevnetTransport {
        DevnetTransport::new(self.shared(), who)
    }

    /// A typed client calling the canisters as `who`.
    pub fn client(&self, who: Principal) -> MarketClient<DevnetTransport> {
        MarketClient::new(self.transport(who), self.ids)
    }

    /// An update call with one argument and one result.
    pub fn update<A: CandidType, R: CandidType + DeserializeOwned>(
        &self,
        canister: Principal,
        caller: Principal,
        method: &str,
        arg: &A,
    ) -> Result<R> {
        self.devnet()
            .update(canister, caller, method, arg)
            .map_err(|e| call_error(method, e))
    }

    /// An update call that ingress may not make: see [`refused_ingress`].
    pub fn refused_update<A: CandidType, R: CandidType + DeserializeOwned>(
        &self,
        canister: Principal,
        caller: Principal,
        method: &str,
        arg: &A,
    ) -> R {
        refused_ingress(&mut self.devnet(), canister, caller, method, arg)
    }

    /// An update call with a tuple of arguments and of results.
    pub fn update_args<A: ArgumentEncoder, R: for<'a> ArgumentDecoder<'a>>(
        &self,
        canister: Principal,
        caller: Principal,
        method: &str,
        args: A,
    ) -> Result<R> {
        self.devnet()
            .update_args(canister, caller, method, args)
            .map_err(|e| call_error(method, e))
    }

    /// A query with one argument and one result.
    pub fn query<A: CandidType, R: CandidType + DeserializeOwned>(
        &self,
        canister: Principal,
        method: &str,
        arg: &A,
    ) -> Result<R> {
        self.devnet()
            .query(canister, admin(), method, arg)
            .map_err(|e| call_error(method, e))
    }

    /// A query with a tuple of arguments and of results.
    pub fn query_args<A: ArgumentEncoder, R: for<'a> ArgumentDecoder<'a>>(
        &self,
        canister: Principal,
        method: &str,
        args: A,
    ) -> Result<R> {
        self.devnet()
            .query_args(canister, admin(), method, args)
            .map_err(|e| call_error(method, e))
    }

    /// Moves the devnet's clock forward and runs everything that became due
    /// (timers, deadlines, queued messages).
    pub fn advance(&self, by: Duration) {
        let mut dn = self.devnet();
        dn.advance_time(by);
        dn.tick();
    }

    /// Lets the matcher's outbox drain: runs messages and timers, a second
    /// of devnet time at a time, until no step is pending (at most 30 s).
    pub fn settle_outbox(&self) {
        for _ in 0..30 {
            self.tick();
            if self.outbox_steps().is_ok_and(|n| n == 0) {
                return;
            }
            self.advance(Duration::from_secs(1));
        }
    }

    /// Moves the clock `secs` seconds in steps of 5, letting timers fire
    /// along the way.
    pub fn wait_secs(&self, secs: u64) {
        for _ in 0..secs / 5 {
            self.advance(Duration::from_secs(5));
        }
        self.advance(Duration::from_secs(secs % 5));
    }

    /// Runs queued messages and due timers without moving the clock.
    pub fn tick(&self) {
        self.devnet().tick();
    }

    /// The devnet's time in nanoseconds since the epoch.
    pub fn time_ns(&self) -> u64 {
        self.devnet().time_nanos()
    }

    /// A job on a module fetched by URL (which no provider here runs):
    /// 64 MiB, a budget of `gfuel` billion fuel at up to `max_price` per
    /// billion (so its lock is `gfuel` times `max_price`), heartbeats every
    /// `interval_secs`, paid with this market's ledger, no deadline of its
    /// own, no stake required, no retries, no callback.
    pub fn url_job(&self, interval_secs: u64, gfuel: u32, max_price: Tokens) -> JobSpec {
        JobSpec {
            sealed: None,
            currency: None,
            module: ModuleSource::Url {
                url: "https://example.org/job.wasm".into(),
                sha256: [7; 32],
            },
            input: vec![],
            args: vec![],
            env: vec![],
            limits: JobLimits {
                memory_mib: 64,
                fuel: u64::from(gfuel) * GFUEL,
            },
            max_price_per_gfuel: max_price,
            deadline_secs: None,
            interval_secs,
            ledger: self.ids.ledger,
            min_provider_stake: 0,
            min_record: None,
            max_retries: 0,
            callback: None,
            audit_ppm: None,
        }
    }

    /// A one-slot lease of the service at `https://example.org/hello.wasm`
    /// (see [`url_service`]): 64 MiB, a million fuel per interval,
    /// `intervals` intervals of `interval_secs` at up to
    /// `max_price_per_interval`, paid with this market's ledger, no stake
    /// required, one rematch, no delegates.
    pub fn hello_lease_spec(
        &self,
        interval_secs: u64,
        intervals: u32,
        max_price_per_interval: Tokens,
    ) -> ReservationSpec {
        ReservationSpec {
            currency: None,
            slots: 1,
            memory_mib: 64,
            fuel_per_interval: 1_000_000,
            interval_secs,
            intervals,
            max_price_per_interval,
            ledger: self.ids.ledger,
            min_provider_stake: 0,
            max_rematches: 1,
            delegates: vec![],
            service: Some(url_service("https://example.org/hello.wasm", [5; 32])),
        }
    }

    /// An offer of `slots` slots of 256 MiB at `price` per billion fuel and
    /// per interval, paid with this market's ledger: a billion fuel per
    /// interval for reserved slots, a declared speed of [`FUEL_PER_SEC`],
    /// intervals of 10 s to an hour, no tags.
    pub fn offer_spec(&self, slots: u32, price: Tokens) -> OfferSpec {
        OfferSpec {
            currency: None,
            slots,
            memory_per_slot_mib: 256,
            max_fuel_per_interval: 1_000_000_000,
            price_per_gfuel: price,
            fuel_per_sec: FUEL_PER_SEC,
            price_per_interval: price,
            ledger: self.ids.ledger,
            min_interval_secs: 10,
            max_interval_secs: 3_600,
            tags: vec![],
            audits: None,
        }
    }

    /// Mints `amount` to `owner`'s default account.
    pub fn mint(&self, owner: Principal, amount: Tokens) -> Result<u128> {
        self.mint_on(self.ids.ledger, owner, amount)
    }

    /// An ICRC-1 transfer from `from`'s default account; returns the block.
    pub fn transfer(&self, from: Principal, to: Account, amount: Tokens) -> Result<u128> {
        self.transfer_on(self.ids.ledger, from, to, amount)
    }

    /// `account`'s balance on the ledger.
    pub fn balance(&self, account: Account) -> Result<Tokens> {
        self.balance_on(self.ids.ledger, account)
    }

    /// Approves `spender` to take up to `amount` from `owner`'s default account.
    pub fn approve(&self, owner: Principal, spender: Principal, amount: Tokens) -> Result<()> {
        let arg = approve_args(account(spender), amount);
        let r: std::result::Result<Nat, candid::IDLValue> =
            self.update(self.ids.ledger, owner, "icrc2_approve", &arg)?;
        r.map(|_| ()).map_err(|e| refused("icrc2_approve", e))
    }

    /// Pull deposit: approves the escrow and deposits `amount` of `owner`'s
    /// ledger tokens into its escrow balance; returns the amount credited.
    pub fn deposit(&self, owner: Principal, amount: Tokens) -> Result<Tokens> {
        self.deposit_on(self.ids.ledger, owner, amount)
    }

    /// `owner`'s escrow balance on the market fixture's ledger.
    pub fn escrow_balance(&self, owner: Principal) -> Result<Balance> {
        self.escrow_balance_on(self.ids.ledger, owner)
    }

    /// Registers `provider` with `node` as the principal its daemon signs
    /// heartbeats with.
    pub fn register_provider(&self, provider: Principal, node: Principal) -> Result<()> {
        let profile = ProviderProfile {
            display_name: format!("provider {}", &provider.to_text()[..5]),
            region: "local".into(),
            node,
            total_slots: 4,
            memory_per_slot_mib: 512,
            tags: vec![],
            endpoint: None,
        };
        let r: std::result::Result<(), RegistryError> =
            self.update(self.ids.registry, provider, "register_provider", &profile)?;
        r.map_err(|e| refused("register_provider", e))
    }

    /// Approves the registry and stakes `amount` of `provider`'s tokens.
    pub fn stake(&self, provider: Principal, amount: Tokens) -> Result<()> {
        self.approve(provider, self.ids.registry, amount + self.settings.fee)?;
        let r: std::result::Result<Nat, RegistryError> =
            self.update(self.ids.registry, provider, "stake", &Nat::from(amount))?;
        r.map(|_| ()).map_err(|e| refused("stake", e))
    }

    /// Mints, registers and stakes a provider in one step.
    pub fn onboard_provider(
        &self,
        provider: Principal,
        node: Principal,
        stake: Tokens,
    ) -> Result<()> {
        self.mint(provider, stake + self.settings.fee * 2)?;
        self.register_provider(provider, node)?;
        self.stake(provider, stake)
    }

    /// Posts an offer for `provider`; returns its id.
    pub fn post_offer(&self, provider: Principal, spec: &OfferSpec) -> Result<OfferId> {
        let r: std::result::Result<OfferId, MatcherError> =
            self.update(self.ids.matcher, provider, "post_offer", spec)?;
        r.map_err(|e| refused("post_offer", e))
    }

    /// Stores `bytes` as a one-chunk module uploaded by `who`: begins the
    /// upload, puts its chunk and commits it. The inner result is the
    /// module's sha256, or the matcher's answer to the first call it
    /// refused; the outer one fails only if a call gets no answer.
    pub fn store_module(
        &self,
        who: Principal,
        bytes: &[u8],
    ) -> Result<std::result::Result<[u8; 32], MatcherError>> {
        let sha256: [u8; 32] = sha2::Sha256::digest(bytes).into();
        let upload = ModuleUpload {
            sha256,
            size: bytes.len() as u64,
        };
        let begun: std::result::Result<ModuleInfo, MatcherError> =
            self.update(self.ids.matcher, who, "begin_module_upload", &upload)?;
        if let Err(e) = begun {
            return Ok(Err(e));
        }
        let (put,): (std::result::Result<(), MatcherError>,) = self.update_args(
            self.ids.matcher,
            who,
            "put_module_chunk",
            (sha256, 0u32, bytes.to_vec()),
        )?;
        if let Err(e) = put {
            return Ok(Err(e));
        }
        let committed: std::result::Result<ModuleInfo, MatcherError> =
            self.update(self.ids.matcher, who, "commit_module", &sha256)?;
        Ok(committed.map(|_| sha256))
    }

    /// The jobs assigned to `provider`, as its daemon sees them: every
    /// page of `assignments`.
    pub fn assignments(&self, provider: Principal) -> Result<Vec<Assignment>> {
        let mut all = Vec::new();
        let mut start = None;
        loop {
            let page = PageRequest { start, limit: None };
            let (page,): (AssignmentPage,) =
                self.query_args(self.ids.matcher, "assignments", (provider, page))?;
            all.extend(page.assignments);
            match page.next {
                Some(next) if start.is_none_or(|s| next > s) => start = Some(next),
                _ => return Ok(all),
            }
        }
    }

    /// Job `id` as `get_job` shows it (panics if the matcher has none).
    pub fn job(&self, id: JobId) -> Job {
        let job: Option<Job> = self.query(self.ids.matcher, "get_job", &id).unwrap();
        job.unwrap_or_else(|| panic!("no job {id}"))
    }

    /// The escrow's lock of job `id` (panics if there is none).
    pub fn job_lock(&self, id: JobId) -> market_api::escrow::JobLock {
        let key = format!("job/{id}");
        let lock: Option<market_api::escrow::JobLock> =
            self.query(self.ids.escrow, "get_lock", &key).unwrap();
        lock.unwrap_or_else(|| panic!("no lock of job {id}"))
    }

    /// `node` acknowledges attempt 1 of `id`, waits 40 s, reports a result
    /// of `fuel` (the job's provider must declare a speed that allows it)
    /// and the challenge window runs out: the job settles, succeeded.
    pub fn run_and_settle(&self, node: Principal, id: JobId, fuel: u64) {
        let items = vec![heartbeat_item(id, 1, 0)];
        let acks: std::result::Result<Vec<market_api::matcher::HeartbeatAck>, MatcherError> = self
            .update(self.ids.matcher, node, "heartbeat", &items)
            .unwrap();
        assert!(matches!(
            acks.unwrap()[..],
            [market_api::matcher::HeartbeatAck::Accepted { .. }]
        ));
        self.wait_secs(40);
        let args = market_api::matcher::SubmitResultArgs {
            job_id: id,
            attempt: 1,
            result: exited(b"done", fuel),
        };
        let r: std::result::Result<(), MatcherError> = self
            .update(self.ids.matcher, node, "submit_result", &args)
            .unwrap();
        r.expect("the result is taken");
        self.wait_secs(self.settings.challenge_window_secs + 10);
        self.settle_outbox();
        let status = self.job(id).status;
        assert_eq!(status, market_api::matcher::JobStatus::Succeeded);
    }

    /// A job's spec with its input, read as a provider's daemon reads it:
    /// `job_view`, then the input chunk by chunk, checked against the size
    /// and sha256 the view gives. Read as the provider holding the job (the
    /// matcher shows a job's contents to its readers only), or else as its
    /// owner.
    pub fn job_to_run(&self, job_id: JobId) -> Result<JobSpec> {
        let job: Option<Job> = self.query(self.ids.matcher, "get_job", &job_id)?;
        let job = job.ok_or_else(|| refused("get_job", format!("no job {job_id}")))?;
        let reader = job.provider.unwrap_or(job.owner);
        let view: Option<JobView> = self
            .devnet()
            .query(self.ids.matcher, reader, "job_view", &job_id)
            .map_err(|e| call_error("job_view", e))?;
        let view = view.ok_or_else(|| refused("job_view", format!("no job {job_id}")))?;
        let mut input = Vec::new();
        while (input.len() as u64) < view.input_bytes {
            let req = JobChunkRequest {
                job_id,
                part: JobPart::Input,
                offset: input.len() as u64,
            };
            let chunk: std::result::Result<JobChunk, MatcherError> = self
                .devnet()
                .query(self.ids.matcher, reader, "job_chunk", &req)
                .map_err(|e| call_error("job_chunk", e))?;
            let chunk = chunk.map_err(|e| refused("job_chunk", e))?;
            if chunk.bytes.is_empty() {
                return Err(refused("job_chunk", "an empty chunk before the end"));
            }
            input.extend(chunk.bytes);
        }
        let sha256: [u8; 32] = sha2::Sha256::digest(&input).into();
        if sha256 != view.input_sha256 || input.len() as u64 != view.input_bytes {
            return Err(refused("job_chunk", "the input does not match its view"));
        }
        let mut spec = view.job.spec;
        spec.input = input;
        Ok(spec)
    }

    /// The first page of `owner`'s jobs, as `list_jobs` gives it.
    pub fn jobs_of(&self, owner: Principal) -> Result<Vec<Job>> {
        self.first_page("list_jobs", owner)
    }

    /// The first page of `owner`'s reservations, as `list_reservations`
    /// gives it.
    pub fn reservations_of(&self, owner: Principal) -> Result<Vec<Reservation>> {
        self.first_page("list_reservations", owner)
    }

    /// The first page of a matcher listing of `owner`'s items.
    fn first_page<T>(&self, method: &str, owner: Principal) -> Result<Vec<T>>
    where
        T: CandidType + DeserializeOwned,
    {
        let (items,) =
            self.query_args(self.ids.matcher, method, (owner, PageRequest::default()))?;
        Ok(items)
    }

    /// Upgrades `canister` to `wasm` with the upgrade argument `arg`, as
    /// the admin; returns the instructions its upgrade took (its
    /// `pre_upgrade`, if the old module has one, plus its `post_upgrade`).
    /// The devnet's record of earlier executions is dropped.
    pub fn upgrade(&self, canister: Principal, wasm: &[u8], arg: Vec<u8>) -> u64 {
        let mut dn = self.devnet();
        dn.take_executions();
        dn.upgrade_canister(canister, wasm, arg, admin())
            .unwrap_or_else(|e| panic!("upgrade of {canister}: {e}"));
        dn.take_executions()
            .iter()
            .filter(|e| e.canister == canister && e.entry.ends_with("upgrade"))
            .map(|e| e.instructions)
            .sum()
    }

    /// Upgrades the matcher to its built .wasm with `config` as the
    /// upgrade argument (`None` keeps the configuration it has).
    pub fn upgrade_matcher(&self, config: Option<MatcherInit>) {
        let wasm = canister_wasm("matcher").expect("the matcher's .wasm");
        self.devnet()
            .upgrade_canister(
                self.ids.matcher,
                &wasm,
                candid::encode_one(config).expect("encode the configuration"),
                admin(),
            )
            .expect("upgrade the matcher");
    }

    /// Installs another ledger (the local ledger with this token's name,
    /// symbol, decimals and fee), which the escrow does not take yet.
    pub fn deploy_token_ledger(
        &self,
        name: &str,
        symbol: &str,
        decimals: u8,
        fee: Tokens,
    ) -> Result<Principal> {
        let arg = token_ledger_arg(name, symbol, decimals, fee)?;
        let wasm = canister_wasm("ledger")?;
        let mut dn = self.devnet();
        let id = dn.create_canister(vec![admin()]);
        dn.install_canister(id, &wasm, arg, admin())
            .map_err(|e| Error::Install {
                canister: "ledger",
                message: e.to_string(),
            })?;
        Ok(id)
    }

    /// Installs the example client canister, controlled by `controller`.
    pub fn deploy_example_client(&self, controller: Principal) -> Result<Principal> {
        self.deploy_example_client_on(controller, self.ids.ledger)
    }

    /// [`MarketFixture::deploy_example_client`], minted 10 ICP of which
    /// `controller` has it deposit 5 in the escrow; returns the client and
    /// what its `fund` answered.
    pub fn deploy_funded_example_client(
        &self,
        controller: Principal,
    ) -> Result<(Principal, std::result::Result<Nat, String>)> {
        let client = self.deploy_example_client(controller)?;
        self.mint(client, 10 * ICP)?;
        let funded = self.update(client, controller, "fund", &Nat::from(5 * ICP))?;
        Ok((client, funded))
    }

    /// [`MarketFixture::deploy_example_client`] paying with `ledger` (the
    /// cycles ledger, say: a canister paying in cycles).
    pub fn deploy_example_client_on(
        &self,
        controller: Principal,
        ledger: Principal,
    ) -> Result<Principal> {
        #[derive(CandidType)]
        struct ClientInit {
            ledger: Principal,
            escrow: Principal,
            matcher: Principal,
        }
        let wasm = canister_wasm("example-client")?;
        let arg = candid::encode_one(ClientInit {
            ledger,
            escrow: self.ids.escrow,
            matcher: self.ids.matcher,
        })
        .map_err(|e| call_error("encode init argument", e))?;
        let mut dn = self.devnet();
        let id = dn.create_canister(vec![controller]);
        dn.install_canister(id, &wasm, arg, controller)
            .map_err(|e| Error::Install {
                canister: "example-client",
                message: e.to_string(),
            })?;
        Ok(id)
    }
}

impl MarketFixture {
    /// Installs the stand-in for an SNS DAO's governance canister
    /// (`sns-governance-standin`) and returns its id.
    pub fn deploy_sns_governance(&self) -> Result<Principal> {
        let wasm = canister_wasm("sns-governance-standin")?;
        let mut dn = self.devnet();
        let id = dn.create_canister(vec![admin()]);
        let arg = candid::encode_args(()).unwrap_or_default();
        dn.install_canister(id, &wasm, arg, admin())
            .map_err(|e| Error::Install {
                canister: "sns-governance-standin",
                message: e.to_string(),
            })?;
        Ok(id)
    }

    /// Installs the stand-in for an SNS DAO's governance canister
    /// (`sns-governance-standin`), mints `treasury` to its default account
    /// (the DAO's ICP treasury) and registers it in the matcher as DAO
    /// `name`. Returns its id, the DAO's governance principal.
    pub fn deploy_sns_dao(&self, name: &str, treasury: Tokens) -> Result<Principal> {
        let id = self.deploy_sns_governance()?;
        if treasury > 0 {
            self.mint(id, treasury)?;
        }
        let r: std::result::Result<(), MatcherError> = self.update(
            self.ids.matcher,
            admin(),
            "register_dao",
            &market_api::matcher::DaoRegistration {
                governance: id,
                name: name.into(),
            },
        )?;
        r.map_err(|e| refused("register_dao", e))?;
        Ok(id)
    }
}

impl MarketFixture {
    /// The stand-in DAO `governance` executes TransferSnsTreasuryFunds:
    /// `amount` from its ICP treasury to the escrow's deposit account for
    /// the DAO (with a u64 memo and no `created_at_time`, as the treasury's
    /// legacy transfer); `notify_deposit` credits it.
    pub fn treasury_to_escrow(&self, governance: Principal, amount: u64, memo: u64) -> Result<()> {
        #[derive(CandidType)]
        struct TransferTreasuryFunds {
            ledger: Principal,
            to_principal: Principal,
            to_subaccount: Option<serde_bytes::ByteBuf>,
            memo: Option<u64>,
            amount_e8s: u64,
        }
        let sub = market_api::escrow::deposit_subaccount(governance)
            .ok_or_else(|| refused("transfer_treasury_funds", "no deposit subaccount"))?;
        let sent: std::result::Result<Nat, String> = self.update(
            governance,
            admin(),
            "transfer_treasury_funds",
            &TransferTreasuryFunds {
                ledger: self.ids.ledger,
                to_principal: self.ids.escrow,
                to_subaccount: Some(serde_bytes::ByteBuf::from(sub.to_vec())),
                memo: Some(memo),
                amount_e8s: amount,
            },
        )?;
        sent.map(|_| ())
            .map_err(|e| refused("transfer_treasury_funds", e))
    }
}

/// Sends `method` to `canister` as ingress from `caller`, which the
/// canister's `canister_inspect_message` must refuse (panics if it runs),
/// then as a call from a canister, which skips that filter, and returns the
/// method's own answer: a test of a refusal checks both doors.
pub fn refused_ingress<A: CandidType, R: CandidType + DeserializeOwned>(
    dn: &mut Devnet,
    canister: Principal,
    caller: Principal,
    method: &str,
    arg: &A,
) -> R {
    let arg = candid::encode_one(arg).expect("encode the argument");
    let reply = refused_ingress_bytes(dn, canister, caller, method, arg);
    candid::decode_one(&reply).unwrap_or_else(|e| panic!("{method}: {e}"))
}

/// [`refused_ingress`] with the argument and the reply as Candid bytes.
pub fn refused_ingress_bytes(
    dn: &mut Devnet,
    canister: Principal,
    caller: Principal,
    method: &str,
    arg: Vec<u8>,
) -> Vec<u8> {
    match dn.update_call(canister, caller, method, arg.clone()) {
        Err(r) => assert!(
            r.message.contains("inspect_message"),
            "{method} by {caller}: {}",
            r.message
        ),
        Ok(_) => panic!("{method} by {caller} passed inspect_message"),
    }
    dn.call_from_canister(canister, caller, method, arg)
        .unwrap_or_else(|e| panic!("{method} by {caller} from a canister: {e}"))
}

/// A `Nat` that fits in `u128` (ledger amounts always do here).
pub fn nat(n: &Nat) -> u128 {
    u128::try_from(&n.0).unwrap_or(u128::MAX)
}

/// One heartbeat item for each of `assignments`, each reporting `more`
/// fuel than its attempt reported before (0: as much, which is always
/// within the declared speed and earns nothing).
pub fn heartbeat_items(assignments: &[Assignment], more: u64) -> Vec<HeartbeatItem> {
    assignments
        .iter()
        .map(|a| heartbeat_item(a.job_id, a.attempt, a.fuel_reported.saturating_add(more)))
        .collect()
}

/// A heartbeat of `attempt` of `job_id` reporting `fuel_used` in all, with
/// no endpoint (a batch job's).
pub fn heartbeat_item(job_id: JobId, attempt: u32, fuel_used: u64) -> HeartbeatItem {
    HeartbeatItem {
        job_id,
        attempt,
        fuel_used,
        endpoint: None,
        tcp_address: None,
    }
}

/// An honest run that exited 0 with `output` (committed to by its
/// SHA-256), having used `fuel_used`.
pub fn exited(output: &[u8], fuel_used: u64) -> JobResult {
    JobResult {
        outcome: RunOutcome::Exited { code: 0 },
        output: output.to_vec(),
        output_sha256: sha2::Sha256::digest(output).into(),
        fuel_used,
        engine: "wasmtime-48.0.8".into(),
    }
}

/// An HTTP service run from the module at `url` (its SHA-256 `sha256`),
/// with no env, no allowed hosts, no callback and a health check at
/// `/healthz`.
pub fn url_service(url: &str, sha256: [u8; 32]) -> ServiceSpec {
    ServiceSpec {
        sealed: None,
        component: ModuleSource::Url {
            url: url.into(),
            sha256,
        },
        env: vec![],
        allowed_hosts: vec![],
        health_path: "/healthz".into(),
        callback: None,
        limits: ServiceLimits::default(),
        tcp: None,
    }
}
