//! Native tests of XDR prices and token rates: the rates read through the
//! performer, the XDR book, locks, conversions, caps, and bonds and
//! slashes valued in the stake ledger's e8s. Expected amounts are worked
//! out by hand in the comments, not with the code under test.

use super::market::{icp, offer, spec};
use super::perform::{BUYER, Fake, NODE, PROVIDER, S, events, heartbeat, reservation_spec};
use crate::endpoints;
use crate::state::{mutate_state, read_state};
use candid::Principal;
use futures::executor::block_on;
use market_api::Tokens;
use market_api::client::CallError;
use market_api::matcher::{
    ExtendReservationArgs, JobSpec, JobStatus, MatcherError, MatcherEvent, OfferSpec,
    ReservationSpec, SubmitResultArgs,
};
use market_api::prices::cmc::{IcpXdrConversionRate, IcpXdrConversionRateResponse};
use market_api::prices::xrc::{
    self, ExchangeRate, ExchangeRateError, ExchangeRateMetadata, GetExchangeRateResult,
};
use market_api::prices::{
    Currency, LedgerRateSource, PriceConversion, PricingConfig, RateSource, Ratio, Valuation,
};
use market_fixture::{exited, url_service};

const G: u64 = market_api::matcher::GFUEL;
const CMC: Principal = Principal::from_slice(&[0xC0; 10]);
const XRC: Principal = Principal::from_slice(&[0xC1; 10]);
/// A token of 18 decimals valued by the exchange rate canister.
const ETH: Principal = Principal::from_slice(&[0xE7; 10]);
/// A cycles ledger.
const CYCLES: Principal = Principal::from_slice(&[0xCC; 10]);
/// A ledger with no rate source.
const OTHER: Principal = Principal::from_slice(&[0x77; 10]);
const OTHER_PROVIDER: Principal = Principal::from_slice(&[0x31; 10]);

fn priced(cmc: Option<Principal>) -> Fake {
    let rt = Fake::new();
    mutate_state(|s| {
        let mut c = s.config();
        c.pricing = Some(PricingConfig {
            cmc,
            ledgers: if cmc.is_some() {
                vec![
                    LedgerRateSource {
                        ledger: ETH,
                        source: RateSource::ExchangeRate {
                            canister: XRC,
                            symbol: "ETH".into(),
                            decimals: 18,
                        },
                    },
                    LedgerRateSource {
                        ledger: CYCLES,
                        source: RateSource::Cycles,
                    },
                ]
            } else {
                vec![]
            },
            max_rate_age_secs: None,
            rate_buffer_ppm: None,
            refresh_secs: None,
        });
        s.set_config(c);
    });
    rt
}

/// A market valuing ICP, the cycles ledger and ETH, whose rates (ICP at 4
/// XDR, read at 990 s; ETH read at 995 s) were just read.
fn priced_and_read() -> Fake {
    let rt = priced(Some(CMC));
    cmc_says(&rt, 40_000, 990);
    xrc_says_eth(&rt, 995);
    refresh(&rt);
    rt
}

fn cmc_says(rt: &Fake, permyriad: u64, at_secs: u64) {
    rt.cmc_rates
        .borrow_mut()
        .push_back(Ok(IcpXdrConversionRateResponse {
            data: IcpXdrConversionRate {
                timestamp_seconds: at_secs,
                xdr_permyriad_per_icp: permyriad,
            },
            hash_tree: vec![],
            certificate: vec![],
        }));
}

/// The exchange rate canister prices ETH at 2,500.5 XDR (9 decimals).
fn xrc_says_eth(rt: &Fake, at_secs: u64) {
    let req = xrc::xdr_rate_of("ETH");
    rt.xrc_rates
        .borrow_mut()
        .push_back(Ok(GetExchangeRateResult::Ok(ExchangeRate {
            base_asset: req.base_asset,
            quote_asset: req.quote_asset,
            timestamp: at_secs,
            rate: 2_500_500_000_000,
            metadata: ExchangeRateMetadata {
                decimals: 9,
                base_asset_num_received_rates: 3,
                base_asset_num_queried_sources: 3,
                quote_asset_num_received_rates: 3,
                quote_asset_num_queried_sources: 3,
                standard_deviation: 0,
                forex_timestamp: None,
            },
        })));
}

