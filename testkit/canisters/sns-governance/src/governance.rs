//! The stand-in's state: registered generic functions and proposals, on the
//! heap (a test double; lost on upgrade), with the rules of each step.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use candid::{CandidType, Deserialize};

use crate::functions::{Endpoint, GenericFunction};

/// Where a proposal stands. There is no voting: every proposal is Open
/// until `execute_proposal` plays its adoption.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum ProposalStatus {
    /// Made (the validator accepted it), not executed yet.
    Open,
    /// The target replied (whatever the reply said).
    Executed,
    /// The target rejected or trapped: the reject code and message.
    Failed(String),
}

/// An ExecuteGenericNervousSystemFunction proposal.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    pub id: u64,
    pub function_id: u64,
    /// The payload exactly as submitted; the target receives these bytes.
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    /// The validator's `Ok` text.
    pub rendering: String,
    pub status: ProposalStatus,
}

/// Functions and proposals.
#[derive(Default)]
pub struct Governance {
    functions: BTreeMap<u64, GenericFunction>,
    proposals: BTreeMap<u64, Proposal>,
    /// Proposals whose target call is in flight.
    executing: BTreeSet<u64>,
}

thread_local! {
    static STATE: RefCell<Governance> = RefCell::default();
}

/// Reads the state; no borrow outlives the closure (so none spans an await).
pub fn read_state<R>(f: impl FnOnce(&Governance) -> R) -> R {
    STATE.with_borrow(f)
}

/// Changes the state; no borrow outlives the closure.
pub fn mutate_state<R>(f: impl FnOnce(&mut Governance) -> R) -> R {
    STATE.with_borrow_mut(f)
}

impl Governance {
    /// Registers a validated function unless its id is taken.
    pub fn add_function(&mut self, function: GenericFunction) -> Result<(), String> {
        if self.functions.contains_key(&function.id) {
            return Err(format!(
                "There is already a NervousSystemFunction with id: {}",
                function.id
            ));
        }
        self.functions.insert(function.id, function);
        Ok(())
    }

    /// The validator to call for a proposal on `function_id`.
    pub fn validator(&self, function_id: u64) -> Result<Endpoint, String> {
        self.function(function_id).map(|f| f.validator.clone())
    }

    fn function(&self, function_id: u64) -> Result<&GenericFunction, String> {
        self.functions
            .get(&function_id)
            .ok_or_else(|| format!("There is no NervousSystemFunction with id: {function_id}"))
    }

    /// Stores an Open proposal whose validator accepted it; returns its id
    /// (ids start at 1, as on an SNS).
    pub fn add_proposal(&mut self, function_id: u64, payload: Vec<u8>, rendering: String) -> u64 {
        let id = self.proposals.last_key_value().map_or(1, |(id, _)| id + 1);
        self.proposals.insert(
            id,
            Proposal {
                id,
                function_id,
                payload,
                rendering,
                status: ProposalStatus::Open,
            },
        );
        id
    }

    pub fn proposal(&self, id: u64) -> Option<Proposal> {
        self.proposals.get(&id).cloned()
    }

    /// Starts executing an Open proposal that is not already executing;
    /// returns the target and the payload to send it.
    pub fn begin_execution(&mut self, id: u64) -> Result<(Endpoint, Vec<u8>), String> {
        let proposal = self
            .proposals
            .get(&id)
            .ok_or_else(|| format!("There is no proposal with id {id}"))?;
        if proposal.status != ProposalStatus::Open || self.executing.contains(&id) {
            return Err(format!(
                "Proposal {id} was already executed (status {:?})",
                proposal.status
            ));
        }
        let target = self.function(proposal.function_id)?.target.clone();
        let payload = proposal.payload.clone();
        self.executing.insert(id);
        Ok((target, payload))
    }

    /// Records how the execution of proposal `id` ended.
    pub fn finish_execution(&mut self, id: u64, status: ProposalStatus) {
        self.executing.remove(&id);
        if let Some(p) = self.proposals.get_mut(&id) {
            p.status = status;
        }
    }
}

#[cfg(test)]
mod tests {
    use candid::Principal;

    use super::*;

    fn function(id: u64) -> GenericFunction {
        let endpoint = |method: &str| Endpoint {
            canister: Principal::from_slice(&[7; 10]),
            method: method.into(),
        };
        GenericFunction {
            id,
            validator: endpoint("validate"),
            target: endpoint("execute"),
        }
    }

    #[test]
    fn duplicate_function_ids_are_refused() {
        let mut g = Governance::default();
        g.add_function(function(1000)).unwrap();
        let err = g.add_function(function(1000)).unwrap_err();
        assert!(err.contains("already"), "{err}");
        assert!(g.validator(1001).is_err());
    }

    #[test]
    fn a_proposal_executes_at_most_once() {
        let mut g = Governance::default();
        g.add_function(function(1000)).unwrap();
        let id = g.add_proposal(1000, vec![1, 2], "r".into());
        assert_eq!(id, 1);
        let (target, payload) = g.begin_execution(id).unwrap();
        assert_eq!((target.method.as_str(), payload), ("execute", vec![1, 2]));
        // In flight: a second call is refused before the first finishes.
        assert!(g.begin_execution(id).is_err());
        g.finish_execution(id, ProposalStatus::Failed("5: trapped".into()));
        assert!(g.begin_execution(id).is_err());
        assert_eq!(
            g.proposal(id).unwrap().status,
            ProposalStatus::Failed("5: trapped".into())
        );
        assert_eq!(g.add_proposal(1000, vec![], String::new()), 2);
    }
}
