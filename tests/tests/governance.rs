//! Handing the market to an SNS, so that escrowed funds never depend on
//! one person's key: the registry, the escrow and the matcher are upgraded
//! with the SNS governance canister as their `governance`, then the SNS
//! root becomes their only controller. From then on the deployer can
//! neither change their configuration nor upgrade them; configuration
//! changes are proposals (generic nervous-system functions whose
//! validators are the canisters' `validate_*` queries) and upgrades are
//! made by the root, as on an adopted `UpgradeSnsControlledCanister`
//! proposal. (The devnet has no SNS root canister: a principal of its own
//! stands for it.)

use candid::{CandidType, Principal};
use devnet::CanisterSettings;
use market_api::escrow::{EscrowError, EscrowInit, LedgerInfo};
use market_api::matcher::{DaoRegistration, MatcherError, MatcherInit};
use market_api::registry::{RegistryConfig, RegistryConfigUpdate, RegistryError};
use market_api::sns::{
    ExecuteGenericNervousSystemFunction, FunctionType, GenericNervousSystemFunction,
    NervousSystemFunction, Topic,
};
use market_fixture::{
    ICP, MarketFixture, Settings, admin, canister_wasm, principal, refused_ingress,
};

/// Stands for the SNS root canister, the canisters' only controller once
/// the market is handed over.
const ROOT: Principal = principal(0x5E);

/// The market, handed to the SNS whose governance canister is returned.
fn handed_over() -> (MarketFixture, Principal) {
    let net = MarketFixture::deploy(Settings::default()).expect("deploy");
    let gov = net.deploy_sns_governance().expect("the SNS governance");
    let ids = net.ids;
    let registry = RegistryConfigUpdate {
        governance: Some(gov),
        ..Default::default()
    };
    net.upgrade(ids.registry, &wasm("registry"), encode(Some(registry)));
    let escrow: EscrowInit = net.query(ids.escrow, "get_config", &()).unwrap();
    let escrow = EscrowInit {
        governance: Some(gov),
        ..escrow
    };
    net.upgrade(ids.escrow, &wasm("escrow"), encode(Some(escrow)));
    let matcher: MatcherInit = net.query(ids.matcher, "get_config", &()).unwrap();
    net.upgrade_matcher(Some(MatcherInit {
        governance: Some(gov),
        ..matcher
    }));
    for canister in [ids.registry, ids.escrow, ids.matcher] {
        let settings = CanisterSettings {
            controllers: Some(vec![ROOT]),
            ..Default::default()
        };
        net.devnet()
            .update_settings(admin(), canister, settings)
            .expect("hand the canister to the root");
    }
    (net, gov)
}

fn wasm(name: &str) -> Vec<u8> {
    canister_wasm(name).expect("a built canister")
}

fn encode<A: CandidType>(arg: A) -> Vec<u8> {
    candid::encode_one(arg).expect("encode")
}

/// Registers `method` of `canister` under `id` as a generic function of the
/// SNS, validated by `validate_<method>` of the same canister.
fn add_function(net: &MarketFixture, gov: Principal, id: u64, canister: Principal, method: &str) {
    let f = NervousSystemFunction {
        id,
        name: format!("Market: {method}"),
        description: None,
        function_type: Some(FunctionType::GenericNervousSystemFunction(
            GenericNervousSystemFunction {
                topic: Some(Topic::CriticalDappOperations),
                validator_canister_id: Some(canister),
                target_canister_id: Some(canister),
                validator_method_name: Some(format!("validate_{method}")),
                target_method_name: Some(method.to_string()),
            },
        )),
    };
    let r: Result<(), String> = net.update(gov, admin(), "add_function", &f).unwrap();
    r.expect("the function is registered");
}

/// Submits a proposal of function `id` with `payload`; the validator's
/// verdict decides whether it is made.
fn propose<A: CandidType>(
    net: &MarketFixture,
    gov: Principal,
    id: u64,
    payload: A,
) -> Result<u64, String> {
    let arg = ExecuteGenericNervousSystemFunction {
        function_id: id,
        payload: encode(payload),
    };
    net.update(gov, admin(), "submit_proposal", &arg).unwrap()
}

/// Adopts proposal `proposal`: governance calls its target.
fn adopt(net: &MarketFixture, gov: Principal, proposal: u64) {
    let r: Result<(), String> = net
        .update(gov, admin(), "execute_proposal", &proposal)
        .unwrap();
    r.expect("the proposal executes");
}