fn refresh(rt: &Fake) {
    block_on(endpoints::refresh_rates(rt, true)).unwrap();
}

fn per_e8(cycles: u128, at_secs: u64) -> Valuation {
    Valuation {
        cycles_per_unit: Ratio {
            num: cycles,
            den: 1,
        },
        timestamp_secs: at_secs,
    }
}

fn xdr_spec(max_cycles_per_gfuel: u128, ledger: Principal) -> JobSpec {
    JobSpec {
        currency: Some(Currency::Xdr),
        ledger,
        ..spec(max_cycles_per_gfuel, 0)
    }
}

fn xdr_offer(cycles_per_gfuel: u128, ledger: Principal) -> OfferSpec {
    OfferSpec {
        currency: Some(Currency::Xdr),
        ledger,
        ..offer(cycles_per_gfuel)
    }
}

/// The buyer submits `spec`.
fn submit(rt: &Fake, spec: JobSpec) -> Result<u64, MatcherError> {
    block_on(endpoints::submit_job(rt, BUYER, spec))
}

fn post(rt: &Fake, provider: Principal, spec: OfferSpec) -> Result<u64, MatcherError> {
    let t = rt.now.get();
    mutate_state(|s| {
        let p = s.params();
        s.market
            .put_offer(&p, t, provider, NODE, 1_000_000_000_000, None, spec)
    })
}

fn job(id: u64) -> crate::market::JobRecord {
    read_state(|s| s.market.job(id)).unwrap()
}

#[test]
fn rates_are_read_through_the_performer_and_never_go_back_in_time() {
    let rt = priced_and_read();
    assert_eq!(rt.calls_of("get_icp_xdr_conversion_rate").len(), 1);
    assert_eq!(
        rt.calls_of("get_exchange_rate")[0].key,
        format!("{XRC} ETH")
    );
    let view = endpoints::get_rates();
    assert_eq!(
        view.ledgers.iter().map(|l| l.ledger).collect::<Vec<_>>(),
        vec![icp(), ETH, CYCLES],
        "the stake ledger first, then each configured source"
    );
    // 4 XDR per ICP: an e8 is 4 * 10^12 / 10^8 = 40,000 cycles.
    assert_eq!(view.valuation(icp()), Some(per_e8(40_000, 990)));
    // 2,500.5 XDR per ETH: 10^18 wei are 2,500.5 * 10^12 cycles.
    let eth = view.valuation(ETH).unwrap();
    assert_eq!(eth.timestamp_secs, 995);
    assert_eq!(
        eth.cycles_per_unit.floor(10u128.pow(18)),
        Some(2_500_500_000_000_000)
    );
    assert_eq!(view.valuation(CYCLES), Some(Valuation::cycles()));
    assert_eq!(view.rate_buffer_ppm, 100_000);

    // An error of the exchange rate canister is recorded; the rate stays.
    rt.advance(10 * S);
    cmc_says(&rt, 41_000, 1_005);
    rt.xrc_rates
        .borrow_mut()
        .push_back(Ok(GetExchangeRateResult::Err(
            ExchangeRateError::RateLimited,
        )));
    refresh(&rt);
    let view = endpoints::get_rates();
    let eth_rate = view.ledgers.iter().find(|l| l.ledger == ETH).unwrap();
    assert!(
        eth_rate
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("RateLimited")),
        "{eth_rate:?}"
    );
    assert_eq!(eth_rate.valuation, Some(eth));
    assert_eq!(view.valuation(icp()), Some(per_e8(41_000, 1_005)));

    // A reply about an older time does not replace a newer rate.
    cmc_says(&rt, 30_000, 980);
    rt.xrc_rates
        .borrow_mut()
        .push_back(Err(CallError::OutcomeUnknown));
    refresh(&rt);
    assert_eq!(
        endpoints::get_rates().valuation(icp()),
        Some(per_e8(41_000, 1_005))
    );

    assert!(matches!(
        block_on(endpoints::refresh_rates(&rt, false)),
        Err(MatcherError::Unauthorized { .. })
    ));
}

