//! The `ic0` system API: host functions and the per-message execution
//! context they read and write.
//!
//! Everything a message does that outlives it (reply, reject, outgoing
//! calls, timer changes, cycles moved) is recorded in [`ExecContext`] and
//! only acted on by the scheduler when the message finishes without a trap,
//! which is how a trap discards a message's side effects.

use candid::Principal;
use wasmtime::{Caller, Linker, Memory, Table};

use crate::stable::StableMemory;

/// A trap raised by the canister through `ic0.trap` or a misuse of the API.
#[derive(Debug)]
pub(crate) struct CanisterTrap(pub String);

impl std::fmt::Display for CanisterTrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CanisterTrap {}

fn trap<T>(msg: impl Into<String>) -> wasmtime::Result<T> {
    Err(wasmtime::Error::new(CanisterTrap(msg.into())))
}

/// Which entry point a message runs; decides which API calls are allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EntryKind {
    Init,
    PreUpgrade,
    PostUpgrade,
    Update,
    Query,
    InspectMessage,
    ReplyCallback,
    RejectCallback,
    Cleanup,
    GlobalTimer,
}

impl EntryKind {
    fn has_arg(self) -> bool {
        matches!(
            self,
            EntryKind::Init
                | EntryKind::PostUpgrade
                | EntryKind::Update
                | EntryKind::Query
                | EntryKind::InspectMessage
                | EntryKind::ReplyCallback
        )
    }

    fn may_call(self) -> bool {
        matches!(
            self,
            EntryKind::Update
                | EntryKind::ReplyCallback
                | EntryKind::RejectCallback
                | EntryKind::GlobalTimer
        )
    }
}

/// A response recorded by `msg_reply` or `msg_reject`.
#[derive(Clone, Debug)]
pub(crate) enum Response {
    Reply(Vec<u8>),
    Reject(String),
}

/// A `(function table index, env)` pair naming a callback.
pub(crate) type Closure = (u32, u32);

/// An outgoing call assembled between `call_new` and `call_perform`.
#[derive(Clone, Debug)]
pub(crate) struct OutgoingCall {
    pub callee: Principal,
    pub method: String,
    pub arg: Vec<u8>,
    pub reply: Closure,
    pub reject: Closure,
    pub cleanup: Option<Closure>,
    pub timeout_secs: Option<u32>,
    pub cycles: u128,
}

/// Largest argument, reply or call payload, as on the IC.
pub const MAX_PAYLOAD: usize = 2 * 1024 * 1024;

/// The context of one running message.
pub(crate) struct ExecContext {
    pub kind: EntryKind,
    pub canister_id: Principal,
    pub caller: Principal,
    pub method: String,
    pub arg: Vec<u8>,
    pub reject: Option<(u32, String)>,
    /// Whether the call context may still be responded to.
    pub may_respond: bool,
    pub reply_buf: Vec<u8>,
    pub response: Option<Response>,
    pub building: Option<OutgoingCall>,
    pub calls: Vec<OutgoingCall>,
    pub time: u64,
    pub global_timer: u64,
    pub controllers: Vec<Principal>,
    pub version: u64,
    pub balance: u128,
    /// The balance below which the canister is frozen (not liquid).
    pub freezing_threshold: u128,
    /// `ic0.canister_status`: 1 running, 2 stopping, 3 stopped.
    pub run_status: u32,
    pub cycles_available: u128,
    pub cycles_refunded: u128,
    pub accepted_message: bool,
    pub deadline: u64,
    pub instruction_limit: u64,
    /// Instructions used by earlier messages of the same call context.
    pub call_context_instructions: u64,
    pub certified_data: Option<Vec<u8>>,
    /// The certificate a non-replicated query may read (`data_certificate_*`).
    pub data_certificate: Option<Vec<u8>>,
    pub logs: Vec<String>,
}

impl ExecContext {
    /// A context for `kind` on `canister_id` with everything else empty.
    pub fn new(kind: EntryKind, canister_id: Principal) -> Self {
        ExecContext {
            kind,
            canister_id,
            caller: Principal::management_canister(),
            method: String::new(),
            arg: Vec::new(),
            reject: None,
            may_respond: false,
            reply_buf: Vec::new(),
            response: None,
            building: None,
            calls: Vec::new(),
            time: 0,
            global_timer: 0,
            controllers: Vec::new(),
            version: 0,
            balance: 0,
            freezing_threshold: 0,
            run_status: 1,
            cycles_available: 0,
            cycles_refunded: 0,
            accepted_message: false,
            deadline: 0,
            instruction_limit: u64::MAX,
            call_context_instructions: 0,
            certified_data: None,
            data_certificate: None,
            logs: Vec::new(),
        }
    }
}

