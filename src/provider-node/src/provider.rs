//! The provider's money behind `provider-node stake` and `withdraw`: the
//! approve-then-stake pair, earnings out of the escrow, unbonded stake out
//! of the registry. The other provider commands are single calls of
//! [`MarketClient`] (`register_provider`, `unstake`, `post_offer`,
//! `update_offer`, ...).
//!
//! Generic over the [`Transport`], so tests drive the same code against the
//! in-process devnet that the binary runs against the IC.

use market_api::escrow::WithdrawArgs;
use market_api::registry::RegistryError;
use market_api::{Account, Tokens};

use market_client::client::{ClientError, MarketClient};
use market_client::transport::Transport;

/// A stake made: `amount` moved into the caller's stake; the wallet paid
/// `amount` + `fee` for the transfer and `fee` for the approval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Staked {
    /// Staked.
    pub amount: Tokens,
    /// The ledger's fee.
    pub fee: Tokens,
    /// The ledger block of the transfer into the stake account.
    pub block: Tokens,
}

/// Approves the registry to take `amount` + fee from the caller's wallet,
/// then stakes `amount`.
pub async fn stake<T: Transport>(
    client: &MarketClient<T>,
    amount: Tokens,
) -> Result<Staked, ClientError> {
    let fee = client.ledger_fee().await?;
    client
        .approve_for(client.ids().registry, amount.saturating_add(fee))
        .await?;
    let block = client.stake(amount).await?;
    Ok(Staked { amount, fee, block })
}

/// Tokens sent to a ledger account: `amount` left the escrow or the
/// registry, `amount − fee` arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Withdrawal {
    /// Taken out of the escrow balance or the stake.
    pub amount: Tokens,
    /// The ledger's fee, paid out of `amount`.
    pub fee: Tokens,
    /// The ledger block of the transfer.
    pub block: Tokens,
}

impl Withdrawal {
    /// What the receiving account gained.
    pub fn received(&self) -> Tokens {
        self.amount.saturating_sub(self.fee)
    }
}

/// What [`withdraw_earnings`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EarningsWithdrawal {
    /// All claimable earnings were sent.
    Withdrawn(Withdrawal),
    /// Nothing was sent: the claimable balance does not exceed the fee.
    TooSmall {
        /// The claimable balance.
        claimable: Tokens,
        /// The ledger's fee.
        fee: Tokens,
    },
}

/// Sends all of the caller's claimable earnings in the escrow to `to`,
/// unless the ledger fee would eat them.
pub async fn withdraw_earnings<T: Transport>(
    client: &MarketClient<T>,
    to: Account,
) -> Result<EarningsWithdrawal, ClientError> {
    let claimable = client.escrow_balance(client.sender()).await?.claimable;
    let fee = client.ledger_fee().await?;
    if claimable <= fee {
        return Ok(EarningsWithdrawal::TooSmall { claimable, fee });
    }
    let block = client
        .escrow_withdraw(WithdrawArgs {
            ledger: client.ids().ledger,
            amount: claimable,
            to,
        })
        .await?;
    Ok(EarningsWithdrawal::Withdrawn(Withdrawal {
        amount: claimable,
        fee,
        block,
    }))
}

/// Sends the caller's stake whose unbonding period is over to its wallet
/// (the registry pays only to the provider's own default account). `None`
/// when nothing is ready (or the caller is no provider). The amount is the
/// drop in the unbonding stake across the call.
pub async fn withdraw_unbonded<T: Transport>(
    client: &MarketClient<T>,
) -> Result<Option<Withdrawal>, ClientError> {
    let unbonding = async || -> Result<Tokens, ClientError> {
        Ok(client
            .get_provider(client.sender())
            .await?
            .map_or(0, |p| p.stake.unbonding.iter().map(|u| u.amount).sum()))
    };
    let before = unbonding().await?;
    let block = match client.withdraw_unbonded().await {
        Ok(block) => block,
        Err(ClientError::Registry(
            RegistryError::NothingToWithdraw | RegistryError::NotRegistered,
        )) => return Ok(None),
        Err(e) => return Err(e),
    };
    let after = unbonding().await?;
    Ok(Some(Withdrawal {
        amount: before.saturating_sub(after),
        fee: client.ledger_fee().await?,
        block,
    }))
}
