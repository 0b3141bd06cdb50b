//! The explorer's ic-cdk entry points: each reads the caller, calls one
//! method of [`Site`] and maps its error.

use crate::site::Site;
use crate::types::{AssetInfo, AssetUpload, ExplorerConfig, UploadError};
use market_api::{HttpRequest, HttpResponse};
use std::cell::RefCell;

thread_local! {
    static SITE: RefCell<Option<Site>> = const { RefCell::new(None) };
}

fn with_site<R>(f: impl FnOnce(&mut Site) -> R) -> R {
    SITE.with(|s| f(s.borrow_mut().get_or_insert_with(Site::load)))
}

#[ic_cdk::init]
fn init(config: ExplorerConfig) {
    with_site(|s| s.configure(config));
}

/// Files and configuration stay in stable memory; the certification
/// tree is rebuilt from their hashes (no decoding that could fail).
#[ic_cdk::post_upgrade]
fn post_upgrade() {
    with_site(|_| ());
}

/// Stores one piece of a file of the page. Controllers only.
#[ic_cdk::update]
fn upload_asset(up: AssetUpload) -> Result<(), UploadError> {
    if !ic_cdk::api::is_controller(&ic_cdk::api::msg_caller()) {
        return Err(UploadError::NotController);
    }
    with_site(|s| s.upload(up))
}

/// Removes every uploaded file. Controllers only.
#[ic_cdk::update]
fn clear_assets() -> Result<(), UploadError> {
    if !ic_cdk::api::is_controller(&ic_cdk::api::msg_caller()) {
        return Err(UploadError::NotController);
    }
    with_site(|s| s.clear());
    Ok(())
}

/// The uploaded files: path, type, size and sha256 (at most 64).
#[ic_cdk::query]
fn list_assets() -> Vec<AssetInfo> {
    with_site(|s| s.list())
}

/// The market the page shows.
#[ic_cdk::query]
fn get_config() -> Option<ExplorerConfig> {
    with_site(|s| s.config())
}

/// The page's files and `/config.json`, certified (HTTP certification v1).
#[ic_cdk::query]
fn http_request(req: HttpRequest) -> HttpResponse {
    let certificate = ic_cdk::api::data_certificate();
    with_site(|s| s.respond(&req, certificate))
}

candid::export_service!();

/// The Candid interface generated from the entry points above, compared in
/// tests with the checked-in `explorer.did`.
pub fn candid_interface() -> String {
    __export_service()
}
