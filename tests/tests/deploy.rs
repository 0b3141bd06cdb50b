//! The deployment configuration (`icp.yaml`, `deploy/`) against the
//! canisters' interfaces: every init argument template, filled with each
//! network's values, must be Candid of the canister's init type in its
//! checked-in `.did` file, and decode into the type the canister reads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candid::{Decode, Principal};
use candid_parser::utils::{CandidSource, instantiate_candid};
use market_api::blocks::{ArchiveInit, LogArchivingStatus};
use market_api::escrow::EscrowInit;
use market_api::matcher::MatcherInit;
use market_api::registry::RegistryInit;
use sha2::Digest;

/// The explorer's init argument as `src/explorer/explorer.did` has it.
#[derive(candid::CandidType, serde::Deserialize, Debug, PartialEq)]
struct ExplorerConfig {
    registry: Principal,
    escrow: Principal,
    matcher: Principal,
    fetch_root_key: bool,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// `NAME=VALUE` lines of an env file, comments and blank lines skipped.
fn env_file(path: &str) -> BTreeMap<String, String> {
    read(path)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, value) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("{path}: '{l}' is not NAME=VALUE"));
            (name.to_string(), value.to_string())
        })
        .collect()
}

/// The template with every `${NAME}` replaced; panics on a name without a value.
fn fill(template: &str, values: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .map(|e| start + e)
            .expect("an unclosed ${");
        let name = &rest[start + 2..end];
        let value = values
            .get(name)
            .unwrap_or_else(|| panic!("no value for ${{{name}}}"));
        out.push_str(value);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The Candid bytes of `text` typed with the init arguments of `did`.
fn encode_init(did: &str, text: &str) -> Vec<u8> {
    let (types, (env, _)) =
        instantiate_candid(CandidSource::Text(&read(did))).expect("the .did's init types");
    candid_parser::parse_idl_args(text)
        .unwrap_or_else(|e| panic!("parsing the init argument for {did}: {e}\n{text}"))
        .to_bytes_with_types(&env, &types)
        .unwrap_or_else(|e| panic!("the init argument does not match {did}: {e}\n{text}"))
}

/// Each network's values, with the canisters' own ids as deployment would
/// have them (placeholders here: any principals will do for the type check).
fn networks() -> Vec<(&'static str, BTreeMap<String, String>)> {
    let id = |n: u64| Principal::from_slice(&[&n.to_be_bytes()[..], &[1, 1]].concat()).to_text();
    ["ic", "devnet"]
        .into_iter()
        .map(|network| {
            let mut values = env_file(&format!("deploy/{network}.env"));
            values.insert("REGISTRY".into(), id(0x8000_0000_0010_0001));
            values.insert("ESCROW".into(), id(0x8000_0000_0010_0002));
            values.insert("MATCHER".into(), id(0x8000_0000_0010_0003));
            values
                .entry("STAKE_LEDGER".into())
                .or_insert_with(|| id(0x8000_0000_0010_0000));
            values.entry("DEPLOYER".into()).or_insert_with(|| id(7));
            (network, values)
        })
        .collect()
}

#[test]
fn init_arguments_match_the_did_files_on_every_network() {
    for (network, values) in networks() {
        let arg = |name: &str| fill(&read(&format!("deploy/init/{name}.args")), &values);

        let bytes = encode_init("src/registry/registry.did", &arg("registry"));
        let registry = Decode!(&bytes, RegistryInit).expect("RegistryInit");
        assert_eq!(
            registry.ledger.to_text(),
            values["STAKE_LEDGER"],
            "{network}"
        );
        assert_eq!(
            registry.matcher.map(|m| m.to_text()),
            Some(values["MATCHER"].clone())
        );

        let bytes = encode_init("src/escrow/escrow.did", &arg("escrow"));
        let escrow = Decode!(&bytes, EscrowInit).expect("EscrowInit");
        assert_eq!(
            escrow
                .ledgers
                .iter()
                .map(Principal::to_text)
                .collect::<Vec<_>>(),
            vec![values["STAKE_LEDGER"].clone()],
            "{network}"
        );

        let bytes = encode_init("src/matcher/matcher.did", &arg("matcher"));
        let matcher = Decode!(&bytes, MatcherInit).expect("MatcherInit");
        assert_eq!(matcher.registry.to_text(), values["REGISTRY"], "{network}");
        assert_eq!(matcher.escrow.to_text(), values["ESCROW"], "{network}");
        assert_eq!(
            matcher.privacy.map(|p| p.key_name),
            Some(values["VETKD_KEY"].clone()),
            "{network}"
        );

        for owner in ["registry", "escrow", "matcher"] {
            let bytes = encode_init("src/archive/archive.did", &arg(&format!("{owner}-archive")));
            let archive = Decode!(&bytes, ArchiveInit).expect("ArchiveInit");
            assert_eq!(
                archive.owner.to_text(),
                values[&owner.to_uppercase()],
                "{network}: the {owner}'s archive"
            );
        }

        let bytes = encode_init("src/explorer/explorer.did", &arg("explorer"));
        let explorer = Decode!(&bytes, ExplorerConfig).expect("ExplorerConfig");
        assert_eq!(
            (
                explorer.registry.to_text(),
                explorer.escrow.to_text(),
                explorer.matcher.to_text()
            ),
            (
                values["REGISTRY"].clone(),
                values["ESCROW"].clone(),
                values["MATCHER"].clone()
            ),
            "{network}"
        );
        assert_eq!(explorer.fetch_root_key, network != "ic", "{network}");

        if network == "devnet" {
            encode_init("testkit/ledger/ledger.did", &arg("ledger"));
        }
    }
}

#[test]
fn the_mainnet_values_name_the_ics_own_canisters() {
    let ic = env_file("deploy/ic.env");
    assert_eq!(ic["STAKE_LEDGER"], "ryjl3-tyaaa-aaaaa-aaaba-cai");
    assert_eq!(ic["CMC"], "rkp4c-7iaaa-aaaaa-aaaca-cai");
    assert_eq!(ic["CYCLES_LEDGER"], "um5iw-rqaaa-aaaaq-qaaba-cai");
    assert_eq!(ic["VETKD_KEY"], "key_1");
}

#[test]
fn icp_yaml_deploys_the_built_canisters() {
    let yaml = read("icp.yaml");
    for canister in ["registry", "escrow", "matcher", "explorer"] {
        assert!(
            yaml.contains(&format!("- name: {canister}\n")),
            "icp.yaml has no canister {canister}"
        );
        assert!(
            yaml.contains(&format!("scripts/build-canisters.sh {canister}")),
            "icp.yaml does not build {canister} with the pinned build"
        );
    }
    for canister in ["registry", "escrow", "matcher"] {
        assert!(
            yaml.contains(&format!("- name: {canister}-archive\n")),
            "icp.yaml has no archive for {canister}"
        );
    }
    assert!(yaml.contains("scripts/build-canisters.sh archive"));
    let build = read("scripts/build-canisters.sh");
    assert!(build.contains("target/canisters"));
}

/// The `icp` binary (icp-cli) the test script installs.
fn icp_binary() -> PathBuf {
    let path = std::env::var_os("ICP_CLI")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".tools/node_modules/@icp-sdk/icp-cli-linux-x64/bin/icp"));
    assert!(
        path.is_file(),
        "icp-cli is not at {}: scripts/test.sh installs it (or set ICP_CLI)",
        path.display()
    );
    path
}

