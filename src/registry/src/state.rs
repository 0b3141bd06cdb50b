//! The registry's durable state, reached only through [`read_state`] and
//! [`mutate_state`] so that no borrow is held across an `.await`.
//!
//! Everything lives in stable structures (no `pre_upgrade`); the only heap
//! state is the set of providers with an operation in flight (the guard),
//! which is empty between messages and so needs no upgrade handling, and
//! the cursor of the background audit ([`State::audit_chunk`]), which an
//! upgrade starts again.

use crate::memory::{self, Memory};
use canister_common::audit::{
    AuditedBooks, Books, BooksAudit, Chunk, ChunkRequest, ChunkWork, after,
};
use canister_common::codec::Cbor;
use canister_common::event_log::EventLog;
use canister_common::ledger_blocks::BlockScan;
use canister_common::retention::TimeIndex;
use ic_stable_structures::storable::Blob;
use ic_stable_structures::{Cell, StableBTreeMap};
use market_api::registry::{
    DEFAULT_UNBONDING_PERIOD_SECS, MAX_UNBONDING_PERIOD_SECS, PendingOperation,
    PendingTransferInfo, Provider, ProviderProfile, RECORD_KEY_RETENTION_SECS, RecordEvent,
    RegistryConfig, RegistryConfigUpdate, RegistryError, RegistryEvent, RegistryInit, SlashArgs,
    SlashOutcome, Stake, TrackRecord, Unbonding,
};
use market_api::{Account, MAX_OP_KEY_LEN, OpKey, Principal, Tokens};
use serde::{Deserialize, Serialize};

/// A provider as stored; the API's [`Provider`] adds the pending operation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ProviderRecord {
    /// The provider's principal.
    pub id: Principal,
    /// Its profile.
    pub profile: ProviderProfile,
    /// When it (last) registered.
    pub registered_at_ns: u64,
    /// Its stake.
    pub stake: Stake,
    /// Total slashed from it so far.
    pub slashed_total: Tokens,
    /// Whether it is jailed.
    pub jailed: bool,
    /// Whether it deregistered.
    pub deregistered: bool,
    /// What it did (absent from records saved before track records).
    #[serde(default)]
    pub record: TrackRecord,
}

impl ProviderRecord {
    /// Free plus bonded: the stake that counts for eligibility.
    pub fn active_stake(&self) -> Tokens {
        self.stake.free.saturating_add(self.stake.bonded)
    }

    /// Sum of the unbonding entries.
    pub fn unbonding_total(&self) -> Tokens {
        self.stake
            .unbonding
            .iter()
            .fold(0u128, |acc, u| acc.saturating_add(u.amount))
    }

    /// Everything the registry holds for this provider: free, bonded and unbonding.
    pub fn total_stake(&self) -> Tokens {
        self.active_stake().saturating_add(self.unbonding_total())
    }

    /// The API view.
    pub fn to_api(&self, pending: Option<&PendingTransfer>) -> Provider {
        Provider {
            id: self.id,
            profile: self.profile.clone(),
            registered_at_ns: self.registered_at_ns,
            stake: self.stake.clone(),
            slashed_total: self.slashed_total,
            jailed: self.jailed,
            deregistered: self.deregistered,
            pending_operation: pending.map(|p| p.kind.to_api()),
            pending_transfer: pending.map(PendingTransfer::info),
            record: self.record.clone(),
        }
    }
}

/// A bond of part of a provider's stake to one piece of work.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct BondRecord {
    /// The provider.
    pub provider: Principal,
    /// The amount bonded.
    pub amount: Tokens,
    /// Whether `unbond` freed it already.
    pub released: bool,
}

/// A slash under one idempotency key.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SlashRecord {
    /// The provider slashed.
    pub provider: Principal,
    /// The amount asked for.
    pub amount: Tokens,
    /// Who is paid.
    pub beneficiary: Account,
    /// The outcome once settled; `None` while the payout is pending.
    pub outcome: Option<SlashOutcome>,
}

