//! What `market sns` prints: Candid values to paste into proposal tools,
//! with comments for the proposers and voters.

use candid::Principal;
use market_api::escrow::{NotifyDepositArgs, deposit_subaccount};
use market_api::matcher::reservation_cost;
use market_api::prices::{Currency, format_xdr};
use market_api::sns::{
    ExecuteGenericNervousSystemFunction, SNS_ACTIONS, SnsAction, Topic, function, target_method,
    topic, validator_method,
};
use market_api::{Account, Tokens};
use market_client::client::describe_matcher;
use market_client::client::prices::{Quote, format_rate};
use market_client::client::tokens::format_tokens;
use market_client::config::{LOCAL_URL, MAINNET_URL};

use super::checks::{check_function_id, check_principal};
use super::wire::{SnsSubaccount, TransferSnsTreasuryFunds};
use super::{ICP_TREASURY, PAYLOAD_SOFT_LIMIT};
use crate::BuyerError;
use crate::candid_text::{candid_line, candid_text};
use crate::request::{audit_ppm_of, format_ppm, job_lock};

/// What `sns fund` moves: from whose treasury, how much, with which memo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fund {
    /// The DAO's SNS governance canister (its escrow balance is credited).
    pub governance: Principal,
    /// Amount in e8s.
    pub amount: Tokens,
    /// Memo of the ledger transfer.
    pub memo: Option<u64>,
}

/// Why an action has its topic, for the proposers.
fn topic_line(action: &str) -> String {
    match topic(action) {
        Topic::TreasuryAssetManagement => format!(
            "topic TreasuryAssetManagement (critical: yes votes of at least 20% of the voting \
             power and 67% of the votes cast): {action} {}",
            if action == "withdraw" {
                "moves funds out of the DAO's escrow balance"
            } else {
                "locks funds of the DAO's escrow balance"
            }
        ),
        t => format!(
            "topic {t:?} (not critical: 3% of the voting power and a majority): {action} moves \
             no funds"
        ),
    }
}

/// `market sns functions`: one AddGenericNervousSystemFunction value per
/// action, ids from `first_id` on.
pub fn functions_text(matcher: Principal, first_id: u64) -> Result<String, BuyerError> {
    check_function_id(first_id, "--first-id")?;
    let mut out = format!(
        "// The matcher's DAO actions as SNS generic functions: one proposal each, with the\n\
         // action `variant {{ AddGenericNervousSystemFunction = <record> }}`. Target and\n\
         // validator are the matcher {matcher}; topics need an SNS version with\n\
         // custom-proposal topics. The matcher must also register the DAO's governance.\n"
    );
    for (i, action) in SNS_ACTIONS.iter().enumerate() {
        let id = first_id
            .checked_add(i as u64)
            .ok_or_else(|| BuyerError::Request("--first-id: too large".into()))?;
        out.push_str(&format!(
            "\n// {id} {}: {}\n",
            target_method(action),
            topic_line(action)
        ));
        out.push_str(&candid_text(&function(matcher, action, id)));
        out.push('\n');
    }
    Ok(out)
}

/// What `sns fund` needs besides its flags.
pub struct FundTarget {
    /// The escrow canister.
    pub escrow: Principal,
    /// The ICP ledger (the DAO's ICP treasury is on it).
    pub ledger: Principal,
    /// The network URL, for the printed call.
    pub network: String,
}

/// The treasury transfer that credits `args.amount` to the DAO's escrow
/// balance once notified.
pub fn treasury_transfer(
    args: &Fund,
    escrow: Principal,
) -> Result<TransferSnsTreasuryFunds, BuyerError> {
    check_principal("--governance", &args.governance)?;
    let subaccount = deposit_subaccount(args.governance)
        .expect("BUG: a non-empty principal has a deposit subaccount");
    let amount_e8s = u64::try_from(args.amount).map_err(|_| {
        BuyerError::Request("--amount: more than a treasury transfer can move".into())
    })?;
    Ok(TransferSnsTreasuryFunds {
        from_treasury: ICP_TREASURY,
        to_principal: Some(escrow),
        to_subaccount: Some(SnsSubaccount {
            subaccount: subaccount.to_vec(),
        }),
        memo: args.memo,
        amount_e8s,
    })
}

fn network_flag(url: &str) -> String {
    let url = url.trim_end_matches('/');
    if url == MAINNET_URL || url == "https://ic0.app" || url == "https://icp0.io" {
        "--network ic".into()
    } else if url == LOCAL_URL {
        "--network local".into()
    } else {
        format!("--network {url}")
    }
}

/// `market sns fund`.
pub fn fund_text(args: &Fund, target: &FundTarget) -> Result<String, BuyerError> {
    let transfer = treasury_transfer(args, target.escrow)?;
    let account = Account {
        owner: target.escrow,
        subaccount: deposit_subaccount(args.governance),
    };
    let notify = NotifyDepositArgs {
        ledger: target.ledger,
        beneficiary: args.governance,
    };
    let notify_arg = format!("({})", candid_line(&notify));
    Ok(format!(
        "// TransferSnsTreasuryFunds: {} from the ICP treasury of the DAO governed by\n\
         // {} to the escrow's deposit account for it. One proposal with the action\n\
         // `variant {{ TransferSnsTreasuryFunds = <record> }}` (topic TreasuryAssetManagement:\n\
         // critical); the treasury pays the ledger fee on top.\n\
         {}\n\
         \n\
         // The same account, ICRC-1 text: {account}\n\
         // (its legacy ICP account identifier is not printed: no crate of this workspace\n\
         // computes one; wallets and explorers take the ICRC-1 text.)\n\
         \n\
         // Once the proposal executed, anyone credits the transfer to the DAO's escrow\n\
         // balance (ledger {} must be the ICP ledger the treasury is on):\n\
         dfx canister call {} {} notify_deposit '{notify_arg}'\n\
         // or: icp canister call {} notify_deposit '{notify_arg}'\n",
        format_tokens(args.amount),
        args.governance,
        candid_text(&transfer),
        target.ledger,
        network_flag(&target.network),
        target.escrow,
        target.escrow,
    ))
}

