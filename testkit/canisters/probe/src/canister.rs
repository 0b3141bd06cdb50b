//! The probe's entry points.

use std::cell::{Cell, RefCell};
use std::time::Duration;

use candid::Principal;

use crate::{CallOutcome, ProbeArg};
use ic_cdk::call::{Call, CallFailed};
use ic_cdk::{init, inspect_message, post_upgrade, pre_upgrade, query, update};
use ic_stable_structures::memory_manager::{MemoryId, MemoryManager, VirtualMemory};
use ic_stable_structures::{DefaultMemoryImpl, Memory, StableCell};

/// Stable memory region holding the upgrade counter.
const UPGRADES_MEMORY: MemoryId = MemoryId::new(0);
/// Stable memory region written byte-wise by `stable_write`.
const BYTES_MEMORY: MemoryId = MemoryId::new(1);

type VMem = VirtualMemory<DefaultMemoryImpl>;

thread_local! {
    static COUNTER: Cell<u64> = const { Cell::new(0) };
    static TIMER_FIRES: Cell<u64> = const { Cell::new(0) };
    static CLEANUPS: Cell<u64> = const { Cell::new(0) };
    static EVENTS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    static LABEL: RefCell<String> = const { RefCell::new(String::new()) };
    static MEMORY_MANAGER: MemoryManager<DefaultMemoryImpl> =
        MemoryManager::init(DefaultMemoryImpl::default());
    static UPGRADES: RefCell<StableCell<u64, VMem>> = RefCell::new(StableCell::init(
        MEMORY_MANAGER.with(|m| m.get(UPGRADES_MEMORY)),
        0,
    ));
}

fn log(event: impl Into<String>) {
    EVENTS.with_borrow_mut(|e| e.push(event.into()));
}

fn bytes_memory() -> VMem {
    MEMORY_MANAGER.with(|m| m.get(BYTES_MEMORY))
}

#[init]
fn init(arg: Option<ProbeArg>) {
    LABEL.with_borrow_mut(|l| *l = arg.unwrap_or_default().label);
}

#[pre_upgrade]
fn pre_upgrade() {
    log("pre_upgrade");
}

#[post_upgrade]
fn post_upgrade(arg: Option<ProbeArg>) {
    init(arg);
    UPGRADES.with_borrow_mut(|u| {
        let n = *u.get();
        u.set(n + 1);
    });
}

#[inspect_message]
fn inspect_message() {
    if ic_cdk::api::msg_method_name() != "refused_by_inspect" {
        ic_cdk::api::accept_message();
    }
}

/// Increments the heap counter and returns its new value.
#[update]
fn inc() -> u64 {
    COUNTER.with(|c| {
        c.set(c.get() + 1);
        c.get()
    })
}

/// Does nothing: the cheapest possible update, for overhead measurements.
#[update]
fn noop() {}

/// Returns the heap counter.
#[query]
fn get() -> u64 {
    COUNTER.get()
}

/// Increments the counter inside a query; the change must not persist.
#[query]
fn inc_in_query() -> u64 {
    inc()
}

/// Returns the init/upgrade label.
#[query]
fn label() -> String {
    LABEL.with_borrow(|l| l.clone())
}

/// Number of upgrades, kept in stable memory.
#[query]
fn upgrades() -> u64 {
    UPGRADES.with_borrow(|u| *u.get())
}

/// Writes `bytes` to the stable byte region at `offset`, growing it as needed.
#[update]
fn stable_write(offset: u64, bytes: Vec<u8>) {
    let mem = bytes_memory();
    let end = offset + bytes.len() as u64;
    let pages = end.div_ceil(65536);
    if mem.size() < pages {
        mem.grow(pages - mem.size());
    }
    mem.write(offset, &bytes);
}

/// Reads `len` bytes of the stable byte region at `offset`.
#[query]
fn stable_read(offset: u64, len: u64) -> Vec<u8> {
    let mem = bytes_memory();
    let mut buf = vec![0; len as usize];
    if offset + len <= mem.size() * 65536 {
        mem.read(offset, &mut buf);
    }
    buf
}

/// Increments the counter and writes stable memory, then traps: both
/// changes must be rolled back.
#[update]
fn write_then_trap(offset: u64, bytes: Vec<u8>) {
    inc();
    stable_write(offset, bytes);
    ic_cdk::trap("trap after write");
}