/// A `record` call under one idempotency key.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RecordKey {
    /// The provider it concerned.
    pub provider: Principal,
    /// What it counted.
    pub event: RecordEvent,
    /// When.
    pub at_ns: u64,
}

/// An idempotency key as a bounded stable-map key (keys are at most
/// [`MAX_OP_KEY_LEN`] bytes, checked before any write).
type KeyBlob = Blob<MAX_OP_KEY_LEN>;

fn key_blob(key: &str) -> KeyBlob {
    Blob::try_from(key.as_bytes())
        .unwrap_or_else(|_| panic!("BUG: idempotency key longer than {MAX_OP_KEY_LEN} bytes"))
}

/// A ledger transfer exactly as it is (re)sent: a retry after an unknown
/// outcome sends the same fields, so the ledger's deduplication answers.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct LedgerTransfer {
    /// For `icrc2_transfer_from`: the account pulled from; `None` for
    /// `icrc1_transfer` from the registry's own subaccount.
    pub from: Option<Account>,
    /// The registry subaccount sent from (`icrc1_transfer`).
    pub from_subaccount: Option<[u8; 32]>,
    /// Destination.
    pub to: Account,
    /// Amount the destination receives.
    pub amount: Tokens,
    /// The fee named in the call, if any.
    pub fee: Option<Tokens>,
    /// Memo: a tag and the operation id.
    pub memo: Vec<u8>,
    /// Deduplication time.
    pub created_at_time: u64,
}

/// Stake taken by a slash, by where it came from, so a failed payout puts
/// every token back where it was.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Taken {
    /// From bonded stake.
    pub bonded: Tokens,
    /// From free stake.
    pub free: Tokens,
    /// From unbonding entries.
    pub unbonding: Vec<Unbonding>,
}

impl Taken {
    /// The total taken.
    pub fn total(&self) -> Tokens {
        self.unbonding
            .iter()
            .fold(self.bonded.saturating_add(self.free), |acc, u| {
                acc.saturating_add(u.amount)
            })
    }
}

/// What a pending transfer is for.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum PendingKind {
    /// Pulling new stake; credited on success.
    Stake { amount: Tokens },
    /// Paying out unbonded stake, already debited (`entries`).
    Withdraw { entries: Vec<Unbonding> },
    /// Paying a slash, already debited (`taken`).
    Slash {
        key: OpKey,
        taken: Taken,
        reason: String,
    },
}

impl PendingKind {
    fn to_api(&self) -> PendingOperation {
        match self {
            PendingKind::Stake { amount } => PendingOperation::Stake { amount: *amount },
            PendingKind::Withdraw { entries } => PendingOperation::Withdraw {
                amount: entries
                    .iter()
                    .fold(0u128, |a, u| a.saturating_add(u.amount)),
            },
            PendingKind::Slash { key, taken, .. } => PendingOperation::Slash {
                amount: taken.total(),
                key: key.clone(),
            },
        }
    }
}

/// A ledger transfer recorded in stable memory before the call is made.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PendingTransfer {
    /// The provider it concerns.
    pub provider: Principal,
    /// Unique id of the operation (also in the memo).
    pub op_id: u64,
    /// What it is for.
    pub kind: PendingKind,
    /// The transfer as sent.
    pub transfer: LedgerTransfer,
}

impl PendingTransfer {
    /// The account the transfer debits: the payer's for a pull, else the
    /// registry's subaccount.
    pub fn from_account(&self, registry: Principal) -> Account {
        self.transfer.from.unwrap_or(Account {
            owner: registry,
            subaccount: self.transfer.from_subaccount,
        })
    }

