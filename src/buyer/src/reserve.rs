//! Reserved capacity for a person: reserve slots from the escrow balance,
//! show, extend, share (delegates) and cancel them, and run jobs in them
//! (`market run --reservation`), which the slots pay for.

use candid::Principal;
use market_api::escrow::EscrowError;
use market_api::matcher::{
    CancelReservationArgs, ExtendReservationArgs, MarketFee, MatcherError, ModuleSource,
    Reservation, ReservationId, ReservationSpec, ReservationStatus, ReservedJobArgs,
    SetDelegatesArgs, market_fee_ceil, reservation_cost, service_probe_cost,
};
use market_api::prices::Currency;
use market_api::{JobId, Tokens};

use super::funds::check_funds_for;
use super::pricing::lock_now;
use super::privacy::job_spec;
use super::request::format_ppm;
use super::run::market_fee_text;
use super::sns::check_principal;
use super::{BuyerError, Console, JobRequest, ensure_module, sha256_of, with_retries};
use market_client::client::prices::{Price, Quote};
use market_client::client::tokens::format_tokens;
use market_client::client::{ClientError, MarketClient};
use market_client::transport::Transport;

/// Whether `e` is the escrow refusing a lock for want of funds.
fn escrow_short(e: &ClientError) -> bool {
    matches!(
        e,
        ClientError::Matcher(MatcherError::Escrow(
            EscrowError::InsufficientBalance { .. }
        ))
    )
}

fn plural(n: impl Into<u64>) -> &'static str {
    if n.into() == 1 { "" } else { "s" }
}

/// What reserving `spec` locks: slots × intervals × max price (for an XDR
/// price, its value in the ledger's token at the matcher's rate now, plus
/// its buffer) and, for a service lease, what the matcher's health probes
/// of its replicas can cost at the matcher's probe interval and fee, and
/// the market's fee on both; an error says what to deposit when the free
/// escrow balance does not cover it. Returns the lock, the rates it was
/// computed at and the market's fee (its rate and the part of the lock
/// held for it). Makes no call that changes state.
pub async fn check_lease_funds<T: Transport>(
    client: &MarketClient<T>,
    spec: &ReservationSpec,
) -> Result<(Tokens, Quote, MarketFee), BuyerError> {
    let overflow = || BuyerError::Request("--max-price × --slots × --intervals overflows".into());
    let cost = reservation_cost(spec).ok_or_else(overflow)?;
    let (slots, quote) = lock_now(client, spec.currency, cost).await?;
    let config = with_retries(|| client.matcher_config()).await?;
    let probes = if spec.service.is_some() {
        service_probe_cost(spec, config.probe_interval_secs(), config.probe_fee())
            .ok_or_else(overflow)?
    } else {
        0
    };
    let pay = slots.checked_add(probes).ok_or_else(overflow)?;
    let fee = MarketFee {
        fee_ppm: config.market_fee_ppm(),
        locked: market_fee_ceil(pay, config.market_fee_ppm()).ok_or_else(overflow)?,
        paid: 0,
    };
    let needed = pay.checked_add(fee.locked).ok_or_else(overflow)?;
    check_funds_for(client, "the reservation", needed).await?;
    Ok((needed, quote, fee))
}

/// Checks that the free escrow balance covers slots × intervals × max
/// price (and, for a service lease, what its probes can cost), then
/// reserves. Nothing that changes state is called when the
/// balance is short; the error says what to deposit.
pub async fn reserve<T: Transport>(
    client: &MarketClient<T>,
    spec: ReservationSpec,
    console: &mut Console,
) -> Result<ReservationId, BuyerError> {
    let (needed, quote, fee) = check_lease_funds(client, &spec).await?;
    // Not retried: a repeated call would be a second reservation.
    let id = match client.reserve(spec.clone()).await {
        Err(e) if escrow_short(&e) => {
            // Spent meanwhile: say how much is missing now.
            check_funds_for(client, "the reservation", needed).await?;
            return Err(e.into());
        }
        other => other?,
    };
    console.line(format!(
        "reserved {} slot{} × {} interval{} of {} s at most {} each: up to {} locked{}{}",
        spec.slots,
        plural(spec.slots),
        spec.intervals,
        plural(spec.intervals),
        spec.interval_secs,
        quote.format(&max_price(&spec)),
        format_tokens(needed),
        market_fee_text(fee.fee_ppm, fee.locked),
        if spec.currency == Some(Currency::Xdr) {
            format!(
                " (the XDR price at the rate now, plus {} as a buffer; each slot's price \
                 converts at the rate when it is matched)",
                format_ppm(quote.buffer_ppm)
            )
        } else {
            String::new()
        },
    ));
    Ok(id)
}