/// Traps at once.
#[update]
fn trap_now() {
    ic_cdk::trap("trap_now");
}

/// Rejects explicitly with the given message.
#[update(manual_reply = true)]
fn reject_with(message: String) {
    ic_cdk::api::msg_reject(message);
}

/// Returns its argument; used to probe payload limits.
#[update]
fn echo(bytes: Vec<u8>) -> Vec<u8> {
    bytes
}

/// Refused by `canister_inspect_message` when sent as ingress.
#[update]
fn refused_by_inspect() -> u64 {
    inc()
}

/// The event log (calls, callbacks, upgrades) in the order things happened.
#[query]
fn events() -> Vec<String> {
    EVENTS.with_borrow(|e| e.clone())
}

/// How many times a timer fired since the last install or upgrade.
#[query]
fn timer_fires() -> u64 {
    TIMER_FIRES.get()
}

/// How many futures were dropped by a cleanup callback.
#[query]
fn cleanups() -> u64 {
    CLEANUPS.get()
}

/// Schedules a one-shot timer `delay_secs` from now that counts its firing.
#[update]
fn set_timer(delay_secs: u64) {
    ic_cdk_timers::set_timer(Duration::from_secs(delay_secs), async {
        TIMER_FIRES.set(TIMER_FIRES.get() + 1);
        log("timer");
    });
}

/// Schedules a one-shot timer whose task calls `inc` on `target`.
#[update]
fn set_timer_calling(delay_secs: u64, target: Principal) {
    ic_cdk_timers::set_timer(Duration::from_secs(delay_secs), async move {
        TIMER_FIRES.set(TIMER_FIRES.get() + 1);
        let r = Call::unbounded_wait(target, "inc").await;
        log(format!("timer call done: {}", r.is_ok()));
    });
}

/// What a call's answer was, as the probe reports it.
fn outcome(answer: Result<ic_cdk::call::Response, CallFailed>) -> CallOutcome {
    match answer {
        Ok(r) => CallOutcome::Reply(r.into_bytes()),
        Err(CallFailed::CallRejected(e)) => {
            CallOutcome::Reject(e.raw_reject_code(), e.reject_message().to_string())
        }
        Err(_) => CallOutcome::NotSent,
    }
}

async fn call_raw(
    target: Principal,
    method: &str,
    arg: &[u8],
    timeout: Option<u32>,
) -> CallOutcome {
    let call = match timeout {
        Some(t) => Call::bounded_wait(target, method).change_timeout(t),
        None => Call::unbounded_wait(target, method),
    };
    outcome(call.with_raw_args(arg).await)
}

/// Calls `method` on `target` with raw argument bytes and reports the
/// outcome; `timeout_secs` makes it a bounded-wait call.
#[update]
async fn call(
    target: Principal,
    method: String,
    arg: Vec<u8>,
    timeout_secs: Option<u32>,
) -> CallOutcome {
    log(format!("call {method}"));
    let out = call_raw(target, &method, &arg, timeout_secs).await;
    log(format!("callback {method}"));
    out
}

/// Calls `method` of the management canister with raw argument bytes and
/// `cycles` attached (an unbounded-wait call), and reports the outcome.
#[update]
async fn call_management(method: String, arg: Vec<u8>, cycles: u128) -> CallOutcome {
    let call = Call::unbounded_wait(Principal::management_canister(), &method)
        .with_raw_args(&arg)
        .with_cycles(cycles);
    outcome(call.await)
}

/// Calls `inc` on each target in turn, logging before and after each call.
#[update]
async fn call_chain(targets: Vec<Principal>) -> Vec<CallOutcome> {
    let mut out = Vec::new();
    for (i, t) in targets.into_iter().enumerate() {
        log(format!("send {i}"));
        out.push(call_raw(t, "inc", &candid::encode_args(()).unwrap(), None).await);
        log(format!("reply {i}"));
    }
    out
}

/// Sends `inc` to each target concurrently and logs replies as they arrive.
#[update]
async fn call_parallel(targets: Vec<Principal>) -> u64 {
    let futures: Vec<_> = targets
        .into_iter()
        .enumerate()
        .map(|(i, t)| async move {
            let r = call_raw(t, "inc", &candid::encode_args(()).unwrap(), None).await;
            log(format!("reply {i}"));
            r
        })
        .collect();
    let mut ok = 0;
    for f in futures {
        if matches!(f.await, CallOutcome::Reply(_)) {
            ok += 1;
        }
    }
    ok
}

