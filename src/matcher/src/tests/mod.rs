//! Scenario and property tests of the matcher's logic, with their fakes.

mod market;
mod perform;
