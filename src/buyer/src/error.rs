//! What can go wrong for a buyer, with the data needed to fix it.

use candid::Principal;
use market_api::matcher::JobStatus;
use market_api::{JobId, Tokens};

use market_client::client::ClientError;
use market_client::client::tokens::format_tokens;
use market_client::config::ConfigError;

/// Why a buyer's command failed.
#[derive(Debug, thiserror::Error)]
pub enum BuyerError {
    /// A canister call failed; the message says what to do.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The escrow balance does not cover what a job or reservation locks.
    #[error("{}", insufficient_message(.what, .needed, .available, .wallet, .fee, .owner))]
    InsufficientBalance {
        /// What locks the funds: "the job", "the reservation", ...
        what: &'static str,
        /// What it locks: price per interval × intervals (× slots).
        needed: Tokens,
        /// The free escrow balance.
        available: Tokens,
        /// The identity's ledger balance (what a deposit is taken from).
        wallet: Tokens,
        /// The ledger's fee.
        fee: Tokens,
        /// The buyer.
        owner: Principal,
    },
    /// The matcher stores modules only for principals with an escrow balance.
    #[error(
        "the matcher stores modules only for buyers with an escrow balance: deposit first, e.g. \
         `market deposit 0.1`, then upload again"
    )]
    UploadNeedsDeposit,
    /// A setting the command needs is missing or unusable.
    #[error(transparent)]
    Settings(#[from] ConfigError),
    /// The job's parameters are unusable; the message names the flag.
    #[error("{0}")]
    Request(String),
    /// No such job, or not one of the caller's.
    #[error("no job {0} on this matcher")]
    UnknownJob(JobId),
    /// The job has no result yet.
    #[error("job {id} is {status:?} and has no result yet; `market watch {id}` waits for it")]
    NotFinished {
        /// The job.
        id: JobId,
        /// Where it is.
        status: JobStatus,
    },
    /// The job's result is withheld while it is audited.
    #[error(
        "job {id}'s result is being audited ({}); `market watch {id}` waits for the verdict",
        if *.disputed { "disputed" } else { "drawn" }
    )]
    BeingAudited {
        /// The job.
        id: JobId,
        /// Whether its owner asked for the audit.
        disputed: bool,
    },
    /// The matcher refused to dispute the job's result.
    #[error("job {id} can't be disputed: {reason}")]
    DisputeRefused {
        /// The job.
        id: JobId,
        /// Why, in plain words.
        reason: String,
    },
    /// The job asks for sealing, and the market takes no sealed jobs.
    #[error(
        "this market takes no sealed jobs: its matcher has no privacy key; run without \
         --seal-input, --secret-env, --seal-output and --private (nothing was spent)"
    )]
    NoPrivacy,
    /// The contents could not be sealed with the matcher's key.
    #[error("cannot seal the job's contents with the matcher's privacy key: {0}")]
    Seal(String),
    /// A job's sealed output could not be opened.
    #[error("job {id}'s sealed stdout can't be opened: {reason}")]
    SealedOutput {
        /// The job.
        id: JobId,
        /// Why, in plain words.
        reason: String,
    },
    /// The module the matcher stored does not match what was uploaded.
    #[error("the matcher's copy of the module does not match: {0}")]
    UploadMismatch(String),
}

/// What to deposit so `what`, taking `needed`, fits, given `available`.
fn insufficient_message(
    what: &str,
    needed: &Tokens,
    available: &Tokens,
    wallet: &Tokens,
    fee: &Tokens,
    owner: &Principal,
) -> String {
    let missing = needed.saturating_sub(*available);
    let amount = format_tokens(missing);
    let number = amount.trim_end_matches(" ICP");
    let mut msg = format!(
        "insufficient escrow balance: {what} takes up to {} but {} is free; deposit {amount} \
         more with `market deposit {number}`",
        format_tokens(*needed),
        format_tokens(*available),
    );
    // A deposit pays two ledger fees: the approval and the transfer.
    let wallet_needs = missing.saturating_add(fee.saturating_mul(2));
    if *wallet < wallet_needs {
        msg.push_str(&format!(
            "; your wallet ({owner}) holds {}, and the deposit takes {} including fees: send it \
             at least {} first",
            format_tokens(*wallet),
            format_tokens(wallet_needs),
            format_tokens(wallet_needs - wallet),
        ));
    }
    msg
}
