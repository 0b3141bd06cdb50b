//! Message delivery: ingress, requests, responses, call contexts, callbacks,
//! bounded-wait deadlines and the global timer, in a deterministic order.
//!
//! Requests and responses go through one FIFO queue. A [`Devnet::tick`]
//! expires deadlines, fires due timers (canisters in id order) and then
//! delivers queued messages, repeating until nothing is left.

use candid::Principal;
use serde::{Deserialize, Serialize};

use crate::costs::{self, Burn};
use crate::error::{ErrorCode, Reject, RejectCode, trap_reject};
use crate::faults::{self, FaultKind};
use crate::instance::{Entry, Keep, Outcome};
use crate::system_api::{EntryKind, ExecContext, MAX_PAYLOAD, Response};
use crate::{Devnet, IngressStatus, MessageId, TickStats};

/// Where a call context's response goes.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub(crate) enum Origin {
    Ingress(MessageId),
    Canister(u64),
    /// Timers: nobody waits for a response.
    System,
}

/// A call context: an incoming call being handled by a canister.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct CallContext {
    /// The canister handling the call (states saved before it was kept
    /// read as the anonymous principal: only stopping looks at it).
    #[serde(default = "Principal::anonymous")]
    canister: Principal,
    origin: Origin,
    responded: bool,
    outstanding: usize,
    instructions: u64,
    cycles: u128,
    deadline: u64,
    caller: Principal,
}

impl CallContext {
    /// The canister handling the call.
    pub fn canister(&self) -> Principal {
        self.canister
    }
}

/// An outstanding outgoing call of a canister.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Callback {
    canister: Principal,
    call_context: u64,
    version: u64,
    reply: (u32, u32),
    reject: (u32, u32),
    cleanup: Option<(u32, u32)>,
    deadline: Option<u64>,
    expired: bool,
}

/// A message in flight.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) enum Message {
    Request {
        caller: Principal,
        callee: Principal,
        method: String,
        #[serde(with = "serde_bytes")]
        arg: Vec<u8>,
        origin: Origin,
        cycles: u128,
        deadline: u64,
    },
    Response {
        callback: u64,
        result: Result<Vec<u8>, Reject>,
        refund: u128,
    },
}

impl Devnet {
    /// Delivers queued messages and due timers until nothing is left.
    pub fn tick(&mut self) -> TickStats {
        let mut stats = TickStats::default();
        loop {
            stats.expired += self.expire_deadlines();
            let fired = self.fire_timers();
            stats.timers += fired;
            if self.queue.is_empty() && fired == 0 {
                break;
            }
            while let Some(msg) = self.queue.pop_front() {
                if stats.messages >= self.config.max_messages_per_tick {
                    self.queue.push_front(msg);
                    stats.exhausted = true;
                    return stats;
                }
                stats.messages += 1;
                self.deliver(msg);
            }
        }
        stats
    }

    /// Delivers a single queued message (after expiring due deadlines), or
    /// fires due timers if the queue is empty. Returns false if nothing ran.
    pub fn step(&mut self) -> bool {
        self.expire_deadlines();
        match self.queue.pop_front() {
            Some(msg) => {
                self.deliver(msg);
                true
            }
            None => self.fire_timers() > 0,
        }
    }

