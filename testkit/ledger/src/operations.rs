//! The ledger's rules: mint, burn, transfer, approve and transfer_from as on
//! the ICP and ICRC ledgers. Each function takes the caller and the ledger
//! time, so native tests drive them without the IC.

use candid::{CandidType, Deserialize, Nat, Principal};
use icrc_ledger_types::icrc::generic_metadata_value::MetadataValue;
use icrc_ledger_types::icrc1::account::Account;
use icrc_ledger_types::icrc1::transfer::{Memo, TransferArg, TransferError};
use icrc_ledger_types::icrc2::allowance::{Allowance, AllowanceArgs};
use icrc_ledger_types::icrc2::approve::{ApproveArgs, ApproveError};
use icrc_ledger_types::icrc2::transfer_from::{TransferFromArgs, TransferFromError};
use sha2::{Digest, Sha256};

use crate::amount::{nat, to_u64};
use crate::block::{Block, Operation};
use crate::config::{
    InitArgs, InvalidArg, MAX_MEMO_LENGTH, PERMITTED_DRIFT_NANOS, TX_WINDOW_NANOS, UpgradeArgs,
};
use crate::keys::TxHash;
use crate::state::{State, StoredAllowance};

/// `GenericError` code: the memo is longer than [`MAX_MEMO_LENGTH`].
pub const ERR_MEMO_TOO_LONG: u64 = 1;
/// `GenericError` code: a mint would take the total supply above `u64::MAX`.
pub const ERR_SUPPLY_OVERFLOW: u64 = 2;
/// `GenericError` code: the minting account cannot do this (approve, be
/// spent from by a spender, or transfer to itself).
pub const ERR_MINTING_ACCOUNT: u64 = 3;
/// `GenericError` code: the spender's owner is the caller.
pub const ERR_SELF_APPROVAL: u64 = 4;
/// `GenericError` code: an error that only a bug in the ledger can cause.
pub const ERR_INTERNAL: u64 = 500;

/// One entry of `icrc1_supported_standards` / `icrc10_supported_standards`.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct StandardRecord {
    /// Standard name, e.g. "ICRC-1".
    pub name: String,
    /// Where the standard is specified.
    pub url: String,
}

/// Why a transaction was refused, before it is expressed in the error type
/// of the endpoint that was called.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Rejection {
    BadFee { expected_fee: u64 },
    BadBurn { min_burn_amount: u64 },
    InsufficientFunds { balance: u64 },
    InsufficientAllowance { allowance: u64 },
    AllowanceChanged { current_allowance: u64 },
    Expired { ledger_time: u64 },
    TooOld,
    CreatedInFuture { ledger_time: u64 },
    Duplicate { duplicate_of: u64 },
    Generic { code: u64, message: String },
}

fn generic(code: u64, message: impl Into<String>) -> Rejection {
    Rejection::Generic {
        code,
        message: message.into(),
    }
}

fn unexpected(r: Rejection) -> (Nat, String) {
    (
        nat(ERR_INTERNAL),
        format!("bug: unexpected rejection {r:?}"),
    )
}

/// Expresses a rejection in the error type of one endpoint: the variants
/// the ICRC error types share (same names, same fields), then the endpoint's
/// own `$extra` arms; a rejection the endpoint cannot give is a bug.
macro_rules! endpoint_error {
    ($error:ident, $rejection:expr, { $($extra:tt)* }) => {
        match $rejection {
            Rejection::BadFee { expected_fee } => $error::BadFee {
                expected_fee: nat(expected_fee),
            },
            Rejection::InsufficientFunds { balance } => $error::InsufficientFunds {
                balance: nat(balance),
            },
            Rejection::TooOld => $error::TooOld,
            Rejection::CreatedInFuture { ledger_time } => $error::CreatedInFuture { ledger_time },
            Rejection::Duplicate { duplicate_of } => $error::Duplicate {
                duplicate_of: nat(duplicate_of),
            },
            Rejection::Generic { code, message } => $error::GenericError {
                error_code: nat(code),
                message,
            },
            $($extra)*
            other => {
                let (error_code, message) = unexpected(other);
                $error::GenericError {
                    error_code,
                    message,
                }
            }
        }
    };
}