/// Store data of a canister's wasmtime instance.
pub(crate) struct Host {
    pub memory: Option<Memory>,
    pub table: Option<Table>,
    pub stable: StableMemory,
    pub ctx: ExecContext,
}

/// Every `ic0` function the devnet implements. A module importing anything
/// else is refused at install time.
pub(crate) const IMPLEMENTED: &[&str] = &[
    "msg_arg_data_size",
    "msg_arg_data_copy",
    "msg_caller_size",
    "msg_caller_copy",
    "msg_reject_code",
    "msg_reject_msg_size",
    "msg_reject_msg_copy",
    "msg_deadline",
    "msg_reply_data_append",
    "msg_reply",
    "msg_reject",
    "msg_method_name_size",
    "msg_method_name_copy",
    "msg_cycles_available128",
    "msg_cycles_refunded128",
    "msg_cycles_accept128",
    "cycles_burn128",
    "accept_message",
    "canister_self_size",
    "canister_self_copy",
    "canister_cycle_balance128",
    "canister_liquid_cycle_balance128",
    "canister_status",
    "canister_version",
    "call_new",
    "call_on_cleanup",
    "call_data_append",
    "call_with_best_effort_response",
    "call_cycles_add128",
    "call_perform",
    "stable64_size",
    "stable64_grow",
    "stable64_write",
    "stable64_read",
    "certified_data_set",
    "data_certificate_present",
    "data_certificate_size",
    "data_certificate_copy",
    "time",
    "global_timer_set",
    "performance_counter",
    "is_controller",
    "in_replicated_execution",
    "cost_call",
    "cost_create_canister",
    "cost_http_request",
    "debug_print",
    "trap",
];

fn memory(caller: &Caller<'_, Host>) -> wasmtime::Result<Memory> {
    match caller.data().memory {
        Some(m) => Ok(m),
        None => trap("module has no exported memory"),
    }
}

fn read_bytes(caller: &mut Caller<'_, Host>, src: u64, size: u64) -> wasmtime::Result<Vec<u8>> {
    let mem = memory(caller)?;
    let data = mem.data(&*caller);
    let end = src.checked_add(size).filter(|e| *e <= data.len() as u64);
    match end {
        Some(end) => Ok(data[src as usize..end as usize].to_vec()),
        None => trap("memory access out of bounds in system API call"),
    }
}

fn write_bytes(caller: &mut Caller<'_, Host>, dst: u64, bytes: &[u8]) -> wasmtime::Result<()> {
    let mem = memory(caller)?;
    write_into(mem.data_mut(&mut *caller), dst, bytes)
}

/// Copies `bytes` into guest memory `data` at `dst`.
fn write_into(data: &mut [u8], dst: u64, bytes: &[u8]) -> wasmtime::Result<()> {
    match dst
        .checked_add(bytes.len() as u64)
        .filter(|e| *e <= data.len() as u64)
    {
        Some(end) => {
            data[dst as usize..end as usize].copy_from_slice(bytes);
            Ok(())
        }
        None => trap("memory access out of bounds in system API call"),
    }
}

fn write_u128(caller: &mut Caller<'_, Host>, dst: u32, v: u128) -> wasmtime::Result<()> {
    write_bytes(caller, u64::from(dst), &v.to_le_bytes())
}

/// The `u128` passed as two `u64` halves.
fn u128_of(high: u64, low: u64) -> u128 {
    (u128::from(high) << 64) | u128::from(low)
}

/// A value of the message's context that a canister reads through a
/// `<name>_size` and `<name>_copy` pair; `Err` completes the trap message
/// after the function's name when the value is absent.
type Blob = fn(&ExecContext) -> Result<&[u8], &'static str>;

