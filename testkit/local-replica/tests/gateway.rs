//! The gateway in front of canisters' `http_request`: the explorer's page
//! by host, query parameter and referer, its certification verified, and
//! what the gateway refuses.

mod common;

use candid::{CandidType, Principal};
use common::*;
use local_replica::gateway::{HttpRequest, HttpResponse};
use std::time::Duration;

#[derive(CandidType)]
struct ExplorerConfig {
    registry: Principal,
    escrow: Principal,
    matcher: Principal,
    fetch_root_key: bool,
}

#[derive(CandidType)]
struct AssetUpload {
    path: String,
    content_type: String,
    content: serde_bytes::ByteBuf,
    append: bool,
}

const PAGE: &str = "<html><body>market explorer</body></html>";

/// A server with the explorer installed and a page uploaded.
async fn server_with_explorer() -> (local_replica::Server, Principal) {
    let server = start_server(1.0, Duration::from_secs(5)).await;
    let controller = Principal::from_slice(&[7; 29]);
    let config = ExplorerConfig {
        registry: Principal::from_slice(&[1; 10]),
        escrow: Principal::from_slice(&[2; 10]),
        matcher: Principal::from_slice(&[3; 10]),
        fetch_root_key: true,
    };
    let id = server
        .node()
        .install_canister(
            vec![controller],
            &market_artifacts::canister_wasm("explorer"),
            candid::encode_one(&config).unwrap(),
        )
        .expect("explorer installs");
    let upload = AssetUpload {
        path: "/index.html".into(),
        content_type: "text/html".into(),
        content: serde_bytes::ByteBuf::from(PAGE.as_bytes().to_vec()),
        append: false,
    };
    let uploaded: Result<(), candid::Reserved> = server
        .node()
        .with_devnet(|d| d.update(id, controller, "upload_asset", &upload))
        .expect("upload_asset answers");
    assert!(uploaded.is_ok(), "upload refused");
    (server, id)
}

/// GETs `path` from the server with the given `Host` and `Referer`.
async fn get(
    server: &local_replica::Server,
    host: &str,
    path: &str,
    referer: Option<&str>,
) -> (u16, String) {
    let mut request = reqwest::Client::new()
        .get(format!("{}{path}", server.url()))
        .header("host", host)
        .timeout(Duration::from_secs(10));
    if let Some(r) = referer {
        request = request.header("referer", r);
    }
    let response = request.send().await.expect("HTTP request");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_a_canisters_certified_page() {
    let (server, id) = server_with_explorer().await;
    let port = server.addr().port();
    let by_host = format!("{id}.localhost:{port}");
    let plain_host = format!("127.0.0.1:{port}");

    assert_eq!(get(&server, &by_host, "/", None).await, (200, PAGE.into()));
    let (status, config) = get(&server, &by_host, "/config.json", None).await;
    assert_eq!(status, 200);
    assert!(config.contains("\"fetch_root_key\":true"), "{config}");
    let query = format!("/?canisterId={id}");
    assert_eq!(
        get(&server, &plain_host, &query, None).await,
        (200, PAGE.into())
    );
    let referer = format!("http://{plain_host}/?canisterId={id}");
    let (status, _) = get(&server, &plain_host, "/config.json", Some(&referer)).await;
    assert_eq!(status, 200);

    // The IC's HTTP interface is still served on the canister's host, and
    // its unknown paths are not pages.
    let (status, _) = get(&server, &by_host, "/api/v2/status", None).await;
    assert_eq!(status, 200);
    let (status, _) = get(&server, &by_host, "/api/v9/nothing", None).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uncertified_answers_are_refused_except_on_raw() {
    let (server, id) = server_with_explorer().await;
    let port = server.addr().port();
    // A 404 carries no certificate: a boundary node would not pass it.
    let (status, body) = get(&server, &format!("{id}.localhost:{port}"), "/nope.js", None).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("no IC-Certificate"), "{body}");
    let (status, body) = get(
        &server,
        &format!("{id}.raw.localhost:{port}"),
        "/nope.js",
        None,
    )
    .await;
    assert_eq!((status, body.as_str()), (404, "not found"));

    let (status, body) = get(&server, &format!("127.0.0.1:{port}"), "/", None).await;
    assert_eq!(status, 400, "{body}");
    let unknown = Principal::from_slice(&[9; 10]);
    let (status, _) = get(&server, &format!("{unknown}.localhost:{port}"), "/", None).await;
    assert_eq!(status, 502);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_catches_a_body_or_path_the_tree_does_not_certify() {
    let (server, id) = server_with_explorer().await;
    let request = HttpRequest {
        method: "GET".into(),
        url: "/".into(),
        headers: vec![],
        body: Default::default(),
    };
    let reply = server
        .node()
        .anonymous_query(id, "http_request", candid::encode_one(&request).unwrap())
        .unwrap();
    let response: HttpResponse = candid::decode_one(&reply).unwrap();
    let header = &response
        .headers
        .iter()
        .find(|(n, _)| n == "IC-Certificate")
        .expect("certified")
        .1;
    let verify = |path: &str, body: &[u8]| {
        local_replica::gateway::verify_v1(server.node(), id, path, body, header)
    };
    verify("/", &response.body).expect("the real answer verifies");
    assert!(verify("/", b"<html>forged</html>").is_err());
    assert!(verify("/", &response.body[1..]).is_err());
    let other = Principal::from_slice(&[9; 10]);
    assert!(
        local_replica::gateway::verify_v1(server.node(), other, "/", &response.body, header)
            .is_err(),
        "another canister's certificate"
    );
}
