//! Pieces every marketplace canister uses the same way: who administers it,
//! the rule and the
//! chunked pass of the audit of its books after an upgrade, a CBOR codec for
//! values in stable structures, the append-only public event log (a
//! certified ICRC-3 hash chain) and its archiving to an archive canister
//! (the archive's own storage too), guards that stop two messages for the same
//! key from interleaving at an `.await`,
//! the one stable memory manager, the time indexes that records past their
//! retention are pruned by, the ingress rules of
//! `canister_inspect_message`, the `/metrics` page writer and the cycles
//! it shows (balance and burn rate from the timers' samples), the transfers
//! sent to ledgers, the search of a ledger's block log for a transfer whose
//! outcome was lost, the system API that each canister's runtime trait
//! builds on, the timers a canister with audited books and an event log
//! starts, and the declaration of a canister's state with its accessors
//! ([`canister_state!`]).
//!
//! Only the default methods of [`runtime::SystemApi`],
//! [`ledger::LedgerCalls`] and [`ledger_blocks::BlockSource`], and the event
//! log's certified data on wasm32 (see [`event_log`]), call the IC;
//! everything else runs in native tests.

pub mod admin;
pub mod archiving;
pub mod audit;
pub mod block_archive;
pub mod codec;
pub mod cycles;
pub mod event_log;
pub mod guard;
pub mod ingress;
pub mod ledger;
pub mod ledger_blocks;
pub mod memory;
pub mod metrics;
pub mod retention;
pub mod runtime;
pub mod timers;

/// The methods every canister serves over its public event log, a log of
/// `$event` in the `events` field of the state `read_state` reads: one
/// page of events (`get_events`), the log's ICRC-3 blocks, archives and tip
/// certificate (see [`event_log`]), its ICRC-10 standards, and the
/// controllers' setting of its archiving (checked by the canister's own
/// `may_administer(&Principal) -> bool`).
#[macro_export]
macro_rules! public_log_endpoints {
    ($event:ty) => {
        /// One page of the public event log. Only events still held here
        /// are served: a page asked from an archived sequence number starts
        /// at the oldest local event (archived events are read as blocks
        /// from the archives, see `icrc3_get_blocks`).
        #[::ic_cdk::query]
        fn get_events(page: ::market_api::PageRequest) -> ::market_api::EventPage<$event> {
            read_state(|s| s.events.page(&page))
        }

        /// ICRC-3: blocks of the event log's hash chain, at most
        /// `market_api::blocks::MAX_BLOCKS_PER_QUERY` per call, with
        /// callbacks to the archives for archived ranges.
        #[::ic_cdk::query]
        fn icrc3_get_blocks(
            ranges: Vec<::market_api::blocks::GetBlocksRequest>,
        ) -> ::market_api::blocks::GetBlocksResult {
            read_state(|s| s.events.get_blocks(&ranges))
        }

        /// ICRC-3: the certificate of the event log's tip (none while the log is
        /// empty, or in a call from a canister, which gets no certificate).
        #[::ic_cdk::query]
        fn icrc3_get_tip_certificate() -> Option<::market_api::blocks::ICRC3DataCertificate> {
            read_state(|s| s.events.tip_certificate())
        }

        /// ICRC-3: the event log's one block type.
        #[::ic_cdk::query]
        fn icrc3_supported_block_types() -> Vec<::market_api::blocks::SupportedBlockType> {
            $crate::event_log::supported_block_types::<$event>()
        }

        /// ICRC-3: the archives of old blocks, with the range each holds.
        #[::ic_cdk::query]
        fn icrc3_get_archives(
            args: ::market_api::blocks::GetArchivesArgs,
        ) -> Vec<::market_api::blocks::ICRC3ArchiveInfo> {
            read_state(|s| s.events.archives(&args))
        }

        /// Where the archiving of the event log stands.
        #[::ic_cdk::query]
        fn get_log_archiving() -> ::market_api::blocks::LogArchivingStatus {
            read_state(|s| s.events.archiving_status())
        }

        /// Names the archive canister the oldest blocks move to and how many
        /// stay here (controllers only).
        #[::ic_cdk::update]
        fn set_log_archiving(
            change: ::market_api::blocks::LogArchiving,
        ) -> Result<(), ::market_api::blocks::LogArchivingError> {
            if !may_administer(&::ic_cdk::api::msg_caller()) {
                return Err(::market_api::blocks::LogArchivingError::NotAuthorized);
            }
            let set = mutate_state(|s| s.events.set_archiving(&change));
            if set.is_ok() {
                // Blocks may be due at once: the escrow's and the registry's
                // upkeep moves them soon (the matcher's audit timer looks
                // every 30 s; there this only brings its watchdog forward).
                $crate::timers::follow_up_soon();
            }
            set
        }

        /// Checks a `set_log_archiving` proposal without effect.
        #[::ic_cdk::query]
        fn validate_set_log_archiving(
            change: ::market_api::blocks::LogArchiving,
        ) -> Result<String, String> {
            let check = read_state(|s| s.events.check_archiving(&change));
            $crate::admin::validation("set_log_archiving", &change, check)
        }

        /// ICRC-10: the standards this canister supports.
        #[::ic_cdk::query]
        fn icrc10_supported_standards() -> Vec<::market_api::StandardRecord> {
            vec![
                ::market_api::icrc10_standard(),
                ::market_api::icrc3_standard(),
            ]
        }
    };
}

/// Declares a canister's one state, `STATE`, built by `$open` on its first
/// use, and its accessors `read_state` and `mutate_state`. They take
/// closures, so no borrow of the state can be held across an `.await`.
/// Given `events: $event`, the type of the events in the state's `events`
/// log, it also implements [`timers::CanisterState`] for the state.
#[macro_export]
macro_rules! canister_state {
    ($state:ty, $open:expr) => {
        thread_local! {
            static STATE: ::std::cell::RefCell<$state> = ::std::cell::RefCell::new($open);
        }

        /// Reads the state.
        pub fn read_state<R>(f: impl FnOnce(&$state) -> R) -> R {
            STATE.with(|s| f(&s.borrow()))
        }

        /// Changes the state.
        pub fn mutate_state<R>(f: impl FnOnce(&mut $state) -> R) -> R {
            STATE.with(|s| f(&mut s.borrow_mut()))
        }
    };
    ($state:ty, $open:expr, events: $event:ty) => {
        $crate::canister_state!($state, $open);

        impl $crate::timers::CanisterState for $state {
            type Event = $event;

            fn mutate<R>(f: impl FnOnce(&mut Self) -> R) -> R {
                mutate_state(f)
            }

            fn events(
                &mut self,
            ) -> &mut $crate::event_log::EventLog<$event, $crate::memory::Memory> {
                &mut self.events
            }
        }
    };
}
