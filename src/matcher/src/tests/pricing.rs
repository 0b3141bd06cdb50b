//! Native tests of XDR prices and token rates: the rates read through the
//! performer, the XDR book, locks, conversions, caps, and bonds and
//! slashes valued in the stake ledger's e8s. Expected amounts are worked
//! out by hand in the comments, not with the code under test.

use super::market::{icp, offer, spec};
use super::perform::{BUYER, Fake, NODE, PROVIDER, S, events, heartbeat};
use crate::endpoints;
use crate::state::{mutate_state, read_state};
use candid::Principal;
use futures::executor::block_on;
use market_api::Tokens;
use market_api::client::CallError;
use market_api::matcher::{
    JobResult, JobSpec, JobStatus, MatcherError, MatcherEvent, OfferSpec, RunOutcome,
    SubmitResultArgs,
};
use market_api::prices::cmc::{IcpXdrConversionRate, IcpXdrConversionRateResponse};
use market_api::prices::xrc::{
    self, ExchangeRate, ExchangeRateError, ExchangeRateMetadata, GetExchangeRateResult,
};
use market_api::prices::{
    Currency, LedgerRateSource, PriceConversion, PricingConfig, RateSource, Ratio, Valuation,
};

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
    let rt = priced(Some(CMC));
    cmc_says(&rt, 40_000, 990);
    xrc_says_eth(&rt, 995);
    refresh(&rt);
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
    let rt = priced(Some(CMC));
    cmc_says(&rt, 40_000, 990);
    xrc_says_eth(&rt, 995);
    refresh(&rt);
    // A cheaper offer in ICP's own units does not take the XDR bid.
    post(&rt, OTHER_PROVIDER, offer(1)).unwrap();
    // Up to 10^9 cycles per billion fuel for 10^10 fuel: 10^10 cycles,
    // 250,000 e8s at 40,000 cycles per e8, plus 10 %: 275,000 e8s.
    let id = block_on(endpoints::submit_job(
        &rt,
        BUYER,
        xdr_spec(1_000_000_000, icp()),
    ))
    .unwrap();
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
        job_id: id,
        provider: PROVIDER,
        attempt: 1,
        price: 16_000,
        conversion: Some(conversion),
    }));

    // It runs 5 billion fuel: billed 80,000 e8s.
    heartbeat(&rt, id, 0);
    rt.advance(60 * S);
    let result = JobResult {
        outcome: RunOutcome::Exited { code: 0 },
        output: b"ok".to_vec(),
        output_sha256: [0; 32],
        fuel_used: 5 * G,
        engine: "wasmtime-48.0.8".into(),
    };
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
    let token = block_on(endpoints::submit_job(&rt, BUYER, spec(100, 0))).unwrap();
    rt.settle_outbox(3);
    assert_eq!(
        job(token).state.assignment.unwrap().provider,
        OTHER_PROVIDER
    );
    assert_eq!(job(token).to_job().pricing, None);
}

#[test]
fn a_rate_moving_past_the_buffer_caps_the_price() {
    let rt = priced(Some(CMC));
    cmc_says(&rt, 40_000, 990);
    xrc_says_eth(&rt, 995);
    refresh(&rt);
    let id = block_on(endpoints::submit_job(
        &rt,
        BUYER,
        xdr_spec(1_000_000_000, icp()),
    ))
    .unwrap();
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
    let rt = priced(Some(CMC));
    cmc_says(&rt, 40_000, 990);
    xrc_says_eth(&rt, 995);
    refresh(&rt);
    let eth_offer = OfferSpec {
        ledger: ETH,
        ..offer(50_000_000_000_000)
    };
    post(&rt, PROVIDER, eth_offer).unwrap();
    let eth_job = JobSpec {
        ledger: ETH,
        ..spec(100_000_000_000_000, 0)
    };
    let id = block_on(endpoints::submit_job(&rt, BUYER, eth_job)).unwrap();
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
    let rt = priced(Some(CMC));
    cmc_says(&rt, 40_000, 990);
    xrc_says_eth(&rt, 995);
    refresh(&rt);
    let id = block_on(endpoints::submit_job(
        &rt,
        BUYER,
        xdr_spec(1_000_000_000, CYCLES),
    ))
    .unwrap();
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
        block_on(endpoints::submit_job(
            &rt,
            BUYER,
            xdr_spec(1_000_000_000, icp())
        )),
        Err(MatcherError::NoRateSource { ledger: icp() })
    );
    assert_eq!(
        post(&rt, PROVIDER, xdr_offer(1, icp())),
        Err(MatcherError::NoRateSource { ledger: icp() })
    );
    // ICP in e8s needs no rate at all.
    assert!(block_on(endpoints::submit_job(&rt, BUYER, spec(100, 0))).is_ok());

    let rt = priced(Some(CMC));
    // A ledger with no source, for a job and for an offer.
    let other = JobSpec {
        ledger: OTHER,
        ..spec(100, 0)
    };
    assert_eq!(
        block_on(endpoints::submit_job(&rt, BUYER, other)),
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
        block_on(endpoints::submit_job(
            &rt,
            BUYER,
            xdr_spec(1_000_000_000, icp())
        )),
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
        block_on(endpoints::submit_job(&rt, BUYER, eth_job)),
        Err(MatcherError::StaleRate {
            ledger: icp(),
            timestamp_secs: 990,
            max_age_secs: 1_800,
        }),
        "ETH's rate (995) is fresh, the stake ledger's is not"
    );
    assert!(rt.locks.borrow().is_empty(), "refused before any lock");
}