/// A reservation's highest price per slot and interval, in its currency.
fn max_price(spec: &ReservationSpec) -> Price {
    Price::of_spec(spec.max_price_per_interval, spec.currency)
}

/// The reservation `id`, or an error saying there is none.
pub async fn reservation<T: Transport>(
    client: &MarketClient<T>,
    id: ReservationId,
) -> Result<Reservation, BuyerError> {
    found(|| client.get_reservation(id), &format!("reservation {id}")).await
}

/// What `fetch` finds (asked with retries), or an error saying this
/// matcher has no `what`.
pub(crate) async fn found<V, F, Fut>(fetch: F, what: &str) -> Result<V, BuyerError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<V>, ClientError>>,
{
    with_retries(fetch)
        .await?
        .ok_or_else(|| BuyerError::Request(format!("no {what} on this matcher")))
}

/// Submits a job to run in one of reservation `reservation`'s slots: no
/// funds are locked (the slot pays), so the balance is not checked and the
/// request's price and stake are ignored. Its memory and fuel must fit the
/// slots. Uploads the module unless the matcher has it.
pub async fn submit_reserved<T: Transport>(
    client: &MarketClient<T>,
    wasm: &[u8],
    reservation_id: ReservationId,
    request: &JobRequest,
    console: &mut Console,
) -> Result<JobId, BuyerError> {
    request.validate_run()?;
    let r = reservation(client, reservation_id).await?;
    if r.status != ReservationStatus::Active {
        return Err(BuyerError::Request(format!(
            "reservation {reservation_id} is {:?}; jobs run only in an active one",
            r.status
        )));
    }
    if request.memory_mib > r.spec.memory_mib {
        return Err(BuyerError::Request(format!(
            "--memory-mib: the slots of reservation {reservation_id} have {} MiB",
            r.spec.memory_mib
        )));
    }
    // Sealed before the upload: a market without a privacy key refuses
    // before anything is spent.
    let mut spec = job_spec(client, request, sha256_of(wasm), r.spec.ledger).await?;
    let module = ensure_module(client, wasm, console).await?;
    spec.module = ModuleSource::Stored {
        sha256: module.sha256,
    };
    // Not retried: a repeated submission would be a second job.
    let id = client
        .submit_reserved_job(ReservedJobArgs {
            reservation: reservation_id,
            spec,
        })
        .await?;
    console.line(format!(
        "submitted job {id} to reservation {reservation_id}: its slots pay, nothing locked ({} \
         fuel{})",
        request.fuel,
        super::run::deadline_text(request.deadline_secs),
    ));
    if let Some(text) = super::run::sealing_text(&request.sealing) {
        console.line(format!("  {text}"));
    }
    Ok(id)
}

/// Adds `intervals` to every live slot of reservation `id`, after checking
/// that the free escrow balance covers what that locks (live slots ×
/// intervals × max price). Returns the amount locked.
pub async fn extend<T: Transport>(
    client: &MarketClient<T>,
    id: ReservationId,
    intervals: u32,
) -> Result<Tokens, BuyerError> {
    let r = reservation(client, id).await?;
    let live = r.slots.iter().filter(|s| !s.status.is_terminal()).count() as u32;
    let cost = r
        .spec
        .max_price_per_interval
        .checked_mul(Tokens::from(live))
        .and_then(|a| a.checked_mul(Tokens::from(intervals)))
        .ok_or_else(|| BuyerError::Request("--intervals: the cost overflows".into()))?;
    // An XDR reservation's extension locks at the rate now, and the
    // market's fee on it at the reservation's rate.
    let (pay, _) = lock_now(client, r.spec.currency, cost).await?;
    let needed = market_api::matcher::with_market_fee(pay, r.market_fee.fee_ppm)
        .ok_or_else(|| BuyerError::Request("--intervals: the cost overflows".into()))?;
    check_funds_for(client, "the extension", needed).await?;
    let args = ExtendReservationArgs {
        reservation: id,
        intervals,
    };
    match client.extend_reservation(args).await {
        Err(e) if escrow_short(&e) => {
            check_funds_for(client, "the extension", needed).await?;
            Err(e.into())
        }
        other => Ok(other.map(|()| needed)?),
    }
}

