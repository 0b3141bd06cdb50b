//! The cross-canister test suite: module checks, bad input, the
//! conservation audit and the randomized chaos tests live under `tests/`.
//! What they share with the other crates' tests (where the built modules
//! are, the `.did` check) is in the `market-artifacts` crate.