/// The pieces `deploy.sh` uploads the explorer's files in, small enough
/// that the bundle takes several.
const PIECE: u64 = 65_536;

/// Runs a script of the repository with icp-cli's home in `home`; returns
/// its stderr, or panics with it if `succeed` does not match its status.
fn run_script(home: &Path, script: &str, args: &[&str], succeed: bool) -> String {
    let out = std::process::Command::new(root().join(script))
        .args(args)
        .env("ICP", icp_binary())
        .env("ICP_HOME", home)
        .env("DO_NOT_TRACK", "1")
        .env("EXPLORER_PIECE_BYTES", PIECE.to_string())
        .output()
        .unwrap_or_else(|e| panic!("running {script}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.success(),
        succeed,
        "{script} {args:?}: {}\n{stderr}",
        out.status
    );
    stderr
}

fn ids(path: &Path) -> BTreeMap<String, Principal> {
    std::fs::read_to_string(path)
        .expect("the ids file")
        .lines()
        .map(|l| {
            let (name, id) = l.split_once('=').expect("NAME=ID");
            (name.to_string(), Principal::from_text(id).expect("an id"))
        })
        .collect()
}

/// `deploy.sh` and `upgrade.sh` with the real icp-cli against the devnet's
/// HTTP server: the canisters are created through the cycles ledger,
/// installed with the filled templates and wired to each other (each event
/// log named its archive), the explorer serves the page `scripts/web.sh`
/// bundled, uploaded in pieces; a second deploy changes nothing; an upgrade stops, upgrades and starts the
/// matcher with its state kept; an upgrade whose post_upgrade traps fails
/// and leaves the old module running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deploy_and_upgrade_scripts_run_against_the_devnet() {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let home = tmp.path().join("icp");
    let icp = |args: &[&str]| {
        let out = std::process::Command::new(icp_binary())
            .args(args)
            .env("ICP_HOME", &home)
            .env("DO_NOT_TRACK", "1")
            .output()
            .expect("running icp");
        assert!(out.status.success(), "icp {args:?}: {out:?}");
        String::from_utf8(out.stdout).expect("utf-8")
    };
    icp(&[
        "identity",
        "new",
        "deployer",
        "--storage",
        "plaintext",
        "-q",
    ]);
    let deployer =
        Principal::from_text(icp(&["identity", "principal", "--identity", "deployer"]).trim())
            .expect("the deployer's principal");

    let server = local_replica::Server::start(
        local_replica::ServerConfig {
            addr: "127.0.0.1:0".parse().expect("an address"),
            ..Default::default()
        },
        devnet::Devnet::new(),
    )
    .await
    .expect("the devnet's HTTP server");
    server.node().with_devnet(|dn| {
        dn.mint_cycles(devnet::cycles_account(deployer), 100_000_000_000_000);
    });
    let url = server.url();
    let ids_file = tmp.path().join("devnet.ids");
    let ids_arg = ids_file.to_str().expect("a UTF-8 path");
    let common = ["--url", &url, "--ids", ids_arg, "--identity", "deployer"];

    let deploy = |home: PathBuf, common: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = std::iter::once("devnet")
                .chain(common.iter().map(String::as_str))
                .collect();
            run_script(&home, "scripts/deploy.sh", &args, true)
        })
    };
    let common_owned: Vec<String> = common.iter().map(|s| s.to_string()).collect();
    let said = deploy(home.clone(), common_owned.clone())
        .await
        .expect("deploy");
    let deployed = ids(&ids_file);
    assert_eq!(
        deployed.keys().collect::<Vec<_>>(),
        [
            "escrow",
            "escrow-archive",
            "explorer",
            "ledger",
            "matcher",
            "matcher-archive",
            "registry",
            "registry-archive"
        ]
    );
    // Each event log is named its archive.
    for owner in ["registry", "escrow", "matcher"] {
        let status = server.node().with_devnet(|dn| {
            dn.query_call(
                deployed[owner],
                deployer,
                "get_log_archiving",
                candid::encode_args(()).unwrap(),
            )
            .expect("get_log_archiving")
        });
        let status = Decode!(&status, LogArchivingStatus).expect("LogArchivingStatus");
        assert_eq!(
            status.archive,
            Some(deployed[&format!("{owner}-archive")]),
            "{owner}"
        );
    }

    // The explorer serves the bundled page, each file as it is on disk,
    // and names the market's canisters.
    let explorer = deployed["explorer"];
    let port = url.rsplit(':').next().expect("a port");
    assert!(
        said.contains(&format!("explorer: http://{explorer}.localhost:{port}/")),
        "{said}"
    );
    let get = |path: &str| {
        let request = market_api::HttpRequest {
            method: "GET".into(),
            url: path.into(),
            headers: vec![],
            body: vec![],
        };
        let reply = server.node().with_devnet(|dn| {
            dn.query_call(
                explorer,
                deployer,
                "http_request",
                candid::encode_one(request).unwrap(),
            )
            .expect("http_request")
        });
        Decode!(&reply, market_api::HttpResponse).expect("HttpResponse")
    };
    let page = root().join("web/dist/explorer");
    for (path, file) in [("/", "index.html"), ("/explorer.js", "explorer.js")] {
        let on_disk = std::fs::read(page.join(file)).expect("the bundled page: run scripts/web.sh");
        let served = get(path);
        assert_eq!(served.status_code, 200, "{path}");
        assert!(served.body == on_disk, "{path} is not {file} as bundled");
    }
    assert!(
        std::fs::metadata(page.join("explorer.js")).unwrap().len() > 2 * PIECE,
        "explorer.js fits one piece: the appending upload goes untested"
    );
    let served = String::from_utf8(get("/config.json").body).expect("UTF-8");
    assert!(served.contains(&deployed["matcher"].to_text()), "{served}");

    let config = |canister: Principal| {
        server.node().with_devnet(|dn| {
            dn.query_call(
                canister,
                deployer,
                "get_config",
                candid::encode_args(()).unwrap(),
            )
            .expect("get_config")
        })
    };
    let matcher = Decode!(&config(deployed["matcher"]), MatcherInit).expect("MatcherInit");
    assert_eq!(matcher.registry, deployed["registry"]);
    assert_eq!(matcher.escrow, deployed["escrow"]);
    assert_eq!(matcher.stake_ledger, deployed["ledger"]);
    server.node().with_devnet(|dn| {
        for (name, id) in &deployed {
            assert_eq!(dn.controllers(*id), Some(vec![deployer]), "{name}");
        }
    });

    // A second run finds every canister installed and changes nothing.
    let again = deploy(home.clone(), common_owned.clone())
        .await
        .expect("deploy again");
    assert!(again.contains("already has a module"), "{again}");
    assert_eq!(ids(&ids_file), deployed);

    let hash_of = |id: Principal| server.node().with_devnet(|dn| dn.module_hash(id));
    let version_of = |id: Principal| server.node().with_devnet(|dn| dn.canister_version(id));
    let matcher_id = deployed["matcher"];
    let before = (hash_of(matcher_id), version_of(matcher_id));

    let upgrade = |home: PathBuf, extra: Vec<String>, succeed: bool| {
        let mut args: Vec<String> = vec!["devnet".into(), "matcher".into()];
        args.extend(common_owned.clone());
        args.extend(extra);
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run_script(&home, "scripts/upgrade.sh", &args, succeed)
        })
    };
    upgrade(home.clone(), vec![], true).await.expect("upgrade");
    let wasm = std::fs::read(root().join("target/canisters/matcher.wasm")).expect("matcher.wasm");
    let built: [u8; 32] = sha2::Sha256::digest(&wasm).into();
    assert_eq!(hash_of(matcher_id), Some(built));
    assert!(version_of(matcher_id) > before.1, "the version moves on");
    assert_eq!(
        Decode!(&config(matcher_id), MatcherInit).expect("MatcherInit"),
        matcher,
        "the upgrade keeps the matcher's configuration"
    );

    // A module whose post_upgrade traps: the upgrade is rolled back and the
    // script starts the old module again.
    let broken = tmp.path().join("broken.wasm");
    std::fs::write(
        &broken,
        wat::parse_str(r#"(module (func (export "canister_post_upgrade") unreachable))"#)
            .expect("a module"),
    )
    .expect("writing the module");
    let failed = upgrade(
        home.clone(),
        vec!["--wasm".into(), broken.to_str().expect("utf-8").into()],
        false,
    )
    .await
    .expect("the failing upgrade");
    assert!(failed.contains("starting matcher again"), "{failed}");
    assert_eq!(hash_of(matcher_id), Some(built), "the old module stays");
    assert_eq!(
        Decode!(&config(matcher_id), MatcherInit).expect("the matcher answers"),
        matcher
    );
    server.shutdown().await.expect("shutdown");
}