    /// The API view of what identifies the transfer.
    fn info(&self) -> PendingTransferInfo {
        PendingTransferInfo {
            operation: self.op_id,
            payer: self.transfer.from,
            from_subaccount: self.transfer.from_subaccount,
            to: self.transfer.to,
            amount: self.transfer.amount,
            memo: self.transfer.memo.clone(),
            created_at_time: self.transfer.created_at_time,
        }
    }
}

/// Counters kept across upgrades.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Counters {
    /// Next operation id.
    pub next_op_id: u64,
    /// Total slashed from all providers, ever.
    pub slashed_total: Tokens,
    /// Number of slashes that took something.
    pub slash_count: u64,
    /// Jobs completed, over all providers, ever.
    #[serde(default)]
    pub jobs_completed: u64,
    /// Audits passed, over all providers, ever.
    #[serde(default)]
    pub audits_passed: u64,
    /// Audits failed, over all providers, ever.
    #[serde(default)]
    pub audits_failed: u64,
    /// Deadlines missed, over all providers, ever.
    #[serde(default)]
    pub deadlines_missed: u64,
}

/// Everything the registry keeps across upgrades.
pub struct State {
    config: Cell<Cbor<Option<RegistryConfig>>, Memory>,
    /// The public event log.
    pub events: EventLog<RegistryEvent, Memory>,
    providers: StableBTreeMap<Vec<u8>, Cbor<ProviderRecord>, Memory>,
    bonds: StableBTreeMap<String, Cbor<BondRecord>, Memory>,
    slashes: StableBTreeMap<String, Cbor<SlashRecord>, Memory>,
    pending: StableBTreeMap<Vec<u8>, Cbor<PendingTransfer>, Memory>,
    counters: Cell<Cbor<Counters>, Memory>,
    /// Which provider each node principal signs for: one provider per node.
    nodes: StableBTreeMap<Vec<u8>, Vec<u8>, Memory>,
    /// Slashes that arrived while their provider's own call held its key,
    /// by provider: paid first by whichever of the provider's calls (or
    /// the matcher's retry) takes the key next.
    owed_slashes: StableBTreeMap<Vec<u8>, Cbor<Vec<SlashArgs>>, Memory>,
    /// Where the scan of the ledger's blocks stands for a pending transfer
    /// past its deduplication window, by provider.
    block_scans: StableBTreeMap<Vec<u8>, Cbor<BlockScan>, Memory>,
    /// `record` calls by idempotency key, kept for
    /// [`RECORD_KEY_RETENTION_SECS`].
    record_keys: StableBTreeMap<String, Cbor<RecordKey>, Memory>,
    /// The same keys by when they were recorded, oldest first.
    record_key_times: StableBTreeMap<(u64, KeyBlob), (), Memory>,
    /// The background audit of the records (heap only).
    pub audit: BooksAudit<AuditCursor>,
}

/// Where a pass of the registry's audit goes on: after this key of the
/// providers, or of the pending transfers (`None`: from the first).
#[derive(Clone, Debug)]
pub enum AuditCursor {
    /// Reading providers; the last one read.
    Providers(Option<Vec<u8>>),
    /// Reading pending transfers; the last one read.
    Pending(Option<Vec<u8>>),
}

/// Checks a configuration's values.
pub fn validate_config(config: &RegistryConfig) -> Result<(), RegistryError> {
    if config.unbonding_period_secs > MAX_UNBONDING_PERIOD_SECS {
        return Err(RegistryError::InvalidArgument {
            field: "unbonding_period_secs".to_string(),
            reason: format!("at most {MAX_UNBONDING_PERIOD_SECS} seconds"),
        });
    }
    if config.matcher == Some(Principal::anonymous()) {
        return Err(RegistryError::InvalidArgument {
            field: "matcher".to_string(),
            reason: "the anonymous principal cannot be the matcher".to_string(),
        });
    }
    Ok(())
}

