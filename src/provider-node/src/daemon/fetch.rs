//! Getting a job's module: from the local cache, the matcher's module store
//! (chunk by chunk), or a URL; always checked against its sha256.
//!
//! A URL is the buyer's choice, so a download goes only where [`egress`]
//! allows (public addresses, over https), and what a job's result says
//! about a failed fetch ([`FetchError::result_message`]) names the kind of
//! failure only: never an address, a URL's host or the server's words,
//! which stay in the daemon's log.

pub mod egress;

use std::path::PathBuf;

use market_api::matcher::{MAX_MODULE_BYTES, ModuleSource, Sha256};
use reqwest::Url;
use sha2::Digest;

use market_client::client::{ClientError, MarketClient};
use market_client::transport::Transport;

pub use egress::{EgressPolicy, Refusal};

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
    #[error("downloading {url}: {detail}")]
    Download {
        /// The URL.
        url: String,
        /// What kind of failure.
        failure: DownloadFailure,
        /// What went wrong, for the log: addresses, the server's status
        /// line, the HTTP client's message.
        detail: String,
    },
}

/// The kinds of failed download, as far as a job's result tells them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DownloadFailure {
    /// The [`EgressPolicy`] refused the URL, a redirect or every address a
    /// name resolved to.
    Refused,
    /// The server answered with this status.
    Status(u16),
    /// The body is larger than [`MAX_MODULE_BYTES`].
    TooLarge,
    /// Connecting or reading failed, or took too long.
    Network,
}

impl FetchError {
    /// Whether a retry may help.
    pub fn is_transient(&self) -> bool {
        match self {
            FetchError::Client(e) => e.is_transient(),
            FetchError::Download { failure, .. } => match failure {
                DownloadFailure::Network => true,
                DownloadFailure::Status(status) => *status >= 500,
                DownloadFailure::Refused | DownloadFailure::TooLarge => false,
            },
            _ => false,
        }
    }

    /// What a job's result may say about this failure: that fetching the
    /// module failed, and of which kind. Results are public, and a hostile
    /// buyer picks the URL, so this never carries an address, a URL, a
    /// status line or a message from a server or the network; the
    /// [`Display`](std::fmt::Display) form with all of that is for the
    /// daemon's log.
    pub fn result_message(&self) -> String {
        let why = match self {
            FetchError::DigestMismatch { .. } => {
                "module digest mismatch: the bytes do not hash to the job's sha256".to_string()
            }
            FetchError::NotStored(_) => {
                "the module is not committed in the matcher's store".to_string()
            }
            FetchError::TooLarge => format!("the module is larger than {MAX_MODULE_BYTES} bytes"),
            FetchError::Client(_) => "the matcher's module store could not be read".to_string(),
            FetchError::Download { failure, .. } => match failure {
                DownloadFailure::Refused => {
                    "the URL, a redirect or its address is not allowed".to_string()
                }
                DownloadFailure::Status(status) => {
                    format!("the server answered HTTP {}xx", status / 100)
                }
                DownloadFailure::TooLarge => {
                    format!("the body is larger than {MAX_MODULE_BYTES} bytes")
                }
                DownloadFailure::Network => "the server could not be reached".to_string(),
            },
        };
        format!("fetching the module failed: {why}")
    }
}

/// Fetches modules and keeps verified copies in `cache_dir/modules`.
#[derive(Clone, Debug)]
pub struct ModuleFetcher {
    dir: Option<PathBuf>,
    egress: EgressPolicy,
    http: reqwest::Client,
}

impl ModuleFetcher {
    /// A fetcher caching in `cache_dir/modules` (no disk cache if `None`)
    /// that downloads from public https servers only
    /// ([`EgressPolicy::strict`]).
    pub fn new(cache_dir: Option<PathBuf>) -> Self {
        Self::with_egress(cache_dir, EgressPolicy::strict())
    }

