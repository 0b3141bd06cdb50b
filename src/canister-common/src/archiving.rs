//! Moving a canister's oldest event-log blocks to its archive canister:
//! the one call it makes ([`ArchiveCalls`], part of each canister's runtime
//! trait) and what a run of its upkeep timer does when blocks are due
//! ([`move_old_blocks`]; see [`crate::timers`]).
//!
//! What to send and what an answer means is the log's
//! ([`crate::event_log::EventLog::next_batch`] and
//! [`crate::event_log::EventLog::batch_answered`]); this module only
//! carries the batches across the `.await`, where the state is not held.

use crate::event_log::{ArchiveBatch, MoveOutcome, append_answer};
use crate::ledger::{CallFailure, call};
use candid::Principal;
use market_api::blocks::{AppendBlocksArgs, AppendBlocksError};

/// The longest a block due to move waits for a run that moves it: the
/// escrow's and the registry's upkeep period while idle (the matcher's
/// audit timer runs every [`crate::audit::AUDIT_PERIOD_SECS`]).
pub const ARCHIVE_PERIOD_SECS: u64 = crate::timers::UPKEEP_IDLE_SECS;

/// Most batches one timer run moves: with runs every
/// [`crate::audit::AUDIT_PERIOD_SECS`] while blocks are due, 2,880,000
/// blocks a day.
pub const BATCHES_PER_RUN: usize = 10;

/// The call a canister makes to its archive.
///
/// The default method makes a bounded-wait call with ic-cdk, so the
/// deployed runtime implements it with an empty `impl`; native tests
/// answer it in memory.
#[allow(async_fn_in_trait)]
pub trait ArchiveCalls {
    /// `append_blocks` of `archive`.
    async fn append_blocks(
        &self,
        archive: Principal,
        args: &AppendBlocksArgs,
    ) -> Result<Result<u64, AppendBlocksError>, CallFailure> {
        call(archive, "append_blocks", args).await
    }
}

/// What one run moved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MoveReport {
    /// Blocks the archive confirmed and the log deleted.
    pub moved: u64,
    /// Why the run stopped early, if a batch was kept.
    pub kept: Option<String>,
}