fn transfer_error(r: Rejection) -> TransferError {
    endpoint_error!(TransferError, r, {
        Rejection::BadBurn { min_burn_amount } => TransferError::BadBurn {
            min_burn_amount: nat(min_burn_amount),
        },
    })
}

fn transfer_from_error(r: Rejection) -> TransferFromError {
    endpoint_error!(TransferFromError, r, {
        Rejection::BadBurn { min_burn_amount } => TransferFromError::BadBurn {
            min_burn_amount: nat(min_burn_amount),
        },
        Rejection::InsufficientAllowance { allowance } => {
            TransferFromError::InsufficientAllowance {
                allowance: nat(allowance),
            }
        }
    })
}

fn approve_error(r: Rejection) -> ApproveError {
    endpoint_error!(ApproveError, r, {
        Rejection::AllowanceChanged { current_allowance } => ApproveError::AllowanceChanged {
            current_allowance: nat(current_allowance),
        },
        Rejection::Expired { ledger_time } => ApproveError::Expired { ledger_time },
    })
}

/// The dedup identity of a call: method, caller and the arguments exactly as
/// given (so `None` and an explicit default subaccount, fee or memo differ,
/// as the ICRC-1 standard's "structurally equal" asks).
fn tx_hash<T: CandidType>(method: &str, caller: &Principal, args: &T) -> TxHash {
    let encoded = candid::encode_one(args).expect("bug: call arguments do not re-encode");
    let mut hasher = Sha256::new();
    for part in [method.as_bytes(), caller.as_slice(), &encoded] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hasher.finalize().into()
}

fn check_memo(memo: Option<&Memo>) -> Result<(), Rejection> {
    match memo {
        Some(m) if m.0.len() > MAX_MEMO_LENGTH => Err(generic(
            ERR_MEMO_TOO_LONG,
            format!(
                "the memo is {} bytes long, more than the limit of {MAX_MEMO_LENGTH}",
                m.0.len()
            ),
        )),
        _ => Ok(()),
    }
}

/// Applies the ICRC-1 dedup rules; returns what to remember if the
/// transaction succeeds.
fn check_dedup(
    state: &State,
    created_at_time: Option<u64>,
    hash: impl FnOnce() -> TxHash,
    now: u64,
) -> Result<Option<(TxHash, u64)>, Rejection> {
    let Some(created) = created_at_time else {
        return Ok(None);
    };
    if created < now.saturating_sub(TX_WINDOW_NANOS + PERMITTED_DRIFT_NANOS) {
        return Err(Rejection::TooOld);
    }
    if created > now.saturating_add(PERMITTED_DRIFT_NANOS) {
        return Err(Rejection::CreatedInFuture { ledger_time: now });
    }
    let hash = hash();
    if let Some(duplicate_of) = state.find_duplicate(&hash) {
        return Err(Rejection::Duplicate { duplicate_of });
    }
    Ok(Some((hash, created)))
}

fn record(
    state: &mut State,
    operation: Operation,
    memo: Option<&Memo>,
    created_at_time: Option<u64>,
    dedup: Option<(TxHash, u64)>,
    now: u64,
) -> u64 {
    let index = state.append_block(&Block {
        timestamp: now,
        created_at_time,
        memo: memo.cloned(),
        operation,
    });
    if let Some((hash, created)) = dedup {
        state.remember(hash, created, index);
    }
    index
}

/// Credits `amount` of new tokens to `to`.
fn mint(state: &mut State, to: &Account, amount: u64) -> Result<(), Rejection> {
    let supply = state.total_supply().checked_add(amount).ok_or_else(|| {
        generic(
            ERR_SUPPLY_OVERFLOW,
            "the total supply would exceed the largest amount the ledger holds (u64)",
        )
    })?;
    let balance = state
        .balance(to)
        .checked_add(amount)
        .expect("bug: a balance exceeds the total supply");
    state.set_balance(to, balance);
    state.set_total_supply(supply);
    Ok(())
}

