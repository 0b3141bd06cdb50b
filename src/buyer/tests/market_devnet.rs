//! The buyer's tool (`market`, its library's calls) against the real
//! ledger, registry, escrow and matcher `.wasm` files on the in-process
//! devnet (via `market-fixture`), with a provider daemon running the jobs.
//!
//! Needs the canisters built: `scripts/build-canisters.sh`.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use candid::Principal;
use market::{self as buyer, BuyerError, Console, JobRequest, RunOptions, RunReport, Sealing};
use market_api::Tokens;
use market_api::matcher::{
    AuditVerdict, JobKind, JobStatus, MAX_CHUNK_BYTES, Reservation, ReservationId, ReservationSpec,
    ReservationStatus, RunOutcome,
};
use market_client::MarketClient;
use market_fixture::{DevnetTransport, ICP, Settings};
use test_world::{World, one_slot_offer, spawn};

/// The provider's price per billion fuel (and per interval of a reserved
/// slot).
const PRICE: Tokens = 100_000;

/// Copies stdin to stdout.
const CAT: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_read" (func $r (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (loop $l
      (i32.store (i32.const 0) (i32.const 64))
      (i32.store (i32.const 4) (i32.const 4096))
      (drop (call $r (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
      (if (i32.load (i32.const 8))
        (then
          (i32.store (i32.const 4) (i32.load (i32.const 8)))
          (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 12)))
          (br $l))))))"#;

/// Exits with code 3.
const EXIT3: &str = r#"(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (call $exit (i32.const 3))))"#;

fn buyer_principal() -> Principal {
    market_fixture::principal(0xB2)
}

/// The provider [`World::start_provider`] onboards.
fn provider_principal() -> Principal {
    market_fixture::provider(1)
}

/// Progress written to a buffer the test reads.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn console() -> (Console, Captured) {
        let c = Captured::default();
        (Console::to_writer(c.clone()), c)
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// What these tests do with the shared [`World`].
trait Scene {
    fn new(wallet: Tokens) -> Self;
    fn start_provider(&self, state_dir: &std::path::Path) -> tokio::sync::oneshot::Sender<()>;
}

impl Scene for World {
    /// The marketplace with a buyer holding `wallet` e8s on the ledger.
    fn new(wallet: Tokens) -> Self {
        let w = World::deploy(
            Settings {
                grace_secs: 10,
                ..Settings::default()
            },
            buyer_principal(),
        );
        w.net.mint(buyer_principal(), wallet).unwrap();
        w
    }

    /// One provider with a one-slot offer at [`PRICE`] and its daemon;
    /// the devnet's clock runs at 50× real time from now on.
    fn start_provider(&self, state_dir: &std::path::Path) -> tokio::sync::oneshot::Sender<()> {
        let tx = provider_daemon(self, 1, state_dir);
        self.start_clock();
        tx
    }
}

/// Provider `n` (its node `n`) onboarded with a one-slot offer at
/// [`PRICE`], and its daemon running.
fn provider_daemon(
    w: &World,
    n: u8,
    state_dir: &std::path::Path,
) -> tokio::sync::oneshot::Sender<()> {
    let (provider, node) = (market_fixture::provider(n), market_fixture::node(n));
    w.onboard(provider, node, &one_slot_offer(64, PRICE, w.ids.ledger));
    spawn(w.daemon(n, state_dir).0).0
}

