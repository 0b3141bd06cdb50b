//! Fault injection for inter-canister calls.

use candid::Principal;

use crate::error::RejectCode;

/// What happens to a faulted call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// The call is rejected with this code and message; the callee never runs.
    Reject {
        /// Reject code delivered to the caller.
        code: RejectCode,
        /// Reject message delivered to the caller.
        message: String,
    },
    /// The callee traps: the caller gets a `CANISTER_ERROR` reject and the
    /// callee's state is unchanged.
    Trap,
    /// The outcome is unknown to the caller: it gets a `SYS_UNKNOWN` reject
    /// at once, while the request is still delivered and executed by the
    /// callee (the harder case for idempotency). On the IC only bounded-wait
    /// calls can end this way; the devnet applies it to any call it matches.
    Timeout,
}

/// A fault applied to the next `count` matching calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// Only calls made by this canister (any caller if `None`).
    pub caller: Option<Principal>,
    /// Only calls to this canister.
    pub callee: Principal,
    /// Only calls to this method (any method if `None`).
    pub method: Option<String>,
    /// What happens to the call.
    pub kind: FaultKind,
    /// How many more calls this fault applies to.
    pub count: u32,
}

impl Fault {
    /// A fault on the next `count` calls to `callee`, from any caller, to any method.
    pub fn new(callee: Principal, kind: FaultKind, count: u32) -> Self {
        Fault {
            caller: None,
            callee,
            method: None,
            kind,
            count,
        }
    }

    /// Restricts the fault to calls to `method`.
    pub fn method(mut self, method: impl Into<String>) -> Self {
        self.method = Some(method.into());
        self
    }

    /// Restricts the fault to calls made by `caller`.
    pub fn caller(mut self, caller: Principal) -> Self {
        self.caller = Some(caller);
        self
    }

    fn matches(&self, caller: Principal, callee: Principal, method: &str) -> bool {
        self.count > 0
            && self.callee == callee
            && self.caller.is_none_or(|c| c == caller)
            && self.method.as_deref().is_none_or(|m| m == method)
    }
}

/// Takes one use of the first fault matching the call, if any.
pub(crate) fn take(
    faults: &mut Vec<Fault>,
    caller: Principal,
    callee: Principal,
    method: &str,
) -> Option<FaultKind> {
    let i = faults
        .iter()
        .position(|f| f.matches(caller, callee, method))?;
    faults[i].count -= 1;
    let kind = faults[i].kind.clone();
    if faults[i].count == 0 {
        faults.remove(i);
    }
    Some(kind)
}