/// `dao` is among the matcher's registered DAOs.
fn assert_registered(net: &MarketFixture, dao: &DaoRegistration) {
    let page = market_api::PageRequest::default();
    let daos: Vec<DaoRegistration> = net.query(net.ids.matcher, "list_daos", &page).unwrap();
    assert!(daos.contains(dao), "{daos:?}");
}

#[test]
fn a_market_handed_to_an_sns_changes_only_by_its_proposals() {
    let (net, gov) = handed_over();
    let ids = net.ids;
    let dao = DaoRegistration {
        governance: principal(0xDA),
        name: "a buyer DAO".into(),
    };

    // The deployer's key no longer administers anything, as ingress or
    // from a canister.
    let stake = RegistryConfigUpdate {
        min_stake: Some(1),
        ..Default::default()
    };
    let r: Result<RegistryConfig, RegistryError> = refused_ingress(
        &mut net.devnet(),
        ids.registry,
        admin(),
        "update_config",
        &stake,
    );
    assert!(
        matches!(r, Err(RegistryError::Unauthorized { .. })),
        "{r:?}"
    );
    let r: Result<LedgerInfo, EscrowError> = refused_ingress(
        &mut net.devnet(),
        ids.escrow,
        admin(),
        "add_ledger",
        &ids.ledger,
    );
    assert!(matches!(r, Err(EscrowError::Unauthorized { .. })), "{r:?}");
    let r: Result<(), MatcherError> = refused_ingress(
        &mut net.devnet(),
        ids.matcher,
        admin(),
        "register_dao",
        &dao,
    );
    assert!(matches!(r, Err(MatcherError::Unauthorized { .. })), "{r:?}");
    for (canister, name) in [
        (ids.registry, "registry"),
        (ids.escrow, "escrow"),
        (ids.matcher, "matcher"),
    ] {
        let arg = encode(None::<()>);
        let upgraded = net
            .devnet()
            .upgrade_canister(canister, &wasm(name), arg, admin());
        assert!(upgraded.is_err(), "the deployer upgraded the {name}");
    }

    // Configuration by proposal: a proposal the validator refuses is not
    // made; adopted ones take effect.
    add_function(&net, gov, 1000, ids.registry, "update_config");
    add_function(&net, gov, 1001, ids.escrow, "add_ledger");
    add_function(&net, gov, 1002, ids.matcher, "register_dao");
    let too_long = RegistryConfigUpdate {
        unbonding_period_secs: Some(u64::MAX),
        ..Default::default()
    };
    let refused = propose(&net, gov, 1000, too_long).unwrap_err();
    assert!(refused.contains("unbonding_period_secs"), "{refused}");
    let stake = RegistryConfigUpdate {
        min_stake: Some(7 * ICP),
        ..Default::default()
    };
    let p = propose(&net, gov, 1000, stake).expect("a valid proposal");
    adopt(&net, gov, p);
    let config: RegistryConfig = net.query(ids.registry, "get_config", &()).unwrap();
    assert_eq!(config.min_stake, 7 * ICP);
    assert_eq!(config.governance, Some(gov));

    let p = propose(&net, gov, 1002, dao.clone()).expect("a valid proposal");
    adopt(&net, gov, p);
    assert_registered(&net, &dao);

    // A new token by proposal: the escrow takes the ledger.
    let token = net
        .deploy_token_ledger("Proposed (local)", "PRP", 8, 10_000)
        .unwrap();
    let whitelisted = |net: &MarketFixture| -> Vec<Principal> {
        let infos: Vec<LedgerInfo> = net.query(ids.escrow, "ledgers", &()).unwrap();
        infos.into_iter().map(|l| l.ledger).collect()
    };
    assert!(!whitelisted(&net).contains(&token));
    let p = propose(&net, gov, 1001, token).expect("a valid proposal");
    adopt(&net, gov, p);
    assert!(whitelisted(&net).contains(&token), "the proposal added it");

    // An upgrade is the root's: the market's state carries over.
    let arg = encode(None::<MatcherInit>);
    net.devnet()
        .upgrade_canister(ids.matcher, &wasm("matcher"), arg, ROOT)
        .expect("the root upgrades the matcher");
    assert_registered(&net, &dao);
    net.audit().expect("the books hold");
}
