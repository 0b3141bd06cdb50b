//! The explorer canister: serves the market explorer, a page that reads the
//! registry, escrow and matcher from the browser, over `http_request`.
//!
//! The page's files (HTML, the JavaScript bundle, CSS) are not built into
//! the module: its controllers upload them after install
//! (`upload_asset`), so the module stays reproducible and independent of
//! the npm build. `/config.json` is made from the init argument and names
//! the market's canisters. Every response is certified (the IC's HTTP
//! certification, version 1: an `IC-Certificate` header with a witness of
//! the `http_assets` tree), so a boundary node can serve it from a
//! replica it does not trust.
//!
//! `canister` holds the ic-cdk entry points; [`site`] the files, their
//! certification and the answers to requests, testable natively.

pub mod ingress;
pub mod site;
pub mod types;

mod canister;

pub use canister::candid_interface;
