use super::*;
use icrc_ledger_types::icrc3::archive::QueryArchiveFn;
use icrc_ledger_types::icrc3::blocks::{ArchivedBlocks, BlockWithId};
use serde_bytes::ByteBuf;
use std::cell::RefCell;
use std::future::Future;
use std::task::{Context, Poll, Waker};

const HOUR: u64 = 3_600 * 1_000_000_000;
const T0: u64 = 1_700_000_000 * 1_000_000_000;

/// Runs a future of the fake source, which never waits.
fn run<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the fake source never waits"),
    }
}

fn principal(n: u8) -> Principal {
    Principal::from_slice(&[n; 10])
}

fn acc(owner: u8, sub: Option<u8>) -> Account {
    Account {
        owner: principal(owner),
        subaccount: sub.map(|s| [s; 32]),
    }
}

fn expected() -> ExpectedTransfer {
    ExpectedTransfer {
        from: acc(1, Some(7)),
        to: acc(2, None),
        spender: None,
        amount: 990_000,
        fee: Some(10_000),
        memo: b"EWDR\0\0\0\0\0\0\0\x05".to_vec(),
        created_at_time: T0,
    }
}

fn icrc3_account(a: &Account) -> ICRC3Value {
    let mut parts = vec![ICRC3Value::Blob(ByteBuf::from(a.owner.as_slice().to_vec()))];
    if let Some(s) = a.subaccount {
        parts.push(ICRC3Value::Blob(ByteBuf::from(s.to_vec())));
    }
    ICRC3Value::Array(parts)
}

/// A transfer block as the DFINITY ICRC ledgers write it.
fn transfer_block(t: &ExpectedTransfer, ledger_time: u64) -> ICRC3Value {
    let mut tx = ICRC3Map::new();
    tx.insert("op".into(), ICRC3Value::Text("xfer".into()));
    tx.insert("from".into(), icrc3_account(&t.from));
    tx.insert("to".into(), icrc3_account(&t.to));
    tx.insert("amt".into(), ICRC3Value::Nat(Nat::from(t.amount)));
    if let Some(fee) = t.fee {
        tx.insert("fee".into(), ICRC3Value::Nat(Nat::from(fee)));
    }
    if let Some(s) = &t.spender {
        tx.insert("spender".into(), icrc3_account(s));
    }
    tx.insert(
        "memo".into(),
        ICRC3Value::Blob(ByteBuf::from(t.memo.clone())),
    );
    tx.insert("ts".into(), ICRC3Value::Nat(Nat::from(t.created_at_time)));
    let mut block = ICRC3Map::new();
    block.insert("ts".into(), ICRC3Value::Nat(Nat::from(ledger_time)));
    block.insert("tx".into(), ICRC3Value::Map(tx));
    ICRC3Value::Map(block)
}

/// Another transfer of the same ledger, at `ledger_time`.
fn other_block(n: u64, ledger_time: u64) -> ICRC3Value {
    let mut t = expected();
    t.memo = format!("other {n}").into_bytes();
    transfer_block(&t, ledger_time)
}

#[test]
fn the_transfer_sent_is_a_match() {
    let t = expected();
    assert!(is_transfer(&transfer_block(&t, T0), &t));
}

#[test]
fn a_block_differing_in_any_identifying_field_is_not_a_match() {
    let t = expected();
    type Change = Box<dyn Fn(&mut ExpectedTransfer)>;
    let changes: Vec<(&str, Change)> = vec![
        ("amount", Box::new(|b| b.amount += 1)),
        ("memo", Box::new(|b| b.memo.push(0))),
        ("created_at_time", Box::new(|b| b.created_at_time += 1)),
        (
            "from subaccount",
            Box::new(|b| b.from.subaccount = Some([8; 32])),
        ),
        ("to owner", Box::new(|b| b.to.owner = principal(3))),
        (
            "to subaccount",
            Box::new(|b| b.to.subaccount = Some([1; 32])),
        ),
        ("fee", Box::new(|b| b.fee = Some(20_000))),
        ("spender", Box::new(|b| b.spender = Some(acc(9, None)))),
    ];
    for (what, change) in changes {
        let mut in_block = t.clone();
        change(&mut in_block);
        assert!(
            !is_transfer(&transfer_block(&in_block, T0), &t),
            "a block with another {what} matched"
        );
    }
}

#[test]
fn a_block_without_a_fee_matches_and_a_fee_nobody_named_does_not() {
    let t = expected();
    let mut no_fee = t.clone();
    no_fee.fee = None;
    // The ledger wrote no fee: it charged its own, which the call named.
    assert!(is_transfer(&transfer_block(&no_fee, T0), &t));
    // The call named none, the block says one was named.
    assert!(!is_transfer(&transfer_block(&t, T0), &no_fee));
}