/// Adds and removes delegates of reservation `id`; returns the delegates
/// afterwards.
pub async fn set_delegates<T: Transport>(
    client: &MarketClient<T>,
    id: ReservationId,
    add: Vec<Principal>,
    remove: Vec<Principal>,
) -> Result<Vec<Principal>, BuyerError> {
    if add.is_empty() && remove.is_empty() {
        return Err(BuyerError::Request(
            "give --add or --remove (or both)".into(),
        ));
    }
    for p in &add {
        check_principal("--add", p)?;
    }
    if let Some(p) = add.iter().find(|p| remove.contains(p)) {
        return Err(BuyerError::Request(format!(
            "{p} is both in --add and --remove"
        )));
    }
    Ok(client
        .set_delegates(SetDelegatesArgs {
            reservation: id,
            add,
            remove,
        })
        .await?)
}

/// Cancels reservation `id` and returns it as it is afterwards.
pub async fn cancel<T: Transport>(
    client: &MarketClient<T>,
    id: ReservationId,
) -> Result<Reservation, BuyerError> {
    client
        .cancel_reservation(CancelReservationArgs { reservation: id })
        .await?;
    reservation(client, id).await
}

/// What `market reservation ID` prints: the terms (the price in its unit,
/// with what it is worth in ICP at `quote`), each slot, the money and the
/// delegates.
pub fn describe(r: &Reservation, quote: &Quote) -> String {
    let s = &r.spec;
    let mut out = format!(
        "reservation {}  {:?}\n  owner      {}\n  terms      {} slot{} × {} interval{} of {} s, at \
         most {} per slot and interval; {} MiB, {} fuel per interval\n  locked     {}{}\n  \
         paid       {}{}\n  queued     {} job{}",
        r.id,
        r.status,
        r.owner,
        s.slots,
        plural(s.slots),
        s.intervals,
        plural(s.intervals),
        s.interval_secs,
        quote.format(&max_price(s)),
        s.memory_mib,
        s.fuel_per_interval,
        format_tokens(r.locked),
        match r.market_fee.fee_ppm {
            0 => String::new(),
            ppm => format!(
                ", {} of it for the market's fee of {} of the pay",
                format_tokens(r.market_fee.locked),
                format_ppm(ppm)
            ),
        },
        format_tokens(r.paid),
        match r.market_fee.fee_ppm {
            0 => String::new(),
            _ => format!(", and {} market fee", format_tokens(r.market_fee.paid)),
        },
        r.queued_jobs,
        plural(r.queued_jobs),
    );
    out.push_str("\n  delegates  ");
    if s.delegates.is_empty() {
        out.push_str("none (only the owner runs jobs in it)");
    } else {
        let names: Vec<String> = s.delegates.iter().map(Principal::to_text).collect();
        out.push_str(&names.join(", "));
    }
    for (i, slot) in r.slots.iter().enumerate() {
        out.push_str(&format!(
            "\n  slot {i}     {:?}, provider {}, {}, {}/{} intervals paid, {} re-match{}, {}",
            slot.status,
            slot.provider
                .map_or_else(|| "none yet".to_string(), |p| p.to_text()),
            slot.price_per_interval.map_or_else(
                || "no price yet".to_string(),
                |p| format!("{} per interval", format_tokens(p))
            ),
            slot.intervals_paid,
            s.intervals,
            slot.rematches,
            if slot.rematches == 1 { "" } else { "es" },
            slot.running
                .map_or_else(|| "idle".to_string(), |j| format!("running job {j}")),
        ));
    }
    out
}

/// The header of `market reservations`.
pub const LIST_HEADER: &str =
    "ID       STATUS      SLOTS  INTERVALS  MAX PRICE          LOCKED            PAID  QUEUED";

