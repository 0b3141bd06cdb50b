//! Prices in XDR, payment in cycles, and bonds and slashes valued in ICP
//! whatever a job pays in, on the devnet with the real canisters: the
//! cycles minting canister and the exchange rate canister are stand-ins
//! whose rates the tests set and move, the cycles ledger is the local ledger
//! with the cycles ledger's fee and decimals, and a second token has 18
//! decimals. Every test ends with the conservation audit of every ledger.

use market_api::prices::CYCLES_PER_XDR;
use market_api::prices::cmc::IcpXdrConversionRateResponse;
use market_api::prices::xrc::{ExchangeRateError, GetExchangeRateResult, xdr_rate_of};
use market_fixture::pricing::{CYCLES_LEDGER_FEE, ETH};
use market_fixture::{ICP, MarketFixture, PricingSettings, Settings};

fn buyer() -> candid::Principal {
    market_fixture::principal(1)
}

/// A market that prices in XDR, at 4 XDR per ICP and 2,500 XDR per ETH.
fn market() -> MarketFixture {
    MarketFixture::deploy(Settings {
        pricing: Some(PricingSettings::default()),
        ..Settings::default()
    })
    .expect("deploy")
}

/// The stand-ins answer as the cycles minting canister and the exchange
/// rate canister do, and each ledger's books balance after deposits.
#[test]
fn the_rate_stand_ins_and_the_extra_ledgers_work() {
    let net = market();
    let ids = net.pricing_ids();
    let cmc: IcpXdrConversionRateResponse = net
        .query(ids.cmc, "get_icp_xdr_conversion_rate", &())
        .unwrap();
    assert_eq!(cmc.data.xdr_permyriad_per_icp, 40_000);
    let now = net.time_ns() / 1_000_000_000;
    assert_eq!(
        cmc.data.timestamp_seconds,
        now - now % 60,
        "current, to the minute"
    );
    // Ingress carries no cycles: the exchange rate canister refuses it.
    let r: GetExchangeRateResult = net
        .update(ids.xrc, buyer(), "get_exchange_rate", &xdr_rate_of("ETH"))
        .unwrap();
    assert_eq!(
        r,
        GetExchangeRateResult::Err(ExchangeRateError::NotEnoughCycles)
    );
    net.mint_on(ids.cycles_ledger, buyer(), 2 * CYCLES_PER_XDR)
        .unwrap();
    net.deposit_on(ids.cycles_ledger, buyer(), CYCLES_PER_XDR)
        .unwrap();
    assert_eq!(
        net.balance_on(ids.cycles_ledger, market_fixture::account(buyer()))
            .unwrap(),
        CYCLES_PER_XDR - 2 * CYCLES_LEDGER_FEE
    );
    net.mint_on(ids.eth_ledger, buyer(), ETH).unwrap();
    net.deposit_on(ids.eth_ledger, buyer(), ETH / 2).unwrap();
    net.mint(buyer(), ICP).unwrap();
    let audit = net.audit().unwrap();
    assert_eq!(audit.other_liabilities[&ids.cycles_ledger], CYCLES_PER_XDR);
    assert_eq!(audit.other_liabilities[&ids.eth_ledger], ETH / 2);
    assert_eq!(audit.other_liabilities[&ids.unrated_ledger], 0);
}
