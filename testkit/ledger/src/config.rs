//! Install and upgrade arguments, the stored configuration, and the fixed
//! parameters of the ledger's rules.

use candid::{CandidType, Deserialize, Nat};
use icrc_ledger_types::icrc1::account::Account;

/// Transfer fee when the install argument gives none (the ICP ledger's fee).
pub const DEFAULT_FEE: u64 = 10_000;
/// Decimals when the install argument gives none.
pub const DEFAULT_DECIMALS: u8 = 8;
/// How long a transaction with `created_at_time` is remembered for dedup (24 h).
pub const TX_WINDOW_NANOS: u64 = 24 * 60 * 60 * 1_000_000_000;
/// How far `created_at_time` may lie ahead of ledger time (60 s).
pub const PERMITTED_DRIFT_NANOS: u64 = 60 * 1_000_000_000;
/// Longest accepted memo, in bytes (as on the ICP ledger).
pub const MAX_MEMO_LENGTH: usize = 32;
/// Most blocks one page of [`crate::state::State::blocks_page`] returns.
pub const MAX_BLOCKS_PER_PAGE: u64 = 1_000;
/// Most expired dedup entries and allowances removed per update call, so
/// pruning never makes one call expensive.
pub const PRUNE_BATCH: usize = 100;

/// Argument of `canister_init` and (optionally) `canister_post_upgrade`,
/// shaped like the DFINITY ICRC ledger's `LedgerArg`.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum LedgerArg {
    /// Fresh install.
    Init(InitArgs),
    /// Upgrade; the state is kept and the given fields are changed.
    Upgrade(Option<UpgradeArgs>),
}

/// Settings of a new ledger.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct InitArgs {
    /// Token name, e.g. "Internet Computer".
    pub token_name: String,
    /// Token symbol, e.g. "ICP".
    pub token_symbol: String,
    /// Decimals; 8 when absent.
    pub decimals: Option<u8>,
    /// Fee of transfers and approvals, also the minimum burn; 10_000 when absent.
    pub transfer_fee: Option<Nat>,
    /// The account that mints (transfers from it) and burns (transfers to it).
    pub minting_account: Account,
    /// Balances minted at install, each recorded as a mint block.
    pub initial_balances: Vec<(Account, Nat)>,
}

/// Changes applied at an upgrade; absent fields are kept.
#[derive(CandidType, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct UpgradeArgs {
    /// New token name.
    pub token_name: Option<String>,
    /// New token symbol.
    pub token_symbol: Option<String>,
    /// New fee (applies to transactions after the upgrade).
    pub transfer_fee: Option<Nat>,
}

/// The ledger's stored configuration.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Token name.
    pub token_name: String,
    /// Token symbol.
    pub token_symbol: String,
    /// Decimals.
    pub decimals: u8,
    /// Fee of transfers and approvals; also the minimum burn amount.
    pub fee: u64,
    /// The minting account.
    pub minting_account: Account,
}

/// Contents of the config cell: `None` until the ledger is installed.
#[derive(CandidType, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigCell(pub Option<Config>);

crate::memory::candid_storable!(ConfigCell, "config");

/// Why an install or upgrade argument was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidArg(pub String);

impl std::fmt::Display for InvalidArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid ledger argument: {}", self.0)
    }
}

impl InitArgs {
    /// Builds the configuration, refusing amounts above `u64::MAX`.
    pub fn config(&self) -> Result<Config, InvalidArg> {
        let fee = match &self.transfer_fee {
            None => DEFAULT_FEE,
            Some(fee) => {
                crate::amount::to_u64(fee).ok_or_else(|| InvalidArg("fee above u64".into()))?
            }
        };
        Ok(Config {
            token_name: self.token_name.clone(),
            token_symbol: self.token_symbol.clone(),
            decimals: self.decimals.unwrap_or(DEFAULT_DECIMALS),
            fee,
            minting_account: self.minting_account,
        })
    }
}

impl UpgradeArgs {
    /// Applies the changes to `config`.
    pub fn apply(&self, config: &mut Config) -> Result<(), InvalidArg> {
        if let Some(fee) = &self.transfer_fee {
            config.fee =
                crate::amount::to_u64(fee).ok_or_else(|| InvalidArg("fee above u64".into()))?;
        }
        if let Some(name) = &self.token_name {
            config.token_name = name.clone();
        }
        if let Some(symbol) = &self.token_symbol {
            config.token_symbol = symbol.clone();
        }
        Ok(())
    }
}