impl State {
    fn open() -> Self {
        Self {
            config: Cell::init(memory::get(memory::CONFIG), Cbor(None)),
            events: EventLog::init(
                memory::get(memory::EVENT_LOG_BLOCKS),
                memory::get(memory::EVENT_LOG_META),
            ),
            providers: StableBTreeMap::init(memory::get(memory::PROVIDERS)),
            bonds: StableBTreeMap::init(memory::get(memory::BONDS)),
            slashes: StableBTreeMap::init(memory::get(memory::SLASHES)),
            pending: StableBTreeMap::init(memory::get(memory::PENDING)),
            counters: Cell::init(memory::get(memory::COUNTERS), Cbor(Counters::default())),
            nodes: StableBTreeMap::init(memory::get(memory::NODES)),
            owed_slashes: StableBTreeMap::init(memory::get(memory::OWED_SLASHES)),
            block_scans: StableBTreeMap::init(memory::get(memory::BLOCK_SCANS)),
            record_keys: StableBTreeMap::init(memory::get(memory::RECORD_KEYS)),
            record_key_times: StableBTreeMap::init(memory::get(memory::RECORD_KEY_TIMES)),
            audit: BooksAudit::new(),
        }
    }

    /// The configuration; set at install, so always present afterwards.
    pub fn config(&self) -> RegistryConfig {
        self.config.get().installed("registry")
    }

    /// Whether `init` ran.
    pub fn is_initialized(&self) -> bool {
        self.config.get().0.is_some()
    }

    /// Sets the configuration from the init argument.
    pub fn init(&mut self, now_ns: u64, init: RegistryInit) -> Result<(), RegistryError> {
        let config = RegistryConfig {
            ledger: init.ledger,
            matcher: init.matcher,
            min_stake: init.min_stake,
            unbonding_period_secs: init
                .unbonding_period_secs
                .unwrap_or(DEFAULT_UNBONDING_PERIOD_SECS),
            governance: init.governance,
        };
        validate_config(&config)?;
        self.config.set(Cbor(Some(config.clone())));
        self.events
            .append(now_ns, RegistryEvent::ConfigChanged { config });
        Ok(())
    }

    /// Applies a configuration change (upgrade argument or controller call).
    pub fn update_config(
        &mut self,
        now_ns: u64,
        update: RegistryConfigUpdate,
    ) -> Result<RegistryConfig, RegistryError> {
        let config = self.updated_config(update)?;
        self.config.set(Cbor(Some(config.clone())));
        self.events.append(
            now_ns,
            RegistryEvent::ConfigChanged {
                config: config.clone(),
            },
        );
        Ok(config)
    }

    /// The configuration `update` would make, checked; nothing changes.
    pub fn updated_config(
        &self,
        update: RegistryConfigUpdate,
    ) -> Result<RegistryConfig, RegistryError> {
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
        if let Some(g) = update.governance {
            config.governance = Some(g);
        }
        validate_config(&config)?;
        Ok(config)
    }

    /// Appends an event to the public log.
    pub fn record(&mut self, now_ns: u64, event: RegistryEvent) {
        self.events.append(now_ns, event);
    }

    /// A provider's record.
    pub fn provider(&self, id: &Principal) -> Option<ProviderRecord> {
        self.providers.get(&id.as_slice().to_vec()).map(|c| c.0)
    }

    /// Stores a provider's record, keeping the node index in step.
    pub fn put_provider(&mut self, record: ProviderRecord) {
        let (id, node) = (record.id, record.profile.node);
        let old = self.providers.insert(id.as_slice().to_vec(), Cbor(record));
        let old_node = old.map(|o| o.0.profile.node);
        if old_node != Some(node) {
            if let Some(old_node) = old_node {
                self.unbind_node(&old_node, &id);
            }
            self.nodes
                .insert(node.as_slice().to_vec(), id.as_slice().to_vec());
        }
    }

    /// Removes a provider's record and frees its node.
    pub fn remove_provider(&mut self, id: &Principal) {
        if let Some(old) = self.providers.remove(&id.as_slice().to_vec()) {
            self.unbind_node(&old.0.profile.node, id);
        }
    }

