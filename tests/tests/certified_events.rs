//! The canisters' event logs verified over HTTP with ic-agent against the
//! devnet's root key: a little market traffic, then each log read with
//! `market_client::certified`; and tampered answers (a changed block, a
//! dropped or reordered block, another canister's certificate, another
//! root key, a stale tip, a changed event) refused; and a log whose old
//! blocks moved to an archive canister, verified across the archive.

use candid::{CandidType, Principal};
use ic_agent::Agent;
use ic_stable_structures::Storable;
use local_replica::{NodeKeys, Server, ServerConfig};
use market_api::blocks::{
    ArchiveInit, ArchiveStatus, LogArchiving, LogArchivingError, LogArchivingStatus,
};
use market_api::blocks::{
    BlockWithId, GetArchivesArgs, ICRC3ArchiveInfo, ICRC3DataCertificate, ICRC3Value,
    SupportedBlockType,
};
use market_api::escrow::EscrowEvent;
use market_api::matcher::{MatcherError, MatcherEvent, OfferSpec};
use market_api::registry::RegistryEvent;
use market_api::{EventRecord, OfferId};
use market_client::CanisterIds;
use market_client::certified::{
    VerifiedTip, VerifyError, VerifyOptions, check_not_stale, fetch_blocks, fetch_events,
    fetch_tip_certificate, match_events, verified_events, verify_chain, verify_tip,
};
use market_fixture::{MarketFixture, Settings, admin, canister_wasm, node, principal, provider};
use serde::de::DeserializeOwned;

const ICP: u128 = 100_000_000;

/// Moves the fixture's devnet into an HTTP server, with an agent that
/// trusts its root key.
async fn serve_over_http(net: MarketFixture) -> (Server, Agent) {
    let shared = net.shared();
    drop(net);
    let devnet = std::sync::Arc::try_unwrap(shared)
        .unwrap_or_else(|_| panic!("the fixture still shares its devnet"))
        .into_inner()
        .expect("devnet lock");
    let server = Server::start(
        ServerConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            ..ServerConfig::default()
        },
        devnet,
    )
    .await
    .expect("server");
    let agent = Agent::builder()
        .with_url(server.url())
        .build()
        .expect("agent");
    agent.fetch_root_key().await.expect("root key");
    (server, agent)
}

/// A market with some history in every canister's log (the matcher's
/// across an upgrade), moved into an HTTP server; the spec of a further offer, for traffic over there.
async fn market_over_http() -> (Server, Agent, CanisterIds, OfferSpec) {
    let net = MarketFixture::deploy(Settings::default()).expect("deploy");
    let buyer = principal(1);
    net.mint(buyer, 10 * ICP).unwrap();
    net.deposit(buyer, 5 * ICP).unwrap();
    net.onboard_provider(provider(1), node(1), 20 * ICP)
        .unwrap();
    let spec = net.offer_spec(2, 1_000);
    for _ in 0..2 {
        net.post_offer(provider(1), &spec).unwrap();
    }
    // The chain goes on across an upgrade.
    net.upgrade_matcher(None);
    net.post_offer(provider(1), &spec).unwrap();
    let ids = net.ids;
    // The ICRC-3 methods are queries: ingress may not send them as updates.
    for canister in [ids.registry, ids.escrow, ids.matcher] {
        for method in [
            "icrc3_get_blocks",
            "icrc3_get_tip_certificate",
            "icrc3_supported_block_types",
            "icrc3_get_archives",
        ] {
            let arg = candid::encode_one(()).unwrap();
            match net
                .devnet()
                .update_call(canister, principal(1), method, arg)
            {
                Err(r) => assert!(r.message.contains("inspect_message"), "{method}: {r:?}"),
                Ok(_) => panic!("{method} passed inspect_message as an update"),
            }
        }
    }
    let (server, agent) = serve_over_http(net).await;
    (server, agent, ids, spec)
}

