//! Scenario and property tests of the matcher's logic, with their fakes.

mod audits;
mod fees;
pub(crate) mod market;
mod perform;
mod pricing;
mod privacy;
mod services;
