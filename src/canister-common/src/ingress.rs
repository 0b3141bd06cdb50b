//! `canister_inspect_message`: an ingress message that can't succeed is
//! refused before the canister pays to execute it.
//!
//! Each canister lists every update method once, with who may send it as
//! ingress and how large its argument may be. A message is refused if its
//! sender is anonymous, its method is not listed (unknown, or a query sent
//! as an update), its argument is larger than the method could ever take,
//! or the method is for controllers or for the matcher and the sender is
//! neither. Calls between canisters never pass through here, so every
//! method still checks its caller itself: this is the cheap first door,
//! not the lock.

use candid::Principal;

/// The argument bound of methods that take no bulk data: records of ids,
/// amounts and short texts.
pub const SMALL_ARG: usize = 64 * 1024;

/// The argument bound of methods that carry a job's input or output, or a
/// module chunk: the IC's own ingress limit.
pub const BULK_ARG: usize = 2 * 1024 * 1024;

/// Who may send a method as ingress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Senders {
    /// Any authenticated principal (the method decides the rest).
    Anyone,
    /// The canister's controllers.
    Controllers,
    /// The matcher canister named in the configuration (tests and tools
    /// acting as the matcher; the matcher itself calls between canisters).
    Matcher,
}

/// One update method's ingress rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The method's name.
    pub method: &'static str,
    /// Who may send it.
    pub senders: Senders,
    /// The largest argument it accepts, in bytes.
    pub max_arg_bytes: usize,
}

impl Rule {
    /// A method any authenticated principal may call, with a small argument.
    pub const fn anyone(method: &'static str) -> Self {
        Self::new(method, Senders::Anyone, SMALL_ARG)
    }

    /// A rule.
    pub const fn new(method: &'static str, senders: Senders, max_arg_bytes: usize) -> Self {
        Rule {
            method,
            senders,
            max_arg_bytes,
        }
    }
}

/// What inspection knows of one ingress message.
#[derive(Clone, Copy, Debug)]
pub struct Ingress<'a> {
    /// The method called.
    pub method: &'a str,
    /// The sender.
    pub caller: Principal,
    /// The argument's size in bytes.
    pub arg_bytes: usize,
    /// Whether the sender controls the canister.
    pub is_controller: bool,
    /// The configured matcher, if the canister has one.
    pub matcher: Option<Principal>,
}

/// Why an ingress message is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The anonymous principal can't own anything here.
    #[error("anonymous callers are refused")]
    Anonymous,
    /// No update method of this name.
    #[error("{0} is not an update method of this canister")]
    UnknownMethod(String),
    /// The argument is larger than the method takes.
    #[error("{method} takes at most {limit} bytes")]
    TooLarge {
        /// The method.
        method: String,
        /// Its bound.
        limit: usize,
    },
    /// The sender may not call this method.
    #[error("{method} is for {senders:?} only")]
    NotAllowed {
        /// The method.
        method: String,
        /// Who may call it.
        senders: Senders,
    },
}

/// Whether `rules` let the message in.
pub fn admit(rules: &[Rule], m: &Ingress) -> Result<(), Refusal> {
    if m.caller == Principal::anonymous() {
        return Err(Refusal::Anonymous);
    }
    let rule = rules
        .iter()
        .find(|r| r.method == m.method)
        .ok_or_else(|| Refusal::UnknownMethod(m.method.to_string()))?;
    if m.arg_bytes > rule.max_arg_bytes {
        return Err(Refusal::TooLarge {
            method: rule.method.to_string(),
            limit: rule.max_arg_bytes,
        });
    }
    let allowed = match rule.senders {
        Senders::Anyone => true,
        Senders::Controllers => m.is_controller,
        Senders::Matcher => m.matcher == Some(m.caller),
    };
    if !allowed {
        return Err(Refusal::NotAllowed {
            method: rule.method.to_string(),
            senders: rule.senders,
        });
    }
    Ok(())
}

/// Accepts the message being inspected if `rules` admit it, and traps
/// with the reason otherwise (the sender sees it in the reject).
pub fn inspect(rules: &[Rule], matcher: Option<Principal>) {
    let caller = ic_cdk::api::msg_caller();
    let method = ic_cdk::api::msg_method_name();
    let m = Ingress {
        method: &method,
        caller,
        arg_bytes: ic_cdk::api::msg_arg_data().len(),
        is_controller: ic_cdk::api::is_controller(&caller),
        matcher,
    };
    match admit(rules, &m) {
        Ok(()) => ic_cdk::api::accept_message(),
        Err(why) => ic_cdk::trap(why.to_string()),
    }
}

/// The update methods `rules` name, for checking them against a `.did`.
pub fn methods(rules: &[Rule]) -> Vec<&'static str> {
    rules.iter().map(|r| r.method).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &[Rule] = &[
        Rule::anyone("deposit"),
        Rule::new("upload", Senders::Anyone, BULK_ARG),
        Rule::new("configure", Senders::Controllers, SMALL_ARG),
        Rule::new("lock", Senders::Matcher, SMALL_ARG),
    ];

    fn message(method: &str, caller: u8, arg_bytes: usize) -> Ingress<'_> {
        Ingress {
            method,
            caller: if caller == 0 {
                Principal::anonymous()
            } else {
                Principal::from_slice(&[caller; 29])
            },
            arg_bytes,
            is_controller: caller == 1,
            matcher: Some(Principal::from_slice(&[2; 29])),
        }
    }

    #[test]
    fn ingress_that_cannot_succeed_is_refused() {
        assert_eq!(admit(RULES, &message("deposit", 3, 100)), Ok(()));
        assert_eq!(admit(RULES, &message("upload", 3, BULK_ARG)), Ok(()));
        assert_eq!(admit(RULES, &message("configure", 1, 10)), Ok(()));
        assert_eq!(admit(RULES, &message("lock", 2, 10)), Ok(()));
        assert_eq!(
            admit(RULES, &message("deposit", 0, 10)),
            Err(Refusal::Anonymous)
        );
        assert_eq!(
            admit(RULES, &message("balance_of", 3, 10)),
            Err(Refusal::UnknownMethod("balance_of".into()))
        );
        assert!(matches!(
            admit(RULES, &message("deposit", 3, SMALL_ARG + 1)),
            Err(Refusal::TooLarge {
                limit: SMALL_ARG,
                ..
            })
        ));
        assert!(matches!(
            admit(RULES, &message("configure", 3, 10)),
            Err(Refusal::NotAllowed {
                senders: Senders::Controllers,
                ..
            })
        ));
        assert!(matches!(
            admit(RULES, &message("lock", 3, 10)),
            Err(Refusal::NotAllowed {
                senders: Senders::Matcher,
                ..
            })
        ));
        let mut no_matcher = message("lock", 2, 10);
        no_matcher.matcher = None;
        assert!(admit(RULES, &no_matcher).is_err());
    }
}
