//! Reading a canister's event log without trusting the replica that
//! answers: the ICRC-3 tip certificate is checked against the IC's root key,
//! every block back from the certified tip against the hash chain, and each
//! event against its block (see [`market_api::blocks`] for the format).
//!
//! [`verified_events`] does it all over an ic-agent [`Agent`]. The steps are
//! public too ([`fetch_tip_certificate`], [`verify_tip`], [`fetch_blocks`],
//! [`verify_chain`], [`fetch_events`], [`match_events`]) for callers that
//! keep blocks or verify what they stored.
//!
//! Old blocks move to archive canisters: the canister's `icrc3_get_blocks`
//! answers for them with callbacks to the archives, which
//! [`fetch_blocks`] follows. An archive is trusted for nothing: its
//! blocks are verified like the others, through the hash chain down from
//! the canister's certified tip. Archived events have no typed copy (the
//! canister's `get_events` serves only what it holds), so they are
//! returned as verified blocks ([`VerifiedLog::archived`]).
//!
//! The agent's root key is the one everything is checked against: mainnet's
//! built in, or a local network's after `fetch_root_key` (which trusts that
//! network, as any local development does).

use candid::{CandidType, Decode, Encode, Nat, Principal};
use ic_agent::hash_tree::{HashTree, LookupResult};
use ic_agent::{Agent, Certificate};
use market_api::blocks::{
    self, BlockEvent, BlockWithId, GetBlocksRequest, GetBlocksResult, Hash, ICRC3DataCertificate,
    ICRC3Value, LAST_BLOCK_HASH, LAST_BLOCK_INDEX, MAX_BLOCKS_PER_QUERY,
};
use market_api::{EventPage, EventRecord, PageRequest};
use serde::de::DeserializeOwned;

/// Why a log could not be read or did not verify.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A query failed or its answer did not decode.
    #[error("query {method} failed: {message}")]
    Query {
        /// The method queried.
        method: &'static str,
        /// What went wrong.
        message: String,
    },
    /// The canister offered no tip certificate: its log is empty, or the
    /// query was answered in replicated mode.
    #[error("the canister offers no tip certificate (its log is empty)")]
    NoTip,
    /// The certificate or the tip tree is not well-formed CBOR.
    #[error("the tip certificate is malformed: {0}")]
    Malformed(String),
    /// The certificate's signature, delegation or time does not verify
    /// against the agent's root key.
    #[error(
        "the certificate does not verify for canister {canister} against the root key: {message}"
    )]
    Certificate {
        /// The canister whose log was read.
        canister: Principal,
        /// The agent's reason.
        message: String,
    },
    /// The certificate certifies no data of this canister (it is another
    /// canister's).
    #[error("the certificate holds no certified data of canister {0}")]
    NoCertifiedData(Principal),
    /// The tip tree is not the one whose root the canister certified.
    #[error("the tip tree's root hash is not canister {0}'s certified data")]
    TreeNotCertified(Principal),
    /// The tip tree lacks a label or holds a malformed value.
    #[error("the tip tree's `{0}` is missing or malformed")]
    TipTree(&'static str),
    /// The certified tip is behind a length already seen: an old
    /// certificate, or a canister rolled back.
    #[error(
        "stale tip: the certified log has {certified} blocks, fewer than the {seen} already seen"
    )]
    StaleTip {
        /// Blocks under the certified tip.
        certified: u64,
        /// Blocks the caller had seen.
        seen: u64,
    },
    /// The canister served blocks other than the ones asked for.
    #[error("asked for block {expected}, the canister served {served}")]
    WrongBlock {
        /// The block asked for.
        expected: u64,
        /// What was served instead (an index, or "none").
        served: String,
    },
    /// Fewer or more blocks than lie between the first one asked for and
    /// the certified tip.
    #[error("{served} blocks served where the certified tip needs {wanted}")]
    BlockCount {
        /// Blocks served.
        served: u64,
        /// Blocks from the first asked for to the tip.
        wanted: u64,
    },
    /// A block does not hash to what the chain says it must.
    #[error("block {0} does not hash to the certified chain: it was changed, dropped or reordered")]
    ChainBroken(u64),
    /// A block is not shaped like the log's blocks.
    #[error("block {index} is malformed: {reason}")]
    BadBlock {
        /// The block.
        index: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// An event served by `get_events` is not the one its verified block
    /// holds.
    #[error("event {index} does not match its verified block: {reason}")]
    EventMismatch {
        /// The event's index.
        index: u64,
        /// What differs.
        reason: String,
    },
}

