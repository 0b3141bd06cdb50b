//! Stand-ins for two of mainnet's system canisters, served natively like
//! the management canister (no wasm): the cycles ledger
//! (`um5iw-rqaaa-aaaaq-qaaba-cai`) and the cycles minting canister
//! (`rkp4c-7iaaa-aaaaa-aaaca-cai`), with the Candid types of the real ones
//! for the methods deployment tools call. icp-cli creates canisters through
//! them: it asks the CMC for the subnets, then the ledger's
//! `create_canister`; it tops canisters up with the ledger's `withdraw`, and
//! deposits a deleted canister's cycles back with `deposit`.
//!
//! The ledger keeps balances and a block counter, no blocks: no
//! deduplication, no ICRC-2 approvals, no ICRC-3 history. Accounts get
//! cycles from [`Devnet::mint_cycles`] (the server's `--cycles` flag).

use std::collections::BTreeMap;

use candid::{CandidType, Decode, Deserialize, Encode, Nat, Principal};
use ic_management_canister_types::CanisterSettings;
use icrc_ledger_types::icrc::generic_metadata_value::MetadataValue;
use icrc_ledger_types::icrc1::transfer::TransferError;
use serde::Serialize;

use crate::Devnet;
use crate::error::{ErrorCode, Reject};

/// The cycles ledger's id on mainnet, where the devnet serves its stand-in.
pub const CYCLES_LEDGER_ID: Principal = Principal::from_slice(&[0, 0, 0, 0, 2, 16, 0, 2, 1, 1]);
/// The cycles minting canister's id on mainnet, where the devnet serves its
/// stand-in.
pub const CMC_ID: Principal = Principal::from_slice(&[0, 0, 0, 0, 0, 0, 0, 4, 1, 1]);
/// The cycles ledger's fee per operation (100 million cycles).
pub const CYCLES_LEDGER_FEE: u128 = 100_000_000;
/// What the IC charges to create a canister on a 13-node application subnet
/// (0.5 T cycles); the new canister gets the attached cycles less this.
pub const CANISTER_CREATION_FEE: u128 = 500_000_000_000;

/// How far `created_at_time` may lie in the past (24 h) or the future (2 min).
const TX_WINDOW_NANOS: u64 = 24 * 3600 * 1_000_000_000;
const PERMITTED_DRIFT_NANOS: u64 = 120 * 1_000_000_000;

/// An ICRC-1 account of the cycles ledger.
#[derive(
    CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
pub struct Account {
    /// The owner.
    pub owner: Principal,
    /// A 32-byte subaccount; `None` is the default (all zeros).
    pub subaccount: Option<serde_bytes::ByteBuf>,
}

/// The default account of `owner`.
pub fn cycles_account(owner: Principal) -> Account {
    Account {
        owner,
        subaccount: None,
    }
}

impl Account {
    /// The same account with `None` and the all-zero subaccount made equal.
    fn normalized(mut self) -> Account {
        if self
            .subaccount
            .as_ref()
            .is_some_and(|s| s.iter().all(|b| *b == 0))
        {
            self.subaccount = None;
        }
        self
    }
}

/// The ledger's balances and block counter (saved with the state).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct CyclesLedger {
    balances: BTreeMap<Account, u128>,
    next_block: u64,
}

impl CyclesLedger {
    fn balance(&self, account: &Account) -> u128 {
        self.balances
            .get(&account.clone().normalized())
            .copied()
            .unwrap_or(0)
    }

    fn set(&mut self, account: Account, balance: u128) {
        let account = account.normalized();
        if balance == 0 {
            self.balances.remove(&account);
        } else {
            self.balances.insert(account, balance);
        }
    }

    /// Takes `amount` from `account`, or answers its balance if it holds less.
    fn debit(&mut self, account: &Account, amount: u128) -> Result<(), u128> {
        let balance = self.balance(account);
        let rest = balance.checked_sub(amount).ok_or(balance)?;
        self.set(account.clone(), rest);
        Ok(())
    }

