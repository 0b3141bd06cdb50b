//! What an action's values must satisfy before a payload is printed; the
//! matcher checks them again when the proposal is made and when it runs.

use candid::Principal;
use market_api::sns::SNS_ACTIONS;

use super::FIRST_FUNCTION_ID;
use crate::BuyerError;

/// A principal that may act for a DAO: not anonymous, not the empty one.
pub fn check_principal(flag: &str, p: &Principal) -> Result<(), BuyerError> {
    if *p == Principal::anonymous() || p.as_slice().is_empty() {
        return Err(BuyerError::Request(format!(
            "{flag}: {p} can't be one (anonymous or the management canister)"
        )));
    }
    Ok(())
}

/// The default id of `action`'s function: as `market sns functions`
/// numbers them from [`FIRST_FUNCTION_ID`].
pub fn default_function_id(action: &str) -> u64 {
    let place = SNS_ACTIONS
        .iter()
        .position(|a| *a == action)
        .expect("BUG: an action outside SNS_ACTIONS");
    FIRST_FUNCTION_ID + place as u64
}

/// Refuses an id among the SNS's native functions; `flag` names the flag.
pub fn check_function_id(id: u64, flag: &str) -> Result<(), BuyerError> {
    if id < FIRST_FUNCTION_ID {
        return Err(BuyerError::Request(format!(
            "{flag}: {id} is below {FIRST_FUNCTION_ID}; ids 0-999 are the SNS's native functions"
        )));
    }
    Ok(())
}