/// A canister's certified tip, as verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifiedTip {
    /// The index of the last block.
    pub last_index: u64,
    /// Its hash.
    pub last_hash: Hash,
    /// The certificate's time, ns since the epoch.
    pub time_ns: u64,
}

impl VerifiedTip {
    /// Blocks in the certified log.
    pub fn len(&self) -> u64 {
        self.last_index.saturating_add(1)
    }

    /// Never true: a tip has a last block.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// What to verify.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VerifyOptions {
    /// The first event wanted.
    pub from: u64,
    /// Blocks the caller already saw in this log (e.g. a previous
    /// [`VerifiedLog::tip`]'s length): a certified tip behind it is stale.
    pub seen_len: u64,
}

/// Events verified against the certified tip.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedLog<E> {
    /// The certified tip they were verified against.
    pub tip: VerifiedTip,
    /// The events from [`VerifyOptions::from`] to the tip, in order.
    pub events: Vec<EventRecord<E>>,
    /// How many of [`Self::events`], from the first, were read from
    /// archives: typed from their verified blocks
    /// ([`blocks::from_value`]), as the canister keeps no copy.
    pub archived: u64,
}

async fn query<A: CandidType, R: CandidType + DeserializeOwned>(
    agent: &Agent,
    canister: Principal,
    method: &'static str,
    arg: &A,
) -> Result<R, VerifyError> {
    raw_query(agent, canister, method, arg)
        .await
        .map_err(|message| VerifyError::Query { method, message })
}

/// An archive's `icrc3_get_blocks` callback, by the name the canister gave.
async fn query_archive<A: CandidType, R: CandidType + DeserializeOwned>(
    agent: &Agent,
    archive: Principal,
    method: &str,
    arg: &A,
) -> Result<R, VerifyError> {
    raw_query(agent, archive, method, arg)
        .await
        .map_err(|message| VerifyError::Query {
            method: "archive callback",
            message: format!("{method} of {archive}: {message}"),
        })
}

async fn raw_query<A: CandidType, R: CandidType + DeserializeOwned>(
    agent: &Agent,
    canister: Principal,
    method: &str,
    arg: &A,
) -> Result<R, String> {
    let arg = Encode!(arg).map_err(|e| e.to_string())?;
    let reply = agent
        .query(&canister, method)
        .with_arg(arg)
        .call()
        .await
        .map_err(|e| e.to_string())?;
    Decode!(&reply, R).map_err(|e| e.to_string())
}

/// The canister's `icrc3_get_tip_certificate`, unverified.
pub async fn fetch_tip_certificate(
    agent: &Agent,
    canister: Principal,
) -> Result<ICRC3DataCertificate, VerifyError> {
    query::<_, Option<ICRC3DataCertificate>>(agent, canister, "icrc3_get_tip_certificate", &())
        .await?
        .ok_or(VerifyError::NoTip)
}

/// Verifies a tip certificate as `canister`'s against the agent's root
/// key: the certificate (signature, delegation, age, by
/// [`Agent::verify`]), the tip tree's root against the canister's
/// certified data in it, and the tip the tree holds.
pub fn verify_tip(
    agent: &Agent,
    canister: Principal,
    tip: &ICRC3DataCertificate,
) -> Result<VerifiedTip, VerifyError> {
    let certificate: Certificate = serde_cbor::from_slice(&tip.certificate)
        .map_err(|e| VerifyError::Malformed(format!("certificate: {e}")))?;
    agent
        .verify(&certificate, canister)
        .map_err(|e| VerifyError::Certificate {
            canister,
            message: e.to_string(),
        })?;
    let certified_data = found(
        &certificate.tree,
        &[
            b"canister".as_slice(),
            canister.as_slice(),
            b"certified_data",
        ],
    )
    .ok_or(VerifyError::NoCertifiedData(canister))?;
    let time_ns = found(&certificate.tree, &[b"time".as_slice()])
        .and_then(blocks::read_leb128)
        .ok_or_else(|| VerifyError::Malformed("certificate without a time".into()))?;
    let tree: HashTree<Vec<u8>> = serde_cbor::from_slice(&tip.hash_tree)
        .map_err(|e| VerifyError::Malformed(format!("tip tree: {e}")))?;
    if tree.digest().as_slice() != certified_data {
        return Err(VerifyError::TreeNotCertified(canister));
    }
    let last_index = found(&tree, &[LAST_BLOCK_INDEX.as_bytes()])
        .and_then(blocks::read_leb128)
        .ok_or(VerifyError::TipTree(LAST_BLOCK_INDEX))?;
    let last_hash = found(&tree, &[LAST_BLOCK_HASH.as_bytes()])
        .and_then(|h| Hash::try_from(h).ok())
        .ok_or(VerifyError::TipTree(LAST_BLOCK_HASH))?;
    Ok(VerifiedTip {
        last_index,
        last_hash,
        time_ns,
    })
}