    /// Adds `amount` to `account`; `Err` if the balance would overflow.
    fn credit(&mut self, account: &Account, amount: u128) -> Result<u128, ()> {
        let new = self.balance(account).checked_add(amount).ok_or(())?;
        self.set(account.clone(), new);
        Ok(new)
    }

    fn block(&mut self) -> Nat {
        let b = self.next_block;
        self.next_block += 1;
        Nat::from(b)
    }

    fn total_supply(&self) -> u128 {
        self.balances
            .values()
            .fold(0u128, |sum, b| sum.saturating_add(*b))
    }

    pub fn entries(&self) -> (Vec<(Account, u128)>, u64) {
        (
            self.balances.iter().map(|(a, b)| (a.clone(), *b)).collect(),
            self.next_block,
        )
    }

    pub fn from_entries(balances: Vec<(Account, u128)>, next_block: u64) -> Self {
        CyclesLedger {
            balances: balances.into_iter().collect(),
            next_block,
        }
    }
}

#[derive(CandidType, Deserialize)]
struct TransferArg {
    from_subaccount: Option<serde_bytes::ByteBuf>,
    to: Account,
    fee: Option<Nat>,
    created_at_time: Option<u64>,
    memo: Option<serde_bytes::ByteBuf>,
    amount: Nat,
}

#[derive(CandidType, Deserialize)]
struct DepositArgs {
    to: Account,
    memo: Option<serde_bytes::ByteBuf>,
}

#[derive(CandidType, Deserialize)]
struct DepositResult {
    block_index: Nat,
    balance: Nat,
}

#[derive(CandidType, Deserialize)]
struct WithdrawArgs {
    amount: Nat,
    from_subaccount: Option<serde_bytes::ByteBuf>,
    to: Principal,
    created_at_time: Option<u64>,
}

#[derive(CandidType, Deserialize, Debug)]
#[allow(dead_code)] // variants of the real interface the devnet never answers
enum RejectionCode {
    NoError,
    CanisterError,
    SysTransient,
    DestinationInvalid,
    Unknown,
    SysFatal,
    CanisterReject,
}

#[derive(CandidType, Deserialize, Debug)]
#[allow(dead_code)]
enum WithdrawError {
    GenericError {
        message: String,
        error_code: Nat,
    },
    TemporarilyUnavailable,
    FailedToWithdraw {
        fee_block: Option<Nat>,
        rejection_code: RejectionCode,
        rejection_reason: String,
    },
    Duplicate {
        duplicate_of: Nat,
    },
    BadFee {
        expected_fee: Nat,
    },
    InvalidReceiver {
        receiver: Principal,
    },
    CreatedInFuture {
        ledger_time: u64,
    },
    TooOld,
    InsufficientFunds {
        balance: Nat,
    },
}

#[derive(CandidType, Deserialize, Clone, Debug)]
enum SubnetSelection {
    Filter { subnet_type: Option<String> },
    Subnet { subnet: Principal },
}

#[derive(CandidType, Deserialize)]
struct CreationArgs {
    subnet_selection: Option<SubnetSelection>,
    settings: Option<CanisterSettings>,
}

#[derive(CandidType, Deserialize)]
struct CreateCanisterArgs {
    from_subaccount: Option<serde_bytes::ByteBuf>,
    created_at_time: Option<u64>,
    amount: Nat,
    creation_args: Option<CreationArgs>,
}

#[derive(CandidType, Deserialize)]
struct CreateCanisterSuccess {
    block_id: Nat,
    canister_id: Principal,
}