/// Adds `ic0.<name>_size` and `ic0.<name>_copy` reading `blob`.
fn add_blob(linker: &mut Linker<Host>, name: &str, blob: Blob) -> wasmtime::Result<()> {
    let size_fn = format!("{name}_size");
    let copy_fn = format!("{name}_copy");
    let size_name = size_fn.clone();
    linker.func_wrap(
        "ic0",
        &size_fn,
        move |c: Caller<'_, Host>| -> wasmtime::Result<u32> {
            match blob(&c.data().ctx) {
                Ok(bytes) => Ok(bytes.len() as u32),
                Err(absent) => trap(format!("{size_name}{absent}")),
            }
        },
    )?;
    let copy_name = copy_fn.clone();
    linker.func_wrap(
        "ic0",
        &copy_fn,
        move |mut c: Caller<'_, Host>, dst: u32, off: u32, size: u32| {
            let len = match blob(&c.data().ctx) {
                Ok(bytes) => bytes.len(),
                Err(absent) => return trap(format!("{copy_name}{absent}")),
            };
            let (off, size) = (off as usize, size as usize);
            let Some(end) = off.checked_add(size).filter(|e| *e <= len) else {
                return trap("copy out of bounds of the system API value");
            };
            let mem = memory(&c)?;
            let (data, host) = mem.data_and_store_mut(&mut c);
            let bytes = blob(&host.ctx).expect("present above");
            write_into(data, u64::from(dst), &bytes[off..end])
        },
    )?;
    Ok(())
}

/// Adds `ic0.<name>`, which writes the `u128` that `value` reads to `dst`.
fn add_u128(
    linker: &mut Linker<Host>,
    name: &str,
    value: fn(&ExecContext) -> u128,
) -> wasmtime::Result<()> {
    linker.func_wrap("ic0", name, move |mut c: Caller<'_, Host>, dst: u32| {
        let v = value(&c.data().ctx);
        write_u128(&mut c, dst, v)
    })?;
    Ok(())
}

/// Adds `ic0.<name>`, which passes the `u128` it takes as two halves to
/// `update` and writes the `u128` that `update` returns to `dst`.
fn add_u128_update(
    linker: &mut Linker<Host>,
    name: &str,
    update: fn(&mut ExecContext, u128) -> u128,
) -> wasmtime::Result<()> {
    linker.func_wrap(
        "ic0",
        name,
        move |mut c: Caller<'_, Host>, high: u64, low: u64, dst: u32| {
            let v = update(&mut c.data_mut().ctx, u128_of(high, low));
            write_u128(&mut c, dst, v)
        },
    )?;
    Ok(())
}

fn used_instructions(caller: &Caller<'_, Host>) -> u64 {
    let left = caller.get_fuel().unwrap_or(0);
    caller.data().ctx.instruction_limit.saturating_sub(left)
}

fn respond(caller: &mut Caller<'_, Host>, response: Response, what: &str) -> wasmtime::Result<()> {
    let ctx = &mut caller.data_mut().ctx;
    if !matches!(
        ctx.kind,
        EntryKind::Update | EntryKind::Query | EntryKind::ReplyCallback | EntryKind::RejectCallback
    ) {
        return trap(format!(
            "{what} called outside of a message that can respond"
        ));
    }
    if !ctx.may_respond || ctx.response.is_some() {
        return trap(format!("{what}: the call context was already responded to"));
    }
    ctx.response = Some(response);
    Ok(())
}

/// `stable64_write` (`to_stable`) or `stable64_read`: moves `size` bytes
/// between stable memory at `offset` and the heap at `heap`.
fn stable_transfer(
    c: &mut Caller<'_, Host>,
    offset: u64,
    heap: u64,
    size: u64,
    to_stable: bool,
) -> wasmtime::Result<()> {
    if !c.data().stable.in_bounds(offset, size) {
        return trap("stable memory out of bounds");
    }
    let mem = memory(c)?;
    let (data, host) = mem.data_and_store_mut(c);
    let Some(end) = heap.checked_add(size).filter(|e| *e <= data.len() as u64) else {
        let function = if to_stable {
            "stable64_write"
        } else {
            "stable64_read"
        };
        return trap(format!("heap memory out of bounds in {function}"));
    };
    let heap = &mut data[heap as usize..end as usize];
    if to_stable {
        host.stable.write(offset, heap);
    } else {
        heap.copy_from_slice(host.stable.read(offset, size));
    }
    Ok(())
}

