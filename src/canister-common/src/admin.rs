//! Who administers a marketplace canister: its controllers and, once the
//! market is handed to an SNS, that SNS's governance canister.
//!
//! Handing the market over makes the SNS root the only controller of the
//! registry, the escrow and the matcher, so an upgrade is an
//! `UpgradeSnsControlledCanister` proposal that the root executes. The
//! controllers-only methods (configuration, whitelisting a ledger,
//! resolving a lost ledger call, registering DAOs) are then reached through
//! generic nervous-system functions: an adopted proposal makes the
//! governance canister call the method, so each canister also accepts the
//! governance canister named in its configuration. Each such method `m`
//! has a validator query `validate_m` taking the same argument, which SNS
//! governance calls when the proposal is submitted: it runs the checks that
//! need no change of state and renders what the proposal would do, as
//! `variant { Ok : text; Err : text }`.

use candid::Principal;

/// Longest rendering a validator returns; a longer one is cut there.
pub const MAX_RENDERING_BYTES: usize = 8 * 1024;

/// Whether `caller` may call the controllers-only methods: a controller,
/// or the configured SNS governance canister (never the anonymous
/// principal, whatever the configuration says).
pub fn may_administer(
    caller: &Principal,
    is_controller: bool,
    governance: Option<Principal>,
) -> bool {
    is_controller || (governance == Some(*caller) && *caller != Principal::anonymous())
}

/// [`may_administer`] for the caller of the running message.
pub fn caller_may_administer(caller: &Principal, governance: Option<Principal>) -> bool {
    may_administer(caller, ic_cdk::api::is_controller(caller), governance)
}

/// A validator's answer: what calling `method` with `arg` would do, once
/// `check` passed, or why the proposal must be refused.
pub fn validation<A: std::fmt::Debug, E: std::fmt::Debug>(
    method: &str,
    arg: &A,
    check: Result<(), E>,
) -> Result<String, String> {
    let mut text = match check {
        Ok(()) => format!("{method}({arg:#?})"),
        Err(e) => return Err(format!("{method} would be refused: {e:?}")),
    };
    if text.len() > MAX_RENDERING_BYTES {
        let mut end = MAX_RENDERING_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(n: u8) -> Principal {
        Principal::from_slice(&[n; 29])
    }

    #[test]
    fn controllers_and_the_governance_canister_administer_no_one_else() {
        assert!(may_administer(&p(1), true, None));
        assert!(may_administer(&p(2), false, Some(p(2))));
        assert!(!may_administer(&p(3), false, Some(p(2))));
        assert!(!may_administer(&p(3), false, None));
        let anon = Principal::anonymous();
        assert!(!may_administer(&anon, false, Some(anon)));
    }

    #[test]
    fn a_validation_renders_the_call_or_the_refusal_bounded() {
        assert_eq!(
            validation("add_ledger", &7u8, Ok::<(), ()>(())),
            Ok("add_ledger(7)".to_string())
        );
        let refused = validation("add_ledger", &7u8, Err("too many"));
        assert_eq!(
            refused,
            Err("add_ledger would be refused: \"too many\"".to_string())
        );
        let long = "é".repeat(MAX_RENDERING_BYTES);
        let text = validation("m", &long, Ok::<(), ()>(())).unwrap();
        assert!(text.len() <= MAX_RENDERING_BYTES && text.starts_with("m(\"é"));
    }
}