#[derive(CandidType, Deserialize, Debug)]
#[allow(dead_code)]
enum CreateCanisterError {
    InsufficientFunds {
        balance: Nat,
    },
    TooOld,
    CreatedInFuture {
        ledger_time: u64,
    },
    TemporarilyUnavailable,
    Duplicate {
        duplicate_of: Nat,
        canister_id: Option<Principal>,
    },
    FailedToCreate {
        fee_block: Option<Nat>,
        refund_block: Option<Nat>,
        error: String,
    },
    GenericError {
        error_code: Nat,
        message: String,
    },
}

#[derive(CandidType, Deserialize)]
struct IcpXdrConversionRate {
    timestamp_seconds: u64,
    xdr_permyriad_per_icp: u64,
}

#[derive(CandidType, Deserialize)]
struct IcpXdrConversionRateResponse {
    data: IcpXdrConversionRate,
    hash_tree: serde_bytes::ByteBuf,
    certificate: serde_bytes::ByteBuf,
}

/// The subnet id the devnet names before it is told one.
pub(crate) const DEFAULT_SUBNET_ID: Principal = Principal::from_slice(&[
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
]);

fn nat_u128(n: &Nat) -> Option<u128> {
    u128::try_from(n.0.clone()).ok()
}

fn encode<T: CandidType>(value: &T) -> Vec<u8> {
    Encode!(value).expect("encoding a cycles canister reply")
}

fn bad_arg(e: candid::Error) -> Reject {
    Reject::error(
        ErrorCode::CanisterCalledTrap,
        format!("Canister called `ic0.trap` with message: failed to decode the argument: {e}"),
    )
}

fn no_method(canister: Principal, method: &str) -> Reject {
    Reject::error(
        ErrorCode::CanisterMethodNotFound,
        format!("Canister {canister} has no update method '{method}'"),
    )
}

fn trap(message: &str) -> Reject {
    Reject::error(
        ErrorCode::CanisterCalledTrap,
        format!("Canister called `ic0.trap` with message: {message}"),
    )
}

/// Whether `created_at_time` is acceptable at `now`: `Err(true)` too old,
/// `Err(false)` in the future.
fn check_time(created_at_time: Option<u64>, now: u64) -> Result<(), bool> {
    match created_at_time {
        Some(t) if t.saturating_add(TX_WINDOW_NANOS + PERMITTED_DRIFT_NANOS) < now => Err(true),
        Some(t) if t > now.saturating_add(PERMITTED_DRIFT_NANOS) => Err(false),
        _ => Ok(()),
    }
}

impl Devnet {
    /// Whether `canister` is one of the natively served cycles canisters.
    pub(crate) fn is_cycles_canister(&self, canister: Principal) -> bool {
        canister == CYCLES_LEDGER_ID || canister == CMC_ID
    }

    /// The subnet id the devnet reports (the CMC's `get_default_subnets`).
    pub fn subnet_id(&self) -> Principal {
        self.subnet_id
    }

    /// Sets the subnet id the devnet reports (the HTTP server uses the
    /// self-authenticating principal of its root key, as ic-agent expects).
    pub fn set_subnet_id(&mut self, subnet: Principal) {
        self.subnet_id = subnet;
    }

    /// Credits `amount` cycles to the cycles ledger account `account`, out
    /// of thin air (as a faucet or `icp cycles mint` would).
    pub fn mint_cycles(&mut self, account: Account, amount: u128) {
        let balance = self.ledger.balance(&account);
        self.ledger.set(account, balance.saturating_add(amount));
        self.ledger.block();
    }

    /// The cycles ledger balance of `account`.
    pub fn cycles_ledger_balance(&self, account: &Account) -> u128 {
        self.ledger.balance(account)
    }

    /// `deposit_cycles` of the management canister: the attached cycles
    /// go to the canister named.
    pub(crate) fn deposit_cycles(
        &mut self,
        arg: &[u8],
        cycles: u128,
    ) -> (Result<Vec<u8>, Reject>, u128) {
        let args = match Decode!(arg, ic_management_canister_types::CanisterIdRecord) {
            Ok(a) => a,
            Err(e) => return (Err(crate::management::bad_arg(e)), cycles),
        };
        match self.canisters.get_mut(&args.canister_id) {
            None => (Err(crate::management::not_found(args.canister_id)), cycles),
            Some(c) => {
                c.balance = c.balance.saturating_add(cycles);
                (Ok(encode(&())), 0)
            }
        }
    }

