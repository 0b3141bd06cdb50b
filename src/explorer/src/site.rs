//! The explorer's files, their certification and the answers to HTTP
//! requests.
//!
//! Files live in a stable map, so they survive upgrades; the tree that
//! certifies them (path -> sha256 of the body, under the label
//! `http_assets`: the IC's HTTP certification, version 1) is a heap cache
//! rebuilt from the stored hashes on upgrade. `/config.json` is made from
//! the configuration and certified alike; `/` serves `/index.html` under
//! its own entry of the tree, so the path a browser asks for is always
//! the one its witness proves.

use crate::types::{AssetInfo, AssetUpload, ExplorerConfig, UploadError};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use canister_common::codec::Cbor;
use canister_common::memory::{self, Memory};
use ic_certification::{AsHashTree, Hash, HashTree, RbTree, labeled, labeled_hash};
use ic_stable_structures::{Cell, StableBTreeMap};
use market_api::{HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The label of the certified files' subtree (HTTP certification v1).
pub const CERTIFIED_LABEL: &[u8] = b"http_assets";
/// The longest file path.
pub const MAX_PATH_BYTES: usize = 256;
/// The longest content type.
pub const MAX_CONTENT_TYPE_BYTES: usize = 128;
/// The most bytes all files hold together. A file is answered in one
/// response, so each stays well under the IC's 3 MB reply limit in
/// practice; the page's bundle is a few hundred kilobytes.
pub const MAX_TOTAL_BYTES: u64 = 8 * 1024 * 1024;
/// The most files.
pub const MAX_ASSETS: u32 = 64;
/// The configuration's path.
pub const CONFIG_PATH: &str = "/config.json";
/// The page served for `/`.
pub const INDEX_PATH: &str = "/index.html";

canister_common::memory_ids! {
    /// The files' stable map.
    ASSETS = 3;
}

/// A stored file.
#[derive(Serialize, Deserialize, Clone, Debug)]
struct Asset {
    content_type: String,
    #[serde(with = "serde_bytes")]
    body: Vec<u8>,
    sha256: [u8; 32],
}

/// Everything the explorer keeps.
pub struct Site {
    config: Cell<Cbor<Option<ExplorerConfig>>, Memory>,
    assets: StableBTreeMap<String, Cbor<Asset>, Memory>,
    /// Heap cache, rebuilt by [`Site::load`]: path -> sha256 of its body.
    tree: RbTree<String, Hash>,
    /// `/config.json`'s body, from the configuration.
    config_json: Vec<u8>,
    /// Heap cache, rebuilt by [`Site::load`]: bytes of all stored files.
    total_bytes: u64,
}

impl Site {
    /// The site as stable memory holds it (empty on a new canister), with
    /// its certification tree rebuilt.
    pub fn load() -> Self {
        let mut site = Site {
            config: Cell::init(memory::get(memory::CONFIG), Cbor(None)),
            assets: StableBTreeMap::init(memory::get(ASSETS)),
            tree: RbTree::new(),
            config_json: Vec::new(),
            total_bytes: 0,
        };
        site.rebuild();
        site
    }

    /// Sets the market the page shows.
    pub fn configure(&mut self, config: ExplorerConfig) {
        self.config.set(Cbor(Some(config)));
        self.rebuild();
    }

    /// The configuration, once set.
    pub fn config(&self) -> Option<ExplorerConfig> {
        self.config.get().0.clone()
    }

    /// Stores one piece of a file (see [`AssetUpload`]).
    pub fn upload(&mut self, up: AssetUpload) -> Result<(), UploadError> {
        check_path(&up.path)?;
        if up.content_type.is_empty() || up.content_type.len() > MAX_CONTENT_TYPE_BYTES {
            return Err(UploadError::BadContentType);
        }
        let old = self.assets.get(&up.path).map(|a| a.0);
        if old.is_none() && self.assets.len() >= u64::from(MAX_ASSETS) {
            return Err(UploadError::TooManyAssets { max: MAX_ASSETS });
        }
        let mut body = match (&old, up.append) {
            (Some(a), true) => a.body.clone(),
            _ => Vec::new(),
        };
        let others = self
            .total_bytes
            .saturating_sub(old.as_ref().map_or(0, |a| a.body.len() as u64));
        let new_len = (body.len() as u64).saturating_add(up.content.len() as u64);
        if others.saturating_add(new_len) > MAX_TOTAL_BYTES {
            return Err(UploadError::TooLarge {
                max_bytes: MAX_TOTAL_BYTES,
            });
        }
        body.extend_from_slice(&up.content);
        self.total_bytes = others.saturating_add(body.len() as u64);
        let sha256: [u8; 32] = Sha256::digest(&body).into();
        self.assets.insert(
            up.path.clone(),
            Cbor(Asset {
                content_type: up.content_type,
                body,
                sha256,
            }),
        );
        self.certify(&up.path, sha256);
        Ok(())
    }

    /// Removes every uploaded file.
    pub fn clear(&mut self) {
        let paths: Vec<String> = self.assets.keys().collect();
        for p in paths {
            self.assets.remove(&p);
        }
        self.rebuild();
    }

    /// The uploaded files, in path order.
    pub fn list(&self) -> Vec<AssetInfo> {
        self.assets
            .iter()
            .map(|e| {
                let (path, a) = (e.key().clone(), e.value().0);
                AssetInfo {
                    path,
                    content_type: a.content_type,
                    bytes: a.body.len() as u64,
                    sha256: a.sha256.to_vec(),
                }
            })
            .collect()
    }

    /// What the canister certifies: the root hash of the `http_assets`
    /// subtree, labeled.
    pub fn certified_data(&self) -> Hash {
        labeled_hash(CERTIFIED_LABEL, &self.tree.root_hash())
    }

    /// The answer to `req`; `certificate` is the system's data certificate
    /// (present in a query from ingress), sent with the witness of the
    /// path in an `IC-Certificate` header.
    pub fn respond(&self, req: &HttpRequest, certificate: Option<Vec<u8>>) -> HttpResponse {
        if req.method != "GET" && req.method != "HEAD" {
            return HttpResponse::text(405, "text/plain", "method not allowed");
        }
        let path = req.url.split(['?', '#']).next().unwrap_or("");
        let (content_type, body) = if path == CONFIG_PATH {
            ("application/json".to_string(), self.config_json.clone())
        } else {
            let stored = if path == "/" { INDEX_PATH } else { path };
            match self.assets.get(&stored.to_string()) {
                Some(a) => (a.0.content_type, a.0.body),
                None => return HttpResponse::text(404, "text/plain", "not found"),
            }
        };
        let mut headers = vec![
            ("Content-Type".to_string(), content_type),
            ("Cache-Control".to_string(), "no-cache".to_string()),
            ("X-Content-Type-Options".to_string(), "nosniff".to_string()),
        ];
        if let Some(cert) = certificate {
            headers.push((
                "IC-Certificate".to_string(),
                self.certificate_header(path, &cert),
            ));
        }
        HttpResponse {
            status_code: 200,
            headers,
            body: if req.method == "HEAD" {
                Vec::new()
            } else {
                body
            },
        }
    }

    /// The witness of `path` in the certified tree.
    pub fn witness(&self, path: &str) -> HashTree {
        labeled(CERTIFIED_LABEL, self.tree.witness(path.as_bytes()))
    }

    fn certificate_header(&self, path: &str, certificate: &[u8]) -> String {
        let mut tree = Vec::new();
        let mut ser = serde_cbor::Serializer::new(&mut tree);
        // The tree's CBOR is its canonical form; a failure here would be a
        // bug in the encoder, and an empty tree fails verification safely.
        let _ = ser.self_describe();
        let _ = self.witness(path).serialize(&mut ser);
        format!(
            "certificate=:{}:, tree=:{}:",
            BASE64.encode(certificate),
            BASE64.encode(&tree)
        )
    }

    fn certify(&mut self, path: &str, sha256: Hash) {
        self.tree.insert(path.to_string(), sha256);
        if path == INDEX_PATH {
            self.tree.insert("/".to_string(), sha256);
        }
        set_certified_data(&self.certified_data());
    }

    /// Rebuilds `/config.json` and the tree from the configuration and
    /// the stored hashes, and certifies the result.
    fn rebuild(&mut self) {
        self.config_json = config_json(self.config().as_ref());
        let mut tree = RbTree::new();
        tree.insert(
            CONFIG_PATH.to_string(),
            Sha256::digest(&self.config_json).into(),
        );
        self.total_bytes = 0;
        for e in self.assets.iter() {
            let asset = e.value().0;
            self.total_bytes = self.total_bytes.saturating_add(asset.body.len() as u64);
            let (path, sha256) = (e.key().clone(), asset.sha256);
            if path == INDEX_PATH {
                tree.insert("/".to_string(), sha256);
            }
            tree.insert(path, sha256);
        }
        self.tree = tree;
        set_certified_data(&self.certified_data());
    }
}

/// `/config.json`: the market's canister ids (principals' text is
/// `[a-z0-9-]`, so it needs no escaping).
fn config_json(config: Option<&ExplorerConfig>) -> Vec<u8> {
    match config {
        Some(c) => format!(
            "{{\"registry\":\"{}\",\"escrow\":\"{}\",\"matcher\":\"{}\",\"fetch_root_key\":{}}}",
            c.registry, c.escrow, c.matcher, c.fetch_root_key
        )
        .into_bytes(),
        None => b"{}".to_vec(),
    }
}

fn check_path(path: &str) -> Result<(), UploadError> {
    let bad = |why: &str| Err(UploadError::BadPath(why.to_string()));
    if !path.starts_with('/') {
        return bad("must start with /");
    }
    if path.len() > MAX_PATH_BYTES {
        return bad("too long");
    }
    if path.contains(['?', '#']) || path.chars().any(char::is_control) {
        return bad("must not hold ?, # or control characters");
    }
    if path == "/" || path == CONFIG_PATH {
        return bad("is served by the explorer itself");
    }
    Ok(())
}

#[cfg(target_family = "wasm")]
fn set_certified_data(hash: &Hash) {
    ic_cdk::api::certified_data_set(hash);
}

#[cfg(not(target_family = "wasm"))]
fn set_certified_data(_hash: &Hash) {}

#[cfg(test)]
mod tests;
