//! Getting a job's module: from the local cache, the matcher's module store
//! (chunk by chunk), or a URL; always checked against its sha256.

use std::path::PathBuf;

use market_api::matcher::{MAX_MODULE_BYTES, ModuleSource, Sha256};
use sha2::Digest;

use market_client::client::{ClientError, MarketClient};
use market_client::transport::Transport;

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
        let too_large = || {
            err(
                format!("the body is larger than {MAX_MODULE_BYTES} bytes, the largest module"),
                false,
            )
        };
        // A declared length is checked before anything is read; an
        // undeclared (or false) one as the body arrives.
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_MODULE_BYTES as u64)
        {
            return Err(too_large());
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| err(e.to_string(), true))? {
            if bytes.len() + chunk.len() > MAX_MODULE_BYTES {
                return Err(too_large());
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

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashMap;
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};

    use axum::http::{StatusCode, Uri};
    use candid::Principal;

    use super::*;
    use market_client::client::CanisterIds;
    use market_client::transport::TransportError;

    /// The answer to one path: a status and a body.
    type Response = (StatusCode, Vec<u8>);

    /// An HTTP/1.1 server on 127.0.0.1 answering each path with a status
    /// and body the test sets (404 for any other path).
    #[derive(Clone, Default)]
    pub(crate) struct ModuleServer {
        routes: Arc<Mutex<HashMap<String, Response>>>,
        pub(crate) hits: Arc<Mutex<Vec<String>>>,
    }

    impl ModuleServer {
        /// Serves until the test's runtime ends; returns the base URL.
        pub(crate) async fn start(&self) -> String {
            let server = self.clone();
            let app = axum::Router::new().fallback(move |uri: Uri| {
                let server = server.clone();
                async move {
                    server.hits.lock().unwrap().push(uri.path().to_string());
                    server
                        .routes
                        .lock()
                        .unwrap()
                        .get(uri.path())
                        .cloned()
                        .unwrap_or((StatusCode::NOT_FOUND, b"no such module".to_vec()))
                }
            });
            let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
                .await
                .unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, app).await });
            format!("http://{addr}")
        }

        /// Answers `path` with `status` and `body` from now on.
        pub(crate) fn route(&self, path: &str, status: StatusCode, body: Vec<u8>) {
            self.routes
                .lock()
                .unwrap()
                .insert(path.to_string(), (status, body));
        }
    }

    /// A transport that must not be used: a URL module never touches the
    /// canisters.
    #[derive(Clone)]
    struct NoCanisters;

    impl Transport for NoCanisters {
        fn sender(&self) -> Principal {
            Principal::anonymous()
        }
        async fn update(
            &self,
            _: Principal,
            m: &str,
            _: Vec<u8>,
        ) -> Result<Vec<u8>, TransportError> {
            panic!("unexpected update {m}")
        }
        async fn query(
            &self,
            _: Principal,
            m: &str,
            _: Vec<u8>,
        ) -> Result<Vec<u8>, TransportError> {
            panic!("unexpected query {m}")
        }
        async fn time_ns(&self) -> Result<u64, TransportError> {
            panic!("unexpected time")
        }
    }

    fn client() -> MarketClient<NoCanisters> {
        let id = Principal::anonymous();
        MarketClient::new(
            NoCanisters,
            CanisterIds {
                ledger: id,
                registry: id,
                escrow: id,
                matcher: id,
            },
        )
    }

    fn url_source(url: String, bytes: &[u8]) -> ModuleSource {
        ModuleSource::Url {
            url,
            sha256: sha2::Sha256::digest(bytes).into(),
        }
    }

    const MODULE: &[u8] = b"\0asm\x01\0\0\0 not really, but bytes to hash";

    #[tokio::test]
    async fn a_url_module_is_downloaded_verified_and_cached() {
        let server = ModuleServer::default();
        let base = server.start().await;
        server.route("/job.wasm", StatusCode::OK, MODULE.to_vec());
        let cache = tempfile::tempdir().unwrap();
        let fetcher = ModuleFetcher::new(Some(cache.path().to_path_buf()));
        let source = url_source(format!("{base}/job.wasm"), MODULE);
        assert_eq!(fetcher.fetch(&client(), &source).await.unwrap(), MODULE);
        // The second time comes from the cache, even with the server gone.
        server.route("/job.wasm", StatusCode::NOT_FOUND, vec![]);
        assert_eq!(fetcher.fetch(&client(), &source).await.unwrap(), MODULE);
        assert_eq!(server.hits.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn bytes_that_do_not_match_the_sha256_are_refused_for_good() {
        let server = ModuleServer::default();
        let base = server.start().await;
        server.route("/job.wasm", StatusCode::OK, b"other bytes".to_vec());
        let cache = tempfile::tempdir().unwrap();
        let fetcher = ModuleFetcher::new(Some(cache.path().to_path_buf()));
        let source = url_source(format!("{base}/job.wasm"), MODULE);
        let err = fetcher.fetch(&client(), &source).await.unwrap_err();
        let expected = hex::encode(sha2::Sha256::digest(MODULE));
        let actual = hex::encode(sha2::Sha256::digest(b"other bytes"));
        assert!(
            matches!(&err, FetchError::DigestMismatch { expected: e, actual: a }
                if *e == expected && *a == actual),
            "{err:?}"
        );
        assert!(err.to_string().contains("digest mismatch"), "{err}");
        assert!(
            !err.is_transient(),
            "the same URL will serve the same bytes"
        );
        assert_eq!(
            std::fs::read_dir(cache.path().join("modules"))
                .unwrap()
                .count(),
            0,
            "nothing unverified is cached"
        );
    }

    #[tokio::test]
    async fn http_errors_name_the_url_and_the_status_and_only_5xx_is_retried() {
        let server = ModuleServer::default();
        let base = server.start().await;
        server.route("/busy.wasm", StatusCode::SERVICE_UNAVAILABLE, vec![]);
        let fetcher = ModuleFetcher::new(None);

        let url = format!("{base}/gone.wasm");
        let err = fetcher
            .fetch(&client(), &url_source(url.clone(), MODULE))
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&url) && text.contains("HTTP 404"), "{text}");
        assert!(!err.is_transient());

        let err = fetcher
            .fetch(&client(), &url_source(format!("{base}/busy.wasm"), MODULE))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("HTTP 503"), "{err}");
        assert!(err.is_transient());

        // Nothing listens on a port just freed: a network error, retried.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let err = fetcher
            .fetch(
                &client(),
                &url_source(format!("http://{closed}/job.wasm"), MODULE),
            )
            .await
            .unwrap_err();
        assert!(err.is_transient(), "{err:?}");

        let err = fetcher
            .fetch(
                &client(),
                &url_source("ftp://example.org/job.wasm".into(), MODULE),
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("only http(s)"), "{err}");
        assert!(!err.is_transient());
    }

    #[tokio::test]
    async fn a_body_larger_than_any_module_is_refused() {
        let server = ModuleServer::default();
        let base = server.start().await;
        let huge = vec![0u8; MAX_MODULE_BYTES + 1];
        server.route("/huge.wasm", StatusCode::OK, huge.clone());
        server.route("/largest.wasm", StatusCode::OK, huge[1..].to_vec());
        let fetcher = ModuleFetcher::new(None);
        let err = fetcher
            .fetch(&client(), &url_source(format!("{base}/huge.wasm"), &huge))
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("/huge.wasm") && text.contains("larger than 16777216 bytes"),
            "{text}"
        );
        assert!(!err.is_transient());
        // A body without a declared length is cut off as it arrives.
        let undeclared = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = undeclared.local_addr().unwrap();
        let sent = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut conn, _) = undeclared.accept().await.unwrap();
            let mut request = Vec::new();
            while !request.ends_with(b"\r\n\r\n") {
                request.push(conn.read_u8().await.unwrap());
            }
            conn.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            let mut sent = 0;
            let chunk = vec![0u8; 1 << 20];
            while sent <= 2 * MAX_MODULE_BYTES {
                if conn.write_all(&chunk).await.is_err() {
                    break;
                }
                sent += chunk.len();
            }
            sent
        });
        let err = fetcher
            .fetch(
                &client(),
                &url_source(format!("http://{addr}/stream.wasm"), &huge),
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("larger than"), "{err}");
        assert!(
            sent.await.unwrap() <= 2 * MAX_MODULE_BYTES,
            "the download stopped before the body's end"
        );
        // One byte less is the largest module accepted.
        let largest = fetcher
            .fetch(
                &client(),
                &url_source(format!("{base}/largest.wasm"), &huge[1..]),
            )
            .await
            .unwrap();
        assert_eq!(largest.len(), MAX_MODULE_BYTES);
    }
}