/// `market sns payload`: the payload in Candid text and hex, and the
/// ExecuteGenericNervousSystemFunction value under `function_id`.
pub fn payload_text(action: &SnsAction, function_id: u64) -> String {
    let name = action.name();
    let payload = action.payload();
    let execute = ExecuteGenericNervousSystemFunction {
        function_id,
        payload: payload.clone(),
    };
    let payload_value = match action {
        SnsAction::Reserve(a) => candid_text(a),
        SnsAction::Extend(a) => candid_text(a),
        SnsAction::SetDelegates(a) => candid_text(a),
        SnsAction::Cancel(a) => candid_text(a),
        SnsAction::SubmitJob(a) => candid_text(a),
        SnsAction::Withdraw(a) => candid_text(a),
    };
    let mut out = format!(
        "// Payload of {} (checked by {} when the proposal is made):\n{payload_value}\n\n\
         // The payload's {} bytes, hex:\n{}\n\n\
         // ExecuteGenericNervousSystemFunction, for function {function_id} ({name}): the proposal's\n\
         // action is `variant {{ ExecuteGenericNervousSystemFunction = <record> }}`.\n{}\n",
        target_method(name),
        validator_method(name),
        payload.len(),
        hex::encode(&payload),
        candid_text(&execute),
    );
    if payload.len() > PAYLOAD_SOFT_LIMIT {
        out.push_str(&format!(
            "// Warning: {} bytes is more than the {PAYLOAD_SOFT_LIMIT} SNS governance declares as \
             its payload limit; a smaller --input keeps the proposal safe.\n",
            payload.len()
        ));
    }
    out
}

/// What the market asks of a payload priced in XDR, besides the rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XdrSummaryTerms {
    /// The IC's time, in seconds.
    pub now_secs: u64,
    /// The market's least audit probability.
    pub min_audit_ppm: u32,
    /// The market's fee, locked on top of the provider's pay.
    pub market_fee_ppm: u32,
}

/// For voters, what a payload priced in XDR commits the DAO to: its XDR
/// budget and the most ICP it may lock at `quote`'s rate at
/// `terms.now_secs`, buffer and market fee included (a one-off job's
/// budget twice when its result may be audited, on a market auditing at
/// least `terms.min_audit_ppm`). `None` for an action with no XDR price.
pub fn xdr_summary(action: &SnsAction, quote: &Quote, terms: &XdrSummaryTerms) -> Option<String> {
    let (now_secs, min_audit_ppm) = (terms.now_secs, terms.min_audit_ppm);
    let (budget, what, ledger) = match action {
        SnsAction::Reserve(spec) if spec.currency == Some(Currency::Xdr) => (
            reservation_cost(spec),
            format!(
                "{} slot{} × {} interval{} at most {} each",
                spec.slots,
                if spec.slots == 1 { "" } else { "s" },
                spec.intervals,
                if spec.intervals == 1 { "" } else { "s" },
                format_xdr(spec.max_price_per_interval)
            ),
            spec.ledger,
        ),
        SnsAction::SubmitJob(spec) if spec.currency == Some(Currency::Xdr) => {
            let ppm = audit_ppm_of(spec.audit_ppm, min_audit_ppm);
            (
                spec.max_cost().and_then(|c| job_lock(c, ppm)),
                format!(
                    "{}{} fuel at most {} per billion",
                    if ppm > 0 {
                        "twice (the run and an audit's re-run) "
                    } else {
                        ""
                    },
                    spec.limits.fuel,
                    format_xdr(spec.max_price_per_gfuel)
                ),
                spec.ledger,
            )
        }
        _ => return None,
    };
    let Some(budget) = budget else {
        return Some("// For voters: the XDR budget overflows; the proposal would fail.\n".into());
    };
    let with_fee = |lock: Tokens| {
        market_api::matcher::with_market_fee(lock, terms.market_fee_ppm).unwrap_or(Tokens::MAX)
    };
    let fee = match terms.market_fee_ppm {
        0 => String::new(),
        ppm => format!(" and its {} fee", format_ppm(ppm)),
    };
    let lock = match quote.xdr_lock(ledger, budget, now_secs) {
        Ok(lock) => format!(
            "at the current rate ({}) it locks at most {} of the DAO's escrow balance, the \n\
             // market's {} buffer{fee} included",
            quote
                .token
                .map_or_else(String::new, |v| format_rate(&v, 8, "ICP")),
            format_tokens(with_fee(lock)),
            format_ppm(quote.buffer_ppm),
        ),
        Err(e) => format!(
            "the ICP it locks can't be stated now: {}",
            describe_matcher(&e)
        ),
    };
    Some(format!(
        "// For voters: priced in XDR, paid in ICP. Budget {} ({what});\n\
         // {lock}. The lock converts at the rate when the proposal executes (refused if\n\
         // that rate is older than {} s); what the work does not use returns at settle.\n",
        format_xdr(budget),
        quote.max_rate_age_secs,
    ))
}