#[test]
fn the_default_subaccount_is_the_same_account_written_or_not() {
    let mut t = expected();
    t.to.subaccount = None;
    let mut written = t.clone();
    written.to.subaccount = Some([0; 32]);
    assert!(is_transfer(&transfer_block(&written, T0), &t));
}

#[test]
fn blocks_of_another_kind_or_shape_are_not_matches() {
    let t = expected();
    let ICRC3Value::Map(mut block) = transfer_block(&t, T0) else {
        unreachable!()
    };
    let mut with_btype = block.clone();
    with_btype.insert("btype".into(), ICRC3Value::Text("1xfer".into()));
    assert!(is_transfer(&ICRC3Value::Map(with_btype), &t));
    let Some(ICRC3Value::Map(tx)) = block.get_mut("tx") else {
        unreachable!()
    };
    tx.insert("op".into(), ICRC3Value::Text("mint".into()));
    assert!(!is_transfer(&ICRC3Value::Map(block.clone()), &t));
    block.insert("btype".into(), ICRC3Value::Text("2approve".into()));
    assert!(!is_transfer(&ICRC3Value::Map(block), &t));
    assert!(!is_transfer(&ICRC3Value::Text("xfer".into()), &t));
}

#[test]
fn a_transfer_from_matches_only_with_its_spender() {
    let mut t = expected();
    t.spender = Some(acc(2, None));
    assert!(is_transfer(&transfer_block(&t, T0), &t));
    let mut plain = t.clone();
    plain.spender = None;
    assert!(!is_transfer(&transfer_block(&plain, T0), &t));
}

#[test]
fn the_window_passes_a_day_and_the_margins_after_creation() {
    assert!(!past_dedup_window(T0, T0 + 24 * HOUR));
    assert!(!past_dedup_window(
        T0,
        T0 + TX_WINDOW_NS + PERMITTED_DRIFT_NS
    ));
    assert!(past_dedup_window(T0, T0 + 25 * HOUR));
    assert!(!past_dedup_window(T0, 0));
}

/// A ledger with blocks, optionally the oldest ones in an archive, serving
/// at most `cap` blocks per call.
struct FakeLedger {
    blocks: Vec<ICRC3Value>,
    archived: u64,
    cap: u64,
    standards: Vec<String>,
    calls: RefCell<Vec<(Principal, String, u64, u64)>>,
}

const LEDGER: u8 = 50;
const ARCHIVE: u8 = 51;

impl FakeLedger {
    fn new(blocks: Vec<ICRC3Value>) -> Self {
        FakeLedger {
            blocks,
            archived: 0,
            cap: 1_000,
            standards: vec!["ICRC-1".into(), "ICRC-2".into(), "ICRC-3".into()],
            calls: RefCell::new(vec![]),
        }
    }

    fn serve(&self, start: u64, length: u64, from: u64, to: u64) -> Vec<BlockWithId> {
        let end = start.saturating_add(length.min(self.cap)).min(to);
        (start.max(from)..end)
            .map(|i| BlockWithId {
                id: Nat::from(i),
                block: self.blocks[i as usize].clone(),
            })
            .collect()
    }
}

impl BlockSource for FakeLedger {
    async fn supported_standards(&self, _: Principal) -> Result<Vec<String>, String> {
        Ok(self.standards.clone())
    }

    async fn get_blocks(
        &self,
        canister: Principal,
        method: &str,
        args: Vec<GetBlocksRequest>,
    ) -> Result<GetBlocksResult, String> {
        let (start, length) = args[0].as_start_and_length()?;
        self.calls
            .borrow_mut()
            .push((canister, method.to_string(), start, length));
        let len = self.blocks.len() as u64;
        if canister == principal(ARCHIVE) {
            assert_eq!(method, "get_archived");
            return Ok(GetBlocksResult {
                log_length: Nat::from(len),
                blocks: self.serve(start, length, 0, self.archived),
                archived_blocks: vec![],
            });
        }
        assert_eq!((canister, method), (principal(LEDGER), "icrc3_get_blocks"));
        let mut archived_blocks = vec![];
        if start < self.archived && length > 0 {
            let end = start.saturating_add(length).min(self.archived);
            archived_blocks.push(ArchivedBlocks {
                args: vec![GetBlocksRequest {
                    start: Nat::from(start),
                    length: Nat::from(end - start),
                }],
                callback: QueryArchiveFn::new(principal(ARCHIVE), "get_archived"),
            });
        }
        Ok(GetBlocksResult {
            log_length: Nat::from(len),
            blocks: self.serve(start, length, self.archived, len),
            archived_blocks,
        })
    }
}

/// `n` blocks a minute apart, ending an hour after the transfer was
/// created (so block `n - 60` is from then), with the transfer (if `at`) at
/// that index, stamped at creation.
fn log(n: u64, at: Option<u64>) -> Vec<ICRC3Value> {
    let start = T0 + HOUR - n * 60 * 1_000_000_000;
    (0..n)
        .map(|i| {
            if Some(i) == at {
                transfer_block(&expected(), T0)
            } else {
                other_block(i, start + i * 60 * 1_000_000_000)
            }
        })
        .collect()
}