/// Removes `amount` (already debited from an account) from the total supply.
fn burn_from_supply(state: &mut State, amount: u64) {
    let supply = state
        .total_supply()
        .checked_sub(amount)
        .expect("bug: the total supply is below a balance");
    state.set_total_supply(supply);
}

/// A movement of tokens requested by `icrc1_transfer` or `icrc2_transfer_from`.
struct Movement<'a> {
    from: Account,
    to: Account,
    /// Set for `icrc2_transfer_from`.
    spender: Option<Account>,
    amount: &'a Nat,
    fee: Option<&'a Nat>,
    memo: Option<&'a Memo>,
    created_at_time: Option<u64>,
}

fn move_tokens(
    state: &mut State,
    m: Movement<'_>,
    hash: impl FnOnce() -> TxHash,
    now: u64,
) -> Result<u64, Rejection> {
    check_memo(m.memo)?;
    let config = state.config().clone();
    let minting = config.minting_account;
    let from_minting = m.from == minting;
    let to_minting = m.to == minting;
    if from_minting && to_minting {
        return Err(generic(
            ERR_MINTING_ACCOUNT,
            "the minting account cannot transfer to itself",
        ));
    }
    if from_minting && m.spender.is_some() {
        return Err(generic(
            ERR_MINTING_ACCOUNT,
            "the minting account cannot delegate mints",
        ));
    }
    // Mints and burns carry no fee; everything else pays the ledger fee.
    let expected_fee = if from_minting || to_minting {
        0
    } else {
        config.fee
    };
    if let Some(fee) = m.fee
        && to_u64(fee) != Some(expected_fee)
    {
        return Err(Rejection::BadFee { expected_fee });
    }
    let amount = to_u64(m.amount);
    if to_minting
        && let Some(a) = amount
        && a < config.fee
    {
        return Err(Rejection::BadBurn {
            min_burn_amount: config.fee,
        });
    }
    let dedup = check_dedup(state, m.created_at_time, hash, now)?;

    let operation = if from_minting {
        let amount = amount.ok_or_else(|| {
            generic(
                ERR_SUPPLY_OVERFLOW,
                "the amount exceeds the largest amount the ledger holds (u64)",
            )
        })?;
        mint(state, &m.to, amount)?;
        Operation::Mint { to: m.to, amount }
    } else {
        let debit = amount.and_then(|a| a.checked_add(expected_fee));
        let spender = m.spender.filter(|s| *s != m.from);
        let allowance = spender.map(|s| state.allowance(&m.from, &s, now));
        if let Some(allowance) = allowance
            && debit.is_none_or(|d| allowance.amount < d)
        {
            return Err(Rejection::InsufficientAllowance {
                allowance: allowance.amount,
            });
        }
        let balance = state.balance(&m.from);
        let (amount, debit) = match (amount, debit) {
            (Some(a), Some(d)) if d <= balance => (a, d),
            _ => return Err(Rejection::InsufficientFunds { balance }),
        };
        state.set_balance(&m.from, balance - debit);
        if let (Some(spender), Some(allowance)) = (spender, allowance) {
            state.set_allowance(
                &m.from,
                &spender,
                StoredAllowance {
                    amount: allowance.amount - debit,
                    expires_at: allowance.expires_at,
                },
            );
        }
        if to_minting {
            burn_from_supply(state, amount);
            Operation::Burn {
                from: m.from,
                spender: m.spender,
                amount,
            }
        } else {
            // Read after the debit so that a transfer to oneself adds up.
            let to_balance = state
                .balance(&m.to)
                .checked_add(amount)
                .expect("bug: a balance exceeds the total supply");
            state.set_balance(&m.to, to_balance);
            burn_from_supply(state, expected_fee);
            Operation::Transfer {
                from: m.from,
                to: m.to,
                spender: m.spender,
                amount,
                fee: expected_fee,
            }
        }
    };
    Ok(record(
        state,
        operation,
        m.memo,
        m.created_at_time,
        dedup,
        now,
    ))
}