#[test]
fn an_xdr_bid_takes_only_xdr_offers_and_is_refunded_lock_minus_bill() {
    let rt = priced_and_read();
    // A cheaper offer in ICP's own units does not take the XDR bid.
    post(&rt, OTHER_PROVIDER, offer(1)).unwrap();
    // Up to 10^9 cycles per billion fuel for 10^10 fuel: 10^10 cycles,
    // 250,000 e8s at 40,000 cycles per e8, plus 10 %: 275,000 e8s.
    let id = submit(&rt, xdr_spec(1_000_000_000, icp())).unwrap();
    assert_eq!(
        rt.locks.borrow().clone(),
        vec![("job/1".to_string(), 275_000)]
    );
    assert_eq!(job(id).state.status, JobStatus::Open, "it rests");
    // The most per billion fuel the lock covers: 275,000 / 10.
    assert_eq!(job(id).state.fuel.unwrap().max_price_per_gfuel, 27_500);
    let submitted = events().into_iter().find_map(|e| match e {
        MatcherEvent::JobSubmitted { xdr, max_cost, .. } => Some((xdr, max_cost)),
        _ => None,
    });
    let (terms, max_cost) = submitted.unwrap();
    let terms = terms.unwrap();
    assert_eq!(max_cost, 275_000);
    assert_eq!(terms.max_price_cycles, 1_000_000_000);
    assert_eq!(terms.lock_rate, per_e8(40_000, 990));
    assert_eq!(terms.buffer_ppm, 100_000);

    // The rate moves (ICP to 5 XDR) before an XDR offer comes.
    rt.advance(20 * S);
    cmc_says(&rt, 50_000, 1_015);
    xrc_says_eth(&rt, 1_015);
    refresh(&rt);
    post(&rt, PROVIDER, xdr_offer(800_000_000, icp())).unwrap();
    rt.settle_outbox(3);
    // 8 * 10^8 cycles at 50,000 cycles per e8: 16,000 e8s per billion fuel.
    let conversion = PriceConversion {
        price_cycles: 800_000_000,
        rate: per_e8(50_000, 1_015),
        capped: false,
    };
    let rec = job(id);
    let a = rec.state.assignment.clone().unwrap();
    assert_eq!(a.provider, PROVIDER);
    assert_eq!(a.price, 16_000);
    // Bonded twice the value: 10 billion fuel at 16,000 e8s.
    assert_eq!(a.bonded, 320_000);
    let view = rec.to_job();
    assert_eq!(view.pricing.unwrap().conversion, Some(conversion));
    assert!(events().contains(&MatcherEvent::JobAssigned {
        stake_value: Some(160_000),
        job_id: id,
        provider: PROVIDER,
        attempt: 1,
        price: 16_000,
        conversion: Some(conversion),
    }));

    // It runs 5 billion fuel: billed 80,000 e8s.
    heartbeat(&rt, id, 0);
    rt.advance(60 * S);
    let result = exited(b"ok", 5 * G);
    endpoints::submit_result(
        &rt,
        NODE,
        SubmitResultArgs {
            job_id: id,
            attempt: 1,
            result,
        },
    )
    .unwrap();
    rt.settle_outbox(5);
    rt.advance(30 * 86_400 * S);
    let t = rt.now.get();
    mutate_state(|s| {
        let p = s.params();
        s.market.process_deadlines(&p, t, 100)
    });
    rt.settle_outbox(10);
    assert_eq!(job(id).state.status, JobStatus::Succeeded);
    let billed: Tokens = rt
        .releases
        .borrow()
        .iter()
        .filter(|r| r.0 == "job/1")
        .map(|r| r.3)
        .sum();
    assert_eq!(billed, 80_000);
    assert_eq!(
        rt.refunds.borrow().clone(),
        vec![("job/1".to_string(), 275_000 - 80_000)]
    );
    // The ICP offer is still free: nothing took it.
    let other = read_state(|s| s.market.offers_of(OTHER_PROVIDER));
    assert_eq!(other[0].slots_used, 0);

    // And the other way round: a bid in e8s takes the ICP offer, not the
    // XDR one.
    let token = submit(&rt, spec(100, 0)).unwrap();
    rt.settle_outbox(3);
    assert_eq!(
        job(token).state.assignment.unwrap().provider,
        OTHER_PROVIDER
    );
    assert_eq!(job(token).to_job().pricing, None);
}