/// The value at `path` in `tree`, if the tree proves it is there.
fn found<'a>(tree: &'a HashTree<Vec<u8>>, path: &[&[u8]]) -> Option<&'a [u8]> {
    match tree.lookup_path(path.iter().copied()) {
        LookupResult::Found(value) => Some(value),
        _ => None,
    }
}

/// Refuses a tip behind `seen_len` blocks already seen in the same log
/// (an old certificate replayed, or a canister rolled back). Age is
/// checked by [`verify_tip`] (the agent refuses certificates older than
/// its ingress expiry).
pub fn check_not_stale(tip: &VerifiedTip, seen_len: u64) -> Result<(), VerifyError> {
    if tip.len() < seen_len {
        return Err(VerifyError::StaleTip {
            certified: tip.len(),
            seen: seen_len,
        });
    }
    Ok(())
}

/// Blocks `from..=last` from `icrc3_get_blocks`, paged, unverified,
/// following the answer's callbacks to archives for archived blocks; each
/// page must hold the next block asked for, and blocks come back in order.
pub async fn fetch_blocks(
    agent: &Agent,
    canister: Principal,
    from: u64,
    last: u64,
) -> Result<Vec<BlockWithId>, VerifyError> {
    let mut found = Vec::new();
    let mut next = from;
    while next <= last {
        let length = (last - next).saturating_add(1).min(MAX_BLOCKS_PER_QUERY);
        let range = vec![GetBlocksRequest {
            start: Nat::from(next),
            length: Nat::from(length),
        }];
        let page: GetBlocksResult = query(agent, canister, "icrc3_get_blocks", &range).await?;
        let mut served = Vec::new();
        // An archived range comes first: it is older than what is local.
        for archived in page.archived_blocks {
            let archive = archived.callback.canister_id;
            let method = archived.callback.method;
            let args: Vec<GetBlocksRequest> = archived
                .args
                .into_iter()
                .filter(|r| r.start <= last)
                .collect();
            if args.is_empty() {
                continue;
            }
            let reply: GetBlocksResult = query_archive(agent, archive, &method, &args).await?;
            served.extend(reply.blocks);
        }
        served.extend(page.blocks);
        served.sort_by(|a, b| a.id.cmp(&b.id));
        let before = next;
        let wanted_from = Nat::from(next);
        for block in served.into_iter().filter(|b| b.id >= wanted_from) {
            if next > last || block.id != next {
                break;
            }
            found.push(block);
            next += 1;
        }
        if next == before {
            return Err(VerifyError::WrongBlock {
                expected: next,
                served: "none".into(),
            });
        }
    }
    Ok(found)
}

/// Verifies `blocks` (consecutive, from `from`) as the end of the chain
/// certified by `tip`: each block's hash is the next block's `phash`, the
/// last one's is the tip's hash, and every block has the type of `E`'s log.
/// Returns each block's event value with its index and time.
pub fn verify_chain<E: BlockEvent>(
    tip: &VerifiedTip,
    from: u64,
    blocks: &[BlockWithId],
) -> Result<Vec<VerifiedBlock>, VerifyError> {
    let wanted = tip.len().saturating_sub(from);
    if blocks.len() as u64 != wanted {
        return Err(VerifyError::BlockCount {
            served: blocks.len() as u64,
            wanted,
        });
    }
    let mut expected = Some(tip.last_hash);
    let mut verified = Vec::with_capacity(blocks.len());
    for (offset, block) in blocks.iter().enumerate().rev() {
        let index = from + offset as u64;
        if block.id != index {
            return Err(VerifyError::WrongBlock {
                expected: index,
                served: block.id.to_string(),
            });
        }
        if expected != Some(blocks::block_hash(&block.block)) {
            return Err(VerifyError::ChainBroken(index));
        }
        let bad = |reason: String| VerifyError::BadBlock { index, reason };
        let parts = blocks::block_parts(&block.block).map_err(|e| bad(e.to_string()))?;
        if parts.btype != E::BLOCK_TYPE {
            return Err(bad(format!(
                "its type is {}, not {}",
                parts.btype,
                E::BLOCK_TYPE
            )));
        }
        if parts.phash.is_some() != (index > 0) {
            return Err(bad("phash must be absent exactly in block 0".into()));
        }
        expected = parts.phash;
        verified.push(VerifiedBlock {
            index,
            ts_ns: parts.ts_ns,
            ev: parts.ev.clone(),
        });
    }
    verified.reverse();
    Ok(verified)
}