/// Sends a call to `target.inc` and then traps: the call must not be sent.
#[update]
fn call_then_trap(target: Principal) {
    let _ = Call::unbounded_wait(target, "inc").oneway();
    inc();
    ic_cdk::trap("trap after call");
}

struct CountDropOnCleanup;

impl Drop for CountDropOnCleanup {
    fn drop(&mut self) {
        if ic_cdk::futures::is_recovering_from_trap() {
            CLEANUPS.set(CLEANUPS.get() + 1);
            log("cleanup");
        }
    }
}

/// Calls `target.inc`, then traps in the callback: the callback's changes
/// roll back and the cleanup callback runs.
#[update]
async fn trap_in_callback(target: Principal) {
    let _guard = CountDropOnCleanup;
    log("before call");
    let _ = Call::unbounded_wait(target, "inc").await;
    inc();
    log("in callback");
    ic_cdk::trap("trap in callback");
}

/// Burns roughly `n` loop iterations and returns the instruction counter.
#[update]
fn burn(n: u64) -> u64 {
    let mut x: u64 = 1;
    for i in 0..n {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
    }
    std::hint::black_box(x);
    ic_cdk::api::performance_counter(0)
}

/// Same as `burn`, as a query.
#[query]
fn burn_query(n: u64) -> u64 {
    burn(n)
}

/// The caller of this message.
#[query]
fn whoami() -> Principal {
    ic_cdk::api::msg_caller()
}

/// Whether `p` controls this canister.
#[query]
fn is_controller(p: Principal) -> bool {
    ic_cdk::api::is_controller(&p)
}

/// The canister's version counter.
#[query]
fn canister_version() -> u64 {
    ic_cdk::api::canister_version()
}

/// The IC time as seen by this message.
#[query]
fn time() -> u64 {
    ic_cdk::api::time()
}

/// The canister's cycle balance.
#[query]
fn cycle_balance() -> u128 {
    ic_cdk::api::canister_cycle_balance()
}

/// 32 random bytes from the management canister.
#[update]
async fn raw_rand() -> Vec<u8> {
    let r = Call::unbounded_wait(Principal::management_canister(), "raw_rand")
        .await
        .expect("raw_rand call");
    r.candid::<Vec<u8>>().expect("raw_rand reply")
}

/// Makes an HTTP outcall (GET `url`) through the management canister and
/// reports the outcome: the reply is the candid `http_request_result`.
/// `cycles` attached defaults to the IC's price (`ic0.cost_http_request`);
/// with `transform_context`, the response goes through `outcall_transform`.
#[update]
async fn outcall(
    url: String,
    max_response_bytes: Option<u64>,
    transform_context: Option<Vec<u8>>,
    cycles: Option<u128>,
) -> CallOutcome {
    use ic_management_canister_types::{
        HttpMethod, HttpRequestArgs, TransformContext, TransformFunc,
    };
    let transform = transform_context.map(|context| TransformContext {
        function: TransformFunc(candid::Func {
            principal: ic_cdk::api::canister_self(),
            method: "outcall_transform".into(),
        }),
        context,
    });
    let request_size = url.len()
        + transform
            .as_ref()
            .map_or(0, |t| t.function.0.method.len() + t.context.len());
    let args = HttpRequestArgs {
        url,
        max_response_bytes,
        method: HttpMethod::GET,
        transform,
        ..Default::default()
    };
    let cycles = cycles.unwrap_or_else(|| {
        ic_cdk::api::cost_http_request(request_size as u64, max_response_bytes.unwrap_or(2_000_000))
    });
    let call = Call::unbounded_wait(Principal::management_canister(), "http_request")
        .with_arg(&args)
        .with_cycles(cycles);
    outcome(call.await)
}

/// The transform of `outcall`: keeps the status and body, replaces the
/// headers with one named `context` holding the transform's context.
#[query]
fn outcall_transform(
    args: ic_management_canister_types::TransformArgs,
) -> ic_management_canister_types::HttpRequestResult {
    ic_management_canister_types::HttpRequestResult {
        status: args.response.status,
        headers: vec![ic_management_canister_types::HttpHeader {
            name: "context".into(),
            value: String::from_utf8_lossy(&args.context).into_owned(),
        }],
        body: args.response.body,
    }
}