    /// A fetcher whose downloads go where `egress` allows.
    pub fn with_egress(cache_dir: Option<PathBuf>, egress: EgressPolicy) -> Self {
        let dir = cache_dir.map(|d| d.join("modules"));
        if let Some(d) = &dir
            && let Err(e) = std::fs::create_dir_all(d)
        {
            tracing::warn!(dir = %d.display(), error = %e, "no module cache");
        }
        Self {
            dir,
            http: egress.client(),
            egress,
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
        let err = |failure: DownloadFailure, detail: String| FetchError::Download {
            url: url.to_string(),
            failure,
            detail,
        };
        let parsed = Url::parse(url).map_err(|e| err(DownloadFailure::Refused, e.to_string()))?;
        self.egress
            .check_url(&parsed)
            .map_err(|refusal| err(DownloadFailure::Refused, refusal.to_string()))?;
        let failed = |e: reqwest::Error| {
            let failure = if refusal_of(&e).is_some() {
                DownloadFailure::Refused
            } else {
                DownloadFailure::Network
            };
            err(failure, error_chain(&e))
        };
        let mut resp = self.http.get(parsed).send().await.map_err(failed)?;
        let status = resp.status();
        if !status.is_success() {
            return Err(err(
                DownloadFailure::Status(status.as_u16()),
                format!("HTTP {status}"),
            ));
        }
        let too_large = || {
            err(
                DownloadFailure::TooLarge,
                format!("the body is larger than {MAX_MODULE_BYTES} bytes, the largest module"),
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
        while let Some(chunk) = resp.chunk().await.map_err(failed)? {
            if bytes.len() + chunk.len() > MAX_MODULE_BYTES {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }
}

/// The egress refusal behind a failed request, if that is why it failed
/// (a refused redirect, or a name with no allowed address).
fn refusal_of(e: &reqwest::Error) -> Option<&Refusal> {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(refusal) = s.downcast_ref::<Refusal>() {
            return Some(refusal);
        }
        source = s.source();
    }
    None
}

/// An error and its causes, one after another: reqwest's own message
/// rarely says what went wrong underneath.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
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
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    use std::sync::{Arc, Mutex};

    use axum::http::{StatusCode, Uri};
    use candid::Principal;

    use super::*;
    use market_client::client::CanisterIds;
    use market_client::transport::{Call, TransportError};

    /// The answer to one path: a status, a `Location` (for redirects) and a
    /// body.
    type Response = (StatusCode, Option<String>, Vec<u8>);

    /// An HTTP/1.1 server on loopback answering each path with a status
    /// and body the test sets (404 for any other path).
    #[derive(Clone, Default)]
    pub(crate) struct ModuleServer {
        routes: Arc<Mutex<HashMap<String, Response>>>,
        pub(crate) hits: Arc<Mutex<Vec<String>>>,
    }

    impl ModuleServer {
        /// Serves on 127.0.0.1 until the test's runtime ends; returns the
        /// base URL.
        pub(crate) async fn start(&self) -> String {
            self.start_on(Ipv4Addr::LOCALHOST.into()).await
        }

        /// Serves on `ip` (a loopback address) until the test's runtime
        /// ends; returns the base URL.
        pub(crate) async fn start_on(&self, ip: IpAddr) -> String {
            let server = self.clone();
            let app = axum::Router::new().fallback(move |uri: Uri| {
                let server = server.clone();
                async move {
                    server.hits.lock().unwrap().push(uri.path().to_string());
                    let (status, location, body) = server
                        .routes
                        .lock()
                        .unwrap()
                        .get(uri.path())
                        .cloned()
                        .unwrap_or((StatusCode::NOT_FOUND, None, b"no such module".to_vec()));
                    let mut response = axum::http::Response::builder().status(status);
                    if let Some(location) = location {
                        response = response.header(axum::http::header::LOCATION, location);
                    }
                    response.body(axum::body::Body::from(body)).unwrap()
                }
            });
            let listener = tokio::net::TcpListener::bind(SocketAddr::new(ip, 0))
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
                .insert(path.to_string(), (status, None, body));
        }

        /// Redirects `path` to `location` from now on.
        pub(crate) fn redirect(&self, path: &str, location: &str) {
            self.routes.lock().unwrap().insert(
                path.to_string(),
                (StatusCode::FOUND, Some(location.to_string()), vec![]),
            );
        }

        fn hits(&self) -> Vec<String> {
            self.hits.lock().unwrap().clone()
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
        async fn update(&self, call: Call<'_>) -> Result<Vec<u8>, TransportError> {
            panic!("unexpected update {}", call.method)
        }
        async fn query(&self, call: Call<'_>) -> Result<Vec<u8>, TransportError> {
            panic!("unexpected query {}", call.method)
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
        let fetcher = trusting_test_server(Some(cache.path().to_path_buf()));
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
        let fetcher = trusting_test_server(Some(cache.path().to_path_buf()));
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
    async fn http_errors_log_the_url_and_the_status_publish_the_class_and_only_5xx_is_retried() {
        let server = ModuleServer::default();
        let base = server.start().await;
        server.route("/busy.wasm", StatusCode::SERVICE_UNAVAILABLE, vec![]);
        let fetcher = trusting_test_server(None);

        let url = format!("{base}/gone.wasm");
        let err = fetcher
            .fetch(&client(), &url_source(url.clone(), MODULE))
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&url) && text.contains("HTTP 404"), "{text}");
        assert!(!err.is_transient());
        assert_eq!(
            published(&err),
            "fetching the module failed: the server answered HTTP 4xx"
        );

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
        assert_eq!(
            published(&err),
            "fetching the module failed: the URL, a redirect or its address is not allowed"
        );
    }

    #[tokio::test]
    async fn a_body_larger_than_any_module_is_refused() {
        let server = ModuleServer::default();
        let base = server.start().await;
        let huge = vec![0u8; MAX_MODULE_BYTES + 1];
        server.route("/huge.wasm", StatusCode::OK, huge.clone());
        server.route("/largest.wasm", StatusCode::OK, huge[1..].to_vec());
        let fetcher = trusting_test_server(None);
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

    /// A service on the provider's own network that must not be reachable
    /// through a job's URL (a cloud metadata service, an admin page):
    /// 127.0.0.2 stands in for it, apart from the test server on 127.0.0.1.
    async fn internal_service() -> (ModuleServer, String) {
        let internal = ModuleServer::default();
        let base = internal.start_on(Ipv4Addr::new(127, 0, 0, 2).into()).await;
        internal.route(
            "/latest/meta-data/iam",
            StatusCode::UNAUTHORIZED,
            b"internal: token required".to_vec(),
        );
        (internal, base)
    }

    /// A fetcher that trusts the test servers on 127.0.0.1, over plain
    /// http, as a module mirror on the provider's own network; every other
    /// address is judged as in production.
    fn trusting_test_server(cache_dir: Option<PathBuf>) -> ModuleFetcher {
        ModuleFetcher::with_egress(
            cache_dir,
            EgressPolicy::strict().with_mirror(Ipv4Addr::LOCALHOST.into()),
        )
    }

    /// What a job's result says about a failed fetch.
    fn published(err: &FetchError) -> String {
        err.result_message()
    }

    /// What a job's result may say about a refused fetch: that it failed,
    /// and why in general, but no address, URL or server's text.
    fn assert_published_refusal(err: &FetchError) {
        let text = published(err);
        for detail in ["127.0.0", "meta-data", "401", "internal", "token"] {
            assert!(!text.contains(detail), "{detail:?} published: {text}");
        }
        assert!(text.contains("fetching the module failed"), "{text}");
        assert!(text.contains("not allowed"), "{text}");
        assert!(!err.is_transient(), "a refusal is for good: {err:?}");
    }

    /// Fetches `url` (a module that cannot be there) and returns the error.
    async fn fetch_error(fetcher: &ModuleFetcher, url: String) -> FetchError {
        fetcher
            .fetch(&client(), &url_source(url, MODULE))
            .await
            .unwrap_err()
    }

    /// Checks that `internal` saw no request, and that `err` is a refusal.
    fn assert_unreached(internal: &ModuleServer, err: &FetchError) {
        assert_eq!(
            internal.hits(),
            Vec::<String>::new(),
            "the internal service was reached; published: {}",
            published(err)
        );
        assert_published_refusal(err);
    }

    #[tokio::test]
    async fn a_url_at_an_internal_address_is_refused_without_a_request() {
        let (internal, base) = internal_service().await;
        let url = format!("{base}/latest/meta-data/iam");
        let err = fetch_error(&ModuleFetcher::new(None), url).await;
        assert_unreached(&internal, &err);
    }

    #[tokio::test]
    async fn a_redirect_to_an_internal_address_is_refused_without_a_request() {
        let (internal, internal_base) = internal_service().await;
        let server = ModuleServer::default();
        let base = server.start().await;
        server.redirect(
            "/job.wasm",
            &format!("{internal_base}/latest/meta-data/iam"),
        );
        let err = fetch_error(&trusting_test_server(None), format!("{base}/job.wasm")).await;
        assert_eq!(server.hits(), ["/job.wasm"]);
        assert_unreached(&internal, &err);
    }

    fn assert_refused(err: &FetchError, why: &str) {
        assert!(
            matches!(
                err,
                FetchError::Download {
                    failure: DownloadFailure::Refused,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains(why), "{why:?} not in {err}");
        assert_published_refusal(err);
    }

    #[tokio::test]
    async fn every_kind_of_internal_address_is_refused_as_a_literal_host() {
        // Trusting 127.0.0.1 as a mirror changes nothing for the others.
        for fetcher in [ModuleFetcher::new(None), trusting_test_server(None)] {
            for ip in egress::tests::NOT_PUBLIC {
                let ip: IpAddr = ip.parse().unwrap();
                if fetcher.egress.is_mirror(ip) {
                    continue;
                }
                let url = format!("https://{}/job.wasm", SocketAddr::new(ip, 443));
                let err = fetch_error(&fetcher, url).await;
                assert_refused(&err, "is not a public address");
            }
        }
    }

    /// A TCP listener on 127.0.0.1 that counts the connections it accepts.
    async fn counting_listener() -> (SocketAddr, Arc<Mutex<usize>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(Mutex::new(0));
        let count = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                *count.lock().unwrap() += 1;
                drop(conn);
            }
        });
        (addr, accepted)
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_finds_nothing_to_connect_to() {
        let (addr, accepted) = counting_listener().await;
        let url = format!("https://localhost:{}/job.wasm", addr.port());
        let err = fetch_error(&ModuleFetcher::new(None), url).await;
        assert_refused(&err, "localhost resolves to no public address");
        assert_eq!(*accepted.lock().unwrap(), 0, "nothing connected");
        // A mirror is trusted by its address: its name does not make
        // plain http acceptable.
        let url = format!("http://localhost:{}/job.wasm", addr.port());
        let err = fetch_error(&trusting_test_server(None), url).await;
        assert_refused(&err, "plain http to localhost");
        assert_eq!(*accepted.lock().unwrap(), 0, "nothing connected");
    }

    #[tokio::test]
    async fn plain_http_is_refused_but_to_a_mirror_named_by_its_address() {
        let server = ModuleServer::default();
        let base = server.start().await;
        server.route("/job.wasm", StatusCode::OK, MODULE.to_vec());
        let err = fetch_error(&ModuleFetcher::new(None), format!("{base}/job.wasm")).await;
        assert_refused(&err, "plain http to 127.0.0.1");
        assert_eq!(server.hits(), Vec::<String>::new());
        let source = url_source(format!("{base}/job.wasm"), MODULE);
        let bytes = trusting_test_server(None)
            .fetch(&client(), &source)
            .await
            .unwrap();
        assert_eq!(bytes, MODULE);
    }

    #[tokio::test]
    async fn a_redirect_loop_is_given_up_after_a_few_hops() {
        let server = ModuleServer::default();
        let base = server.start().await;
        server.redirect("/loop.wasm", &format!("{base}/loop.wasm"));
        let err = fetch_error(&trusting_test_server(None), format!("{base}/loop.wasm")).await;
        assert_refused(&err, "more than 5 redirects");
        assert_eq!(server.hits().len(), 6, "the job's URL and 5 redirects");
    }

    #[tokio::test]
    async fn the_result_of_a_failed_fetch_names_only_the_kind_of_failure() {
        let server = ModuleServer::default();
        let base = server.start().await;
        server.route(
            "/job.wasm",
            StatusCode::FORBIDDEN,
            b"internal: token required".to_vec(),
        );
        server.route("/other.wasm", StatusCode::OK, b"other bytes".to_vec());
        let fetcher = trusting_test_server(None);
        let err = fetch_error(&fetcher, format!("{base}/job.wasm")).await;
        assert!(
            err.to_string().contains("HTTP 403"),
            "the log has it: {err}"
        );
        assert_eq!(
            published(&err),
            "fetching the module failed: the server answered HTTP 4xx"
        );
        let err = fetch_error(&fetcher, format!("{base}/other.wasm")).await;
        assert_eq!(
            published(&err),
            "fetching the module failed: module digest mismatch: \
             the bytes do not hash to the job's sha256"
        );
        let (addr, _) = counting_listener().await;
        let err = fetch_error(
            &ModuleFetcher::new(None),
            format!("https://{addr}/job.wasm"),
        )
        .await;
        assert_refused(&err, &format!("{} is not a public address", addr.ip()));
    }
}