    /// A query to the CMC or the cycles ledger.
    pub(crate) fn cycles_query(
        &self,
        canister: Principal,
        method: &str,
        arg: &[u8],
    ) -> Result<Vec<u8>, Reject> {
        if canister == CMC_ID {
            return match method {
                "get_default_subnets" => Ok(encode(&vec![self.subnet_id])),
                "get_icp_xdr_conversion_rate" => Ok(encode(&IcpXdrConversionRateResponse {
                    data: IcpXdrConversionRate {
                        timestamp_seconds: self.time / 1_000_000_000,
                        // 1 ICP = 5 XDR, a round figure for a devnet.
                        xdr_permyriad_per_icp: crate::top_up::XDR_PERMYRIAD_PER_ICP,
                    },
                    hash_tree: Default::default(),
                    certificate: Default::default(),
                })),
                other => Err(no_method(canister, other)),
            };
        }
        match method {
            "icrc1_balance_of" => {
                let account = Decode!(arg, Account).map_err(bad_arg)?;
                Ok(encode(&Nat::from(self.ledger.balance(&account))))
            }
            "icrc1_fee" => Ok(encode(&Nat::from(CYCLES_LEDGER_FEE))),
            "icrc1_decimals" => Ok(encode(&12u8)),
            "icrc1_symbol" => Ok(encode(&"TCYCLES")),
            "icrc1_name" => Ok(encode(&"Trillion Cycles")),
            "icrc1_total_supply" => Ok(encode(&Nat::from(self.ledger.total_supply()))),
            "icrc1_minting_account" => Ok(encode(&None::<Account>)),
            "icrc1_metadata" => Ok(encode(&vec![
                ("icrc1:decimals", MetadataValue::Nat(Nat::from(12u8))),
                ("icrc1:name", MetadataValue::Text("Trillion Cycles".into())),
                ("icrc1:symbol", MetadataValue::Text("TCYCLES".into())),
                (
                    "icrc1:fee",
                    MetadataValue::Nat(Nat::from(CYCLES_LEDGER_FEE)),
                ),
                ("icrc1:max_memo_length", MetadataValue::Nat(Nat::from(32u8))),
            ])),
            other => Err(no_method(canister, other)),
        }
    }

    /// An update call to the CMC or the cycles ledger, with `cycles`
    /// attached; returns the answer and the cycles refunded.
    pub(crate) fn cycles_call(
        &mut self,
        caller: Principal,
        canister: Principal,
        method: &str,
        arg: &[u8],
        cycles: u128,
    ) -> (Result<Vec<u8>, Reject>, u128) {
        if canister == CMC_ID {
            if method == "notify_top_up" {
                return (self.cmc_notify_top_up(arg), cycles);
            }
            return (self.cycles_query(canister, method, arg), cycles);
        }
        match method {
            "icrc1_transfer" => (self.ledger_transfer(caller, arg), cycles),
            "deposit" => self.ledger_deposit(arg, cycles),
            "withdraw" => (self.ledger_withdraw(caller, arg), cycles),
            "create_canister" => (self.ledger_create_canister(caller, arg), cycles),
            _ => (self.cycles_query(canister, method, arg), cycles),
        }
    }