/// A query over HTTP, decoded.
async fn query<A: CandidType, R: CandidType + DeserializeOwned>(
    agent: &Agent,
    canister: Principal,
    method: &str,
    arg: &A,
) -> R {
    let reply = agent
        .query(&canister, method)
        .with_arg(candid::encode_one(arg).unwrap())
        .call()
        .await
        .unwrap_or_else(|e| panic!("{method}: {e}"));
    candid::decode_one(&reply).unwrap_or_else(|e| panic!("{method}: {e}"))
}

/// Stable-memory bytes an event takes, about: its record as the log
/// stores it, its key and the hash of the block before it.
fn stored_bytes<E: serde::Serialize + serde::de::DeserializeOwned + Clone>(
    events: &[EventRecord<E>],
) -> usize {
    events
        .iter()
        .map(|e| canister_common::codec::Cbor(e.clone()).to_bytes().len() + 8 + 32)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_canisters_log_verifies_against_the_root_key() {
    let (server, agent, ids, spec) = market_over_http().await;

    let registry = verified_events::<RegistryEvent>(&agent, ids.registry, VerifyOptions::default())
        .await
        .expect("the registry's log verifies");
    let escrow = verified_events::<EscrowEvent>(&agent, ids.escrow, VerifyOptions::default())
        .await
        .expect("the escrow's log verifies");
    let matcher = verified_events::<MatcherEvent>(&agent, ids.matcher, VerifyOptions::default())
        .await
        .expect("the matcher's log verifies");

    // Every event of each log, from block 0 to the tip.
    for (name, len, tip) in [
        ("registry", registry.events.len(), registry.tip),
        ("escrow", escrow.events.len(), escrow.tip),
        ("matcher", matcher.events.len(), matcher.tip),
    ] {
        assert!(len > 0, "{name} has events");
        assert_eq!(len as u64, tip.len(), "{name}: every event up to the tip");
    }
    assert_any(&registry.events, |e| {
        matches!(e, RegistryEvent::ProfileSet { .. })
    });
    assert_any(&matcher.events, |e| {
        matches!(e, MatcherEvent::OfferChanged { .. })
    });
    let all_escrow: Vec<EventRecord<EscrowEvent>> =
        fetch_events(&agent, ids.escrow, 0, u64::MAX).await.unwrap();
    assert_eq!(all_escrow, escrow.events);

    // The block types and (no) archives, as ICRC-3 clients ask for them.
    for (canister, btype) in [
        (ids.registry, "market.registry"),
        (ids.escrow, "market.escrow"),
        (ids.matcher, "market.matcher"),
    ] {
        let types: Vec<SupportedBlockType> =
            query(&agent, canister, "icrc3_supported_block_types", &()).await;
        assert_eq!(
            types
                .iter()
                .map(|t| t.block_type.as_str())
                .collect::<Vec<_>>(),
            [btype]
        );
        let archives: Vec<ICRC3ArchiveInfo> = query(
            &agent,
            canister,
            "icrc3_get_archives",
            &GetArchivesArgs { from: None },
        )
        .await;
        assert!(archives.is_empty());
    }

    let per_event = |bytes: usize, n: usize| bytes / n.max(1);
    eprintln!(
        "stable bytes per event: registry {}, escrow {}, matcher {}",
        per_event(stored_bytes(&registry.events), registry.events.len()),
        per_event(stored_bytes(&escrow.events), escrow.events.len()),
        per_event(stored_bytes(&matcher.events), matcher.events.len()),
    );

    // New traffic moves the certified tip; a read from the middle verifies
    // only what follows.
    let posted: Result<OfferId, MatcherError> = server.node().with_devnet(|dn| {
        dn.update(ids.matcher, provider(1), "post_offer", &spec)
            .expect("post_offer")
    });
    posted.expect("offer posted");
    let later = verified_events::<MatcherEvent>(
        &agent,
        ids.matcher,
        VerifyOptions {
            from: matcher.tip.len(),
            seen_len: matcher.tip.len(),
        },
    )
    .await
    .expect("the longer log verifies");
    assert_eq!(later.tip.last_index, matcher.tip.len());
    assert_eq!(later.events.len(), 1);
    assert_eq!(later.events[0].seq, matcher.tip.len());
    assert!(matches!(
        later.events[0].event,
        MatcherEvent::OfferChanged { .. }
    ));

    server.shutdown().await.unwrap();
}

/// Some event of `events` is `wanted`.
fn assert_any<E: std::fmt::Debug>(events: &[EventRecord<E>], wanted: impl Fn(&E) -> bool) {
    assert!(events.iter().any(|e| wanted(&e.event)), "{events:?}");
}

/// The first `Blob` inside a value, to change one byte of it.
fn first_blob(value: &mut ICRC3Value) -> Option<&mut [u8]> {
    match value {
        ICRC3Value::Blob(b) => Some(b.as_mut()),
        ICRC3Value::Array(items) => items.iter_mut().find_map(first_blob),
        ICRC3Value::Map(map) => map.values_mut().find_map(first_blob),
        _ => None,
    }
}

/// The value of a block's field, to change it.
fn field<'a>(block: &'a mut BlockWithId, name: &str) -> &'a mut ICRC3Value {
    match &mut block.block {
        ICRC3Value::Map(map) => map.get_mut(name).expect("the field"),
        other => panic!("a block is a map: {other:?}"),
    }
}