/// One line of `market reservations` (the price in its unit, with what it
/// is worth in ICP at `quote`).
pub fn list_row(r: &Reservation, quote: &Quote) -> String {
    format!(
        "{:<8} {:<10} {:>6} {:>10}  {:<16} {:>16} {:>16} {:>6}",
        r.id,
        format!("{:?}", r.status),
        r.spec.slots,
        r.spec.intervals,
        quote.format(&max_price(&r.spec)),
        format_tokens(r.locked),
        format_tokens(r.paid),
        r.queued_jobs,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use market_api::matcher::{JobStatus, ReservedSlotView};

    fn sample() -> Reservation {
        Reservation {
            market_fee: Default::default(),
            id: 7,
            owner: Principal::anonymous(),
            spec: ReservationSpec {
                currency: None,
                slots: 2,
                memory_mib: 64,
                fuel_per_interval: 1_000,
                interval_secs: 60,
                intervals: 3,
                max_price_per_interval: 100_000,
                ledger: Principal::anonymous(),
                min_provider_stake: 0,
                max_rematches: 3,
                delegates: vec![Principal::management_canister()],
                service: None,
            },
            status: ReservationStatus::Active,
            slots: vec![
                ReservedSlotView {
                    job_id: 8,
                    status: JobStatus::Running,
                    provider: Some(Principal::anonymous()),
                    price_per_interval: Some(50_000),
                    intervals_paid: 1,
                    rematches: 0,
                    running: Some(10),
                },
                ReservedSlotView {
                    job_id: 9,
                    status: JobStatus::Open,
                    provider: None,
                    price_per_interval: None,
                    intervals_paid: 0,
                    rematches: 1,
                    running: None,
                },
            ],
            locked: 600_000,
            paid: 50_000,
            queued_jobs: 1,
            created_at_ns: 0,
        }
    }

    #[test]
    fn the_description_shows_each_slot_the_money_and_the_delegates() {
        let offline = Quote::offline(crate::paying_unit());
        let text = describe(&sample(), &offline);
        for expected in [
            "reservation 7  Active",
            "2 slots × 3 intervals of 60 s, at most 0.001 ICP per slot and interval",
            "locked     0.006 ICP",
            "paid       0.0005 ICP",
            "queued     1 job\n",
            "delegates  aaaaa-aa",
            "slot 0     Running, provider 2vxsx-fae, 0.0005 ICP per interval, 1/3 intervals \
             paid, 0 re-matches, running job 10",
            "slot 1     Open, provider none yet, no price yet, 0/3 intervals paid, 1 re-match, \
             idle",
        ] {
            assert!(text.contains(expected), "{expected:?} in\n{text}");
        }
        let row = list_row(&sample(), &offline);
        assert!(row.starts_with("7        Active"), "{row}");
    }

    #[test]
    fn the_description_shows_the_market_fee_locked_and_paid() {
        let offline = Quote::offline(crate::paying_unit());
        let mut r = sample();
        r.locked = 615_000;
        r.market_fee = MarketFee {
            fee_ppm: 25_000,
            locked: 15_000,
            paid: 1_250,
        };
        let text = describe(&r, &offline);
        for expected in [
            "locked     0.00615 ICP, 0.00015 ICP of it for the market's fee of 2.5% of the pay",
            "paid       0.0005 ICP, and 0.0000125 ICP market fee",
        ] {
            assert!(text.contains(expected), "{expected:?} in\n{text}");
        }
        assert!(!describe(&sample(), &offline).contains("market"));
        assert_eq!(
            market_fee_text(25_000, 15_000),
            ", and the market's fee of 2.5% of the provider's pay, up to 0.00015 ICP"
        );
        assert_eq!(market_fee_text(0, 0), "");
    }

    #[test]
    fn an_xdr_reservation_shows_its_price_in_xdr_and_in_icp() {
        use market_api::prices::{RatesView, Valuation};
        let mut r = sample();
        r.spec.currency = Some(Currency::Xdr);
        // 0.02 XDR per slot and interval.
        r.spec.max_price_per_interval = 20_000_000_000;
        let rates = RatesView::stake_only(r.spec.ledger, Valuation::icp(40_000, 1));
        let quote = Quote::at(&rates, r.spec.ledger, crate::paying_unit());
        let text = describe(&r, &quote);
        assert!(
            text.contains("at most 0.02 XDR (about 0.005 ICP) per slot and interval"),
            "{text}"
        );
        assert!(
            list_row(&r, &quote).contains("0.02 XDR (about 0.005 ICP)"),
            "{}",
            list_row(&r, &quote)
        );
        let offline = Quote::offline(crate::paying_unit());
        assert!(describe(&r, &offline).contains("at most 0.02 XDR per slot"));
    }
}