#[test]
fn a_rate_moving_past_the_buffer_caps_the_price() {
    let rt = priced_and_read();
    let id = submit(&rt, xdr_spec(1_000_000_000, icp())).unwrap();
    // ICP falls to 3 XDR: 10^9 cycles would be 33,333 e8s, past the
    // 27,500 the lock covers per billion fuel.
    cmc_says(&rt, 30_000, 1_000);
    xrc_says_eth(&rt, 1_000);
    refresh(&rt);
    post(&rt, PROVIDER, xdr_offer(1_000_000_000, icp())).unwrap();
    rt.settle_outbox(3);
    let rec = job(id);
    assert_eq!(rec.state.assignment.as_ref().unwrap().price, 27_500);
    assert_eq!(
        rec.to_job().pricing.unwrap().conversion,
        Some(PriceConversion {
            price_cycles: 1_000_000_000,
            rate: per_e8(30_000, 1_000),
            capped: true,
        })
    );
    // The lifecycle's own maximum never passes the lock.
    assert!(rec.state.max_cost().unwrap() <= 275_000);
}

#[test]
fn an_eighteen_decimal_token_job_bonds_and_is_slashed_in_e8s() {
    let rt = priced_and_read();
    let eth_offer = OfferSpec {
        ledger: ETH,
        ..offer(50_000_000_000_000)
    };
    post(&rt, PROVIDER, eth_offer).unwrap();
    let eth_job = JobSpec {
        ledger: ETH,
        ..spec(100_000_000_000_000, 0)
    };
    let id = submit(&rt, eth_job).unwrap();
    rt.settle_outbox(3);
    // 10^10 fuel at 5 * 10^13 wei per billion fuel: 5 * 10^14 wei, or
    // 0.0005 ETH = 1.25025 XDR = 0.3125625 ICP at 4 XDR per ICP:
    // 31,256,250 e8s. Bonded twice that.
    let a = job(id).state.assignment.unwrap();
    assert_eq!(a.price, 50_000_000_000_000);
    assert_eq!(a.stake_price, 31_256_250);
    assert_eq!(a.bonded, 62_512_500);
    // No acknowledgement: the deadline (an interval and the grace) passes.
    rt.advance(100 * S);
    let t = rt.now.get();
    mutate_state(|s| {
        let p = s.params();
        s.market.process_deadlines(&p, t, 100)
    });
    rt.settle_outbox(10);
    // Slashed three times the value, in e8s.
    assert!(events().contains(&MatcherEvent::DeadlineMissed {
        job_id: id,
        provider: PROVIDER,
        attempt: 1,
        slashed: 93_768_750,
    }));
}

#[test]
fn a_cycles_ledger_job_in_xdr_has_no_buffer_and_pays_its_cycles() {
    let rt = priced_and_read();
    let id = submit(&rt, xdr_spec(1_000_000_000, CYCLES)).unwrap();
    // 10^10 fuel at 10^9 cycles per billion: 10^10 cycles, no buffer.
    assert_eq!(
        rt.locks.borrow().clone(),
        vec![("job/1".to_string(), 10_000_000_000)]
    );
    let terms = job(id).to_job().pricing.unwrap().terms;
    assert_eq!(terms.buffer_ppm, 0);
    assert_eq!(terms.lock_rate, Valuation::cycles());
    post(&rt, PROVIDER, xdr_offer(800_000_000, CYCLES)).unwrap();
    rt.settle_outbox(3);
    let a = job(id).state.assignment.unwrap();
    assert_eq!(a.price, 800_000_000, "a cycle is a cycle");
    // Its value, 8 * 10^9 cycles, is 200,000 e8s at 40,000 cycles each.
    assert_eq!(a.stake_price, 200_000);
}