/// One block whose place in the certified chain was verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedBlock {
    /// Its index.
    pub index: u64,
    /// The event's time, ns.
    pub ts_ns: u64,
    /// The event's ICRC-3 value.
    pub ev: ICRC3Value,
}

/// Events `from..=last` from `get_events`, paged, unverified.
pub async fn fetch_events<E: CandidType + DeserializeOwned>(
    agent: &Agent,
    canister: Principal,
    from: u64,
    last: u64,
) -> Result<Vec<EventRecord<E>>, VerifyError> {
    let mut found = Vec::new();
    let mut next = Some(from);
    while let Some(start) = next.filter(|n| *n <= last) {
        let page: EventPage<E> = query(
            agent,
            canister,
            "get_events",
            &PageRequest {
                start: Some(start),
                limit: None,
            },
        )
        .await?;
        if page.events.is_empty() {
            break;
        }
        found.extend(page.events.into_iter().filter(|e| e.seq <= last));
        next = page.next;
    }
    Ok(found)
}

/// Checks that `events` are exactly the verified blocks' events: same
/// indexes, times, and ICRC-3 values (an event is mapped again with
/// [`blocks::to_value`] and compared), so the typed events carry the
/// blocks' verification.
pub fn match_events<E: BlockEvent>(
    verified: &[VerifiedBlock],
    events: Vec<EventRecord<E>>,
) -> Result<Vec<EventRecord<E>>, VerifyError> {
    if events.len() != verified.len() {
        return Err(VerifyError::EventMismatch {
            index: verified.first().map_or(0, |b| b.index),
            reason: format!(
                "{} events served for {} blocks",
                events.len(),
                verified.len()
            ),
        });
    }
    for (block, event) in verified.iter().zip(&events) {
        let mismatch = |reason: String| VerifyError::EventMismatch {
            index: block.index,
            reason,
        };
        if event.seq != block.index {
            return Err(mismatch(format!("served as event {}", event.seq)));
        }
        if event.time_ns != block.ts_ns {
            return Err(mismatch("its time differs".into()));
        }
        let value = blocks::to_value(&event.event).map_err(|e| mismatch(e.to_string()))?;
        if value != block.ev {
            return Err(mismatch("its content differs".into()));
        }
    }
    Ok(events)
}