    fn ledger_transfer(&mut self, caller: Principal, arg: &[u8]) -> Result<Vec<u8>, Reject> {
        let args = Decode!(arg, TransferArg).map_err(bad_arg)?;
        let result = (|| {
            if args.memo.as_ref().is_some_and(|m| m.len() > 32) {
                return Err(TransferError::GenericError {
                    error_code: Nat::from(0u8),
                    message: "the memo is longer than 32 bytes".into(),
                });
            }
            if let Some(fee) = &args.fee
                && nat_u128(fee) != Some(CYCLES_LEDGER_FEE)
            {
                return Err(TransferError::BadFee {
                    expected_fee: Nat::from(CYCLES_LEDGER_FEE),
                });
            }
            match check_time(args.created_at_time, self.time) {
                Err(true) => return Err(TransferError::TooOld),
                Err(false) => {
                    return Err(TransferError::CreatedInFuture {
                        ledger_time: self.time,
                    });
                }
                Ok(()) => {}
            }
            let from = Account {
                owner: caller,
                subaccount: args.from_subaccount.clone(),
            };
            let amount = nat_u128(&args.amount);
            let balance = self.ledger.balance(&from);
            let total = amount.and_then(|a| a.checked_add(CYCLES_LEDGER_FEE));
            let Some(total) = total.filter(|t| *t <= balance) else {
                return Err(TransferError::InsufficientFunds {
                    balance: Nat::from(balance),
                });
            };
            let amount = amount.expect("checked above");
            let to_balance = self.ledger.balance(&args.to);
            if to_balance.checked_add(amount).is_none() {
                return Err(TransferError::GenericError {
                    error_code: Nat::from(0u8),
                    message: "the receiver's balance would overflow".into(),
                });
            }
            self.ledger.debit(&from, total).expect("checked above");
            self.ledger.credit(&args.to, amount).expect("checked above");
            Ok(self.ledger.block())
        })();
        Ok(encode(&result))
    }

    fn ledger_deposit(&mut self, arg: &[u8], cycles: u128) -> (Result<Vec<u8>, Reject>, u128) {
        let args = match Decode!(arg, DepositArgs) {
            Ok(a) => a,
            Err(e) => return (Err(bad_arg(e)), cycles),
        };
        if cycles <= CYCLES_LEDGER_FEE {
            return (Err(trap("deposit amount is insufficient")), cycles);
        }
        if args.memo.as_ref().is_some_and(|m| m.len() > 32) {
            return (Err(trap("memo length exceeds the maximum")), cycles);
        }
        match self.ledger.credit(&args.to, cycles) {
            Ok(balance) => {
                let block_index = self.ledger.block();
                let reply = DepositResult {
                    block_index,
                    balance: Nat::from(balance),
                };
                (Ok(encode(&reply)), 0)
            }
            Err(()) => (Err(trap("the balance would overflow")), cycles),
        }
    }

    /// Takes `amount` plus the fee from the caller's account, checking the
    /// time and the balance as the ledger does.
    fn ledger_burn(
        &mut self,
        from: &Account,
        amount: &Nat,
        created_at_time: Option<u64>,
    ) -> Result<u128, BurnError> {
        match check_time(created_at_time, self.time) {
            Err(true) => return Err(BurnError::TooOld),
            Err(false) => return Err(BurnError::CreatedInFuture(self.time)),
            Ok(()) => {}
        }
        let balance = self.ledger.balance(from);
        let amount = nat_u128(amount);
        let total = amount.and_then(|a| a.checked_add(CYCLES_LEDGER_FEE));
        match total {
            Some(total) if total <= balance => {
                self.ledger.debit(from, total).expect("checked above");
                Ok(amount.expect("checked above"))
            }
            _ => Err(BurnError::InsufficientFunds(balance)),
        }
    }