fn scan_all(ledger: &FakeLedger) -> (ScanStep, u32) {
    let mut state = BlockScan::default();
    for messages in 1..100 {
        match run(scan(ledger, principal(LEDGER), &expected(), state)) {
            ScanStep::Unfinished(next) => state = next,
            done => return (done, messages),
        }
    }
    panic!("the scan never ends");
}

#[test]
fn a_transfer_near_the_tip_is_found_in_one_message() {
    let ledger = FakeLedger::new(log(500, Some(480)));
    assert_eq!(scan_all(&ledger), (ScanStep::Found(480), 1));
}

#[test]
fn a_long_scan_resumes_from_its_cursor_in_later_messages() {
    // 2,500 blocks back: more than one message's pages.
    let n = PAGE_BLOCKS * u64::from(PAGES_PER_MESSAGE) * 2 + 500;
    let mut blocks = log(n, Some(0));
    // Every block after the transfer is recent enough to be read.
    for (i, b) in blocks.iter_mut().enumerate().skip(1) {
        *b = other_block(i as u64, T0 + 1_000 + i as u64);
    }
    let ledger = FakeLedger::new(blocks);
    let first = run(scan(
        &ledger,
        principal(LEDGER),
        &expected(),
        BlockScan::default(),
    ));
    let ScanStep::Unfinished(cursor) = first else {
        panic!("one message read the whole log: {first:?}");
    };
    let per_message = PAGE_BLOCKS * u64::from(PAGES_PER_MESSAGE);
    assert_eq!(cursor.below, Some(n - per_message));
    assert_eq!(cursor.blocks_read, per_message);
    // The next message starts where the first stopped: no block twice.
    ledger.calls.borrow_mut().clear();
    let _ = run(scan(&ledger, principal(LEDGER), &expected(), cursor));
    let first_call = ledger.calls.borrow()[0].clone();
    assert_eq!(first_call.2 + first_call.3, n - per_message);
    assert_eq!(scan_all(&ledger), (ScanStep::Found(0), 3));
}

#[test]
fn the_scan_stops_at_the_first_block_too_old_to_hold_the_transfer() {
    // Blocks a minute apart from 23 h before creation: the transfer is absent.
    let n = 24 * 60;
    let ledger = FakeLedger::new(log(n, None));
    let (step, _) = scan_all(&ledger);
    assert_eq!(step, ScanStep::Absent);
    // It read the hour after creation and the drift and margin before, not 24 h.
    let read: u64 = ledger.calls.borrow().iter().map(|c| c.3).sum();
    assert!(read < 2 * PAGE_BLOCKS, "read {read} blocks");
}

#[test]
fn a_short_log_without_the_transfer_is_read_to_its_first_block() {
    let mut blocks = log(30, None);
    for (i, b) in blocks.iter_mut().enumerate() {
        *b = other_block(i as u64, T0 + i as u64);
    }
    let ledger = FakeLedger::new(blocks);
    assert_eq!(scan_all(&ledger).0, ScanStep::Absent);
}

#[test]
fn blocks_in_the_archives_are_read_through_their_callback() {
    // The transfer at index 240 (created an hour before the tip), in the archive.
    let mut ledger = FakeLedger::new(log(300, Some(240)));
    ledger.archived = 250;
    assert_eq!(scan_all(&ledger).0, ScanStep::Found(240));
    assert!(
        ledger
            .calls
            .borrow()
            .iter()
            .any(|c| c.0 == principal(ARCHIVE))
    );
}

#[test]
fn a_ledger_serving_smaller_pages_is_read_in_its_own_page_size() {
    let mut ledger = FakeLedger::new(log(300, Some(3)));
    ledger.cap = 7;
    // Blocks after the transfer are recent: all must be read.
    for (i, b) in ledger.blocks.iter_mut().enumerate().skip(4) {
        *b = other_block(i as u64, T0 + i as u64);
    }
    assert_eq!(scan_all(&ledger).0, ScanStep::Found(3));
}

#[test]
fn a_ledger_without_icrc3_is_left_to_the_controllers() {
    let mut ledger = FakeLedger::new(log(10, Some(5)));
    ledger.standards = vec!["ICRC-1".into(), "ICRC-2".into()];
    assert_eq!(scan_all(&ledger), (ScanStep::Unsupported, 1));
    assert!(ledger.calls.borrow().is_empty(), "no block was asked for");
}

#[test]
fn an_empty_log_holds_nothing() {
    let ledger = FakeLedger::new(vec![]);
    assert_eq!(scan_all(&ledger).0, ScanStep::Absent);
}