/// Reads `canister`'s events from `options.from` up to its certified tip
/// and verifies them: the tip certificate against the agent's root key,
/// the blocks back from the tip (archived ones read from the archives),
/// and the typed events the canister still holds against their blocks;
/// archived events are typed from their blocks. `E` is the canister's event type (`RegistryEvent`, `EscrowEvent` or
/// `MatcherEvent`).
pub async fn verified_events<E: BlockEvent + DeserializeOwned>(
    agent: &Agent,
    canister: Principal,
    options: VerifyOptions,
) -> Result<VerifiedLog<E>, VerifyError> {
    let certificate = fetch_tip_certificate(agent, canister).await?;
    let tip = verify_tip(agent, canister, &certificate)?;
    check_not_stale(&tip, options.seen_len)?;
    let from = options.from.min(tip.len());
    let blocks = if from < tip.len() {
        fetch_blocks(agent, canister, from, tip.last_index).await?
    } else {
        Vec::new()
    };
    let mut verified = verify_chain::<E>(&tip, from, &blocks)?;
    let events = if from < tip.len() {
        fetch_events(agent, canister, from, tip.last_index).await?
    } else {
        Vec::new()
    };
    // The canister serves the events it still holds; the blocks before
    // the first of them are archived (or were archived since the blocks
    // were read).
    let first_event = events.first().map_or(tip.len(), |e| e.seq);
    let archived = first_event.saturating_sub(from).min(verified.len() as u64);
    let local = verified.split_off(archived as usize);
    let local = match_events(&local, events)?;
    let mut events = verified
        .into_iter()
        .map(|block| {
            let event = blocks::from_value::<E>(&block.ev).map_err(|e| VerifyError::BadBlock {
                index: block.index,
                reason: e.to_string(),
            })?;
            Ok(EventRecord {
                seq: block.index,
                time_ns: block.ts_ns,
                event,
            })
        })
        .collect::<Result<Vec<_>, VerifyError>>()?;
    events.extend(local);
    Ok(VerifiedLog {
        tip,
        events,
        archived,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candid::Deserialize;

    #[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
    struct Note {
        text: String,
    }

    impl BlockEvent for Note {
        const BLOCK_TYPE: &'static str = "market.test";
    }

    /// A chain of `n` notes as a canister builds it, its tip and events.
    fn chain(n: u64) -> (VerifiedTip, Vec<BlockWithId>, Vec<EventRecord<Note>>) {
        let mut phash = None;
        let mut found = Vec::new();
        let mut events = Vec::new();
        for i in 0..n {
            let event = Note {
                text: format!("note {i}"),
            };
            let block = blocks::block(
                phash,
                1_000 + i,
                Note::BLOCK_TYPE,
                blocks::to_value(&event).unwrap(),
            );
            phash = Some(blocks::block_hash(&block));
            found.push(BlockWithId {
                id: Nat::from(i),
                block,
            });
            events.push(EventRecord {
                seq: i,
                time_ns: 1_000 + i,
                event,
            });
        }
        let tip = VerifiedTip {
            last_index: n - 1,
            last_hash: phash.unwrap(),
            time_ns: 0,
        };
        (tip, found, events)
    }

    #[test]
    fn a_true_chain_verifies_from_any_start() {
        let (tip, found, events) = chain(6);
        let verified = verify_chain::<Note>(&tip, 0, &found).unwrap();
        assert_eq!(match_events(&verified, events.clone()).unwrap(), events);
        let verified = verify_chain::<Note>(&tip, 4, &found[4..]).unwrap();
        assert_eq!(verified.len(), 2);
        assert_eq!(verified[0].index, 4);
        match_events(&verified, events[4..].to_vec()).unwrap();
    }

    #[test]
    fn a_changed_missing_or_foreign_block_is_refused() {
        let (tip, found, events) = chain(6);
        let mut changed = found.clone();
        changed[2].block = blocks::block(
            Some(blocks::block_hash(&found[1].block)),
            1_002,
            Note::BLOCK_TYPE,
            blocks::to_value(&Note {
                text: "note 2!".into(),
            })
            .unwrap(),
        );
        assert!(matches!(
            verify_chain::<Note>(&tip, 0, &changed),
            Err(VerifyError::ChainBroken(2))
        ));
        // The tail alone, with the last block's hash as the tip: block 5
        // is missing.
        let short = VerifiedTip {
            last_index: 5,
            last_hash: blocks::block_hash(&found[4].block),
            time_ns: 0,
        };
        assert!(matches!(
            verify_chain::<Note>(&short, 0, &found[..5]),
            Err(VerifyError::BlockCount { .. })
        ));
        // A tip from another log.
        let (other, _, _) = chain(7);
        let other = VerifiedTip {
            last_index: 5,
            ..other
        };
        assert!(matches!(
            verify_chain::<Note>(&other, 0, &found),
            Err(VerifyError::ChainBroken(5))
        ));
        // An event that is not its block's.
        let verified = verify_chain::<Note>(&tip, 0, &found).unwrap();
        let mut wrong = events;
        wrong[3].event.text.push('!');
        assert!(matches!(
            match_events(&verified, wrong),
            Err(VerifyError::EventMismatch { index: 3, .. })
        ));
    }

    #[test]
    fn a_tip_behind_what_was_seen_is_stale() {
        let (tip, _, _) = chain(3);
        check_not_stale(&tip, 3).unwrap();
        assert!(matches!(
            check_not_stale(&tip, 4),
            Err(VerifyError::StaleTip {
                certified: 3,
                seen: 4
            })
        ));
    }
}