    fn ledger_withdraw(&mut self, caller: Principal, arg: &[u8]) -> Result<Vec<u8>, Reject> {
        let args = Decode!(arg, WithdrawArgs).map_err(bad_arg)?;
        let from = Account {
            owner: caller,
            subaccount: args.from_subaccount,
        };
        let result: Result<Nat, WithdrawError> = (|| {
            if !self.canisters.contains_key(&args.to) {
                return Err(WithdrawError::InvalidReceiver { receiver: args.to });
            }
            let amount = self
                .ledger_burn(&from, &args.amount, args.created_at_time)
                .map_err(|e| match e {
                    BurnError::TooOld => WithdrawError::TooOld,
                    BurnError::CreatedInFuture(t) => {
                        WithdrawError::CreatedInFuture { ledger_time: t }
                    }
                    BurnError::InsufficientFunds(b) => WithdrawError::InsufficientFunds {
                        balance: Nat::from(b),
                    },
                })?;
            let c = self.canisters.get_mut(&args.to).expect("checked above");
            c.balance = c.balance.saturating_add(amount);
            Ok(self.ledger.block())
        })();
        Ok(encode(&result))
    }

    fn ledger_create_canister(&mut self, caller: Principal, arg: &[u8]) -> Result<Vec<u8>, Reject> {
        let args = Decode!(arg, CreateCanisterArgs).map_err(bad_arg)?;
        let from = Account {
            owner: caller,
            subaccount: args.from_subaccount,
        };
        let (selection, settings) = match args.creation_args {
            Some(c) => (c.subnet_selection, c.settings.unwrap_or_default()),
            None => (None, CanisterSettings::default()),
        };
        let result: Result<CreateCanisterSuccess, CreateCanisterError> = (|| {
            let amount = self
                .ledger_burn(&from, &args.amount, args.created_at_time)
                .map_err(|e| match e {
                    BurnError::TooOld => CreateCanisterError::TooOld,
                    BurnError::CreatedInFuture(t) => {
                        CreateCanisterError::CreatedInFuture { ledger_time: t }
                    }
                    BurnError::InsufficientFunds(b) => CreateCanisterError::InsufficientFunds {
                        balance: Nat::from(b),
                    },
                })?;
            let fee_block = self.ledger.block();
            let created = self.cmc_create_canister(caller, selection, settings, amount);
            match created {
                Ok(canister_id) => Ok(CreateCanisterSuccess {
                    block_id: fee_block,
                    canister_id,
                }),
                Err(error) => {
                    // The amount comes back; the fee stays burned.
                    self.ledger
                        .credit(&from, amount)
                        .expect("it was just debited");
                    let refund_block = self.ledger.block();
                    Err(CreateCanisterError::FailedToCreate {
                        fee_block: Some(fee_block),
                        refund_block: Some(refund_block),
                        error,
                    })
                }
            }
        })();
        Ok(encode(&result))
    }

    /// The CMC's part of a creation: the subnet chosen must be the devnet's,
    /// the cycles must cover the creation fee.
    fn cmc_create_canister(
        &mut self,
        caller: Principal,
        selection: Option<SubnetSelection>,
        settings: CanisterSettings,
        cycles: u128,
    ) -> Result<Principal, String> {
        match selection {
            Some(SubnetSelection::Subnet { subnet }) if subnet != self.subnet_id => {
                return Err(format!(
                    "Subnet {subnet} does not exist or is not authorized"
                ));
            }
            Some(SubnetSelection::Filter {
                subnet_type: Some(t),
            }) if t != "application" => {
                return Err(format!("No subnets of type {t} are available"));
            }
            _ => {}
        }
        let Some(left) = cycles.checked_sub(CANISTER_CREATION_FEE) else {
            return Err(format!(
                "Insufficient cycles attached: {cycles} cycles, the creation costs {CANISTER_CREATION_FEE}"
            ));
        };
        let id = self
            .create_canister_with_settings(caller, settings)
            .map_err(|r| r.message)?;
        let c = self.canisters.get_mut(&id).expect("just created");
        c.balance = left;
        c.burned
            .add(crate::costs::Burn::Creation, CANISTER_CREATION_FEE);
        Ok(id)
    }
}

enum BurnError {
    TooOld,
    CreatedInFuture(u64),
    InsufficientFunds(u128),
}