/// Sets up a fresh ledger: stores the configuration and mints the initial
/// balances, one mint block each.
pub fn install(state: &mut State, args: &InitArgs, now: u64) -> Result<(), InvalidArg> {
    let config = args.config()?;
    let minting = config.minting_account;
    let mut balances = Vec::with_capacity(args.initial_balances.len());
    let mut sum: u64 = 0;
    for (account, amount) in &args.initial_balances {
        if *account == minting {
            return Err(InvalidArg(
                "the minting account cannot hold an initial balance".into(),
            ));
        }
        let amount =
            to_u64(amount).ok_or_else(|| InvalidArg("initial balance above u64".into()))?;
        sum = sum
            .checked_add(amount)
            .ok_or_else(|| InvalidArg("initial balances sum above u64".into()))?;
        balances.push((*account, amount));
    }
    state.set_config(config);
    for (account, amount) in balances {
        mint(state, &account, amount).expect("bug: initial balances were summed above");
        record(
            state,
            Operation::Mint {
                to: account,
                amount,
            },
            None,
            None,
            None,
            now,
        );
    }
    Ok(())
}

/// Applies an upgrade argument; the state itself is kept as it is.
pub fn upgrade(state: &mut State, args: Option<&UpgradeArgs>) -> Result<(), InvalidArg> {
    if !state.is_installed() {
        return Err(InvalidArg(
            "upgrade of a ledger that was never installed".into(),
        ));
    }
    if let Some(args) = args {
        let mut config = state.config().clone();
        args.apply(&mut config)?;
        state.set_config(config);
    }
    Ok(())
}

/// `icrc1_transfer`: moves `arg.amount` from the caller's account; a
/// transfer from the minting account mints, one to it burns.
pub fn transfer(
    state: &mut State,
    caller: Principal,
    arg: &TransferArg,
    now: u64,
) -> Result<u64, TransferError> {
    state.prune(now);
    let movement = Movement {
        from: Account {
            owner: caller,
            subaccount: arg.from_subaccount,
        },
        to: arg.to,
        spender: None,
        amount: &arg.amount,
        fee: arg.fee.as_ref(),
        memo: arg.memo.as_ref(),
        created_at_time: arg.created_at_time,
    };
    move_tokens(
        state,
        movement,
        || tx_hash("icrc1_transfer", &caller, arg),
        now,
    )
    .map_err(transfer_error)
}

/// `icrc2_transfer_from`: moves tokens from `arg.from` using the allowance
/// of the caller's account (none is needed when that account is `from`);
/// the allowance shrinks by amount plus fee.
pub fn transfer_from(
    state: &mut State,
    caller: Principal,
    arg: &TransferFromArgs,
    now: u64,
) -> Result<u64, TransferFromError> {
    state.prune(now);
    let movement = Movement {
        from: arg.from,
        to: arg.to,
        spender: Some(Account {
            owner: caller,
            subaccount: arg.spender_subaccount,
        }),
        amount: &arg.amount,
        fee: arg.fee.as_ref(),
        memo: arg.memo.as_ref(),
        created_at_time: arg.created_at_time,
    };
    move_tokens(
        state,
        movement,
        || tx_hash("icrc2_transfer_from", &caller, arg),
        now,
    )
    .map_err(transfer_from_error)
}

/// `icrc2_approve`: sets the allowance of `args.spender` on the caller's
/// account (replacing any earlier one) and charges the fee.
pub fn approve(
    state: &mut State,
    caller: Principal,
    args: &ApproveArgs,
    now: u64,
) -> Result<u64, ApproveError> {
    state.prune(now);
    approve_inner(state, caller, args, now).map_err(approve_error)
}

