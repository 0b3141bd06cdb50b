//! The registry's durable state, reached only through [`read_state`] and
//! [`mutate_state`] so that no borrow is held across an `.await`.

use crate::memory::{self, Memory};
use canister_common::codec::Cbor;
use canister_common::event_log::EventLog;
use ic_stable_structures::Cell;
use market_api::registry::{RegistryConfig, RegistryConfigUpdate, RegistryEvent, RegistryInit};
use std::cell::RefCell;

/// Everything the registry keeps across upgrades.
pub struct State {
    config: Cell<Cbor<Option<RegistryConfig>>, Memory>,
    /// The public event log.
    pub events: EventLog<RegistryEvent, Memory>,
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
    pub fn config(&self) -> RegistryConfig {
        match &self.config.get().0 {
            Some(c) => c.clone(),
            None => panic!("BUG: registry used before init"),
        }
    }

    /// Sets the configuration from the init argument.
    pub fn init(&mut self, now_ns: u64, init: RegistryInit) {
        let config = RegistryConfig {
            ledger: init.ledger,
            matcher: init.matcher,
            min_stake: init.min_stake,
            unbonding_period_secs: init.unbonding_period_secs,
        };
        self.config.set(Cbor(Some(config.clone())));
        self.events
            .append(now_ns, RegistryEvent::ConfigChanged { config });
    }

    /// Applies a configuration change (upgrade argument or controller call).
    pub fn update_config(&mut self, now_ns: u64, update: RegistryConfigUpdate) {
        let mut config = self.config();
        if let Some(m) = update.matcher {
            config.matcher = Some(m);
        }
        if let Some(s) = update.min_stake {
            config.min_stake = s;
        }
        if let Some(p) = update.unbonding_period_secs {
            config.unbonding_period_secs = p;
        }
        self.config.set(Cbor(Some(config.clone())));
        self.events
            .append(now_ns, RegistryEvent::ConfigChanged { config });
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

#[cfg(test)]
mod tests {
    use super::*;
    use candid::Principal;

    #[test]
    fn config_is_set_at_init_and_updated() {
        let ledger = Principal::from_slice(&[1]);
        mutate_state(|s| {
            s.init(
                5,
                RegistryInit {
                    ledger,
                    matcher: None,
                    min_stake: 100,
                    unbonding_period_secs: 7 * 86_400,
                },
            )
        });
        mutate_state(|s| {
            s.update_config(
                6,
                RegistryConfigUpdate {
                    min_stake: Some(200),
                    ..Default::default()
                },
            )
        });
        let config = read_state(|s| s.config());
        assert_eq!(config.min_stake, 200);
        assert_eq!(config.ledger, ledger);
        assert_eq!(read_state(|s| s.events.len()), 2);
    }
}
