//! Scenario and property tests of the matcher's logic, with their fakes.

pub(crate) mod market;
mod perform;
