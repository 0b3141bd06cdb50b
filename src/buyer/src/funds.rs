//! The buyer's money: the wallet (ledger account) and the escrow balance
//! jobs are paid from.

use market_api::escrow::{Balance, DepositArgs, WithdrawArgs};
use market_api::{Account, Principal, Tokens};

use super::{BuyerError, with_retries};
use market_client::client::MarketClient;
use market_client::client::tokens::format_tokens;
use market_client::transport::Transport;

/// The caller's balances.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Funds {
    /// The identity's default ledger account.
    pub wallet: Tokens,
    /// The escrow balance on the configured ledger.
    pub escrow: Balance,
    /// The ledger's fee.
    pub fee: Tokens,
}

/// The caller's wallet and escrow balances and the ledger fee.
pub async fn funds<T: Transport>(client: &MarketClient<T>) -> Result<Funds, BuyerError> {
    let owner = client.sender();
    Ok(Funds {
        wallet: with_retries(|| client.balance_of(Account::from(owner))).await?,
        escrow: with_retries(|| client.escrow_balance(owner)).await?,
        fee: with_retries(|| client.ledger_fee()).await?,
    })
}

/// Checks that the free escrow balance covers `needed` (a job's maximum
/// cost and its storage fee); the error says exactly how much to deposit.
pub async fn check_funds<T: Transport>(
    client: &MarketClient<T>,
    needed: Tokens,
) -> Result<Funds, BuyerError> {
    check_funds_for(client, JOB, needed).await
}

/// What a one-off job takes from the escrow balance.
pub(super) const JOB: &str = "the job with its storage fee";
/// What a one-off job that may be audited takes: its budget twice (for its
/// run and an audit's re-run) and its storage fee.
pub(super) const AUDITED_JOB: &str = "the job with its audit budget and storage fee";

/// Like [`check_funds`], for `what` (a reservation, an extension) locking
/// `needed`.
pub(super) async fn check_funds_for<T: Transport>(
    client: &MarketClient<T>,
    what: &'static str,
    needed: Tokens,
) -> Result<Funds, BuyerError> {
    let f = funds(client).await?;
    require_free(&f, client.sender(), what, needed)?;
    Ok(f)
}

/// Refuses when the free escrow balance in `f` (of `owner`) does not cover
/// `needed` for `what`; the error says exactly how much to deposit.
pub(super) fn require_free(
    f: &Funds,
    owner: Principal,
    what: &'static str,
    needed: Tokens,
) -> Result<(), BuyerError> {
    if f.escrow.free < needed {
        return Err(BuyerError::InsufficientBalance {
            what,
            needed,
            available: f.escrow.free,
            wallet: f.wallet,
            fee: f.fee,
            owner,
        });
    }
    Ok(())
}

/// Moves `amount` from the wallet into the escrow balance: approves the
/// escrow for `amount` + fee on the ledger, then asks it to pull. The
/// wallet pays two fees (approval and transfer). Returns the new free
/// escrow balance.
pub async fn deposit<T: Transport>(
    client: &MarketClient<T>,
    amount: Tokens,
) -> Result<Tokens, BuyerError> {
    let f = funds(client).await?;
    let allowance = amount.saturating_add(f.fee);
    let needs = allowance.saturating_add(f.fee);
    if f.wallet < needs {
        return Err(BuyerError::Request(format!(
            "your wallet ({}) holds {}; depositing {} takes {} including the approval and \
             transfer fees",
            client.sender(),
            format_tokens(f.wallet),
            format_tokens(amount),
            format_tokens(needs)
        )));
    }
    client.approve_for(client.ids().escrow, allowance).await?;
    client
        .deposit(DepositArgs {
            ledger: client.ids().ledger,
            amount,
            from_subaccount: None,
        })
        .await?;
    Ok(with_retries(|| client.escrow_balance(client.sender()))
        .await?
        .free)
}

/// Withdraws `amount` of the escrow balance to `to` (claimable earnings
/// first, then free balance); `to` receives it minus the ledger fee.
/// Returns the ledger block.
pub async fn withdraw<T: Transport>(
    client: &MarketClient<T>,
    amount: Tokens,
    to: Account,
) -> Result<Tokens, BuyerError> {
    Ok(client
        .escrow_withdraw(WithdrawArgs {
            ledger: client.ids().ledger,
            amount,
            to,
        })
        .await?)
}