#[test]
fn ledgers_without_a_rate_source_and_stale_rates_are_refused() {
    // No cycles minting canister: no XDR price.
    let rt = priced(None);
    assert_eq!(
        submit(&rt, xdr_spec(1_000_000_000, icp())),
        Err(MatcherError::NoRateSource { ledger: icp() })
    );
    assert_eq!(
        post(&rt, PROVIDER, xdr_offer(1, icp())),
        Err(MatcherError::NoRateSource { ledger: icp() })
    );
    // ICP in e8s needs no rate at all.
    assert!(submit(&rt, spec(100, 0)).is_ok());

    let rt = priced(Some(CMC));
    // A ledger with no source, for a job and for an offer.
    let other = JobSpec {
        ledger: OTHER,
        ..spec(100, 0)
    };
    assert_eq!(
        submit(&rt, other),
        Err(MatcherError::NoRateSource { ledger: OTHER })
    );
    assert_eq!(
        post(
            &rt,
            PROVIDER,
            OfferSpec {
                ledger: OTHER,
                ..offer(1)
            }
        ),
        Err(MatcherError::NoRateSource { ledger: OTHER })
    );
    // Never read: stale since 0.
    assert_eq!(
        submit(&rt, xdr_spec(1_000_000_000, icp())),
        Err(MatcherError::StaleRate {
            ledger: icp(),
            timestamp_secs: 0,
            max_age_secs: 1_800,
        })
    );
    // Read at 990 (ICP) and 995 (ETH); at 2,795 ETH's is exactly half an
    // hour old, still fresh, and ICP's is older.
    cmc_says(&rt, 40_000, 990);
    xrc_says_eth(&rt, 995);
    refresh(&rt);
    rt.advance(1_795 * S);
    let eth_job = JobSpec {
        ledger: ETH,
        ..spec(100, 0)
    };
    assert_eq!(
        submit(&rt, eth_job),
        Err(MatcherError::StaleRate {
            ledger: icp(),
            timestamp_secs: 990,
            max_age_secs: 1_800,
        }),
        "ETH's rate (995) is fresh, the stake ledger's is not"
    );
    assert!(rt.locks.borrow().is_empty(), "refused before any lock");
}

fn xdr_reservation(slots: u32, max_cycles_per_interval: u128) -> ReservationSpec {
    ReservationSpec {
        currency: Some(Currency::Xdr),
        slots,
        max_price_per_interval: max_cycles_per_interval,
        ..reservation_spec()
    }
}

