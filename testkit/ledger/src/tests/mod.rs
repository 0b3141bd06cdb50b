//! Native tests of the ledger's logic: each operation's rules, and random
//! operation sequences checked against an in-memory model.

mod model;
mod operations;
mod support;