    /// Submits an ingress update call after `canister_inspect_message` accepts it.
    pub fn submit_call(
        &mut self,
        canister: Principal,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<MessageId, Reject> {
        if arg.len() > MAX_PAYLOAD {
            return Err(Reject::new(
                RejectCode::SysFatal,
                format!("ingress payload of {} bytes exceeds 2 MiB", arg.len()),
            ));
        }
        if canister == Principal::management_canister() || self.is_cycles_canister(canister) {
            let id = MessageId(self.fresh_id());
            let origin = Origin::Ingress(id);
            self.ingress.insert(id, IngressStatus::Pending);
            self.system_request(sender, canister, method, arg, origin, 0);
            return Ok(id);
        }
        if let Err(e) = self.check_method(canister, method, "update") {
            // Query methods may be called as updates (their state is not kept).
            self.check_method(canister, method, "query")
                .map_err(|_| e)?;
        }
        self.require_running(canister)?;
        let induction = costs::ingress_cost(method.len().saturating_add(arg.len()));
        self.require_unfrozen(canister, induction)?;
        self.inspect(canister, sender, method, &arg)?;
        self.canisters
            .get_mut(&canister)
            .expect("exists")
            .charge(Burn::Messages, induction);
        Ok(self.enqueue_ingress(canister, sender, method, arg))
    }

    /// Refuses a message to a canister whose balance, less `cost`, would
    /// fall below its freezing threshold (IC0207, `SYS_TRANSIENT`).
    pub(crate) fn require_unfrozen(&self, canister: Principal, cost: u128) -> Result<(), Reject> {
        let Some(c) = self.canisters.get(&canister) else {
            return Ok(()); // Answered as missing elsewhere.
        };
        let needed = c.freezing_threshold_cycles().saturating_add(cost);
        if c.balance < needed {
            return Err(Reject::error(
                ErrorCode::CanisterOutOfCycles,
                format!(
                    "Canister {canister} is out of cycles: please top up the canister with at \
                     least {} additional cycles",
                    needed - c.balance
                ),
            ));
        }
        Ok(())
    }

    /// What a replicated message must be able to pay before it runs: its
    /// fee and the instruction limit (the IC prepays it and refunds the rest).
    fn execution_prepayment(&self) -> u128 {
        costs::execution_cost(self.config.update_instruction_limit)
    }

    /// Sends an update call as the canister `sender` would and runs the
    /// devnet until it is answered. A call between canisters skips
    /// `canister_inspect_message`, so this reaches the method's own checks
    /// whatever the canister's ingress filter refuses.
    pub fn call_from_canister(
        &mut self,
        canister: Principal,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Vec<u8>, Reject> {
        self.check_method(canister, method, "update")?;
        self.require_running(canister)?;
        let id = self.enqueue_ingress(canister, sender, method, arg);
        self.await_call(id)
    }

    fn enqueue_ingress(
        &mut self,
        canister: Principal,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> MessageId {
        let id = MessageId(self.fresh_id());
        self.ingress.insert(id, IngressStatus::Pending);
        self.queue.push_back(Message::Request {
            caller: sender,
            callee: canister,
            method: method.to_string(),
            arg,
            origin: Origin::Ingress(id),
            cycles: 0,
            deadline: 0,
        });
        id
    }

    /// The status of an ingress message.
    pub fn ingress_status(&self, id: MessageId) -> IngressStatus {
        self.ingress
            .get(&id)
            .cloned()
            .unwrap_or(IngressStatus::Unknown)
    }

    /// Runs [`tick`](Self::tick) until the ingress message is answered.
    ///
    /// If nothing is left to run while the message is still pending (it waits
    /// for a deadline or timer in the future), returns a `SYS_TRANSIENT` reject
    /// saying so; advance the time and await again.
    pub fn await_call(&mut self, id: MessageId) -> Result<Vec<u8>, Reject> {
        loop {
            match self.ingress.get(&id) {
                Some(IngressStatus::Done(_)) => {
                    let Some(IngressStatus::Done(r)) = self.ingress.remove(&id) else {
                        unreachable!()
                    };
                    return r;
                }
                Some(IngressStatus::Pending) => {}
                _ => {
                    return Err(Reject::new(
                        RejectCode::SysFatal,
                        format!("unknown message id {}", id.0),
                    ));
                }
            }
            let stats = self.tick();
            if stats.messages == 0 && stats.timers == 0 && stats.expired == 0 {
                return Err(Reject::new(
                    RejectCode::SysTransient,
                    "the call is still pending and nothing is left to run; advance the time",
                ));
            }
        }
    }

    /// Submits an ingress update call and runs the devnet until it is answered.
    pub fn update_call(
        &mut self,
        canister: Principal,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Vec<u8>, Reject> {
        let id = self.submit_call(canister, sender, method, arg)?;
        self.await_call(id)
    }

    /// Runs a query; its state changes are always discarded.
    pub fn query_call(
        &mut self,
        canister: Principal,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Vec<u8>, Reject> {
        self.query_call_with_certificate(canister, sender, method, arg, None)
    }

    /// Runs a query that can read `certificate` through
    /// `ic0.data_certificate_*`, as a non-replicated query on the IC reads a
    /// certificate of the canister's certified data (building and signing it
    /// is the caller's business: the HTTP server does it).
    pub fn query_call_with_certificate(
        &mut self,
        canister: Principal,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
        certificate: Option<Vec<u8>>,
    ) -> Result<Vec<u8>, Reject> {
        if arg.len() > MAX_PAYLOAD {
            return Err(Reject::new(
                RejectCode::SysFatal,
                format!("query payload of {} bytes exceeds 2 MiB", arg.len()),
            ));
        }
        if canister == Principal::management_canister() {
            return self.management_query(sender, method, &arg);
        }
        if self.is_cycles_canister(canister) {
            return self.cycles_query(canister, method, &arg);
        }
        self.check_method(canister, method, "query")?;
        self.require_running(canister)?;
        let mut ctx = self.message_context(canister, EntryKind::Query, sender, method, arg);
        ctx.data_certificate = certificate;
        self.run_query(canister, ctx, "Canister did not reply to the call")
    }

    /// A context for a message from `caller` to `method` of `canister`,
    /// which may respond.
    pub(crate) fn message_context(
        &self,
        canister: Principal,
        kind: EntryKind,
        caller: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> ExecContext {
        let mut ctx = self.context(canister, kind);
        ctx.caller = caller;
        ctx.method = method.to_string();
        ctx.arg = arg;
        ctx.may_respond = true;
        ctx
    }

    /// Runs the query `ctx` names on `canister`, keeping none of its
    /// changes; `no_reply` is the reject message when it answers nothing.
    pub(crate) fn run_query(
        &mut self,
        canister: Principal,
        ctx: ExecContext,
        no_reply: &str,
    ) -> Result<Vec<u8>, Reject> {
        let limit = self.config.query_instruction_limit;
        let entry = format!("canister_query {}", ctx.method);
        let out = self.execute(canister, &entry, ctx, limit, Keep::Nothing);
        match (out.trap, out.ctx.response) {
            (Some(t), _) => Err(trap_reject(t)),
            (None, Some(Response::Reply(r))) => Ok(r),
            (None, Some(Response::Reject(m))) => {
                Err(Reject::error(ErrorCode::CanisterRejectedMessage, m))
            }
            (None, None) => Err(Reject::error(ErrorCode::CanisterDidNotReply, no_reply)),
        }
    }

    pub(crate) fn check_method(
        &self,
        canister: Principal,
        method: &str,
        kind: &str,
    ) -> Result<(), Reject> {
        let c = self
            .canisters
            .get(&canister)
            .ok_or_else(|| crate::management::not_found(canister))?;
        let code = c.code().ok_or_else(|| {
            Reject::error(
                ErrorCode::CanisterWasmModuleNotFound,
                format!("Canister {canister} contains no Wasm module"),
            )
        })?;
        if code.exports(&format!("canister_{kind} {method}")) {
            Ok(())
        } else {
            Err(Reject::error(
                ErrorCode::CanisterMethodNotFound,
                format!("Canister {canister} has no {kind} method '{method}'"),
            ))
        }
    }

    fn inspect(
        &mut self,
        canister: Principal,
        sender: Principal,
        method: &str,
        arg: &[u8],
    ) -> Result<(), Reject> {
        let exported = self.canisters[&canister]
            .code()
            .is_some_and(|c| c.exports("canister_inspect_message"));
        if !exported {
            return Ok(());
        }
        let mut ctx = self.context(canister, EntryKind::InspectMessage);
        ctx.caller = sender;
        ctx.method = method.to_string();
        ctx.arg = arg.to_vec();
        let limit = self.config.inspect_instruction_limit;
        let out = self.execute(
            canister,
            "canister_inspect_message",
            ctx,
            limit,
            Keep::Nothing,
        );
        match out.trap {
            Some(t) => Err(Reject::error(
                ErrorCode::CanisterRejectedMessage,
                format!("Canister {canister} rejected the message in inspect_message: {t}"),
            )),
            None if !out.ctx.accepted_message => Err(Reject::error(
                ErrorCode::CanisterRejectedMessage,
                format!("Canister {canister} did not accept the message '{method}'"),
            )),
            None => Ok(()),
        }
    }

    /// A context for `kind` filled with the canister's current system state.
    pub(crate) fn context(&self, canister: Principal, kind: EntryKind) -> ExecContext {
        let c = &self.canisters[&canister];
        let mut ctx = ExecContext::new(kind, canister);
        ctx.time = self.time;
        ctx.global_timer = c.global_timer;
        ctx.controllers = c.controllers.clone();
        ctx.version = c.version;
        ctx.balance = c.balance;
        ctx.freezing_threshold = c.freezing_threshold_cycles();
        ctx.run_status = match c.status {
            crate::RunStatus::Running => 1,
            crate::RunStatus::Stopping => 2,
            crate::RunStatus::Stopped => 3,
        };
        ctx
    }

    /// Runs one message on an installed canister and records it.
    pub(crate) fn execute(
        &mut self,
        canister: Principal,
        entry_name: &str,
        ctx: ExecContext,
        limit: u64,
        keep: Keep,
    ) -> Outcome {
        let entry = Entry::Export(entry_name.to_string());
        self.execute_entry(canister, &entry, entry_name, ctx, limit, keep)
    }

    fn execute_entry(
        &mut self,
        canister: Principal,
        entry: &Entry,
        label: &str,
        ctx: ExecContext,
        limit: u64,
        keep: Keep,
    ) -> Outcome {
        let engine = self.engine.clone();
        let c = self.canisters.get_mut(&canister).expect("canister exists");
        let live = c.live.as_mut().expect("canister has code");
        let replicated = keep != Keep::Nothing;
        let mut out = live.run(&engine, &mut c.stable, entry, ctx, limit, keep);
        if replicated {
            // The balance the message leaves behind (applied unless it
            // trapped) pays too, so both copies are charged.
            let cost = costs::execution_cost(out.instructions);
            c.charge(Burn::Execution, cost);
            out.ctx.balance = out.ctx.balance.saturating_sub(cost);
        }
        if self.config.print_debug {
            for line in &out.ctx.logs {
                eprintln!("[{canister}] {line}");
            }
        }
        if replicated {
            c.append_logs(self.time, &mut out.ctx.logs, out.trap.as_deref());
        } else {
            // As on the IC, queries leave no log records.
            c.logs.append(&mut out.ctx.logs);
        }
        self.record(canister, label, out.instructions, out.trap.clone());
        out
    }

    fn expire_deadlines(&mut self) -> usize {
        let now = self.time;
        let expired: Vec<u64> = self
            .callbacks
            .iter()
            .filter(|(_, cb)| !cb.expired && cb.deadline.is_some_and(|d| d <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in &expired {
            self.expire_callback(*id);
        }
        expired.len()
    }

    fn expire_callback(&mut self, id: u64) {
        if let Some(cb) = self.callbacks.get_mut(&id) {
            cb.expired = true;
            self.queue.push_back(Message::Response {
                callback: id,
                result: Err(Reject::new(
                    RejectCode::SysUnknown,
                    "Timeout expired: the outcome of the call is unknown",
                )),
                refund: 0,
            });
        }
    }

    fn fire_timers(&mut self) -> usize {
        let now = self.time;
        let due: Vec<Principal> = self
            .canisters
            .iter()
            .filter(|(_, c)| {
                c.global_timer != 0
                    && c.global_timer <= now
                    && c.status == crate::RunStatus::Running
                    && c.balance
                        >= c.freezing_threshold_cycles()
                            .saturating_add(costs::execution_cost(
                                self.config.update_instruction_limit,
                            ))
                    && c.code()
                        .is_some_and(|code| code.exports("canister_global_timer"))
            })
            .map(|(id, _)| *id)
            .collect();
        for canister in &due {
            // The timer is deactivated when it fires, whatever the message does.
            self.canisters
                .get_mut(canister)
                .expect("exists")
                .global_timer = 0;
            let cc = self.fresh_id();
            self.call_contexts.insert(
                cc,
                CallContext {
                    canister: *canister,
                    origin: Origin::System,
                    responded: true,
                    outstanding: 0,
                    instructions: 0,
                    cycles: 0,
                    deadline: 0,
                    caller: Principal::management_canister(),
                },
            );
            let mut ctx = self.context(*canister, EntryKind::GlobalTimer);
            ctx.global_timer = 0;
            let limit = self.config.update_instruction_limit;
            let out = self.execute(*canister, "canister_global_timer", ctx, limit, Keep::All);
            self.finish(*canister, cc, out);
        }
        due.len()
    }

    fn deliver(&mut self, msg: Message) {
        match msg {
            Message::Request {
                caller,
                callee,
                method,
                arg,
                origin,
                cycles,
                deadline,
            } => self.deliver_request(caller, callee, method, arg, origin, cycles, deadline),
            Message::Response {
                callback,
                result,
                refund,
            } => self.deliver_response(callback, result, refund),
        }
    }

    /// Sends a response to whoever waits on `origin`.
    pub(crate) fn respond_to(
        &mut self,
        origin: Origin,
        result: Result<Vec<u8>, Reject>,
        refund: u128,
    ) {
        match origin {
            Origin::Ingress(id) => {
                self.ingress.insert(id, IngressStatus::Done(result));
            }
            Origin::Canister(callback) => {
                self.queue.push_back(Message::Response {
                    callback,
                    result,
                    refund,
                });
            }
            Origin::System => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn deliver_request(
        &mut self,
        caller: Principal,
        callee: Principal,
        method: String,
        arg: Vec<u8>,
        origin: Origin,
        cycles: u128,
        deadline: u64,
    ) {
        if let Origin::Canister(cb) = origin {
            match faults::take(&mut self.faults, caller, callee, &method) {
                Some(FaultKind::Reject { code, message }) => {
                    return self.respond_to(origin, Err(Reject::new(code, message)), cycles);
                }
                Some(FaultKind::Trap) => {
                    let msg = format!("Canister {callee} trapped: injected fault in '{method}'");
                    return self.respond_to(
                        origin,
                        Err(Reject::new(RejectCode::CanisterError, msg)),
                        cycles,
                    );
                }
                Some(FaultKind::Timeout) => self.expire_callback(cb),
                None => {}
            }
        }
        if callee == Principal::management_canister() || self.is_cycles_canister(callee) {
            return self.system_request(caller, callee, &method, arg, origin, cycles);
        }
        if let Err(reject) = self.require_running(callee) {
            return self.respond_to(origin, Err(reject), cycles);
        }
        if let Err(reject) = self.require_unfrozen(callee, self.execution_prepayment()) {
            return self.respond_to(origin, Err(reject), cycles);
        }
        if let Err(reject) = self.check_method(callee, &method, "update") {
            let is_query = self.check_method(callee, &method, "query").is_ok();
            if !is_query {
                return self.respond_to(origin, Err(reject), cycles);
            }
            // A query method called as an update runs, but keeps no state.
            let ctx = self.message_context(callee, EntryKind::Query, caller, &method, arg);
            let result = self.run_query(callee, ctx, "Canister did not reply");
            return self.respond_to(origin, result, cycles);
        }
        let cc = self.fresh_id();
        self.call_contexts.insert(
            cc,
            CallContext {
                canister: callee,
                origin,
                responded: false,
                outstanding: 0,
                instructions: 0,
                cycles,
                deadline,
                caller,
            },
        );
        let mut ctx = self.message_context(callee, EntryKind::Update, caller, &method, arg);
        ctx.cycles_available = cycles;
        ctx.deadline = deadline;
        let limit = self.config.update_instruction_limit;
        let out = self.execute(
            callee,
            &format!("canister_update {method}"),
            ctx,
            limit,
            Keep::All,
        );
        self.finish(callee, cc, out);
    }

    fn deliver_response(&mut self, id: u64, result: Result<Vec<u8>, Reject>, refund: u128) {
        // The first response delivered wins: a late reply to a call whose
        // deadline expired finds the callback gone and is dropped.
        let Some(cb) = self.callbacks.remove(&id) else {
            return;
        };
        let Some(canister) = self.canisters.get_mut(&cb.canister) else {
            return;
        };
        canister.balance = canister.balance.saturating_add(refund);
        let bytes = match &result {
            Ok(b) => b.len(),
            Err(r) => r.message.len(),
        };
        canister.charge(Burn::Messages, costs::response_cost(bytes));
        let Some(cc) = self.call_contexts.get_mut(&cb.call_context) else {
            return;
        };
        cc.outstanding -= 1;
        let (responded, cc_instr, deadline, caller) =
            (cc.responded, cc.instructions, cc.deadline, cc.caller);
        if canister.version != cb.version || canister.live.is_none() {
            // The module changed since the call was made: its callbacks are gone.
            self.finish_without_execution(cb.canister, cb.call_context);
            return;
        }
        let (kind, closure) = match &result {
            Ok(_) => (EntryKind::ReplyCallback, cb.reply),
            Err(_) => (EntryKind::RejectCallback, cb.reject),
        };
        let mut ctx = self.context(cb.canister, kind);
        ctx.caller = caller;
        ctx.may_respond = !responded;
        ctx.call_context_instructions = cc_instr;
        ctx.cycles_refunded = refund;
        ctx.deadline = deadline;
        match result {
            Ok(bytes) => ctx.arg = bytes,
            Err(r) => ctx.reject = Some((r.code as u32, r.message)),
        }
        let limit = self.config.update_instruction_limit;
        let entry = Entry::Callback(closure.0, closure.1);
        let out = self.execute_entry(cb.canister, &entry, "callback", ctx, limit, Keep::All);
        if out.trap.is_some()
            && let Some((fun, env)) = cb.cleanup
        {
            let ctx = self.context(cb.canister, EntryKind::Cleanup);
            let entry = Entry::Callback(fun, env);
            let cleanup = self.execute_entry(cb.canister, &entry, "cleanup", ctx, limit, Keep::All);
            if cleanup.trap.is_none() {
                self.apply_system_effects(cb.canister, &cleanup.ctx);
            }
        }
        self.finish(cb.canister, cb.call_context, out);
    }

    fn apply_system_effects(&mut self, canister: Principal, ctx: &ExecContext) {
        let c = self.canisters.get_mut(&canister).expect("exists");
        c.global_timer = ctx.global_timer;
        c.balance = ctx.balance;
        if let Some(d) = &ctx.certified_data {
            c.certified_data = d.clone();
        }
    }

    /// Applies a finished message's effects to its call context.
    fn finish(&mut self, canister: Principal, cc_id: u64, out: Outcome) {
        let instructions = out.instructions;
        if let Some(cc) = self.call_contexts.get_mut(&cc_id) {
            cc.instructions += instructions;
        }
        if let Some(t) = out.trap {
            // A trap discards the message's calls and response; the call
            // context is rejected if nothing else can answer it.
            if let Some(cc) = self.call_contexts.get(&cc_id)
                && !cc.responded
                && cc.outstanding == 0
            {
                self.respond(cc_id, Err(trap_reject(t)));
            }
        } else {
            let ctx = out.ctx;
            self.apply_system_effects(canister, &ctx);
            let version = self.canisters[&canister].version;
            let cycles_left = ctx.cycles_available;
            for call in ctx.calls {
                let id = self.fresh_id();
                let deadline = call
                    .timeout_secs
                    .map(|s| self.time + u64::from(s) * 1_000_000_000);
                self.callbacks.insert(
                    id,
                    Callback {
                        canister,
                        call_context: cc_id,
                        version,
                        reply: call.reply,
                        reject: call.reject,
                        cleanup: call.cleanup,
                        deadline,
                        expired: false,
                    },
                );
                if let Some(cc) = self.call_contexts.get_mut(&cc_id) {
                    cc.outstanding += 1;
                }
                let cost = costs::call_cost(call.method.len() as u64, call.arg.len() as u64);
                self.canisters
                    .get_mut(&canister)
                    .expect("exists")
                    .charge(Burn::Messages, cost);
                self.queue.push_back(Message::Request {
                    caller: canister,
                    callee: call.callee,
                    method: call.method,
                    arg: call.arg,
                    origin: Origin::Canister(id),
                    cycles: call.cycles,
                    deadline: deadline.unwrap_or(0),
                });
            }
            if let Some(cc) = self.call_contexts.get_mut(&cc_id) {
                cc.cycles = cycles_left;
            }
            match ctx.response {
                Some(Response::Reply(r)) => self.respond(cc_id, Ok(r)),
                Some(Response::Reject(m)) => self.respond(
                    cc_id,
                    Err(Reject::error(ErrorCode::CanisterRejectedMessage, m)),
                ),
                None => {}
            }
        }
        self.finish_without_execution(canister, cc_id);
    }

    /// Closes the call context if nothing can answer it any more.
    fn finish_without_execution(&mut self, canister: Principal, cc_id: u64) {
        let Some(cc) = self.call_contexts.get(&cc_id) else {
            return;
        };
        if cc.outstanding > 0 {
            return;
        }
        if !cc.responded {
            let origin = cc.origin;
            let refund = cc.cycles;
            self.call_contexts.remove(&cc_id);
            self.respond_to(
                origin,
                Err(Reject::error(
                    ErrorCode::CanisterDidNotReply,
                    "Canister did not reply to the call",
                )),
                refund,
            );
        } else {
            self.call_contexts.remove(&cc_id);
        }
        self.call_context_closed(canister);
    }

    /// A request to the management canister or a cycles canister (answered
    /// natively, at once unless it is a `stop_canister` that must wait).
    fn system_request(
        &mut self,
        caller: Principal,
        callee: Principal,
        method: &str,
        arg: Vec<u8>,
        origin: Origin,
        cycles: u128,
    ) {
        if callee != Principal::management_canister() {
            let (result, refund) = self.cycles_call(caller, callee, method, &arg, cycles);
            return self.respond_to(origin, result, refund);
        }
        let is_canister = matches!(origin, Origin::Canister(_));
        let (result, refund) = match method {
            "http_request" if is_canister => {
                let (result, refund) = self.http_outcall(caller, &arg, cycles);
                self.record_burn(caller, Burn::Outcalls, cycles.saturating_sub(refund));
                (result, refund)
            }
            "vetkd_derive_key" if is_canister => {
                let (result, refund) = self.vetkd_derive_key(caller, &arg, cycles);
                self.record_burn(caller, Burn::Vetkd, cycles.saturating_sub(refund));
                (result, refund)
            }
            "vetkd_public_key" if is_canister => (
                crate::vetkd::VetKdKeys::devnet().public_key_reply(caller, &arg),
                cycles,
            ),
            "deposit_cycles" => self.deposit_cycles(&arg, cycles),
            "stop_canister" => match self.stop_request(caller, &arg, origin) {
                Some(result) => (result, cycles),
                None => return,
            },
            _ => (self.management_call(caller, method, &arg), cycles),
        };
        self.respond_to(origin, result, refund)
    }

    /// Records cycles a canister attached and the system kept.
    fn record_burn(&mut self, canister: Principal, what: Burn, amount: u128) {
        if let Some(c) = self.canisters.get_mut(&canister) {
            c.burned.add(what, amount);
        }
    }

    fn respond(&mut self, cc_id: u64, result: Result<Vec<u8>, Reject>) {
        let Some(cc) = self.call_contexts.get_mut(&cc_id) else {
            return;
        };
        if cc.responded {
            return;
        }
        cc.responded = true;
        let origin = cc.origin;
        let refund = std::mem::take(&mut cc.cycles);
        self.respond_to(origin, result, refund);
    }
}