/// Adds every implemented `ic0` function to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<Host>) -> wasmtime::Result<()> {
    add_blob(linker, "msg_arg_data", |ctx| {
        if ctx.kind.has_arg() {
            Ok(&ctx.arg)
        } else {
            Err(" called in a context without argument")
        }
    })?;
    add_blob(linker, "msg_caller", |ctx| Ok(ctx.caller.as_slice()))?;
    linker.func_wrap("ic0", "msg_reject_code", |c: Caller<'_, Host>| {
        c.data().ctx.reject.as_ref().map_or(0, |r| r.0)
    })?;
    add_blob(linker, "msg_reject_msg", |ctx| match &ctx.reject {
        Some((_, m)) => Ok(m.as_bytes()),
        None => Err(" called outside a reject callback"),
    })?;
    linker.func_wrap("ic0", "msg_deadline", |c: Caller<'_, Host>| {
        c.data().ctx.deadline
    })?;
    linker.func_wrap(
        "ic0",
        "msg_reply_data_append",
        |mut c: Caller<'_, Host>, src: u32, size: u32| {
            let bytes = read_bytes(&mut c, u64::from(src), u64::from(size))?;
            let ctx = &mut c.data_mut().ctx;
            if !ctx.may_respond || ctx.response.is_some() {
                return trap("msg_reply_data_append: the call context was already responded to");
            }
            if ctx.reply_buf.len() + bytes.len() > MAX_PAYLOAD {
                return trap("msg_reply_data_append: reply exceeds 2 MiB");
            }
            ctx.reply_buf.extend_from_slice(&bytes);
            Ok(())
        },
    )?;
    linker.func_wrap("ic0", "msg_reply", |mut c: Caller<'_, Host>| {
        let buf = std::mem::take(&mut c.data_mut().ctx.reply_buf);
        respond(&mut c, Response::Reply(buf), "msg_reply")
    })?;
    linker.func_wrap(
        "ic0",
        "msg_reject",
        |mut c: Caller<'_, Host>, src: u32, size: u32| {
            let bytes = read_bytes(&mut c, u64::from(src), u64::from(size))?;
            let msg = String::from_utf8_lossy(&bytes).into_owned();
            respond(&mut c, Response::Reject(msg), "msg_reject")
        },
    )?;
    add_blob(linker, "msg_method_name", |ctx| Ok(ctx.method.as_bytes()))?;
    add_u128(linker, "msg_cycles_available128", |ctx| {
        ctx.cycles_available
    })?;
    add_u128(linker, "msg_cycles_refunded128", |ctx| ctx.cycles_refunded)?;
    add_u128_update(linker, "msg_cycles_accept128", |ctx, max| {
        let got = max.min(ctx.cycles_available);
        ctx.cycles_available -= got;
        ctx.balance += got;
        got
    })?;
    add_u128_update(linker, "cycles_burn128", |ctx, amount| {
        let burnt = amount.min(ctx.balance);
        ctx.balance -= burnt;
        burnt
    })?;
    linker.func_wrap(
        "ic0",
        "accept_message",
        |mut c: Caller<'_, Host>| -> wasmtime::Result<()> {
            let ctx = &mut c.data_mut().ctx;
            if ctx.kind != EntryKind::InspectMessage {
                return trap("accept_message called outside canister_inspect_message");
            }
            if ctx.accepted_message {
                return trap("accept_message called twice");
            }
            ctx.accepted_message = true;
            Ok(())
        },
    )?;
    add_blob(linker, "canister_self", |ctx| {
        Ok(ctx.canister_id.as_slice())
    })?;
    add_u128(linker, "canister_cycle_balance128", |ctx| ctx.balance)?;
    add_u128(linker, "canister_liquid_cycle_balance128", |ctx| {
        ctx.balance.saturating_sub(ctx.freezing_threshold)
    })?;
    linker.func_wrap("ic0", "canister_status", |c: Caller<'_, Host>| {
        c.data().ctx.run_status
    })?;
    linker.func_wrap("ic0", "canister_version", |c: Caller<'_, Host>| {
        c.data().ctx.version
    })?;
    linker.func_wrap(
        "ic0",
        "call_new",
        |mut c: Caller<'_, Host>,
         callee_src: u32,
         callee_size: u32,
         name_src: u32,
         name_size: u32,
         reply_fun: u32,
         reply_env: u32,
         reject_fun: u32,
         reject_env: u32|
         -> wasmtime::Result<()> {
            if !c.data().ctx.kind.may_call() {
                return trap(format!("call_new not allowed in {:?}", c.data().ctx.kind));
            }
            let callee = read_bytes(&mut c, u64::from(callee_src), u64::from(callee_size))?;
            let name = read_bytes(&mut c, u64::from(name_src), u64::from(name_size))?;
            let callee = match Principal::try_from_slice(&callee) {
                Ok(p) => p,
                Err(e) => return trap(format!("call_new: invalid callee: {e}")),
            };
            let method = match String::from_utf8(name) {
                Ok(m) => m,
                Err(_) => return trap("call_new: method name is not UTF-8"),
            };
            // An unfinished earlier call is discarded, as the specification says.
            c.data_mut().ctx.building = Some(OutgoingCall {
                callee,
                method,
                arg: Vec::new(),
                reply: (reply_fun, reply_env),
                reject: (reject_fun, reject_env),
                cleanup: None,
                timeout_secs: None,
                cycles: 0,
            });
            Ok(())
        },
    )?;
    linker.func_wrap(
        "ic0",
        "call_on_cleanup",
        |mut c: Caller<'_, Host>, fun: u32, env: u32| -> wasmtime::Result<()> {
            match c.data_mut().ctx.building.as_mut() {
                Some(call) if call.cleanup.is_none() => {
                    call.cleanup = Some((fun, env));
                    Ok(())
                }
                Some(_) => trap("call_on_cleanup called twice"),
                None => trap("call_on_cleanup without call_new"),
            }
        },
    )?;
    linker.func_wrap(
        "ic0",
        "call_data_append",
        |mut c: Caller<'_, Host>, src: u32, size: u32| -> wasmtime::Result<()> {
            let bytes = read_bytes(&mut c, u64::from(src), u64::from(size))?;
            match c.data_mut().ctx.building.as_mut() {
                Some(call) => {
                    if call.arg.len() + bytes.len() > MAX_PAYLOAD {
                        return trap("call_data_append: payload exceeds 2 MiB");
                    }
                    call.arg.extend_from_slice(&bytes);
                    Ok(())
                }
                None => trap("call_data_append without call_new"),
            }
        },
    )?;
    linker.func_wrap(
        "ic0",
        "call_with_best_effort_response",
        |mut c: Caller<'_, Host>, timeout: u32| -> wasmtime::Result<()> {
            match c.data_mut().ctx.building.as_mut() {
                Some(call) if call.timeout_secs.is_none() => {
                    // The IC caps bounded-wait timeouts at 300 seconds.
                    call.timeout_secs = Some(timeout.clamp(1, 300));
                    Ok(())
                }
                Some(_) => trap("call_with_best_effort_response called twice"),
                None => trap("call_with_best_effort_response without call_new"),
            }
        },
    )?;
    linker.func_wrap(
        "ic0",
        "call_cycles_add128",
        |mut c: Caller<'_, Host>, high: u64, low: u64| -> wasmtime::Result<()> {
            let amount = u128_of(high, low);
            let ctx = &mut c.data_mut().ctx;
            if ctx.balance < amount {
                return trap("call_cycles_add128: insufficient cycles balance");
            }
            match ctx.building.as_mut() {
                Some(call) => {
                    ctx.balance -= amount;
                    call.cycles += amount;
                    Ok(())
                }
                None => trap("call_cycles_add128 without call_new"),
            }
        },
    )?;
    linker.func_wrap(
        "ic0",
        "call_perform",
        |mut c: Caller<'_, Host>| -> wasmtime::Result<u32> {
            let ctx = &mut c.data_mut().ctx;
            match ctx.building.take() {
                Some(call) => {
                    ctx.calls.push(call);
                    Ok(0)
                }
                None => trap("call_perform without call_new"),
            }
        },
    )?;
    linker.func_wrap("ic0", "stable64_size", |c: Caller<'_, Host>| {
        c.data().stable.pages()
    })?;
    linker.func_wrap("ic0", "stable64_grow", |mut c: Caller<'_, Host>, n: u64| {
        c.data_mut().stable.grow(n)
    })?;
    // stable64_write(offset, src, size) and stable64_read(dst, offset, size).
    for (name, to_stable) in [("stable64_write", true), ("stable64_read", false)] {
        linker.func_wrap(
            "ic0",
            name,
            move |mut c: Caller<'_, Host>, first: u64, second: u64, size: u64| {
                let (offset, heap) = if to_stable {
                    (first, second)
                } else {
                    (second, first)
                };
                stable_transfer(&mut c, offset, heap, size, to_stable)
            },
        )?;
    }
    linker.func_wrap(
        "ic0",
        "certified_data_set",
        |mut c: Caller<'_, Host>, src: u32, size: u32| -> wasmtime::Result<()> {
            if size > 32 {
                return trap("certified_data_set: more than 32 bytes");
            }
            if c.data().ctx.kind == EntryKind::Query {
                return trap("certified_data_set not allowed in queries");
            }
            let bytes = read_bytes(&mut c, u64::from(src), u64::from(size))?;
            c.data_mut().ctx.certified_data = Some(bytes);
            Ok(())
        },
    )?;
    // A certificate is present only in queries run with one
    // (`Devnet::query_call_with_certificate`, used by the HTTP server).
    linker.func_wrap("ic0", "data_certificate_present", |c: Caller<'_, Host>| {
        u32::from(c.data().ctx.data_certificate.is_some())
    })?;
    add_blob(linker, "data_certificate", |ctx| {
        match &ctx.data_certificate {
            Some(cert) => Ok(cert),
            None => Err(": no certificate is present"),
        }
    })?;
    linker.func_wrap("ic0", "time", |c: Caller<'_, Host>| c.data().ctx.time)?;
    linker.func_wrap(
        "ic0",
        "global_timer_set",
        |mut c: Caller<'_, Host>, t: u64| -> wasmtime::Result<u64> {
            let ctx = &mut c.data_mut().ctx;
            if ctx.kind == EntryKind::Query {
                return trap("global_timer_set not allowed in queries");
            }
            Ok(std::mem::replace(&mut ctx.global_timer, t))
        },
    )?;
    linker.func_wrap(
        "ic0",
        "performance_counter",
        |c: Caller<'_, Host>, kind: u32| -> wasmtime::Result<u64> {
            let used = used_instructions(&c);
            match kind {
                0 => Ok(used),
                1 => Ok(c.data().ctx.call_context_instructions + used),
                _ => trap(format!("performance_counter: unknown counter type {kind}")),
            }
        },
    )?;
    linker.func_wrap(
        "ic0",
        "is_controller",
        |mut c: Caller<'_, Host>, src: u32, size: u32| -> wasmtime::Result<u32> {
            let bytes = read_bytes(&mut c, u64::from(src), u64::from(size))?;
            match Principal::try_from_slice(&bytes) {
                Ok(p) => Ok(u32::from(c.data().ctx.controllers.contains(&p))),
                Err(_) => trap("is_controller: invalid principal"),
            }
        },
    )?;
    linker.func_wrap("ic0", "in_replicated_execution", |c: Caller<'_, Host>| {
        u32::from(c.data().ctx.kind != EntryKind::Query)
    })?;
    // The prices of `costs`, which the devnet charges.
    linker.func_wrap(
        "ic0",
        "cost_call",
        |mut c: Caller<'_, Host>, name: u64, size: u64, dst: u32| {
            write_u128(&mut c, dst, crate::costs::call_cost(name, size))
        },
    )?;
    linker.func_wrap(
        "ic0",
        "cost_create_canister",
        |mut c: Caller<'_, Host>, dst: u32| write_u128(&mut c, dst, crate::CANISTER_CREATION_FEE),
    )?;
    // Outcalls are the exception: `http_request` takes the IC's price from
    // the cycles attached to it, so a canister must attach them.
    linker.func_wrap(
        "ic0",
        "cost_http_request",
        |mut c: Caller<'_, Host>, request_size: u64, max_res_bytes: u64, dst: u32| {
            let cost = crate::outcalls::http_request_cost(request_size, max_res_bytes);
            write_u128(&mut c, dst, cost)
        },
    )?;
    linker.func_wrap(
        "ic0",
        "debug_print",
        |mut c: Caller<'_, Host>, src: u32, size: u32| -> wasmtime::Result<()> {
            let bytes = read_bytes(&mut c, u64::from(src), u64::from(size))?;
            let line = String::from_utf8_lossy(&bytes).into_owned();
            c.data_mut().ctx.logs.push(line);
            Ok(())
        },
    )?;
    linker.func_wrap(
        "ic0",
        "trap",
        |mut c: Caller<'_, Host>, src: u32, size: u32| -> wasmtime::Result<()> {
            let bytes = read_bytes(&mut c, u64::from(src), u64::from(size.min(16 * 1024)))?;
            trap(String::from_utf8_lossy(&bytes).into_owned())
        },
    )?;
    Ok(())
}