fn refused<T: std::fmt::Debug>(what: &str, result: Result<T, VerifyError>) -> VerifyError {
    match result {
        Ok(v) => panic!("{what} was accepted: {v:?}"),
        Err(e) => {
            eprintln!("{what}: {e}");
            e
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_answers_are_refused() {
    let (server, agent, ids, spec) = market_over_http().await;
    let canister = ids.matcher;
    let certificate = fetch_tip_certificate(&agent, canister).await.unwrap();
    let tip: VerifiedTip = verify_tip(&agent, canister, &certificate).expect("the true tip");
    assert!(tip.len() >= 3, "a few matcher events: {tip:?}");
    let blocks = fetch_blocks(&agent, canister, 0, tip.last_index)
        .await
        .unwrap();
    let verified = verify_chain::<MatcherEvent>(&tip, 0, &blocks).expect("the true chain");
    let events: Vec<EventRecord<MatcherEvent>> = fetch_events(&agent, canister, 0, tip.last_index)
        .await
        .unwrap();
    match_events(&verified, events.clone()).expect("the true events");

    // A tampered chain of matcher blocks from block `from`, refused.
    let chain_refused = |what: &str, from: u64, blocks: &[BlockWithId]| {
        refused(what, verify_chain::<MatcherEvent>(&tip, from, blocks))
    };

    // One byte of one block changed: in its event, and in its time.
    let mid = blocks.len() / 2;
    let mut changed = blocks.clone();
    let bytes = first_blob(field(&mut changed[mid], "ev")).expect("an event with a blob");
    bytes[0] ^= 1;
    let e = chain_refused("a changed event byte", 0, &changed);
    assert!(
        matches!(e, VerifyError::ChainBroken(i) if i == mid as u64),
        "{e}"
    );
    let mut changed = blocks.clone();
    if let ICRC3Value::Nat(ts) = field(&mut changed[0], "ts") {
        ts.0 += 1u8;
    }
    let e = chain_refused("a changed time", 0, &changed);
    assert!(matches!(e, VerifyError::ChainBroken(0)), "{e}");

    // The last block changed: its hash is no longer the certified one.
    let mut changed = blocks.clone();
    let last = changed.len() - 1;
    *field(&mut changed[last], "btype") = ICRC3Value::Text("market.matcher ".into());
    let e = chain_refused("a changed tip block", 0, &changed);
    assert!(
        matches!(e, VerifyError::ChainBroken(i) if i == last as u64),
        "{e}"
    );

    // A block dropped, with and without renumbering the rest.
    let mut dropped = blocks.clone();
    dropped.remove(mid);
    chain_refused("a dropped block", 0, &dropped);
    for (i, block) in dropped.iter_mut().enumerate() {
        block.id = (i as u64).into();
    }
    chain_refused("a dropped block, renumbered from 1", 1, &dropped);

    // Two blocks swapped, ids kept in order.
    let mut swapped = blocks.clone();
    let (a, b) = (swapped[mid].block.clone(), swapped[mid + 1].block.clone());
    swapped[mid].block = b;
    swapped[mid + 1].block = a;
    let e = chain_refused("reordered blocks", 0, &swapped);
    assert!(matches!(e, VerifyError::ChainBroken(_)), "{e}");

    // The escrow's (valid) certificate offered as the matcher's.
    let escrow_certificate = fetch_tip_certificate(&agent, ids.escrow).await.unwrap();
    verify_tip(&agent, ids.escrow, &escrow_certificate).expect("valid as the escrow's");
    let e = refused(
        "another canister's certificate",
        verify_tip(&agent, canister, &escrow_certificate),
    );
    assert!(
        matches!(e, VerifyError::NoCertifiedData(c) if c == canister),
        "{e}"
    );

    // The escrow's tip tree under the matcher's certificate.
    let mut mixed = fetch_tip_certificate(&agent, canister).await.unwrap();
    mixed.hash_tree = escrow_certificate.hash_tree.clone();
    let e = refused(
        "another canister's tip tree",
        verify_tip(&agent, canister, &mixed),
    );
    assert!(matches!(e, VerifyError::TreeNotCertified(_)), "{e}");

    // A certificate checked against another network's root key.
    let other = Agent::builder().with_url(server.url()).build().unwrap();
    other.set_root_key(NodeKeys::from_seed([7; 32]).root_key_der().to_vec());
    assert_ne!(other.read_root_key(), agent.read_root_key());
    let e = refused(
        "another root key",
        verify_tip(&other, canister, &certificate),
    );
    assert!(matches!(e, VerifyError::Certificate { .. }), "{e}");

    // One byte of the certificate changed.
    let mut forged = ICRC3DataCertificate {
        certificate: certificate.certificate.clone(),
        hash_tree: certificate.hash_tree.clone(),
    };
    let n = forged.certificate.len();
    forged.certificate[n - 1] ^= 1;
    refused(
        "a changed certificate",
        verify_tip(&agent, canister, &forged),
    );

    // A stale tip: the certificate read before the log grew, offered to a
    // reader that has seen the longer log.
    let stale = certificate;
    let provider_offer: Result<OfferId, MatcherError> = server.node().with_devnet(|dn| {
        dn.update(canister, provider(1), "post_offer", &spec)
            .expect("post_offer")
    });
    provider_offer.expect("offer posted");
    let longer = verified_events::<MatcherEvent>(&agent, canister, VerifyOptions::default())
        .await
        .unwrap();
    assert_eq!(longer.tip.len(), tip.len() + 1);
    let stale_tip = verify_tip(&agent, canister, &stale).expect("an old but valid certificate");
    let e = refused("a stale tip", check_not_stale(&stale_tip, longer.tip.len()));
    assert!(matches!(e, VerifyError::StaleTip { .. }), "{e}");

    // An event served by get_events that is not its block's.
    let mut wrong = events.clone();
    wrong[mid].time_ns += 1;
    let e = refused("a changed event time", match_events(&verified, wrong));
    assert!(matches!(e, VerifyError::EventMismatch { .. }), "{e}");
    let mut wrong = events.clone();
    wrong.swap(mid, mid + 1);
    refused("reordered events", match_events(&verified, wrong));
    let mut wrong = events;
    wrong.pop();
    refused("a missing event", match_events(&verified, wrong));

    // The matcher's blocks read as another canister's type of blocks.
    let e = refused(
        "blocks of another type",
        verify_chain::<EscrowEvent>(&tip, 0, &blocks),
    );
    assert!(matches!(e, VerifyError::BadBlock { .. }), "{e}");

    server.shutdown().await.unwrap();
}

/// The first page of the matcher's `get_events`.
fn matcher_events(net: &MarketFixture) -> market_api::EventPage<MatcherEvent> {
    net.query(
        net.ids.matcher,
        "get_events",
        &market_api::PageRequest::default(),
    )
    .unwrap()
}

/// The matcher's log with its oldest blocks in an archive canister: the
/// local log shrinks to the configured size, `icrc3_get_archives` lists the
/// archive, the client verifies the whole chain across archive and local
/// blocks (after an upgrade of the matcher too), and a changed archived
/// block is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_verifies_across_its_archive() {
    const KEEP: u64 = 3;
    let net = MarketFixture::deploy(Settings::default()).expect("deploy");
    let ids = net.ids;
    net.onboard_provider(provider(1), node(1), 20 * ICP)
        .unwrap();
    let spec = net.offer_spec(2, 1_000);
    for _ in 0..12 {
        net.post_offer(provider(1), &spec).unwrap();
    }
    let before: Vec<EventRecord<MatcherEvent>> = {
        let page = matcher_events(&net);
        assert_eq!(page.next, None);
        page.events
    };
    let len = before.len() as u64;
    assert!(len > KEEP + 5, "enough matcher events: {len}");

    // The archive, deployed beside the matcher and named by its controllers.
    let archive = {
        let mut dn = net.devnet();
        let id = dn.create_canister(vec![admin()]);
        let arg = candid::encode_one(ArchiveInit {
            owner: ids.matcher,
            capacity_blocks: None,
        })
        .unwrap();
        dn.install_canister(id, &canister_wasm("archive").unwrap(), arg, admin())
            .expect("install the archive");
        id
    };
    let set = LogArchiving {
        archive: Some(archive),
        max_local_blocks: Some(KEEP),
    };
    let stranger: Result<(), LogArchivingError> =
        net.refused_update(ids.matcher, provider(1), "set_log_archiving", &set);
    assert_eq!(stranger, Err(LogArchivingError::NotAuthorized));
    // Only the matcher may append to its archive.
    let append: Result<u64, market_api::blocks::AppendBlocksError> = net.refused_update(
        archive,
        admin(),
        "append_blocks",
        &market_api::blocks::AppendBlocksArgs {
            start: 0,
            blocks: vec![],
        },
    );
    assert_eq!(append, Err(market_api::blocks::AppendBlocksError::NotOwner));
    let done: Result<(), LogArchivingError> = net
        .update(ids.matcher, admin(), "set_log_archiving", &set)
        .unwrap();
    done.expect("the controllers set the archive");

    // The matcher's audit timer runs and moves the blocks.
    net.wait_secs(canister_common::audit::AUDIT_PERIOD_SECS + 5);
    let status: LogArchivingStatus = net.query(ids.matcher, "get_log_archiving", &()).unwrap();
    assert_eq!(status.last_error, None);
    assert!(status.log_length >= len);
    assert_eq!(
        status.log_length - status.first_local_index,
        KEEP,
        "{status:?}"
    );
    let held: ArchiveStatus = net.query(archive, "archive_status", &()).unwrap();
    assert_eq!(
        (held.first_index, held.blocks),
        (Some(0), status.first_local_index),
        "{held:?}"
    );
    let page = matcher_events(&net);
    assert_eq!(page.events.len() as u64, KEEP, "the local log shrank");
    assert_eq!(page.events[0].seq, status.first_local_index);
    assert_eq!(page.total, status.log_length);

    // An upgrade of the matcher over itself keeps the log and its archive,
    // and the chain and the archiving go on.
    net.upgrade_matcher(None);
    let after: LogArchivingStatus = net.query(ids.matcher, "get_log_archiving", &()).unwrap();
    assert_eq!(
        (after.archive, after.first_local_index),
        (Some(archive), status.first_local_index)
    );
    assert!(after.log_length >= status.log_length);
    net.post_offer(provider(1), &spec).unwrap();
    net.post_offer(provider(1), &spec).unwrap();
    net.wait_secs(canister_common::audit::AUDIT_PERIOD_SECS + 5);
    let status: LogArchivingStatus = net.query(ids.matcher, "get_log_archiving", &()).unwrap();
    assert_eq!(status.log_length - status.first_local_index, KEEP);
    assert!(status.first_local_index > after.first_local_index);
    let first_local = status.first_local_index;
    let page_after = matcher_events(&net).events;
    assert_eq!(page_after[0].seq, first_local);

    let (server, agent) = serve_over_http(net).await;

    let archives: Vec<ICRC3ArchiveInfo> = query(
        &agent,
        ids.matcher,
        "icrc3_get_archives",
        &GetArchivesArgs { from: None },
    )
    .await;
    assert_eq!(archives.len(), 1);
    assert_eq!(archives[0].canister_id, archive);
    assert_eq!(archives[0].start, candid::Nat::from(0u8));
    assert_eq!(archives[0].end, candid::Nat::from(first_local - 1));
    let types: Vec<SupportedBlockType> =
        query(&agent, archive, "icrc3_supported_block_types", &()).await;
    assert_eq!(types[0].block_type, "market.matcher");

    // The whole chain, archived blocks read through the callbacks.
    let log = verified_events::<MatcherEvent>(&agent, ids.matcher, VerifyOptions::default())
        .await
        .expect("the log verifies across the archive");
    assert_eq!(log.archived, first_local);
    assert_eq!(log.events.len() as u64, log.tip.len());
    // The archived events, typed from their blocks, are the ones the
    // matcher served before it archived them.
    assert_eq!(log.events[..before.len()], before[..]);
    assert_eq!(log.events[first_local as usize..], page_after[..]);
    // From the middle of the archive.
    let tail = verified_events::<MatcherEvent>(
        &agent,
        ids.matcher,
        VerifyOptions {
            from: first_local - 2,
            seen_len: log.tip.len(),
        },
    )
    .await
    .expect("a read from inside the archive verifies");
    assert_eq!(tail.archived, 2);
    assert_eq!(tail.events[..], log.events[first_local as usize - 2..]);

    // An archived block changed (an archive, or a replica answering for
    // it, that lies) is refused by the chain down from the certified tip.
    let certificate = fetch_tip_certificate(&agent, ids.matcher).await.unwrap();
    let tip = verify_tip(&agent, ids.matcher, &certificate).unwrap();
    let blocks = fetch_blocks(&agent, ids.matcher, 0, tip.last_index)
        .await
        .unwrap();
    assert_eq!(blocks.len() as u64, tip.len());
    verify_chain::<MatcherEvent>(&tip, 0, &blocks).expect("the true chain");
    let archived_block = (first_local / 2) as usize;
    let mut changed = blocks.clone();
    if let ICRC3Value::Nat(ts) = field(&mut changed[archived_block], "ts") {
        ts.0 += 1u8;
    }
    let e = refused(
        "a changed archived block",
        verify_chain::<MatcherEvent>(&tip, 0, &changed),
    );
    assert!(
        matches!(e, VerifyError::ChainBroken(i) if i == archived_block as u64),
        "{e}"
    );
    // The archived blocks alone, without the local ones that chain them
    // to the tip, prove nothing.
    refused(
        "archived blocks without the chain to the tip",
        verify_chain::<MatcherEvent>(&tip, 0, &blocks[..first_local as usize]),
    );

    server.shutdown().await.unwrap();
}
