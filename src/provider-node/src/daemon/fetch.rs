//! Getting a job's module: from the local cache, the matcher's module store
//! (chunk by chunk), or a URL; always checked against its sha256.

use std::path::PathBuf;

use market_api::matcher::{MAX_MODULE_BYTES, ModuleSource, Sha256};
use sha2::Digest;

use crate::client::{ClientError, MarketClient};
use crate::transport::Transport;

/// Why a module could not be had.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The bytes do not hash to the sha256 the job names: the buyer's
    /// fault (or the URL's host's); retrying will not help.
    #[error("module digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The job's sha256.
        expected: String,
        /// What the bytes hash to.
        actual: String,
    },
    /// The module is not in the matcher's store, or not committed.
    #[error("module {0} is not committed in the matcher's store")]
    NotStored(String),
    /// The module is larger than any job may use.
    #[error("module is larger than {MAX_MODULE_BYTES} bytes")]
    TooLarge,
    /// A canister call failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Downloading from the URL failed.
    #[error("downloading {url}: {message}")]
    Download {
        /// The URL.
        url: String,
        /// What went wrong.
        message: String,
        /// Whether a retry may help (network trouble, 5xx).
        transient: bool,
    },
}

impl FetchError {
    /// Whether a retry may help.
    pub fn is_transient(&self) -> bool {
        match self {
            FetchError::Client(e) => e.is_transient(),
            FetchError::Download { transient, .. } => *transient,
            _ => false,
        }
    }
}

/// Fetches modules and keeps verified copies in `cache_dir/modules`.
#[derive(Clone, Debug)]
pub struct ModuleFetcher {
    dir: Option<PathBuf>,
    http: reqwest::Client,
}

impl ModuleFetcher {
    /// A fetcher caching in `cache_dir/modules` (no disk cache if `None`).
    pub fn new(cache_dir: Option<PathBuf>) -> Self {
        let dir = cache_dir.map(|d| d.join("modules"));
        if let Some(d) = &dir
            && let Err(e) = std::fs::create_dir_all(d)
        {
            tracing::warn!(dir = %d.display(), error = %e, "no module cache");
        }
        Self {
            dir,
            http: reqwest::Client::new(),
        }
    }

    fn cached(&self, sha256: &Sha256) -> Option<Vec<u8>> {
        let path = self
            .dir
            .as_ref()?
            .join(format!("{}.wasm", hex::encode(sha256)));
        let bytes = std::fs::read(path).ok()?;
        (sha2::Sha256::digest(&bytes).as_slice() == sha256).then_some(bytes)
    }

    fn remember(&self, sha256: &Sha256, bytes: &[u8]) {
        if let Some(dir) = &self.dir {
            let path = dir.join(format!("{}.wasm", hex::encode(sha256)));
            let tmp = path.with_extension("tmp");
            if std::fs::write(&tmp, bytes)
                .and_then(|()| std::fs::rename(&tmp, &path))
                .is_err()
            {
                let _ = std::fs::remove_file(&tmp);
            }
        }
    }

    /// The module's bytes, verified.
    pub async fn fetch<T: Transport>(
        &self,
        client: &MarketClient<T>,
        source: &ModuleSource,
    ) -> Result<Vec<u8>, FetchError> {
        let sha256 = match source {
            ModuleSource::Stored { sha256 } | ModuleSource::Url { sha256, .. } => *sha256,
        };
        if let Some(bytes) = self.cached(&sha256) {
            return Ok(bytes);
        }
        let bytes = match source {
            ModuleSource::Stored { sha256 } => fetch_stored(client, sha256).await?,
            ModuleSource::Url { url, .. } => self.download(url).await?,
        };
        verify(&sha256, &bytes)?;
        self.remember(&sha256, &bytes);
        Ok(bytes)
    }

    async fn download(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        let err = |message: String, transient: bool| FetchError::Download {
            url: url.to_string(),
            message,
            transient,
        };
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(err("only http(s) URLs are supported".into(), false));
        }
        let mut resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| err(e.to_string(), true))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(err(format!("HTTP {status}"), status.is_server_error()));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| err(e.to_string(), true))? {
            if bytes.len() + chunk.len() > MAX_MODULE_BYTES {
                return Err(FetchError::TooLarge);
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }
}

/// Checks `bytes` against `sha256`.
pub fn verify(sha256: &Sha256, bytes: &[u8]) -> Result<(), FetchError> {
    let actual = sha2::Sha256::digest(bytes);
    if actual.as_slice() != sha256 {
        return Err(FetchError::DigestMismatch {
            expected: hex::encode(sha256),
            actual: hex::encode(actual),
        });
    }
    Ok(())
}

async fn fetch_stored<T: Transport>(
    client: &MarketClient<T>,
    sha256: &Sha256,
) -> Result<Vec<u8>, FetchError> {
    let info = client
        .module_info(*sha256)
        .await?
        .filter(|i| i.committed)
        .ok_or_else(|| FetchError::NotStored(hex::encode(sha256)))?;
    if info.size > MAX_MODULE_BYTES as u64 {
        return Err(FetchError::TooLarge);
    }
    let mut bytes = Vec::with_capacity(info.size as usize);
    for index in 0..info.chunks {
        bytes.extend(client.module_chunk(*sha256, index).await?);
        if bytes.len() as u64 > info.size {
            return Err(FetchError::TooLarge);
        }
    }
    Ok(bytes)
}
