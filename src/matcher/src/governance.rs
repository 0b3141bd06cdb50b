//! What SNS voters read: the checks and summaries of the DAO actions (see
//! `market_api::sns`). Each validator and, again at execution, each target
//! runs [`validate`] over the market's state and the DAO's escrow balance;
//! nothing here changes state or makes a call.

use crate::lifecycle::{JobState, Params};
use crate::market::reservations::validate_reservation;
use crate::market::validate_spec;
use crate::market::{Market, price_xdr_job};
use crate::rates::Pricing;
use candid::Principal;
use ic_stable_structures::Memory;
use market_api::Tokens;
use market_api::escrow::{Balance, storage_fee};
use market_api::matcher::{
    JobSpec, MatcherError, ModuleSource, ReservationSpec, ReservationStatus,
};
use market_api::prices::{XdrTerms, format_xdr};
use market_api::sns::SnsAction;

/// Who is asking and what it has: the DAO's name and, for actions that
/// spend, its escrow balance on the ledger concerned with the ledger's
/// symbol.
pub struct DaoContext {
    /// The DAO's governance canister.
    pub governance: Principal,
    /// Its registered name.
    pub name: String,
    /// Its escrow balance on the action's ledger.
    pub balance: Option<Balance>,
    /// The ledger's symbol, if the escrow knows it.
    pub symbol: Option<String>,
    /// The ledger's transfer fee, if the escrow knows it (the storage fee
    /// of a job is counted in it).
    pub fee: Option<Tokens>,
    /// The escrow's deposit account for the DAO, as text.
    pub deposit_account: String,
}

/// Formats an amount of a ledger with 8 decimals (as ICP and SNS tokens
/// have), e.g. `1.5 ICP`.
pub fn tokens(amount: Tokens, symbol: Option<&str>) -> String {
    let whole = amount / 100_000_000;
    let frac = amount % 100_000_000;
    let mut s = if frac == 0 {
        whole.to_string()
    } else {
        let f = format!("{frac:08}");
        format!("{whole}.{}", f.trim_end_matches('0'))
    };
    s.push(' ');
    s.push_str(symbol.unwrap_or("tokens"));
    s
}

fn duration(secs: u64) -> String {
    match secs {
        86_400 => "1 day".into(),
        3_600 => "1 hour".into(),
        60 => "1 minute".into(),
        1 => "1 second".into(),
        s if s % 86_400 == 0 => format!("{} days", s / 86_400),
        s if s % 3_600 == 0 => format!("{} hours", s / 3_600),
        s if s % 60 == 0 => format!("{} minutes", s / 60),
        s => format!("{s} seconds"),
    }
}

