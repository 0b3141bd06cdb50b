//! The matcher's durable state, reached only through [`read_state`] and
//! [`mutate_state`] so that no borrow is held across an `.await`.

use crate::memory::{self, Memory};
use canister_common::codec::Cbor;
use canister_common::event_log::EventLog;
use ic_stable_structures::Cell;
use market_api::matcher::{MatcherEvent, MatcherInit};
use std::cell::RefCell;

/// Everything the matcher keeps across upgrades.
pub struct State {
    config: Cell<Cbor<Option<MatcherInit>>, Memory>,
    /// The public event log.
    pub events: EventLog<MatcherEvent, Memory>,
}

impl State {
    fn open() -> Self {
        Self {
            config: Cell::init(memory::get(memory::CONFIG), Cbor(None)),
            events: EventLog::init(
                memory::get(memory::EVENT_LOG_INDEX),
                memory::get(memory::EVENT_LOG_DATA),
            ),
        }
    }

    /// The configuration; set at install, so always present afterwards.
    pub fn config(&self) -> MatcherInit {
        match &self.config.get().0 {
            Some(c) => c.clone(),
            None => panic!("BUG: matcher used before init"),
        }
    }

    /// Sets the configuration from the init argument.
    pub fn init(&mut self, init: MatcherInit) {
        self.config.set(Cbor(Some(init)));
    }
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::open());
}

/// Reads the state.
pub fn read_state<R>(f: impl FnOnce(&State) -> R) -> R {
    STATE.with(|s| f(&s.borrow()))
}

/// Changes the state.
pub fn mutate_state<R>(f: impl FnOnce(&mut State) -> R) -> R {
    STATE.with(|s| f(&mut s.borrow_mut()))
}
