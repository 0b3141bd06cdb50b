//! Stand-in for the two rate sources the matcher reads, so devnet tests can
//! set the rates and move them: the cycles minting canister's
//! `get_icp_xdr_conversion_rate` and the exchange rate canister's
//! `get_exchange_rate`. One module serves both interfaces; a test installs
//! it once as each.
//!
//! What it emulates: the methods' Candid types; the CMC's rate as last set
//! (with its timestamp, which the matcher checks for age: a rate set with
//! timestamp 0 is dated with the time of each answer, rounded down to the
//! minute, like a source that keeps updating); the exchange rate
//! canister's refusals of a call from the anonymous principal, of a call
//! with fewer than `xrc::REQUEST_CYCLES` attached (`NotEnoughCycles`), and of
//! an unknown base asset (`CryptoBaseAssetNotFound`) or a quote other than
//! its computed XDR (`ForexQuoteAssetNotFound`); it keeps the exchange rate
//! canister's base fee of 200 M cycles and refunds the rest.
//!
//! What it leaves out: the CMC's certificate and hash tree (empty), its
//! rate-setting by the NNS, and everything else the CMC does; historical
//! rates (a request's timestamp is ignored), rates between two
//! cryptocurrencies or fiat currencies, and the metadata's statistics
//! (constant). State lives on the heap: an upgrade forgets the rates.

use candid::{CandidType, Deserialize};
use market_api::prices::cmc::{IcpXdrConversionRate, IcpXdrConversionRateResponse};
use market_api::prices::xrc::{
    self, ExchangeRate, ExchangeRateError, ExchangeRateMetadata, GetExchangeRateRequest,
    GetExchangeRateResult,
};
use std::cell::RefCell;
use std::collections::BTreeMap;

/// The exchange rate canister's base fee, kept from each request.
pub const BASE_FEE_CYCLES: u128 = 200_000_000;

/// The rate of one cryptocurrency in XDR, as a test sets it.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TokenRate {
    /// The base asset's symbol ("ETH").
    pub symbol: String,
    /// One whole token is `rate / 10^decimals` XDR.
    pub rate: u64,
    /// The rate's decimals.
    pub decimals: u32,
    /// The time the rate is for, in seconds since the Unix epoch (0: the
    /// time of each answer, rounded down to the minute).
    pub timestamp: u64,
}

/// `timestamp`, or for 0 the current time rounded down to the minute.
fn dated(timestamp: u64) -> u64 {
    if timestamp != 0 {
        return timestamp;
    }
    let now = ic_cdk::api::time() / 1_000_000_000;
    now - now % 60
}

#[derive(Default)]
struct State {
    icp_xdr: Option<IcpXdrConversionRate>,
    tokens: BTreeMap<String, TokenRate>,
    xrc_calls: u64,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::default();
}

fn controller_only() -> Result<(), String> {
    if ic_cdk::api::is_controller(&ic_cdk::api::msg_caller()) {
        Ok(())
    } else {
        Err("only a controller sets rates".into())
    }
}

/// Sets the ICP/XDR rate `get_icp_xdr_conversion_rate` answers
/// (controllers); a timestamp of 0 dates each answer now.
#[ic_cdk::update]
fn set_icp_xdr_conversion_rate(rate: IcpXdrConversionRate) -> Result<(), String> {
    controller_only()?;
    STATE.with_borrow_mut(|s| s.icp_xdr = Some(rate));
    Ok(())
}

/// Sets the XDR rate `get_exchange_rate` answers for one base asset
/// (controllers).
#[ic_cdk::update]
fn set_exchange_rate(rate: TokenRate) -> Result<(), String> {
    controller_only()?;
    STATE.with_borrow_mut(|s| s.tokens.insert(rate.symbol.clone(), rate));
    Ok(())
}

/// The cycles minting canister's ICP/XDR rate, as last set (zero until
/// then, so a matcher reading it refuses it).
#[ic_cdk::query]
fn get_icp_xdr_conversion_rate() -> IcpXdrConversionRateResponse {
    let mut data = STATE
        .with_borrow(|s| s.icp_xdr)
        .unwrap_or(IcpXdrConversionRate {
            timestamp_seconds: 0,
            xdr_permyriad_per_icp: 0,
        });
    if data.xdr_permyriad_per_icp != 0 {
        data.timestamp_seconds = dated(data.timestamp_seconds);
    }
    IcpXdrConversionRateResponse {
        data,
        hash_tree: vec![],
        certificate: vec![],
    }
}

/// The exchange rate canister's `get_exchange_rate`: a cryptocurrency's
/// rate in its computed XDR.
#[ic_cdk::update]
fn get_exchange_rate(request: GetExchangeRateRequest) -> GetExchangeRateResult {
    if ic_cdk::api::msg_caller() == candid::Principal::anonymous() {
        return GetExchangeRateResult::Err(ExchangeRateError::AnonymousPrincipalNotAllowed);
    }
    if ic_cdk::api::msg_cycles_available() < xrc::REQUEST_CYCLES {
        return GetExchangeRateResult::Err(ExchangeRateError::NotEnoughCycles);
    }
    if ic_cdk::api::msg_cycles_accept(BASE_FEE_CYCLES) < BASE_FEE_CYCLES {
        return GetExchangeRateResult::Err(ExchangeRateError::FailedToAcceptCycles);
    }
    STATE.with_borrow_mut(|s| s.xrc_calls += 1);
    if request.quote_asset.symbol != xrc::XDR_SYMBOL
        || request.quote_asset.class != xrc::AssetClass::FiatCurrency
    {
        return GetExchangeRateResult::Err(ExchangeRateError::ForexQuoteAssetNotFound);
    }
    let Some(rate) = STATE.with_borrow(|s| s.tokens.get(&request.base_asset.symbol).cloned())
    else {
        return GetExchangeRateResult::Err(ExchangeRateError::CryptoBaseAssetNotFound);
    };
    GetExchangeRateResult::Ok(ExchangeRate {
        base_asset: request.base_asset,
        quote_asset: request.quote_asset,
        timestamp: dated(rate.timestamp),
        rate: rate.rate,
        metadata: ExchangeRateMetadata {
            decimals: rate.decimals,
            base_asset_num_received_rates: 1,
            base_asset_num_queried_sources: 1,
            quote_asset_num_received_rates: 1,
            quote_asset_num_queried_sources: 1,
            standard_deviation: 0,
            forex_timestamp: Some(dated(rate.timestamp)),
        },
    })
}

/// How many `get_exchange_rate` requests paid the fee.
#[ic_cdk::query]
fn exchange_rate_calls() -> u64 {
    STATE.with_borrow(|s| s.xrc_calls)
}

candid::export_service!();

/// The Candid interface generated from the entry points above, compared in
/// tests with the checked-in `rates-standin.did`.
pub fn candid_interface() -> String {
    __export_service()
}