/// A refusal as voters read it.
pub fn reason(e: &MatcherError) -> String {
    match e {
        MatcherError::InvalidArgument { field, reason } => format!("invalid {field}: {reason}"),
        MatcherError::Unauthorized { reason } => reason.clone(),
        MatcherError::UnknownJob { job_id } => format!("there is no reservation or job {job_id}"),
        MatcherError::UnknownModule { sha256 } => format!(
            "module {} is not in the matcher's store (upload and commit it first)",
            hex(sha256)
        ),
        MatcherError::LimitReached { what, limit } => {
            format!("limit reached: at most {limit} {what}")
        }
        MatcherError::Busy => "another operation of this DAO is in progress; retry".into(),
        other => format!("{other:?}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn principals(list: &[Principal]) -> String {
    if list.is_empty() {
        return "none".into();
    }
    list.iter()
        .map(|p| p.to_text())
        .collect::<Vec<_>>()
        .join(", ")
}

impl DaoContext {
    fn t(&self, amount: Tokens) -> String {
        tokens(amount, self.symbol.as_deref())
    }

    fn free(&self) -> Tokens {
        self.balance.as_ref().map_or(0, |b| b.free)
    }

    /// Checks that the free balance covers `cost`; says where it comes from.
    fn funded(&self, cost: Tokens) -> Result<String, String> {
        if self.free() < cost {
            return Err(format!(
                "insufficient funds: this may cost up to {} but {}'s escrow balance has {} free. \
                 Fund it first with a TransferSnsTreasuryFunds proposal to the escrow's deposit \
                 account for this DAO ({}).",
                self.t(cost),
                self.name,
                self.t(self.free()),
                self.deposit_account
            ));
        }
        Ok(format!(
            "It is locked now from {}'s escrow balance ({} free); whatever is not paid to \
             providers returns to that balance.",
            self.name,
            self.t(self.free())
        ))
    }
}

#[cfg(test)]
fn reserve_text(p: &Params, ctx: &DaoContext, spec: &ReservationSpec) -> Result<String, String> {
    reserve_text_at(&Pricing::default(), p, ctx, spec)
}

/// How an XDR price converts, as voters read it: the budget in XDR and the
/// most the lock takes in the ledger's token at the latest rate.
fn xdr_text(ctx: &DaoContext, budget_cycles: u128, lock: Tokens, terms: &XdrTerms) -> String {
    format!(
        " Priced in XDR: a budget of {}, which at the current rate ({} cycles per smallest \
         unit, as of Unix time {}) locks at most {}, a buffer of {} ppm for the rate to move \
         included.",
        format_xdr(budget_cycles),
        ratio(&terms.lock_rate.cycles_per_unit),
        terms.lock_rate.timestamp_secs,
        ctx.t(lock),
        terms.buffer_ppm
    )
}

/// The market's fee, as voters read it: nothing when there is none.
fn fee_text(ctx: &DaoContext, fee_ppm: u32, fee: Tokens) -> String {
    if fee_ppm == 0 {
        return String::new();
    }
    format!(
        " The lock includes the market's fee of {fee_ppm} ppm on the provider's pay, at most {}.",
        ctx.t(fee)
    )
}

fn ratio(r: &market_api::prices::Ratio) -> String {
    if r.den == 1 {
        r.num.to_string()
    } else {
        format!("{}/{}", r.num, r.den)
    }
}

fn reserve_text_at(
    pricing: &Pricing,
    p: &Params,
    ctx: &DaoContext,
    spec: &ReservationSpec,
) -> Result<String, String> {
    validate_reservation(spec).map_err(|e| reason(&e))?;
    let rates = pricing
        .latest_rates(spec.ledger, spec.currency)
        .map_err(|e| reason(&e))?;
    let terms = crate::market::reservations::lease_terms(pricing, p, spec, &rates)
        .map_err(|e| reason(&e))?;
    let cost = terms.locked;
    let funded = ctx.funded(cost)?;
    let xdr = terms
        .xdr
        .map(|x| {
            xdr_text(
                ctx,
                market_api::matcher::reservation_cost(spec).unwrap_or(u128::MAX),
                x.lock,
                &x.terms,
            )
        })
        .unwrap_or_default();
    let price = |amount: Tokens| match terms.xdr {
        Some(_) => format_xdr(amount),
        None => ctx.t(amount),
    };
    let funded = format!(
        "{}{xdr}{}",
        funded.trim_end(),
        fee_text(ctx, p.market_fee_ppm, terms.fee_locked)
    );
    let Some(service) = &spec.service else {
        return Ok(capacity_text(
            ctx,
            spec,
            &price(spec.max_price_per_interval),
            cost,
            &funded,
        ));
    };
    let component = match &service.component {
        ModuleSource::Stored { sha256 } => format!("stored module {}", hex(sha256)),
        ModuleSource::Url { url, sha256 } => format!("{url} (sha256 {})", hex(sha256)),
    };
    let probes = terms.probe_locked;
    Ok(format!(
        "Lease a service: {} replica(s) of the wasi:http component {component}, each on a \
         different provider with {} MiB memory, for {} intervals of {} ({} in all), at up to {} \
         per replica and interval, from providers staking at least {}. It may call out to {}. \
         The matcher probes each replica's {} every {} by HTTPS outcall, at {} a probe (at most \
         {} in all, paid from the lease); {} failed probes in a row count as a missed heartbeat: \
         the provider is slashed and the replica moves (up to {} times).{} Maximum total cost: \
         {}. {}",
        spec.slots,
        spec.memory_mib,
        spec.intervals,
        duration(spec.interval_secs),
        duration(spec.interval_secs.saturating_mul(u64::from(spec.intervals))),
        price(spec.max_price_per_interval),
        ctx.t(spec.min_provider_stake),
        if service.allowed_hosts.is_empty() {
            "no host".to_string()
        } else {
            service.allowed_hosts.join(", ")
        },
        service.health_path,
        duration(p.probe_interval_secs),
        ctx.t(terms.probe_fee),
        ctx.t(probes),
        p.probe_failures,
        spec.max_rematches,
        service
            .callback
            .as_ref()
            .map(|m| format!(" Endpoint changes go to the DAO's method {m}."))
            .unwrap_or_default(),
        ctx.t(cost),
        funded,
    ))
}

fn capacity_text(
    ctx: &DaoContext,
    spec: &ReservationSpec,
    max_price: &str,
    cost: Tokens,
    funded: &str,
) -> String {
    format!(
        "Reserve {} slot(s) of {} MiB memory and {} fuel per interval, for {} intervals of {} \
         ({} in all), at up to {} per slot and interval, from providers staking at least {}. \
         Each slot's provider is paid per interval it keeps the slot alive, busy or idle, and \
         is slashed and replaced (up to {} times) if it misses a heartbeat. Maximum total cost: \
         {}. {} Delegates who may run jobs in the slots: {}.",
        spec.slots,
        spec.memory_mib,
        spec.fuel_per_interval,
        spec.intervals,
        duration(spec.interval_secs),
        duration(spec.interval_secs.saturating_mul(u64::from(spec.intervals))),
        max_price,
        ctx.t(spec.min_provider_stake),
        spec.max_rematches,
        ctx.t(cost),
        funded,
        principals(&spec.delegates)
    )
}

fn job_text<M: Memory>(
    market: &Market<M>,
    p: &Params,
    ctx: &DaoContext,
    spec: &JobSpec,
) -> Result<String, String> {
    validate_spec(spec).map_err(|e| reason(&e))?;
    market
        .check_sealing_enabled(spec.sealed.as_ref())
        .map_err(|e| reason(&e))?;
    let rates = market
        .pricing
        .latest_rates(spec.ledger, spec.currency)
        .map_err(|e| reason(&e))?;
    let xdr = match rates.xdr_valuation() {
        Some(v) => {
            let mut state = JobState::new(0, ctx.governance, spec, p.min_audit_ppm);
            price_xdr_job(&mut state, v, market.pricing.config.rate_buffer_ppm())
                .map_err(|e| reason(&e))?;
            state.xdr
        }
        None => None,
    };
    let module = match &spec.module {
        ModuleSource::Stored { sha256 } => {
            match market.modules.meta(sha256) {
                Some(m) if m.committed => {}
                _ => {
                    return Err(reason(&MatcherError::UnknownModule { sha256: *sha256 }));
                }
            }
            format!("module {} (stored in the matcher)", hex(sha256))
        }
        ModuleSource::Url { url, sha256 } => format!("module {} from {url}", hex(sha256)),
    };
    let pay = match xdr {
        Some(x) => x.lock,
        None => spec.max_cost().unwrap_or(Tokens::MAX),
    };
    let fee = market_api::matcher::market_fee_ceil(pay, p.market_fee_ppm).unwrap_or(Tokens::MAX);
    let lock = pay.saturating_add(fee);
    let storage = storage_fee(ctx.fee.unwrap_or(0), spec.stored_bytes()).unwrap_or(Tokens::MAX);
    let cost = lock.saturating_add(storage);
    let funded = ctx.funded(cost)?;
    let price = match xdr {
        Some(_) => format_xdr(spec.max_price_per_gfuel),
        None => ctx.t(spec.max_price_per_gfuel),
    };
    let funded = match xdr {
        Some(x) => {
            let budget = x.terms.max_price_cycles;
            let factor = if state_audited(p, spec) { 2 } else { 1 };
            let budget = market_api::matcher::fuel_cost_ceil(spec.limits.fuel, budget)
                .and_then(|c| c.checked_mul(factor))
                .unwrap_or(u128::MAX);
            format!(
                "{}{}",
                funded.trim_end(),
                xdr_text(ctx, budget, x.lock, &x.terms)
            )
        }
        None => funded,
    };
    let funded = format!(
        "{}{}",
        funded.trim_end(),
        fee_text(ctx, p.market_fee_ppm, fee)
    );
    let deadline = spec
        .deadline_secs
        .map(|d| format!("within {} per attempt", duration(d)))
        .unwrap_or_else(|| "within the time the provider's declared speed allows".into());
    Ok(format!(
        "Run a one-off job: {module}, {} bytes of input, {} MiB memory, a budget of {} fuel \
         at up to {} per billion fuel, {deadline}{}. The DAO pays for the fuel the run uses, \
         after a challenge window. Maximum cost: {}, of which {} is the storage fee, paid \
         even if the job is cancelled. {}",
        spec.input.len(),
        spec.limits.memory_mib,
        spec.limits.fuel,
        price,
        spec.callback
            .as_ref()
            .map(|m| format!("; the result goes to the DAO's method {m}"))
            .unwrap_or_default(),
        ctx.t(cost),
        ctx.t(storage),
        funded
    ))
}

/// Whether a job of `spec` may be audited, so its lock holds a second budget.
fn state_audited(p: &Params, spec: &JobSpec) -> bool {
    JobState::new(0, candid::Principal::anonymous(), spec, p.min_audit_ppm)
        .fuel
        .is_some_and(|f| f.audit_ppm > 0)
}

/// The validator's answer for `action` asked by the DAO `ctx`: a summary
/// for voters, or why it can't be done.
pub fn validate<M: Memory>(
    market: &Market<M>,
    p: &Params,
    ctx: &DaoContext,
    action: &SnsAction,
) -> Result<String, String> {
    let me = ctx.governance;
    match action {
        SnsAction::Reserve(spec) => {
            market
                .check_sealing_enabled(spec.service.as_ref().and_then(|s| s.sealed.as_ref()))
                .map_err(|e| reason(&e))?;
            reserve_text_at(&market.pricing, p, ctx, spec)
        }
        SnsAction::Extend(args) => {
            let ext = market.prepare_extension(me, args).map_err(|e| reason(&e))?;
            let funded = ctx.funded(ext.amount)?;
            let fee_ppm = market.job(args.reservation).map_or(0, |r| r.state.fee_ppm);
            Ok(format!(
                "Extend reservation {} by {} intervals for each of its {} live slot(s). Maximum \
                 added cost: {}. {}{}",
                args.reservation,
                args.intervals,
                ext.live_slots,
                ctx.t(ext.amount),
                funded.trim_end(),
                fee_text(ctx, fee_ppm, ext.fee)
            ))
        }
        SnsAction::SetDelegates(args) => {
            let after = market.delegates_after(me, args).map_err(|e| reason(&e))?;
            Ok(format!(
                "Reservation {}: add delegates {}; remove {}. Afterwards these may run jobs in its \
                 slots at no further cost: {}. Nothing is paid or locked.",
                args.reservation,
                principals(&args.add),
                principals(&args.remove),
                principals(&after)
            ))
        }
        SnsAction::Cancel(args) => {
            let r = market.reservation(args.reservation).ok_or_else(|| {
                reason(&MatcherError::UnknownJob {
                    job_id: args.reservation,
                })
            })?;
            if r.owner != me {
                return Err("the reservation is not this DAO's".into());
            }
            if r.status != ReservationStatus::Active {
                return Err(format!("the reservation is {:?}, not active", r.status));
            }
            Ok(format!(
                "Cancel reservation {} ({} slot(s)). Intervals already heartbeated stay paid \
                 ({} so far of {} locked); the rest, up to {}, returns to {}'s escrow balance. \
                 Its {} queued job(s) end.",
                args.reservation,
                r.slots.len(),
                ctx.t(r.paid),
                ctx.t(r.locked),
                ctx.t(r
                    .locked
                    .saturating_sub(r.paid)
                    .saturating_sub(r.market_fee.paid)),
                ctx.name,
                r.queued_jobs
            ))
        }
        SnsAction::SubmitJob(spec) => job_text(market, p, ctx, spec),
        SnsAction::Withdraw(args) => {
            let b = ctx.balance.clone().unwrap_or(Balance {
                ledger: args.ledger,
                free: 0,
                claimable: 0,
                locked: 0,
                pending: 0,
            });
            // The matcher withdraws from the free balance only.
            let available = b.free;
            if args.amount == 0 {
                return Err("invalid amount: must be positive".into());
            }
            if available < args.amount {
                return Err(format!(
                    "insufficient funds: {} asked, {}'s escrow balance has {} available",
                    ctx.t(args.amount),
                    ctx.name,
                    ctx.t(available)
                ));
            }
            Ok(format!(
                "Withdraw {} from {}'s escrow balance ({} available) to account {}; the ledger's \
                 fee is taken from the amount.",
                ctx.t(args.amount),
                ctx.name,
                ctx.t(available),
                args.to
            ))
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use market_api::matcher::ReservationSpec;

    /// A DAO whose governance canister is `governance`, with `free` on
    /// `ledger` (ICP, its fee 10 000 e8s) in the escrow.
    pub(crate) fn dao(governance: Principal, ledger: Principal, free: Tokens) -> DaoContext {
        DaoContext {
            governance,
            name: "Example DAO".into(),
            balance: Some(Balance {
                ledger,
                free,
                claimable: 0,
                locked: 0,
                pending: 0,
            }),
            symbol: Some("ICP".into()),
            fee: Some(10_000),
            deposit_account: "escrow-deposit-account".into(),
        }
    }

    fn ctx(free: Tokens) -> DaoContext {
        dao(
            Principal::from_slice(&[7]),
            Principal::from_slice(&[1]),
            free,
        )
    }

    fn lease() -> ReservationSpec {
        ReservationSpec {
            currency: None,
            slots: 2,
            memory_mib: 256,
            fuel_per_interval: 10_000_000_000,
            interval_secs: 600,
            intervals: 4_320,
            max_price_per_interval: 200_000,
            ledger: Principal::from_slice(&[1]),
            min_provider_stake: 0,
            max_rematches: 3,
            delegates: vec![],
            service: None,
        }
    }

    #[test]
    fn amounts_and_durations_read_as_people_write_them() {
        assert_eq!(tokens(150_000_000, Some("ICP")), "1.5 ICP");
        assert_eq!(tokens(1, Some("ICP")), "0.00000001 ICP");
        assert_eq!(tokens(0, None), "0 tokens");
        assert_eq!(tokens(u128::MAX, Some("X")).split('.').count(), 2);
        assert_eq!(duration(600), "10 minutes");
        assert_eq!(duration(2_592_000), "30 days");
        assert_eq!(duration(7), "7 seconds");
    }

    #[test]
    fn a_reservation_summary_says_what_whom_how_much_and_from_where() {
        let text =
            reserve_text(&crate::tests::market::P, &ctx(50 * 100_000_000), &lease()).unwrap();
        for part in [
            "Reserve 2 slot(s) of 256 MiB",
            "4320 intervals of 10 minutes (30 days in all)",
            "up to 0.002 ICP per slot and interval",
            "Maximum total cost: 17.28 ICP",
            "Example DAO's escrow balance (50 ICP free)",
            "Delegates who may run jobs in the slots: none",
        ] {
            assert!(text.contains(part), "{part:?} missing from {text}");
        }
        let err =
            reserve_text(&crate::tests::market::P, &ctx(17 * 100_000_000), &lease()).unwrap_err();
        assert!(err.starts_with("insufficient funds"), "{err}");
        assert!(
            err.contains("escrow-deposit-account"),
            "says where to fund: {err}"
        );
        let err = reserve_text(
            &crate::tests::market::P,
            &ctx(u128::MAX),
            &ReservationSpec {
                slots: 99,
                ..lease()
            },
        );
        assert_eq!(err.unwrap_err(), "invalid slots: 1 to 16");
    }

    #[test]
    fn a_service_lease_summary_names_its_component_hosts_probes_and_their_fee() {
        use market_api::matcher::ServiceSpec;
        let p = Params {
            probe_fee: 4_000,
            ..crate::tests::market::P
        };
        let spec = ReservationSpec {
            intervals: 10,
            service: Some(ServiceSpec {
                component: ModuleSource::Stored { sha256: [0xab; 32] },
                env: vec![("SECRET".into(), "hunter2".into())],
                ..crate::tests::market::service()
            }),
            ..lease()
        };
        let text = reserve_text(&p, &ctx(50 * 100_000_000), &spec).unwrap();
        // 2 replicas x 10 intervals x 10 probes (10-minute intervals, one
        // a minute) x 4 000 e8s = 0.008 ICP of probes.
        for part in [
            "Lease a service: 2 replica(s)",
            &format!("stored module {}", "ab".repeat(32)),
            "It may call out to api.example.org.",
            "probes each replica's /healthz every 1 minute",
            "at 0.00004 ICP a probe (at most 0.008 ICP in all",
            "3 failed probes in a row",
            "DAO's method on_endpoint",
            "Maximum total cost: 0.048 ICP",
        ] {
            assert!(text.contains(part), "{part:?} missing from {text}");
        }
        assert!(!text.contains("hunter2"), "no env in a summary: {text}");
    }
}