/// The marketplace with a privacy key, the buyer holding 5 ICP in escrow
/// and 5 on the ledger, provider 1 ([`provider_daemon`]) keeping its
/// results in `state_dir`; the clock runs.
async fn private_world_with_provider(
    state_dir: &std::path::Path,
) -> (World, tokio::sync::oneshot::Sender<()>) {
    let w = World::deploy(
        Settings {
            privacy: true,
            ..test_world::settings()
        },
        buyer_principal(),
    );
    w.net.mint(buyer_principal(), 10 * ICP).unwrap();
    buyer::deposit(&w.buyer, 5 * ICP).await.unwrap();
    let stop = provider_daemon(&w, 1, state_dir);
    w.start_clock();
    // The matcher reads its key a second of devnet time after install:
    // wait for it, or a sealed job submitted at once finds none.
    for _ in 0..100 {
        if w.buyer.privacy_key().await.unwrap().is_some() {
            return (w, stop);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the matcher never read its privacy key");
}

/// The ids of the buyer's reservations.
async fn reservations(c: &MarketClient<DevnetTransport>) -> Vec<ReservationId> {
    c.list_reservations(buyer_principal(), Default::default())
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect()
}

/// The delegate of the tests' reservations.
fn delegate_principal() -> Principal {
    market_fixture::principal(0xD1)
}

/// The buyer reserves one slot for 30 intervals at up to twice [`PRICE`],
/// with [`delegate_principal`] as its delegate; the reservation's id and
/// what reserving printed.
async fn reserve_for_delegate(w: &World) -> (ReservationId, Captured) {
    let (mut console, out) = Captured::console();
    let mut spec = reservation_spec(w, 1, 30, 2 * PRICE);
    spec.delegates = vec![delegate_principal()];
    let id = buyer::reserve(&w.buyer, spec, &mut console).await.unwrap();
    (id, out)
}

/// How the tests follow a job: every 20 ms, to its end, in a slot of
/// `reservation` if given.
fn follow(reservation: Option<ReservationId>) -> RunOptions {
    RunOptions {
        poll_interval: Duration::from_millis(20),
        detach: false,
        reservation,
    }
}

/// A provider's daemon started by [`world_with_provider`]; it stops, and
/// its state directory goes, when this drops.
struct RunningProvider {
    _stop: tokio::sync::oneshot::Sender<()>,
    _state_dir: tempfile::TempDir,
}

/// The marketplace with a buyer that deposited 5 of its 10 ICP and a
/// provider running (see [`Scene::start_provider`]).
async fn world_with_provider() -> (World, RunningProvider) {
    let w = World::new(10 * ICP);
    buyer::deposit(&w.buyer, 5 * ICP).await.unwrap();
    let state_dir = tempfile::tempdir().unwrap();
    let stop = w.start_provider(state_dir.path());
    let provider = RunningProvider {
        _stop: stop,
        _state_dir: state_dir,
    };
    (w, provider)
}

/// A job of five billion fuel at up to `max_price` per billion: it locks
/// five times `max_price`.
fn request(input: &[u8], max_price: Tokens) -> JobRequest {
    JobRequest {
        input: input.to_vec(),
        args: vec![],
        env: vec![],
        max_price_per_gfuel: max_price,
        currency: None,
        fuel: 5_000_000_000,
        deadline_secs: None,
        interval_secs: 20,
        memory_mib: 16,
        max_retries: 1,
        min_provider_stake: 0,
        audit_ppm: None,
        sealing: Sealing::default(),
    }
}

/// Runs `wasm` as `client` with a console of its own: the report and what
/// the run printed.
async fn run_printing(
    client: &MarketClient<DevnetTransport>,
    wasm: &[u8],
    request: &JobRequest,
    options: &RunOptions,
    interrupt: impl Future<Output = ()>,
) -> (RunReport, String) {
    let (mut console, out) = Captured::console();
    let report = buyer::run(client, wasm, request, options, &mut console, interrupt)
        .await
        .unwrap();
    (report, out.text())
}

/// Reservation `id` once `ready` holds of it, or as it is after `polls`
/// looks 20 ms apart.
async fn reservation_once(
    client: &MarketClient<DevnetTransport>,
    id: ReservationId,
    polls: usize,
    ready: impl Fn(&Reservation) -> bool,
) -> Reservation {
    let mut r = buyer::reservation(client, id).await.unwrap();
    for _ in 0..polls {
        if ready(&r) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        r = buyer::reservation(client, id).await.unwrap();
    }
    r
}

/// What a [`BuyerError::InsufficientBalance`] names: the amount the call
/// would lock and the free balance.
fn shortfall(err: &BuyerError) -> (Tokens, Tokens) {
    let BuyerError::InsufficientBalance {
        needed, available, ..
    } = err
    else {
        panic!("{err}")
    };
    (*needed, *available)
}

/// A valid module of `size` bytes: the header and one custom section.
fn module_of_size(size: usize) -> Vec<u8> {
    let mut wasm = b"\0asm\x01\0\0\0".to_vec();
    let name = b"pad";
    let payload = size - wasm.len() - 1 - 5 - 1 - name.len();
    let mut len = (1 + name.len() + payload) as u32;
    wasm.push(0); // custom section
    for i in 0..5 {
        // Padded LEB128, so the section header has a fixed length.
        let more = if i < 4 { 0x80 } else { 0 };
        wasm.push((len & 0x7f) as u8 | more);
        len >>= 7;
    }
    wasm.push(name.len() as u8);
    wasm.extend_from_slice(name);
    wasm.extend((0..payload).map(|i| (i % 251) as u8));
    assert_eq!(wasm.len(), size);
    wasm
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn funds_and_uploads_only_what_is_missing_in_chunks() {
    let w = World::new(10 * ICP);
    let c = &w.buyer;
    let hello = wat::parse_str(CAT).unwrap();

    // The matcher stores modules only for buyers with an escrow balance.
    let (mut console, _) = Captured::console();
    let err = buyer::ensure_module(c, &hello, &mut console)
        .await
        .unwrap_err();
    assert!(matches!(err, BuyerError::UploadNeedsDeposit), "{err}");
    assert!(err.to_string().contains("market deposit"), "{err}");

    let free = buyer::deposit(c, 5 * ICP).await.unwrap();
    assert_eq!(free, 5 * ICP);
    let f = buyer::funds(c).await.unwrap();
    assert_eq!(f.wallet, 5 * ICP - 2 * f.fee, "approval and transfer fees");
    let err = buyer::deposit(c, 5 * ICP).await.unwrap_err().to_string();
    assert!(err.contains("takes 5.0002 ICP including"), "{err}");

    // Uploaded once; the second time only `module_info_of` is asked.
    let (mut console, out) = Captured::console();
    let first = buyer::ensure_module(c, &hello, &mut console).await.unwrap();
    assert_eq!(first.chunks_sent, 1);
    let again = buyer::ensure_module(c, &hello, &mut console).await.unwrap();
    assert!(!again.uploaded());
    assert_eq!(again.sha256, first.sha256);
    let text = out.text();
    assert!(text.contains("uploading module"), "{text}");
    assert!(text.contains("already in the matcher's store"), "{text}");

    // Over MAX_CHUNK_BYTES: three chunks, stored byte for byte.
    let big = module_of_size(2 * MAX_CHUNK_BYTES + 1000);
    let up = buyer::ensure_module(c, &big, &mut console).await.unwrap();
    assert_eq!(up.chunks_sent, 3);
    let info = c.module_info(up.sha256).await.unwrap().unwrap();
    assert!(info.committed);
    assert_eq!((info.chunks, info.size), (3, big.len() as u64));
    let mut stored = vec![];
    for i in 0..info.chunks {
        stored.extend(c.module_chunk(up.sha256, i).await.unwrap());
    }
    assert!(stored == big, "the matcher's copy differs");
    assert!(out.text().contains("(3/3 chunks)"));

    // Not a module: refused before anything is sent.
    let err = buyer::ensure_module(c, b"#!/bin/sh", &mut console)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("not a WebAssembly binary"),
        "{err}"
    );

    // Withdrawal: the recipient gets the amount minus the fee.
    buyer::withdraw(c, ICP, market_fixture::account(buyer_principal()))
        .await
        .unwrap();
    let after = buyer::funds(c).await.unwrap();
    assert_eq!(after.escrow.free, 4 * ICP);
    assert_eq!(after.wallet, f.wallet + ICP - f.fee);
    w.audit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_balance_says_exactly_what_to_deposit_and_uploads_nothing() {
    // 0.5 ICP in the wallet, 0.2 of it deposited.
    let w = World::new(ICP / 2);
    let c = &w.buyer;
    buyer::deposit(c, ICP / 5).await.unwrap();
    let wasm = wat::parse_str(EXIT3).unwrap();
    // 0.1 ICP per billion fuel × 5 billion fuel = 0.5 ICP locked, and a
    // storage fee of one ledger fee (0.0001 ICP) for a small job.
    let (mut console, _) = Captured::console();
    let err = buyer::submit(c, &wasm, &request(b"", ICP / 10), &mut console)
        .await
        .unwrap_err();
    assert_eq!(shortfall(&err), (ICP / 2 + 10_000, ICP / 5));
    let msg = err.to_string();
    assert!(
        msg.contains("the job with its storage fee takes up to 0.5001 ICP but 0.2 ICP is free")
            && msg.contains("deposit 0.3001 ICP more with `market deposit 0.3001`"),
        "{msg}"
    );
    // The wallet holds 0.5 − 0.2 − 2 fees = 0.2998; the deposit takes 0.3003.
    assert!(
        msg.contains("holds 0.2998 ICP") && msg.contains("send it at least 0.0005 ICP first"),
        "{msg}"
    );
    let sha = buyer::sha256_of(&wasm);
    assert_eq!(c.module_info(sha).await.unwrap(), None, "nothing uploaded");
    assert!(
        c.list_jobs(buyer_principal(), Default::default())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_uploads_once_pays_a_provider_and_returns_the_jobs_stdout() {
    let (w, _provider) = world_with_provider().await;
    let c = &w.buyer;
    let options = follow(None);
    let never = std::future::pending::<()>;
    let cat = wat::parse_str(CAT).unwrap();

    // Binary-safe: every byte value goes through stdin and stdout.
    let input: Vec<u8> = (0..=255u8).chain([0, 10, 13, 0xff]).collect();
    let (report, text) =
        run_printing(c, &cat, &request(&input, 2 * PRICE), &options, never()).await;
    let RunReport::Finished { job, settlement } = report else {
        panic!("{report:?}")
    };
    let result = job.result.as_ref().unwrap();
    assert_eq!(result.outcome, RunOutcome::Exited { code: 0 });
    assert!(result.output == input, "stdout is the input, byte for byte");
    assert!(!buyer::output_truncated(result));
    assert_eq!(buyer::exit_code(&job), 0);
    // The run stops at the result: the challenge window is still open.
    assert_eq!(job.status, JobStatus::Reported);
    assert!(job.window_closes_at_ns.is_some());
    assert!(settlement.exact, "the bill the result sets");
    assert_eq!(settlement.locked, 5 * 2 * PRICE);
    assert_eq!(
        settlement.paid,
        market_api::matcher::fuel_cost(result.fuel_used, PRICE).unwrap(),
        "the fuel used at the provider's price"
    );
    assert_eq!(Some(settlement.paid), buyer::bill(&job));
    assert_eq!(settlement.paid + settlement.refunded, settlement.locked);
    for expected in [
        "uploading module",
        &format!("submitted job {}: up to 0.01 ICP locked", job.id),
        "running on",
        "has a record of ",
        "fuel reported",
        "result in, challenge window open until",
    ] {
        assert!(text.contains(expected), "{expected:?} in {text}");
    }
    let summary = buyer::summary(&job, &settlement);
    assert!(
        summary.contains("reported (challenge window open until")
            && summary.contains(": exited with code 0")
            && summary.contains(&format!("stdout    {} bytes", input.len()))
            && summary.contains("returns to your escrow balance when the window closes"),
        "{summary}"
    );

    // The same module again: not uploaded again.
    let (report, text) =
        run_printing(c, &cat, &request(b"again\n", 2 * PRICE), &options, never()).await;
    let RunReport::Finished { job, .. } = report else {
        panic!("{report:?}")
    };
    assert_eq!(job.result.unwrap().output, b"again\n");
    assert!(
        text.contains("already in the matcher's store") && !text.contains("uploading module"),
        "{text}"
    );

    // A job exiting with 3: the run reports it and fails.
    let exit3 = wat::parse_str(EXIT3).unwrap();
    let (report, _) = run_printing(c, &exit3, &request(b"", 2 * PRICE), &options, never()).await;
    let RunReport::Finished { job, settlement } = report else {
        panic!("{report:?}")
    };
    assert_eq!(job.status, JobStatus::Reported);
    assert_eq!(buyer::exit_code(&job), 1);
    assert!(buyer::summary(&job, &settlement).contains("exited with code 3"));

    // Interrupted while waiting: the job goes on and the message says how
    // to follow or cancel it.
    let (report, _) = run_printing(c, &cat, &request(b"x", 2 * PRICE), &options, async {}).await;
    let RunReport::Interrupted(id) = report else {
        panic!("{report:?}")
    };
    let msg = buyer::interrupted_message(id);
    assert!(
        msg.contains(&format!("market watch {id}")) && msg.contains(&format!("market cancel {id}"))
    );
    let (mut console, _) = Captured::console();
    let job = buyer::watch(c, id, Duration::from_millis(20), &mut console, never())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.result.unwrap().output, b"x");

    // Priced below every offer: it rests in the book until cancelled, and
    // the whole lock comes back.
    let detached = RunOptions {
        detach: true,
        ..options.clone()
    };
    let (report, _) = run_printing(c, &cat, &request(b"", PRICE / 2), &detached, never()).await;
    let RunReport::Detached(id) = report else {
        panic!("{report:?}")
    };
    c.cancel_job(id).await.unwrap();
    let job = c.get_job(id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Cancelled);
    let settlement = buyer::settlement(c, &job).await;
    assert_eq!((settlement.paid, settlement.refunded), (0, 5 * PRICE / 2));

    let jobs = c
        .list_jobs(buyer_principal(), Default::default())
        .await
        .unwrap();
    assert_eq!(jobs.len(), 5);
    // Each of the five small jobs paid one ledger fee for its storage, the
    // cancelled one too, to the market.
    let collected = c.escrow_balance(w.ids.matcher).await.unwrap().claimable;
    assert_eq!(collected, 5 * c.ledger_fee().await.unwrap());
    w.audit();
}

/// `slots` slots of 64 MiB for `intervals` intervals of 20 s at most
/// `max_price` each, on the devnet's ledger.
fn reservation_spec(w: &World, slots: u32, intervals: u32, max_price: Tokens) -> ReservationSpec {
    ReservationSpec {
        currency: None,
        slots,
        memory_mib: 64,
        fuel_per_interval: 1_000_000_000,
        interval_secs: 20,
        intervals,
        max_price_per_interval: max_price,
        ledger: w.ids.ledger,
        min_provider_stake: 0,
        max_rematches: 1,
        delegates: vec![],
        service: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_the_balance_does_not_cover_is_refused_before_any_call() {
    let w = World::new(ICP);
    let c = &w.buyer;
    buyer::deposit(c, ICP / 5).await.unwrap();
    // 2 slots × 10 intervals × 0.02 ICP = 0.4 ICP, 0.2 ICP free.
    let (mut console, out) = Captured::console();
    let err = buyer::reserve(c, reservation_spec(&w, 2, 10, ICP / 50), &mut console)
        .await
        .unwrap_err();
    assert_eq!(shortfall(&err), (2 * ICP / 5, ICP / 5));
    let msg = err.to_string();
    assert!(
        msg.contains("the reservation takes up to 0.4 ICP but 0.2 ICP is free")
            && msg.contains("deposit 0.2 ICP more with `market deposit 0.2`"),
        "{msg}"
    );
    assert!(out.text().is_empty(), "{}", out.text());
    assert!(reservations(c).await.is_empty(), "no reservation made");
    let f = buyer::funds(c).await.unwrap();
    assert_eq!(
        (f.escrow.free, f.escrow.locked),
        (ICP / 5, 0),
        "nothing locked"
    );
    w.audit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_person_reserves_a_slot_a_delegate_runs_a_job_in_it_then_it_is_extended_and_cancelled() {
    let (w, _provider) = world_with_provider().await;
    let c = &w.buyer;
    let delegate_principal = delegate_principal();
    let delegate = w.client(delegate_principal);

    // 1 slot × 30 intervals × 0.002 ICP = 0.06 ICP locked.
    let (id, out) = reserve_for_delegate(&w).await;
    let (mut console, _) = Captured::console();
    let text = out.text();
    assert!(
        text.contains(
            "reserved 1 slot × 30 intervals of 20 s at most 0.002 ICP each: up to 0.06 ICP locked"
        ),
        "{text}"
    );

    // The provider's daemon takes the slot and holds it.
    let r = reservation_once(c, id, 500, |r| {
        r.slots.first().and_then(|s| s.provider).is_some()
    })
    .await;
    assert_eq!(r.status, ReservationStatus::Active);
    assert_eq!(r.locked, 30 * 2 * PRICE);
    assert_eq!(r.slots.len(), 1);
    assert_eq!(r.slots[0].provider, Some(provider_principal()));
    assert_eq!(r.slots[0].price_per_interval, Some(PRICE));
    let shown = buyer::describe_reservation(&r, &buyer::quote(c).await);
    assert!(
        shown.contains(&format!("reservation {id}  Active"))
            && shown.contains(&format!("provider {}", provider_principal()))
            && shown.contains(&format!("delegates  {delegate_principal}")),
        "{shown}"
    );

    // The owner uploads the module; the delegate, with no escrow balance,
    // runs a job in the slot and follows it like any other.
    let cat = wat::parse_str(CAT).unwrap();
    buyer::ensure_module(c, &cat, &mut console).await.unwrap();
    let options = follow(Some(id));
    let (report, text) = run_printing(
        &delegate,
        &cat,
        &request(b"in the slot\n", 0),
        &options,
        std::future::pending::<()>(),
    )
    .await;
    let RunReport::Finished { job, settlement } = report else {
        panic!("{report:?}")
    };
    assert_eq!(job.kind, JobKind::InReservation { reservation: id });
    assert_eq!(job.owner, delegate_principal);
    assert_eq!(job.result.as_ref().unwrap().output, b"in the slot\n");
    assert_eq!(buyer::exit_code(&job), 0);
    assert_eq!((settlement.locked, settlement.paid), (0, 0));
    assert!(
        text.contains("already in the matcher's store")
            && text.contains(&format!(
                "to reservation {id}: its slots pay, nothing locked"
            )),
        "{text}"
    );
    let summary = buyer::summary(&job, &settlement);
    assert!(
        summary.contains(&format!("nothing of its own: reservation {id}'s slot")),
        "{summary}"
    );
    let delegate_funds = buyer::funds(&delegate).await.unwrap();
    assert_eq!(delegate_funds.escrow.locked + delegate_funds.escrow.free, 0);

    // Someone else may not run jobs in it.
    let stranger = w.client(market_fixture::principal(0xD2));
    let err = buyer::submit_reserved(&stranger, &cat, id, &request(b"", 0), &mut console)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("owner and delegates"), "{err}");

    // Delegates change; the owner's list shows the reservation.
    let now = buyer::set_delegates(
        c,
        id,
        vec![market_fixture::principal(0xD2)],
        vec![delegate_principal],
    )
    .await
    .unwrap();
    assert_eq!(now, [market_fixture::principal(0xD2)]);
    assert_eq!(reservations(c).await, [id]);

    // Extended by 5 intervals: 5 × 0.002 ICP more locked.
    let added = buyer::extend_reservation(c, id, 5).await.unwrap();
    assert_eq!(added, 5 * 2 * PRICE);
    let r = reservation_once(c, id, 200, |r| r.locked == 35 * 2 * PRICE).await;
    assert_eq!(r.spec.intervals, 35);
    assert_eq!(r.locked, 35 * 2 * PRICE);

    // Cancelled: it ends, and what was not paid comes back.
    let r = buyer::cancel_reservation(c, id).await.unwrap();
    assert_eq!(r.status, ReservationStatus::Cancelled);
    assert!(r.paid <= r.locked);
    let shown = buyer::describe_reservation(&r, &buyer::quote(c).await);
    assert!(
        shown.contains(&format!("reservation {id}  Cancelled")),
        "{shown}"
    );
    w.audit();
    let f = buyer::funds(c).await.unwrap();
    assert_eq!(f.escrow.locked, 0, "nothing stays locked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_lists_who_may_take_work_with_stake_and_record() {
    use market_api::registry::{
        ProviderFilter, RecordArgs, RecordEvent, RegistryError, SlashArgs, SlashOutcome,
    };
    let w = World::new(ICP);
    let (staked, idle) = (provider_principal(), market_fixture::provider(2));
    w.onboard(
        staked,
        market_fixture::node(1),
        &one_slot_offer(64, PRICE, w.ids.ledger),
    );
    w.net
        .register_provider(idle, market_fixture::node(2))
        .unwrap();
    // The matcher records a completed job and slashes a missed deadline.
    let done = RecordArgs {
        provider: staked,
        key: "job/1/done".into(),
        event: RecordEvent::JobCompleted {
            heartbeats_on_time: 3,
        },
    };
    let r: Result<(), RegistryError> = w
        .net
        .update(w.ids.registry, w.ids.matcher, "record", &done)
        .unwrap();
    r.unwrap();
    let slash = SlashArgs {
        provider: staked,
        amount: ICP,
        beneficiary: market_fixture::account(buyer_principal()),
        reason: "missed deadline".into(),
        key: "job/2/deadline/0".into(),
    };
    let r: Result<SlashOutcome, RegistryError> = w
        .net
        .update(w.ids.registry, w.ids.matcher, "slash", &slash)
        .unwrap();
    assert_eq!(r.unwrap().slashed, ICP);

    // Only the staked provider may take work.
    let active = buyer::providers(
        &w.buyer,
        ProviderFilter {
            active_only: true,
            ..ProviderFilter::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        active.iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![staked]
    );
    let row = buyer::provider_row(&active[0]);
    assert!(row.starts_with(&staked.to_text()), "{row}");
    assert!(
        row.contains(&market_client::client::tokens::format_tokens(99 * ICP)),
        "stake left after the slash: {row}"
    );
    assert!(
        row.ends_with("1 job, 0 audits passed, 0 failed, 0 deadlines missed, 1 slash"),
        "{row}"
    );
    assert_eq!(
        w.buyer.track_record(staked).await.unwrap(),
        Some(active[0].record.clone())
    );

    // `--all` adds the one without stake, with an empty record.
    let all = buyer::providers(&w.buyer, ProviderFilter::default())
        .await
        .unwrap();
    let ids: std::collections::BTreeSet<_> = all.iter().map(|p| p.id).collect();
    assert_eq!(ids, [staked, idle].into_iter().collect());
    let idle_row = buyer::provider_row(all.iter().find(|p| p.id == idle).unwrap());
    assert!(
        idle_row.ends_with("0 jobs, 0 audits passed, 0 failed, 0 deadlines missed, 0 slashes"),
        "{idle_row}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_disputed_honest_result_is_rerun_by_another_provider_and_stands() {
    // An hour's challenge window (72 s of real time at the clock's pace):
    // the dispute comes well within it.
    let w = World::deploy(
        Settings {
            grace_secs: 10,
            challenge_window_secs: 3_600,
            ..Settings::default()
        },
        buyer_principal(),
    );
    w.net.mint(buyer_principal(), 10 * ICP).unwrap();
    let c = &w.buyer;
    buyer::deposit(c, 5 * ICP).await.unwrap();
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let _stop: Vec<_> = (1..=2)
        .zip(&dirs)
        .map(|(n, dir)| provider_daemon(&w, n, dir.path()))
        .collect();
    w.start_clock();
    let cat = wat::parse_str(CAT).unwrap();
    let never = std::future::pending::<()>;
    let options = follow(None);
    // The market audits nothing by itself (its minimum is 0): the bid asks
    // for audits one time in a thousand, which makes the job disputable.
    let audited = |input: &[u8], max_price: Tokens| JobRequest {
        audit_ppm: Some(1_000),
        ..request(input, max_price)
    };

    // Priced below every offer, the job rests in the book: no result to
    // dispute yet.
    let (report, text) = run_printing(
        c,
        &cat,
        &audited(b"", PRICE / 2),
        &RunOptions {
            detach: true,
            ..options.clone()
        },
        never(),
    )
    .await;
    let RunReport::Detached(resting) = report else {
        panic!("{report:?}")
    };
    assert!(
        text.contains(&format!(
            "submitted job {resting}: up to 0.005 ICP locked (twice 5000000000 fuel at most \
             0.0005 ICP per billion: for the run and for an audit's re-run, the result audited \
             with probability 0.1%"
        )),
        "{text}"
    );
    let err = buyer::dispute(c, resting).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "job {resting} can't be disputed: it has no result yet (it is open); dispute it \
             once its result is in (`market watch {resting}` waits for it)"
        )
    );
    c.cancel_job(resting).await.unwrap();

    // The job runs; its result is in (not drawn for audit: the devnet's
    // random draws are seeded).
    let (report, _) =
        run_printing(c, &cat, &audited(b"honest\n", 2 * PRICE), &options, never()).await;
    let RunReport::Finished { job, settlement } = report else {
        panic!("{report:?}")
    };
    let id = job.id;
    assert_eq!(job.status, JobStatus::Reported);
    assert_eq!(job.audit, None, "not drawn");
    assert_eq!(job.result.as_ref().unwrap().output, b"honest\n");
    assert_eq!(settlement.locked, 2 * 5 * 2 * PRICE, "the budget twice");
    assert!(settlement.exact);
    let runner = job.provider.unwrap();

    // Only its owner may dispute it.
    let stranger = w.client(market_fixture::principal(0xD3));
    let err = buyer::dispute(&stranger, id).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "job {id} can't be disputed: it is not yours: only a job's owner may dispute its \
             result"
        )
    );

    // Disputed: the result is withheld until the verdict; once is all.
    let disputed = buyer::dispute(c, id).await.unwrap();
    let audit = disputed.audit.clone().expect("an audit");
    assert!(audit.disputed);
    let err = buyer::dispute(c, id).await.unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("job {id} can't be disputed: its result "))
            && err.contains("already")
            && err.contains("audited (disputed)"),
        "{err}"
    );

    // The other provider runs it again and agrees: the result stands.
    let (mut console, out) = Captured::console();
    let job = buyer::watch(c, id, Duration::from_millis(20), &mut console, never())
        .await
        .unwrap()
        .unwrap();
    let audit = job.audit.clone().expect("an audit");
    assert_eq!(audit.verdict, Some(AuditVerdict::Agreed), "{}", out.text());
    assert_eq!(audit.runs.len(), 1, "no tie-break");
    let rerun = c.get_job(audit.runs[0]).await.unwrap().unwrap();
    assert_eq!(rerun.kind, JobKind::Audit { of: id });
    let auditor = rerun.provider.unwrap();
    assert!(auditor != runner, "audited by the other provider");
    assert_eq!(job.result.as_ref().unwrap().output, b"honest\n");
    assert_eq!(job.status, JobStatus::Reported, "its window runs on");
    let text = out.text();
    assert!(
        text.contains(&format!(
            "job {id}: audit agreed: another provider's run gave the same result; it stands"
        )),
        "{text}"
    );
    let settlement = buyer::settlement(c, &job).await;
    // After the verdict the lock has paid the provider and the auditor:
    // the job's record of what it paid.
    assert_eq!(settlement.paid, job.paid);
    assert_eq!(settlement.locked, 2 * 5 * 2 * PRICE);
    assert_eq!(settlement.paid + settlement.refunded, settlement.locked);
    let summary = buyer::summary(&job, &settlement);
    assert!(summary.contains("audit     agreed"), "{summary}");
    assert_eq!(buyer::exit_code(&job), 0);
    w.audit();
}

/// A lease of `replicas` replicas of the service `hello-service` for
/// `intervals` intervals of 20 s at most `max_price` each.
fn service_lease(w: &World, replicas: u32, intervals: u32, max_price: Tokens) -> ReservationSpec {
    ReservationSpec {
        service: Some(market_api::matcher::ServiceSpec {
            env: vec![("GREETING".into(), "hi".into())],
            allowed_hosts: vec!["api.example.com".into()],
            limits: market_api::matcher::ServiceLimits::default(),
            ..test_world::hello_service([0; 32])
        }),
        ..reservation_spec(w, replicas, intervals, max_price)
    }
}

/// The buyer leases one replica of `component` for 10 intervals at up to
/// 0.02 ICP each; the lease and what the leasing printed.
async fn lease_one_replica(
    w: &World,
    component: &[u8],
) -> (Result<ReservationId, BuyerError>, Captured) {
    let (mut console, out) = Captured::console();
    let spec = service_lease(w, 1, 10, ICP / 50);
    let leased = buyer::lease_service(&w.buyer, component, spec, &mut console).await;
    (leased, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_leases_a_service_whose_probes_are_counted_in_the_balance_check() {
    let w = World::new(ICP);
    let c = &w.buyer;
    let component = std::fs::read(market_artifacts::workload_path("hello-service"))
        .expect("build the workloads first with scripts/build-workloads.sh");
    let core_module = std::fs::read(market_artifacts::workload_path("echo")).unwrap();
    buyer::deposit(c, ICP / 5).await.unwrap();

    // A core module is not a service: refused before any call.
    let err = lease_one_replica(&w, &core_module).await.0.unwrap_err();
    assert!(err.to_string().contains("not a component"), "{err}");

    // 1 replica × 10 intervals × 0.02 ICP = 0.2 ICP, plus 10 probes (one
    // per 20 s interval at the 60 s probe interval) of 4,000 e8s: 0.2004
    // ICP, and 0.2 ICP is free.
    let err = lease_one_replica(&w, &component).await.0.unwrap_err();
    assert_eq!(shortfall(&err), (ICP / 5 + 40_000, ICP / 5));
    assert!(reservations(c).await.is_empty(), "no lease made");

    buyer::deposit(c, ICP / 10).await.unwrap();
    let (leased, out) = lease_one_replica(&w, &component).await;
    let id = leased.unwrap();
    assert!(out.text().contains("uploading module"), "{}", out.text());
    w.net.settle_outbox();
    let view = buyer::service(c, id).await.unwrap();
    assert_eq!(view.replicas.len(), 1);
    assert_eq!(view.replicas[0].endpoint, None, "no provider yet");
    assert_eq!(view.allowed_hosts, vec!["api.example.com".to_string()]);
    assert_eq!(
        view.component_sha256,
        buyer::sha256_of(&component),
        "the uploaded component"
    );
    assert_eq!(view.locked, ICP / 5 + 40_000);
    let text = buyer::describe_service(&view);
    assert!(text.contains("1 replica × 10 intervals of 20 s"), "{text}");
    assert!(text.contains("no endpoint yet, not probed yet"), "{text}");
    assert!(!text.contains("GREETING"), "the env is not shown");
    let err = buyer::service(c, id + 100).await.unwrap_err();
    assert!(err.to_string().contains("no service lease"), "{err}");
    w.audit();
}

/// A person runs a job priced in XDR on a market that prices in XDR (4 XDR
/// per ICP at the cycles minting canister's stand-in): the balance check
/// and the lock take the rate plus the buffer, the provider's XDR price
/// converts to e8s when it takes the job, the bill is the fuel used at
/// that price, and the job's pricing line says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_runs_a_job_priced_in_xdr_and_pays_icp_at_the_rate() {
    use market_api::prices::Currency;
    let w = World::deploy(
        Settings {
            grace_secs: 10,
            pricing: Some(market_fixture::PricingSettings::default()),
            ..Settings::default()
        },
        buyer_principal(),
    );
    w.net.mint(buyer_principal(), 10 * ICP).unwrap();
    buyer::deposit(&w.buyer, 5 * ICP).await.unwrap();
    let rates = w.net.refresh_rates().unwrap();
    let text = buyer::rates_text(&rates, w.net.time_ns() / 1_000_000_000, w.ids.ledger);
    assert!(text.contains("cycles minting canister"), "{text}");
    // The provider asks 0.004 XDR per billion fuel: PRICE e8s at 4 XDR per
    // ICP (an e8 is 40,000 cycles).
    let (provider, node) = (provider_principal(), market_fixture::node(1));
    let offer = market_api::matcher::OfferSpec {
        currency: Some(Currency::Xdr),
        ..one_slot_offer(64, PRICE * 40_000, w.ids.ledger)
    };
    w.onboard(provider, node, &offer);
    let state_dir = tempfile::tempdir().unwrap();
    let _stop = spawn(w.daemon(1, state_dir.path()).0).0;
    w.start_clock();

    let request = JobRequest {
        currency: Some(Currency::Xdr),
        ..request(b"priced in XDR\n", 2 * PRICE * 40_000)
    };
    let options = follow(None);
    let cat = wat::parse_str(CAT).unwrap();
    let (report, _) = run_printing(
        &w.buyer,
        &cat,
        &request,
        &options,
        std::future::pending::<()>(),
    )
    .await;
    let RunReport::Finished { job, settlement } = report else {
        panic!("{report:?}")
    };
    assert_eq!(job.result.as_ref().unwrap().output, b"priced in XDR\n");
    // Five billion fuel at up to 0.008 XDR: 0.04 XDR, 1,000,000 e8s at the
    // rate, and the 10 % buffer.
    assert_eq!(settlement.locked, 1_100_000);
    assert_eq!(job.price, Some(PRICE), "0.004 XDR is PRICE e8s at the rate");
    let fuel = job.result.as_ref().unwrap().fuel_used;
    assert_eq!(
        settlement.paid,
        market_api::matcher::fuel_cost(fuel, PRICE).unwrap()
    );
    let line = buyer::job_pricing_text(&job).expect("an XDR job has a pricing line");
    assert!(
        line.contains("0.008 XDR") && line.contains("buffer") && line.contains("converted at"),
        "{line}"
    );
    w.stop_clock();
    w.net.audit_in_flight().unwrap();
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A private job on a market with a privacy key: the `echo` workload's
/// input, a secret env and its output are sealed to the job. The provider
/// opens them (the secret `ECHO_EXIT` sets the exit code), the matcher
/// stores ciphertexts only, its owner opens the output with the job's key,
/// and a stranger sees no content and gets no key. A lease's secret env is
/// stored sealed too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_private_job_runs_with_its_secret_env_and_only_its_owner_reads_its_output() {
    const TOKEN: &str = "tok-4f1d9c-never-in-the-clear";
    const INPUT: &[u8] = b"the private input, not for the chain\n";
    let state_dir = tempfile::tempdir().unwrap();
    let (w, _stop) = private_world_with_provider(state_dir.path()).await;
    let c = &w.buyer;
    let echo = std::fs::read(market_artifacts::workload_path("echo"))
        .expect("build the workloads first with scripts/build-workloads.sh");

    let request = JobRequest {
        sealing: Sealing::all(vec![
            ("ECHO_EXIT".into(), "7".into()),
            ("API_TOKEN".into(), TOKEN.into()),
        ]),
        ..request(INPUT, 2 * PRICE)
    };
    let options = follow(None);
    let (report, text) =
        run_printing(c, &echo, &request, &options, std::future::pending::<()>()).await;
    let RunReport::Finished { job, .. } = report else {
        panic!("{report:?}")
    };
    assert!(
        text.contains("sealed to the job's key: its input, its secret env (ECHO_EXIT, API_TOKEN) and its output"),
        "{text}"
    );
    assert!(!text.contains(TOKEN), "{text}");
    let result = job.result.as_ref().unwrap();
    assert_eq!(
        result.outcome,
        RunOutcome::Exited { code: 7 },
        "the provider opened the secret env"
    );
    let sealed = job.spec.sealed.as_ref().expect("a sealed job");
    assert!(sealed.input && sealed.output && sealed.env.is_some());
    assert_ne!(job.spec.input, INPUT, "the matcher keeps the ciphertext");
    assert!(!contains(&result.output, INPUT), "the output is sealed");
    let stored = candid::encode_one(&job).unwrap();
    assert!(!contains(&stored, TOKEN.as_bytes()) && !contains(&stored, INPUT));

    // Its owner opens the output with the job's key.
    let stdout = buyer::job_stdout(c, &job).await.unwrap().unwrap();
    assert_eq!(stdout.bytes, INPUT, "the input, echoed, opened");
    assert!(stdout.sealed);

    // A stranger sees no content, and gets no key to open it with.
    let stranger = w.client(market_fixture::principal(0x5E));
    if let Some(seen) = stranger.get_job(job.id).await.unwrap() {
        assert!(
            seen.spec.input.is_empty()
                && seen.spec.env.is_empty()
                && seen.spec.sealed.as_ref().is_none_or(|s| s.env.is_none())
                && seen.result.as_ref().is_none_or(|r| r.output.is_empty()),
            "a stranger sees no content: {seen:?}"
        );
    }
    let view = stranger.job_view(job.id).await.unwrap().expect("its view");
    assert!(view.contents_hidden, "{view:?}");
    let err = buyer::job_stdout(&stranger, &job).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("job {}'s sealed stdout can't be opened", job.id)),
        "{err}"
    );

    // A lease's secret env: sealed for its owner, stored as ciphertext.
    let component = std::fs::read(market_artifacts::workload_path("hello-service")).unwrap();
    let mut lease = service_lease(&w, 1, 2, PRICE);
    buyer::seal_lease_env(
        c,
        &mut lease,
        &[("DB_PASSWORD".into(), TOKEN.into())],
        buyer_principal(),
    )
    .await
    .unwrap();
    let (mut console, _) = Captured::console();
    let id = buyer::lease_service(c, &component, lease, &mut console)
        .await
        .unwrap();
    let r = buyer::reservation(c, id).await.unwrap();
    let service = r.spec.service.as_ref().unwrap();
    let sealed = service.sealed.as_ref().expect("the secret env, sealed");
    assert!(sealed.env.is_some() && !sealed.input && !sealed.output);
    assert!(!contains(
        &candid::encode_one(&r).unwrap(),
        TOKEN.as_bytes()
    ));
    w.stop_clock();
    w.audit();
}

/// On a market without a privacy key a sealed job is refused before
/// anything is uploaded or locked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_market_without_a_privacy_key_refuses_sealed_jobs_before_spending() {
    let w = World::new(10 * ICP);
    let c = &w.buyer;
    buyer::deposit(c, ICP).await.unwrap();
    let before = buyer::funds(c).await.unwrap();
    let cat = wat::parse_str(CAT).unwrap();
    let request = JobRequest {
        sealing: Sealing {
            output: true,
            ..Sealing::default()
        },
        ..request(b"", 2 * PRICE)
    };
    let (mut console, _) = Captured::console();
    let err = buyer::submit(c, &cat, &request, &mut console)
        .await
        .unwrap_err();
    assert!(matches!(err, BuyerError::NoPrivacy), "{err}");
    assert!(err.to_string().contains("takes no sealed jobs"), "{err}");
    assert_eq!(buyer::funds(c).await.unwrap(), before, "nothing spent");
    assert_eq!(
        c.module_info(buyer::sha256_of(&cat)).await.unwrap(),
        None,
        "nothing uploaded"
    );
    let mut lease = service_lease(&w, 1, 2, PRICE);
    let err = buyer::seal_lease_env(
        c,
        &mut lease,
        &[("K".into(), "v".into())],
        buyer_principal(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, BuyerError::NoPrivacy), "{err}");
    w.audit();
}

/// A delegate runs a private job in a reservation's slot: sealed for the
/// delegate (whose job it is), opened by the delegate; the reservation's
/// owner, who pays the slot, gets no key to its output.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delegate_runs_a_private_job_in_a_reservation_and_alone_reads_its_output() {
    const SECRET: &str = "slot-secret-9b2e";
    let state_dir = tempfile::tempdir().unwrap();
    let (w, _stop) = private_world_with_provider(state_dir.path()).await;
    let c = &w.buyer;
    let delegate_principal = delegate_principal();
    let delegate = w.client(delegate_principal);
    let (id, _) = reserve_for_delegate(&w).await;
    let (mut console, _) = Captured::console();
    let cat = wat::parse_str(CAT).unwrap();
    buyer::ensure_module(c, &cat, &mut console).await.unwrap();

    let request = JobRequest {
        sealing: Sealing::all(vec![("SLOT_SECRET".into(), SECRET.into())]),
        ..request(b"private in the slot\n", 0)
    };
    let options = follow(Some(id));
    let (report, text) = run_printing(
        &delegate,
        &cat,
        &request,
        &options,
        std::future::pending::<()>(),
    )
    .await;
    let RunReport::Finished { job, .. } = report else {
        panic!("{report:?}")
    };
    assert!(text.contains("sealed to the job's key"), "{text}");
    assert!(!text.contains(SECRET), "{text}");
    assert_eq!(job.owner, delegate_principal);
    assert_eq!(job.kind, JobKind::InReservation { reservation: id });
    let stdout = buyer::job_stdout(&delegate, &job).await.unwrap().unwrap();
    assert_eq!(
        (stdout.bytes.as_slice(), stdout.sealed),
        (&b"private in the slot\n"[..], true)
    );
    let err = buyer::job_stdout(c, &job).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("job {}'s sealed stdout can't be opened", job.id)),
        "{err}"
    );
    w.stop_clock();
    w.audit();
}