    fn unbind_node(&mut self, node: &Principal, provider: &Principal) {
        let key = node.as_slice().to_vec();
        if self.nodes.get(&key).as_deref() == Some(provider.as_slice()) {
            self.nodes.remove(&key);
        }
    }

    /// The provider whose profile names `node` as its node, if any.
    pub fn node_owner(&self, node: &Principal) -> Option<Principal> {
        self.nodes
            .get(&node.as_slice().to_vec())
            .map(|p| Principal::from_slice(&p))
    }

    /// Empties the node index, as in a state saved before it existed.
    #[cfg(test)]
    pub fn drop_node_index_for_tests(&mut self) {
        let keys: Vec<Vec<u8>> = self.nodes.iter().map(|e| e.key().clone()).collect();
        for k in keys {
            self.nodes.remove(&k);
        }
    }

    /// Builds the node index from the provider records if it is empty (a
    /// state saved before the index existed). Returns how many it indexed.
    pub fn index_nodes_if_missing(&mut self) -> usize {
        if !self.nodes.is_empty() {
            return 0;
        }
        let pairs: Vec<(Vec<u8>, Vec<u8>)> = self
            .providers_after(None)
            .map(|p| (p.profile.node.as_slice().to_vec(), p.id.as_slice().to_vec()))
            .collect();
        for (node, provider) in &pairs {
            self.nodes.insert(node.clone(), provider.clone());
        }
        pairs.len()
    }

