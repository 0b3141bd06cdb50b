//! Native tests of the explorer's files and their certification.

use super::*;
use ic_certification::LookupResult;

fn config() -> ExplorerConfig {
    ExplorerConfig {
        registry: candid::Principal::from_text("bd3sg-teaaa-aaaaa-qaaba-cai").unwrap(),
        escrow: candid::Principal::from_text("be2us-64aaa-aaaaa-qaabq-cai").unwrap(),
        matcher: candid::Principal::from_text("br5f7-7uaaa-aaaaa-qaaca-cai").unwrap(),
        fetch_root_key: true,
    }
}

fn up(path: &str, content: &[u8], append: bool) -> AssetUpload {
    AssetUpload {
        path: path.to_string(),
        content_type: "text/html".to_string(),
        content: content.to_vec(),
        append,
    }
}

fn get(path: &str) -> HttpRequest {
    HttpRequest {
        method: "GET".to_string(),
        url: path.to_string(),
        headers: vec![],
        body: vec![],
    }
}

fn header<'a>(r: &'a HttpResponse, name: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Decodes the `tree=:...:` part of an `IC-Certificate` header.
fn header_tree(value: &str) -> HashTree {
    let b64 = value
        .split(", ")
        .find_map(|p| p.strip_prefix("tree=:"))
        .and_then(|p| p.strip_suffix(':'))
        .expect("tree in header");
    serde_cbor::from_slice(&BASE64.decode(b64).unwrap()).unwrap()
}

/// What a gateway checks: the witness hashes to the certified data, and
/// proves the body's sha256 at the path.
fn assert_certified(site: &Site, path: &str, r: &HttpResponse) {
    let value = header(r, "IC-Certificate").expect("IC-Certificate header");
    assert!(value.starts_with("certificate=:AQID:"), "{value}");
    let tree = header_tree(value);
    assert_eq!(tree.digest(), site.certified_data());
    let body_hash: [u8; 32] = Sha256::digest(&r.body).into();
    match tree.lookup_path([CERTIFIED_LABEL, path.as_bytes()]) {
        LookupResult::Found(h) => assert_eq!(h, body_hash.as_slice()),
        other => panic!("{path} not found in the witness: {other:?}"),
    }
}

#[test]
fn serves_uploaded_files_certified() {
    let mut site = Site::load();
    site.configure(config());
    site.upload(up("/index.html", b"<html>", false)).unwrap();
    site.upload(up("/index.html", b"</html>", true)).unwrap();
    site.upload(up("/app.js", b"console.log(1)", false))
        .unwrap();
    for (path, body) in [
        ("/", &b"<html></html>"[..]),
        ("/index.html", b"<html></html>"),
        ("/app.js?v=1", b"console.log(1)"),
    ] {
        let r = site.respond(&get(path), Some(vec![1, 2, 3]));
        assert_eq!(r.status_code, 200, "{path}");
        assert_eq!(r.body, body, "{path}");
        assert_certified(&site, path.split('?').next().unwrap(), &r);
    }
    let listed: Vec<_> = site.list().into_iter().map(|a| (a.path, a.bytes)).collect();
    assert_eq!(
        listed,
        vec![("/app.js".into(), 14), ("/index.html".into(), 13)]
    );
}

#[test]
fn config_json_names_the_market() {
    let mut site = Site::load();
    site.configure(config());
    let r = site.respond(&get("/config.json"), Some(vec![1, 2, 3]));
    assert_eq!(r.status_code, 200);
    assert_eq!(
        String::from_utf8(r.body.clone()).unwrap(),
        "{\"registry\":\"bd3sg-teaaa-aaaaa-qaaba-cai\",\"escrow\":\"be2us-64aaa-aaaaa-qaabq-cai\",\
         \"matcher\":\"br5f7-7uaaa-aaaaa-qaaca-cai\",\"fetch_root_key\":true}"
    );
    assert_eq!(header(&r, "Content-Type"), Some("application/json"));
    assert_certified(&site, "/config.json", &r);
}

#[test]
fn a_replaced_file_changes_the_certified_data() {
    let mut site = Site::load();
    site.configure(config());
    site.upload(up("/index.html", b"one", false)).unwrap();
    let before = site.certified_data();
    site.upload(up("/index.html", b"two", false)).unwrap();
    assert_ne!(site.certified_data(), before);
    let r = site.respond(&get("/"), Some(vec![1, 2, 3]));
    assert_eq!(r.body, b"two");
    assert_certified(&site, "/", &r);
    site.clear();
    assert_eq!(site.respond(&get("/"), None).status_code, 404);
    assert!(site.list().is_empty());
}

#[test]
fn the_tree_is_rebuilt_from_stable_memory() {
    let mut site = Site::load();
    site.configure(config());
    site.upload(up("/index.html", b"page", false)).unwrap();
    let certified = site.certified_data();
    // As after an upgrade: the heap is new, stable memory is the same.
    let reloaded = Site::load();
    assert_eq!(reloaded.certified_data(), certified);
    assert_eq!(reloaded.config(), Some(config()));
    assert_eq!(reloaded.respond(&get("/"), None).body, b"page");
}

#[test]
fn uploads_are_bounded() {
    let mut site = Site::load();
    for bad in ["index.html", "/a?b", "/config.json", "/"] {
        assert!(
            matches!(
                site.upload(up(bad, b"x", false)),
                Err(UploadError::BadPath(_))
            ),
            "{bad}"
        );
    }
    let long = format!("/{}", "a".repeat(MAX_PATH_BYTES));
    assert!(matches!(
        site.upload(up(&long, b"x", false)),
        Err(UploadError::BadPath(_))
    ));
    let mut untyped = up("/x", b"x", false);
    untyped.content_type.clear();
    assert_eq!(site.upload(untyped), Err(UploadError::BadContentType));
    for i in 0..MAX_ASSETS {
        site.upload(up(&format!("/f{i}"), b"x", false)).unwrap();
    }
    assert_eq!(
        site.upload(up("/one-more", b"x", false)),
        Err(UploadError::TooManyAssets { max: MAX_ASSETS })
    );
    // Replacing a file is no new file.
    site.upload(up("/f0", b"y", false)).unwrap();
    let big = vec![0u8; MAX_TOTAL_BYTES as usize];
    assert_eq!(
        site.upload(up("/f1", &big, false)),
        Err(UploadError::TooLarge {
            max_bytes: MAX_TOTAL_BYTES
        })
    );
    let r = site.respond(&get("/f1"), None);
    assert_eq!(r.body, b"x", "a refused upload leaves the file as it was");
}

#[test]
fn only_reads_are_answered() {
    let site = Site::load();
    let mut post = get("/");
    post.method = "POST".to_string();
    assert_eq!(site.respond(&post, None).status_code, 405);
    assert_eq!(site.respond(&get("/missing.js"), None).status_code, 404);
}