/// One run of the archiving timer: takes up to [`BATCHES_PER_RUN`]
/// batches from the log (`next_batch`, on the state), sends each to its
/// archive and gives the answer back to the log (`answered`, on the state
/// again). Stops at the first batch kept.
pub async fn move_old_blocks<R: ArchiveCalls>(
    runtime: &R,
    mut next_batch: impl FnMut() -> Option<ArchiveBatch>,
    mut answered: impl FnMut(&ArchiveBatch, Result<u64, String>) -> MoveOutcome,
) -> MoveReport {
    let mut report = MoveReport::default();
    for _ in 0..BATCHES_PER_RUN {
        let Some(batch) = next_batch() else { break };
        let answer = runtime.append_blocks(batch.archive, &batch.args).await;
        match answered(&batch, append_answer(answer)) {
            MoveOutcome::Moved { blocks } => report.moved += blocks,
            MoveOutcome::Kept { reason } => {
                report.kept = Some(reason);
                break;
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block_archive::BlockArchive;
    use crate::event_log::EventLog;
    use candid::{CandidType, Deserialize};
    use ic_stable_structures::VectorMemory;
    use market_api::blocks::{ArchiveInit, BlockEvent, GetBlocksRequest, LogArchiving};
    use serde::Serialize;
    use std::cell::{Cell, RefCell};
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    #[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
    struct Note(u64);

    impl BlockEvent for Note {
        const BLOCK_TYPE: &'static str = "market.test";
    }

    fn owner() -> Principal {
        Principal::from_slice(&[1; 29])
    }

    fn archive_id() -> Principal {
        Principal::from_slice(&[2; 29])
    }

    /// The archive's answers as the network delivers them.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Network {
        Delivers,
        /// The archive stores the blocks; its answer is lost.
        LosesAnswers,
        /// The call never reaches the archive.
        Rejects,
    }

    /// A runtime whose archive is a real [`BlockArchive`] in memory.
    struct FakeRuntime {
        archive: RefCell<BlockArchive<VectorMemory>>,
        network: Cell<Network>,
        calls: Cell<u32>,
    }

    impl FakeRuntime {
        fn new(capacity_blocks: u64) -> Self {
            let mut archive = BlockArchive::open(VectorMemory::default(), VectorMemory::default());
            archive.install(&ArchiveInit {
                owner: owner(),
                capacity_blocks: Some(capacity_blocks),
            });
            Self {
                archive: RefCell::new(archive),
                network: Cell::new(Network::Delivers),
                calls: Cell::new(0),
            }
        }

        fn held(&self) -> u64 {
            self.archive.borrow().status().blocks
        }
    }

    impl ArchiveCalls for FakeRuntime {
        async fn append_blocks(
            &self,
            archive: Principal,
            args: &AppendBlocksArgs,
        ) -> Result<Result<u64, AppendBlocksError>, CallFailure> {
            assert_eq!(archive, archive_id());
            self.calls.set(self.calls.get() + 1);
            if self.network.get() == Network::Rejects {
                return Err(CallFailure::Rejected {
                    code: 2,
                    message: "unreachable".into(),
                });
            }
            let answer = self.archive.borrow_mut().append(owner(), args);
            match self.network.get() {
                Network::LosesAnswers => Err(CallFailure::Unknown {
                    message: "timed out".into(),
                }),
                _ => Ok(answer),
            }
        }
    }

    /// Runs a future whose awaits are all ready (the fake's are).
    fn run<F: Future>(f: F) -> F::Output {
        let mut f = pin!(f);
        match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(out) => out,
            Poll::Pending => panic!("the fake runtime never waits"),
        }
    }

    type Log = EventLog<Note, VectorMemory>;

    fn log_of(n: u64, max_local_blocks: u64) -> RefCell<Log> {
        let mut log = EventLog::init(VectorMemory::default(), VectorMemory::default());
        for i in 0..n {
            log.append(i, Note(i));
        }
        log.set_archiving(&LogArchiving {
            archive: Some(archive_id()),
            max_local_blocks: Some(max_local_blocks),
        })
        .unwrap();
        RefCell::new(log)
    }

    /// One timer run at `now`.
    fn timer_run(rt: &FakeRuntime, log: &RefCell<Log>, now: u64) -> MoveReport {
        run(move_old_blocks(
            rt,
            || log.borrow_mut().next_batch(now),
            |batch, answer| log.borrow_mut().batch_answered(batch, answer),
        ))
    }

    /// Every block `get_blocks` serves, read in pages from index 0.
    fn paged(get: impl Fn(u64) -> Vec<ICRC3Value>) -> Vec<ICRC3Value> {
        let mut all = Vec::new();
        loop {
            let page = get(all.len() as u64);
            if page.is_empty() {
                return all;
            }
            all.extend(page);
        }
    }

    fn range(start: u64) -> Vec<GetBlocksRequest> {
        vec![GetBlocksRequest {
            start: start.into(),
            length: 1_000u32.into(),
        }]
    }

    fn archived_blocks(rt: &FakeRuntime) -> Vec<ICRC3Value> {
        paged(|start| {
            let found = rt.archive.borrow().get_blocks(&range(start));
            found.blocks.into_iter().map(|b| b.block).collect()
        })
    }

    /// The log's blocks from its oldest local one.
    fn local_blocks(log: &RefCell<Log>) -> Vec<ICRC3Value> {
        let first = log.borrow().first_local();
        paged(|start| {
            let found = log.borrow().get_blocks(&range(first + start));
            found.blocks.into_iter().map(|b| b.block).collect()
        })
    }

    use market_api::blocks::ICRC3Value;

    #[test]
    fn a_run_moves_the_excess_in_batches_and_the_chain_stays_whole() {
        let rt = FakeRuntime::new(10_000);
        let log = log_of(250, 20);
        let before = local_blocks(&log);
        let report = timer_run(&rt, &log, 0);
        assert_eq!(
            report,
            MoveReport {
                moved: 230,
                kept: None
            }
        );
        assert_eq!(rt.calls.get(), 3, "batches of at most 100");
        assert_eq!(log.borrow().local_len(), 20);
        let mut whole = archived_blocks(&rt);
        whole.extend(local_blocks(&log));
        assert_eq!(whole, before);
        assert_eq!(timer_run(&rt, &log, 1), MoveReport::default());
    }

    #[test]
    fn a_lost_answer_keeps_the_blocks_and_the_retry_does_not_duplicate() {
        let rt = FakeRuntime::new(10_000);
        let log = log_of(50, 10);
        rt.network.set(Network::LosesAnswers);
        let report = timer_run(&rt, &log, 0);
        assert_eq!(report.moved, 0);
        assert!(report.kept.is_some());
        // The archive stored them; the log, not knowing, kept its copies.
        assert_eq!(rt.held(), 40);
        assert_eq!(log.borrow().local_len(), 50);
        rt.network.set(Network::Rejects);
        assert_eq!(timer_run(&rt, &log, 1).moved, 0);
        assert_eq!(log.borrow().local_len(), 50);
        rt.network.set(Network::Delivers);
        let report = timer_run(&rt, &log, 2);
        assert_eq!(
            report,
            MoveReport {
                moved: 40,
                kept: None
            }
        );
        assert_eq!(rt.held(), 40, "the retry stored nothing twice");
        assert_eq!(log.borrow().first_local(), 40);
        let archived = archived_blocks(&rt);
        assert_eq!(archived.len(), 40);
        let fresh = log_of(50, 10);
        assert_eq!(archived, local_blocks(&fresh)[..40].to_vec());
    }

    #[test]
    fn a_full_archive_keeps_the_rest_local() {
        let rt = FakeRuntime::new(30);
        let log = log_of(80, 10);
        let report = timer_run(&rt, &log, 0);
        assert_eq!(report.moved, 30);
        assert!(report.kept.unwrap().contains("full"));
        assert_eq!(log.borrow().first_local(), 30);
        assert_eq!(log.borrow().local_len(), 50);
    }
}