    /// Providers in key order, starting strictly after `after`.
    pub fn providers_after(
        &self,
        after: Option<&Principal>,
    ) -> impl Iterator<Item = ProviderRecord> + '_ {
        use std::ops::Bound;
        let lower = match after {
            Some(p) => Bound::Excluded(p.as_slice().to_vec()),
            None => Bound::Unbounded,
        };
        self.providers
            .range((lower, Bound::Unbounded))
            .map(|entry| entry.into_pair().1.0)
    }

    /// Number of provider records.
    pub fn provider_count(&self) -> u64 {
        self.providers.len()
    }

    /// A bond record.
    pub fn bond(&self, key: &str) -> Option<BondRecord> {
        self.bonds.get(&key.to_string()).map(|c| c.0)
    }

    /// Stores a bond record.
    pub fn put_bond(&mut self, key: &str, record: BondRecord) {
        self.bonds.insert(key.to_string(), Cbor(record));
    }

    /// A slash record.
    pub fn slash_record(&self, key: &str) -> Option<SlashRecord> {
        self.slashes.get(&key.to_string()).map(|c| c.0)
    }

    /// Stores a slash record.
    pub fn put_slash_record(&mut self, key: &str, record: SlashRecord) {
        self.slashes.insert(key.to_string(), Cbor(record));
    }

    /// Forgets a slash whose payout failed definitely, so it can be retried.
    pub fn remove_slash_record(&mut self, key: &str) {
        self.slashes.remove(&key.to_string());
    }

    /// Records a slash that found its provider busy (once per key).
    pub fn owe_slash(&mut self, args: SlashArgs) {
        let id = args.provider.as_slice().to_vec();
        let mut owed = self.owed_slashes.get(&id).map(|c| c.0).unwrap_or_default();
        if owed.iter().all(|o| o.key != args.key) {
            owed.push(args);
            self.owed_slashes.insert(id, Cbor(owed));
        }
    }

    /// The slashes `provider` owes, oldest first.
    pub fn owed_slashes(&self, provider: &Principal) -> Vec<SlashArgs> {
        self.owed_slashes
            .get(&provider.as_slice().to_vec())
            .map(|c| c.0)
            .unwrap_or_default()
    }

    /// Forgets an owed slash once it is being made.
    pub fn forget_owed_slash(&mut self, provider: &Principal, key: &str) {
        let id = provider.as_slice().to_vec();
        let Some(Cbor(mut owed)) = self.owed_slashes.get(&id) else {
            return;
        };
        owed.retain(|o| o.key != key);
        if owed.is_empty() {
            self.owed_slashes.remove(&id);
        } else {
            self.owed_slashes.insert(id, Cbor(owed));
        }
    }

    /// Number of providers owing a slash.
    pub fn owing_count(&self) -> u64 {
        self.owed_slashes.len()
    }

    /// The provider's pending transfer.
    pub fn pending(&self, provider: &Principal) -> Option<PendingTransfer> {
        self.pending.get(&provider.as_slice().to_vec()).map(|c| c.0)
    }

    /// Records a pending transfer.
    pub fn put_pending(&mut self, pending: PendingTransfer) {
        self.pending
            .insert(pending.provider.as_slice().to_vec(), Cbor(pending));
    }

    /// Clears the provider's pending transfer, and any scan of the
    /// ledger's blocks for it.
    pub fn remove_pending(&mut self, provider: &Principal) {
        self.block_scans.remove(&provider.as_slice().to_vec());
        self.pending.remove(&provider.as_slice().to_vec());
    }

    /// Where the scan of the ledger's blocks for the provider's pending
    /// transfer stands, once one started.
    pub fn block_scan(&self, provider: &Principal) -> Option<BlockScan> {
        self.block_scans
            .get(&provider.as_slice().to_vec())
            .map(|c| c.0)
    }

    /// Records where the scan for the provider's pending transfer stands.
    pub fn put_block_scan(&mut self, provider: &Principal, scan: BlockScan) {
        let key = provider.as_slice().to_vec();
        assert!(
            self.pending.contains_key(&key),
            "BUG: a block scan for no pending transfer"
        );
        self.block_scans.insert(key, Cbor(scan));
    }

    /// Number of pending transfers.
    pub fn pending_count(&self) -> u64 {
        self.pending.len()
    }

    /// The counters.
    pub fn counters(&self) -> Counters {
        self.counters.get().0.clone()
    }

    /// Takes a fresh operation id.
    pub fn next_op_id(&mut self) -> u64 {
        let mut c = self.counters();
        let id = c.next_op_id;
        c.next_op_id = id.checked_add(1).expect("BUG: operation ids exhausted");
        self.counters.set(Cbor(c));
        id
    }

    /// Adds a slash to the cumulative counters.
    pub fn count_slash(&mut self, amount: Tokens) {
        let mut c = self.counters();
        c.slashed_total = c.slashed_total.saturating_add(amount);
        c.slash_count = c.slash_count.saturating_add(1);
        self.counters.set(Cbor(c));
    }

    /// Adds a recorded event to the market-wide counters.
    pub fn count_record_event(&mut self, event: &RecordEvent) {
        let mut c = self.counters();
        let counter = match event {
            RecordEvent::JobCompleted { .. } => &mut c.jobs_completed,
            RecordEvent::AuditPassed => &mut c.audits_passed,
            RecordEvent::AuditFailed => &mut c.audits_failed,
            RecordEvent::DeadlineMissed => &mut c.deadlines_missed,
        };
        *counter = counter.saturating_add(1);
        self.counters.set(Cbor(c));
    }

    /// The `record` call made under `key`, if still remembered.
    pub fn record_key(&self, key: &str) -> Option<RecordKey> {
        self.record_keys.get(&key.to_string()).map(|c| c.0)
    }

    /// Remembers the `record` call made under `key` (checked by
    /// `check_key`, and not remembered yet).
    pub fn put_record_key(&mut self, key: &str, record: RecordKey) {
        self.record_key_times
            .insert((record.at_ns, key_blob(key)), ());
        let old = self.record_keys.insert(key.to_string(), Cbor(record));
        assert!(old.is_none(), "BUG: record key {key} remembered twice");
    }

    /// Number of `record` keys remembered.
    pub fn record_key_count(&self) -> u64 {
        self.record_keys.len()
    }

    /// Forgets up to `budget` `record` keys older than
    /// [`RECORD_KEY_RETENTION_SECS`] at `now_ns`; returns how many. The
    /// counts they made stay, and so do their events; the matcher retries
    /// a `record` call only while it keeps the job, which is no longer.
    pub fn prune_record_keys(&mut self, now_ns: u64, budget: usize) -> usize {
        let due = self
            .record_key_times
            .take_expired(now_ns, RECORD_KEY_RETENTION_SECS, budget);
        for (_, blob) in &due {
            let key = String::from_utf8_lossy(blob.as_slice()).into_owned();
            self.record_keys.remove(&key);
        }
        due.len()
    }
}