#[test]
fn an_xdr_reservation_locks_its_cycles_and_caps_each_slot_by_its_share() {
    let rt = priced_and_read();
    // 2 slots x 4 intervals x 10^9 cycles: 8 * 10^9 cycles, 200,000 e8s
    // at 40,000 cycles per e8, plus 10 %: 220,000 e8s; 110,000 a slot,
    // 27,500 an interval.
    let rid = block_on(endpoints::reserve(
        &rt,
        BUYER,
        xdr_reservation(2, 1_000_000_000),
    ))
    .unwrap();
    rt.settle_outbox(3);
    assert_eq!(
        rt.locks.borrow().clone(),
        vec![(format!("job/{rid}"), 220_000)]
    );
    let r = read_state(|s| s.market.reservation_record(rid)).unwrap();
    assert_eq!(r.locked, 220_000);
    assert_eq!(r.xdr.unwrap().max_price, 27_500);
    // An XDR offer of 6 * 10^8 cycles an interval: 15,000 e8s.
    post(
        &rt,
        PROVIDER,
        OfferSpec {
            slots: 2,
            price_per_interval: 600_000_000,
            ..xdr_offer(1, icp())
        },
    )
    .unwrap();
    rt.settle_outbox(5);
    for slot in &r.slots {
        let rec = job(*slot);
        let a = rec.state.assignment.clone().unwrap();
        assert_eq!(a.price, 15_000);
        assert_eq!(a.bonded, 30_000, "twice the interval's price, in e8s");
        let conversion = rec.to_job().pricing.unwrap().conversion.unwrap();
        assert_eq!(conversion.price_cycles, 600_000_000);
        assert!(!conversion.capped);
    }
    // An extension locks at the slots' price in e8s: 2 slots x 2 more
    // intervals x 27,500.
    block_on(endpoints::extend_reservation(
        &rt,
        BUYER,
        ExtendReservationArgs {
            reservation: rid,
            intervals: 2,
        },
    ))
    .unwrap();
    let r = read_state(|s| s.market.reservation_record(rid)).unwrap();
    assert_eq!(r.extensions, vec![110_000]);
    // The lock still covers every slot's most.
    let most: Tokens = r
        .slots
        .iter()
        .map(|id| job(*id).state.max_cost().unwrap())
        .sum();
    assert!(most <= r.locked, "{most} > {}", r.locked);
}

#[test]
fn a_service_lease_in_another_token_pays_its_probes_converted_from_e8s() {
    let rt = priced(Some(CMC));
    mutate_state(|s| {
        let mut c = s.config();
        c.probe_fee = Some(4_000);
        s.set_config(c);
    });
    cmc_says(&rt, 40_000, 990);
    xrc_says_eth(&rt, 995);
    refresh(&rt);
    let lease = ReservationSpec {
        currency: None,
        ledger: ETH,
        intervals: 1,
        service: Some(url_service("https://example.org/service.wasm", [2; 32])),
        max_price_per_interval: 1_000,
        ..xdr_reservation(1, 1)
    };
    let rid = block_on(endpoints::reserve(&rt, BUYER, lease)).unwrap();
    // 4,000 e8s are 1.6 * 10^8 cycles; a wei is 2.5005 * 10^-3 cycles, so
    // the fee is 1.6 * 10^11 / 2.5005 = 63,987,202,559.49 wei, rounded up.
    let r = read_state(|s| s.market.reservation_record(rid)).unwrap();
    assert_eq!(r.probe_fee, 63_987_202_560);
    assert_eq!(r.probe_locked, r.probe_fee * r.probes_per_interval as u128);
    assert_eq!(r.locked, 1_000 + r.probe_locked);
}

#[test]
fn a_dao_summary_of_an_xdr_reservation_states_its_budget_and_its_lock() {
    let _rt = priced_and_read();
    let ctx = crate::governance::tests::dao(BUYER, icp(), 100_000_000);
    let validate = |action: &market_api::sns::SnsAction| {
        read_state(|s| crate::governance::validate(&s.market, &s.params(), &ctx, action))
    };
    let says = |action: market_api::sns::SnsAction, parts: &[&str]| {
        let text = validate(&action).unwrap();
        for part in parts {
            assert!(text.contains(part), "{part:?} missing from {text}");
        }
    };
    says(
        market_api::sns::SnsAction::Reserve(xdr_reservation(2, 1_000_000_000)),
        &[
            "at up to 0.001 XDR per slot and interval",
            "a budget of 0.008 XDR",
            "locks at most 0.0022 ICP",
            "a buffer of 100000 ppm",
            "Maximum total cost: 0.0022 ICP",
        ],
    );
    says(
        market_api::sns::SnsAction::SubmitJob(xdr_spec(1_000_000_000, icp())),
        &[
            "at up to 0.001 XDR per billion fuel",
            "a budget of 0.01 XDR",
            "locks at most 0.00275 ICP",
        ],
    );
    // A ledger without a source is refused before the vote.
    let other = market_api::sns::SnsAction::SubmitJob(JobSpec {
        ledger: OTHER,
        ..spec(100, 0)
    });
    assert!(validate(&other).is_err());
}
