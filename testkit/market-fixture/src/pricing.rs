//! A market that prices in XDR and takes tokens besides ICP: the rate
//! stand-ins (`rates-standin`, installed once as the cycles minting
//! canister and once as the exchange rate canister), a cycles ledger
//! stand-in (the local ledger with the cycles ledger's fee, decimals and
//! symbol), an 18-decimal token valued by the exchange rate canister, and a
//! whitelisted token the matcher has no rate for.

use crate::ledger_types::{InitArgs, LedgerArg};
use crate::{MarketFixture, Result, account, admin, minter, nat, refused};
use candid::{Nat, Principal};
use market_api::escrow::{Balance, DepositArgs, EscrowError};
use market_api::prices::cmc::IcpXdrConversionRate;
use market_api::prices::{LedgerRateSource, PricingConfig, RateSource, RatesView};
use market_api::{Account, Tokens};

/// The cycles ledger's fee: 100 M cycles.
pub const CYCLES_LEDGER_FEE: Tokens = 100_000_000;
/// The 18-decimal token's fee (ckETH's: 2 * 10^12 wei).
pub const ETH_FEE: Tokens = 2_000_000_000_000;
/// One whole 18-decimal token.
pub const ETH: Tokens = 1_000_000_000_000_000_000;
/// The symbol the exchange rate canister knows the 18-decimal token by.
pub const ETH_SYMBOL: &str = "ETH";

/// How a pricing market starts.
#[derive(Clone, Debug)]
pub struct PricingSettings {
    /// The cycles minting canister's first ICP/XDR rate, in XDR per ICP
    /// times 10^4 (40 000: 4 XDR per ICP).
    pub xdr_permyriad_per_icp: u64,
    /// The 18-decimal token's first rate in XDR, times 10^9.
    pub eth_xdr_rate: u64,
    /// The matcher's buffer on XDR locks (`None`: its default).
    pub rate_buffer_ppm: Option<u32>,
    /// The oldest rate the matcher converts at (`None`: its default).
    pub max_rate_age_secs: Option<u64>,
}

impl Default for PricingSettings {
    fn default() -> Self {
        PricingSettings {
            xdr_permyriad_per_icp: 40_000,
            eth_xdr_rate: 2_500_000_000_000,
            rate_buffer_ppm: None,
            max_rate_age_secs: None,
        }
    }
}

/// The canisters a pricing market adds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PricingIds {
    /// The cycles minting canister's stand-in.
    pub cmc: Principal,
    /// The exchange rate canister's stand-in.
    pub xrc: Principal,
    /// The cycles ledger's stand-in (12 decimals, fee 100 M cycles).
    pub cycles_ledger: Principal,
    /// An 18-decimal token valued by the exchange rate canister.
    pub eth_ledger: Principal,
    /// A token the escrow whitelists and the matcher has no rate for.
    pub unrated_ledger: Principal,
}

/// The rate stand-in's setting for one token.
#[derive(candid::CandidType)]
struct TokenRate {
    symbol: String,
    rate: u64,
    decimals: u32,
    timestamp: u64,
}

pub(crate) fn ledger_arg(name: &str, symbol: &str, decimals: u8, fee: Tokens) -> LedgerArg {
    LedgerArg::Init(InitArgs {
        token_name: name.into(),
        token_symbol: symbol.into(),
        decimals: Some(decimals),
        transfer_fee: Some(Nat::from(fee)),
        minting_account: account(minter()),
        initial_balances: vec![],
    })
}

/// The matcher's pricing configuration on these canisters.
pub(crate) fn config(ids: &PricingIds, s: &PricingSettings) -> PricingConfig {
    PricingConfig {
        cmc: Some(ids.cmc),
        ledgers: vec![
            LedgerRateSource {
                ledger: ids.cycles_ledger,
                source: RateSource::Cycles,
            },
            LedgerRateSource {
                ledger: ids.eth_ledger,
                source: RateSource::ExchangeRate {
                    canister: ids.xrc,
                    symbol: ETH_SYMBOL.into(),
                    decimals: 18,
                },
            },
        ],
        max_rate_age_secs: s.max_rate_age_secs,
        rate_buffer_ppm: s.rate_buffer_ppm,
        refresh_secs: None,
    }
}

impl MarketFixture {
    /// The pricing canisters (panics on a market deployed without them).
    pub fn pricing_ids(&self) -> PricingIds {
        self.pricing
            .expect("a market deployed with Settings::pricing")
    }