/// The invariants that must hold between messages: no empty unbonding
/// entry, nothing bonded by a deregistered provider, each provider's
/// track record consistent with itself and its slashes, each provider's
/// node indexed to it, each pending transfer's provider known.
impl Books for State {
    type Cursor = AuditCursor;

    /// At most `budget` records from `cursor` on; each broken one is pushed
    /// to `broken`.
    fn audit_chunk(&self, request: ChunkRequest<'_, AuditCursor>) -> Chunk<AuditCursor> {
        let mut work = ChunkWork::new(request.budget);
        let (providers_from, pending_from) = match request.cursor {
            None => (Some(None), None),
            Some(AuditCursor::Providers(last)) => (Some(last), None),
            Some(AuditCursor::Pending(last)) => (None, last),
        };
        if let Some(mut last) = providers_from {
            let all = work.scan(self.providers.range(after(last.clone())), |e| {
                let (key, p) = e.into_pair();
                self.check_provider(&p.0, request.broken);
                last = Some(key);
                1
            });
            if !all {
                return work.pause(AuditCursor::Providers(last));
            }
        }
        let mut last = pending_from;
        let all = work.scan(self.pending.range(after(last.clone())), |e| {
            let (key, pending) = e.into_pair();
            if self.provider(&pending.0.provider).is_none() {
                request.broken.push(format!(
                    "pending transfer {} of unknown provider {}",
                    pending.0.op_id, pending.0.provider
                ));
            }
            last = Some(key);
            1
        });
        if !all {
            return work.pause(AuditCursor::Pending(last));
        }
        work.finish()
    }
}

impl AuditedBooks for State {
    fn audit_mut(&mut self) -> &mut BooksAudit<AuditCursor> {
        &mut self.audit
    }
}

impl State {
    fn check_provider(&self, p: &ProviderRecord, broken: &mut Vec<String>) {
        if p.stake.unbonding.iter().any(|u| u.amount == 0) {
            broken.push(format!("provider {} has an empty unbonding entry", p.id));
        }
        if p.deregistered && p.stake.bonded != 0 {
            broken.push(format!("deregistered provider {} has bonded stake", p.id));
        }
        let r = &p.record;
        if (r.audits_failed > 0) != r.last_failed_audit_ns.is_some()
            || (r.deadlines_missed > 0) != r.last_missed_deadline_ns.is_some()
        {
            broken.push(format!(
                "provider {}'s track record counts a failure without its time, or the reverse",
                p.id
            ));
        }
        if r.slashed > p.slashed_total || (r.slashes == 0) != (r.slashed == 0) {
            broken.push(format!(
                "provider {}'s track record disagrees with its slashes",
                p.id
            ));
        }
        if self.node_owner(&p.profile.node) != Some(p.id) {
            broken.push(format!(
                "provider {}'s node {} is not indexed to it",
                p.id, p.profile.node
            ));
        }
    }
}

canister_common::canister_state!(State, State::open(), events: RegistryEvent);

/// Starts over with empty memory (native tests only).
#[cfg(test)]
pub fn reset_state() {
    memory::reset();
    STATE.with(|s| *s.borrow_mut() = State::open());
}