fn approve_inner(
    state: &mut State,
    caller: Principal,
    args: &ApproveArgs,
    now: u64,
) -> Result<u64, Rejection> {
    check_memo(args.memo.as_ref())?;
    let config = state.config().clone();
    let from = Account {
        owner: caller,
        subaccount: args.from_subaccount,
    };
    if from == config.minting_account {
        return Err(generic(
            ERR_MINTING_ACCOUNT,
            "the minting account cannot delegate mints",
        ));
    }
    if args.spender.owner == caller {
        return Err(generic(ERR_SELF_APPROVAL, "self approval is not allowed"));
    }
    if let Some(fee) = &args.fee
        && to_u64(fee) != Some(config.fee)
    {
        return Err(Rejection::BadFee {
            expected_fee: config.fee,
        });
    }
    if let Some(expires_at) = args.expires_at
        && expires_at <= now
    {
        return Err(Rejection::Expired { ledger_time: now });
    }
    let dedup = check_dedup(
        state,
        args.created_at_time,
        || tx_hash("icrc2_approve", &caller, args),
        now,
    )?;
    let balance = state.balance(&from);
    if balance < config.fee {
        return Err(Rejection::InsufficientFunds { balance });
    }
    let current = state.allowance(&from, &args.spender, now);
    let expected_allowance = match &args.expected_allowance {
        None => None,
        Some(expected) => match to_u64(expected) {
            Some(e) if e == current.amount => Some(e),
            _ => {
                return Err(Rejection::AllowanceChanged {
                    current_allowance: current.amount,
                });
            }
        },
    };
    // An allowance above what any account can hold is capped (ICRC-2 allows it).
    let amount = to_u64(&args.amount).unwrap_or(u64::MAX);
    state.set_balance(&from, balance - config.fee);
    burn_from_supply(state, config.fee);
    state.set_allowance(
        &from,
        &args.spender,
        StoredAllowance {
            amount,
            expires_at: args.expires_at,
        },
    );
    Ok(record(
        state,
        Operation::Approve {
            from,
            spender: args.spender,
            amount,
            expected_allowance,
            expires_at: args.expires_at,
            fee: config.fee,
        },
        args.memo.as_ref(),
        args.created_at_time,
        dedup,
        now,
    ))
}

/// `icrc2_allowance`: the allowance in force at `now` (none once expired).
pub fn allowance(state: &State, args: &AllowanceArgs, now: u64) -> Allowance {
    let a = state.allowance(&args.account, &args.spender, now);
    Allowance {
        allowance: nat(a.amount),
        expires_at: a.expires_at,
    }
}

/// `icrc1_metadata`: the standard `icrc1:` entries.
pub fn metadata(state: &State) -> Vec<(String, MetadataValue)> {
    let c = state.config();
    vec![
        (
            "icrc1:name".into(),
            MetadataValue::Text(c.token_name.clone()),
        ),
        (
            "icrc1:symbol".into(),
            MetadataValue::Text(c.token_symbol.clone()),
        ),
        (
            "icrc1:decimals".into(),
            MetadataValue::Nat(Nat::from(c.decimals)),
        ),
        ("icrc1:fee".into(), MetadataValue::Nat(nat(c.fee))),
        (
            "icrc1:max_memo_length".into(),
            MetadataValue::Nat(Nat::from(MAX_MEMO_LENGTH)),
        ),
    ]
}

/// The standards this ledger implements.
pub fn supported_standards() -> Vec<StandardRecord> {
    [
        (
            "ICRC-1",
            "https://github.com/dfinity/ICRC-1/tree/main/standards/ICRC-1",
        ),
        (
            "ICRC-2",
            "https://github.com/dfinity/ICRC-1/tree/main/standards/ICRC-2",
        ),
        (
            "ICRC-3",
            "https://github.com/dfinity/ICRC-1/tree/main/standards/ICRC-3",
        ),
        (
            "ICRC-10",
            "https://github.com/dfinity/ICRC/blob/main/ICRCs/ICRC-10/ICRC-10.md",
        ),
    ]
    .into_iter()
    .map(|(name, url)| StandardRecord {
        name: name.into(),
        url: url.into(),
    })
    .collect()
}