    /// Sets the cycles minting canister's ICP/XDR rate, dated
    /// `timestamp_secs` (0: always current).
    pub fn set_icp_xdr_rate_at(
        &self,
        xdr_permyriad_per_icp: u64,
        timestamp_secs: u64,
    ) -> Result<()> {
        let r: std::result::Result<(), String> = self.update(
            self.pricing_ids().cmc,
            admin(),
            "set_icp_xdr_conversion_rate",
            &IcpXdrConversionRate {
                timestamp_seconds: timestamp_secs,
                xdr_permyriad_per_icp,
            },
        )?;
        r.map_err(|e| refused("set_icp_xdr_conversion_rate", e))
    }

    /// Sets the ICP/XDR rate, kept current: each answer is dated with the
    /// time it is given (to the minute), as the cycles minting canister's
    /// regular updates would.
    pub fn set_icp_xdr_rate(&self, xdr_permyriad_per_icp: u64) -> Result<()> {
        self.set_icp_xdr_rate_at(xdr_permyriad_per_icp, 0)
    }

    /// Sets the 18-decimal token's rate in XDR (times 10^9), kept current.
    pub fn set_eth_xdr_rate(&self, rate: u64) -> Result<()> {
        let r: std::result::Result<(), String> = self.update(
            self.pricing_ids().xrc,
            admin(),
            "set_exchange_rate",
            &TokenRate {
                symbol: ETH_SYMBOL.into(),
                rate,
                decimals: 9,
                timestamp: 0,
            },
        )?;
        r.map_err(|e| refused("set_exchange_rate", e))
    }

    /// Has the matcher read every rate anew, and waits for the reads.
    pub fn refresh_rates(&self) -> Result<RatesView> {
        let () = self.update(self.ids.matcher, admin(), "refresh_rates", &())?;
        self.settle_outbox();
        self.query(self.ids.matcher, "get_rates", &())
    }

    /// Mints `amount` of `ledger`'s token to `owner`'s default account.
    pub fn mint_on(&self, ledger: Principal, owner: Principal, amount: Tokens) -> Result<u128> {
        self.transfer_on(ledger, minter(), account(owner), amount)
    }

    /// An ICRC-1 transfer on `ledger` from `from`'s default account.
    pub fn transfer_on(
        &self,
        ledger: Principal,
        from: Principal,
        to: Account,
        amount: Tokens,
    ) -> Result<u128> {
        let arg = crate::ledger_types::transfer_arg(to, amount);
        let r: std::result::Result<Nat, candid::IDLValue> =
            self.update(ledger, from, "icrc1_transfer", &arg)?;
        let block = r.map_err(|e| refused("icrc1_transfer", e))?;
        Ok(nat(&block))
    }

    /// `account`'s balance on `ledger`.
    pub fn balance_on(&self, ledger: Principal, account: Account) -> Result<Tokens> {
        let n: Nat = self.query(ledger, "icrc1_balance_of", &account)?;
        Ok(nat(&n))
    }

    /// `ledger`'s transfer fee.
    pub fn fee_on(&self, ledger: Principal) -> Result<Tokens> {
        let n: Nat = self.query(ledger, "icrc1_fee", &())?;
        Ok(nat(&n))
    }

    /// Pull deposit of `amount` of `owner`'s `ledger` tokens into its
    /// escrow balance; returns the amount credited.
    pub fn deposit_on(
        &self,
        ledger: Principal,
        owner: Principal,
        amount: Tokens,
    ) -> Result<Tokens> {
        let fee = self.fee_on(ledger)?;
        let arg = crate::ledger_types::approve_args(account(self.ids.escrow), amount + fee);
        let r: std::result::Result<Nat, candid::IDLValue> =
            self.update(ledger, owner, "icrc2_approve", &arg)?;
        r.map_err(|e| refused("icrc2_approve", e))?;
        let args = DepositArgs {
            ledger,
            amount,
            from_subaccount: None,
        };
        let r: std::result::Result<Tokens, EscrowError> =
            self.update(self.ids.escrow, owner, "deposit", &args)?;
        r.map_err(|e| refused("deposit", e))
    }

    /// `owner`'s escrow balance on `ledger`.
    pub fn escrow_balance_on(&self, ledger: Principal, owner: Principal) -> Result<Balance> {
        self.query_args(self.ids.escrow, "balance_of", (owner, ledger))
            .map(|(b,): (Balance,)| b)
    }
}
