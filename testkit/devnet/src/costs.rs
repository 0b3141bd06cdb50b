//! The IC's cycles prices for a 13-node application subnet, in one place.
//!
//! Sources: the `CyclesAccountManagerConfig::application_subnet` values in
//! the IC's `rs/config/src/subnet_config.rs` and the developer docs' cost
//! table (`docs/references/cycles-cost-formulas.md`, "gas cost"). The
//! freezing threshold follows the interface specification: a canister is
//! frozen when its balance is below what it burns idle in
//! `freezing_threshold` seconds. Every amount here is a whole number of
//! cycles computed with saturating integer arithmetic, as the IC does.

/// Fee of every update message, callback or timer executed.
pub const UPDATE_MESSAGE_FEE: u128 = 5_000_000;
/// Fee of every ten instructions an update, callback or timer executes
/// (one cycle per instruction).
pub const TEN_INSTRUCTIONS_FEE: u128 = 10;
/// Fee of every inter-canister call (request and response).
pub const XNET_CALL_FEE: u128 = 260_000;
/// Fee of every byte of an inter-canister request or response.
pub const XNET_BYTE_FEE: u128 = 1_000;
/// Fee of every ingress message inducted.
pub const INGRESS_MESSAGE_FEE: u128 = 1_200_000;
/// Fee of every byte of an inducted ingress message (method name and argument).
pub const INGRESS_BYTE_FEE: u128 = 2_000;
/// Fee of storing one GiB (heap, stable memory, snapshots) for one second.
pub const GIB_STORAGE_PER_SECOND_FEE: u128 = 127_000;
/// Fee of each percent of compute allocation for one second.
pub const COMPUTE_PERCENT_PER_SECOND_FEE: u128 = 10_000_000;

const GIB: u128 = 1 << 30;
const NANOS_PER_SECOND: u128 = 1_000_000_000;

/// The cost of executing a replicated message that used `instructions`.
pub fn execution_cost(instructions: u64) -> u128 {
    UPDATE_MESSAGE_FEE
        .saturating_add(u128::from(instructions).saturating_mul(TEN_INSTRUCTIONS_FEE) / 10)
}

/// The cost of inducting an ingress message of `bytes` (method name and argument).
pub fn ingress_cost(bytes: usize) -> u128 {
    INGRESS_MESSAGE_FEE.saturating_add((bytes as u128).saturating_mul(INGRESS_BYTE_FEE))
}

/// The cost of an inter-canister call, as `ic0.cost_call` answers it.
pub fn call_cost(method_name_size: u64, payload_size: u64) -> u128 {
    let bytes = u128::from(method_name_size).saturating_add(u128::from(payload_size));
    XNET_CALL_FEE.saturating_add(bytes.saturating_mul(XNET_BYTE_FEE))
}

/// The cost of transmitting a response of `bytes` back to the caller.
pub fn response_cost(bytes: usize) -> u128 {
    (bytes as u128).saturating_mul(XNET_BYTE_FEE)
}

/// What a canister holding `memory_bytes` with `compute_allocation` percent
/// burns idle over `nanos` nanoseconds.
pub fn idle_cost(memory_bytes: u64, compute_allocation: u64, nanos: u64) -> u128 {
    let storage = u128::from(memory_bytes)
        .saturating_mul(GIB_STORAGE_PER_SECOND_FEE)
        .saturating_mul(u128::from(nanos))
        / (GIB * NANOS_PER_SECOND);
    let compute = u128::from(compute_allocation)
        .saturating_mul(COMPUTE_PERCENT_PER_SECOND_FEE)
        .saturating_mul(u128::from(nanos))
        / NANOS_PER_SECOND;
    storage.saturating_add(compute)
}

/// `idle_cycles_burned_per_day` of `canister_status`.
pub fn idle_cycles_per_day(memory_bytes: u64, compute_allocation: u64) -> u128 {
    idle_cost(memory_bytes, compute_allocation, 86_400 * 1_000_000_000)
}

/// The balance below which a canister is frozen: what it burns idle in
/// `freezing_threshold_secs`.
pub fn freezing_threshold_cycles(
    memory_bytes: u64,
    compute_allocation: u64,
    freezing_threshold_secs: u64,
) -> u128 {
    let secs = u128::from(freezing_threshold_secs);
    let per_day = idle_cycles_per_day(memory_bytes, compute_allocation);
    per_day.saturating_mul(secs) / 86_400
}

/// Cycles a canister has burned so far, by what they paid for
/// ([`Devnet::cycles_burned`](crate::Devnet::cycles_burned)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CyclesBurned {
    /// Updates, callbacks, cleanups, timers and install hooks executed.
    pub execution: u128,
    /// Ingress induction and inter-canister calls (per message and per byte).
    pub messages: u128,
    /// Storage and compute allocation over time.
    pub storage: u128,
    /// HTTPS outcalls.
    pub outcalls: u128,
    /// Derived vetKeys.
    pub vetkd: u128,
    /// Canister creation.
    pub creation: u128,
}

impl CyclesBurned {
    /// All categories together.
    pub fn total(&self) -> u128 {
        [
            self.execution,
            self.messages,
            self.storage,
            self.outcalls,
            self.vetkd,
            self.creation,
        ]
        .iter()
        .fold(0u128, |a, b| a.saturating_add(*b))
    }
}

/// What a charge pays for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Burn {
    Execution,
    Messages,
    Storage,
    Outcalls,
    Vetkd,
    Creation,
}

impl CyclesBurned {
    pub(crate) fn add(&mut self, what: Burn, amount: u128) {
        let slot = match what {
            Burn::Execution => &mut self.execution,
            Burn::Messages => &mut self.messages,
            Burn::Storage => &mut self.storage,
            Burn::Outcalls => &mut self.outcalls,
            Burn::Vetkd => &mut self.vetkd,
            Burn::Creation => &mut self.creation,
        };
        *slot = slot.saturating_add(amount);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gib_for_a_day_costs_the_table_price() {
        assert_eq!(idle_cycles_per_day(1 << 30, 0), 127_000 * 86_400);
        assert_eq!(idle_cycles_per_day(0, 1), 10_000_000 * 86_400);
        assert_eq!(execution_cost(1_000), 5_001_000);
        assert_eq!(ingress_cost(10), 1_220_000);
        assert_eq!(call_cost(3, 7), 270_000);
    }
}
