//! Runs DFINITY's `icrc1-test-suite` (ICRC-1 and ICRC-2 checks) against the
//! ledger's rules natively: calls are Candid-encoded by the suite, decoded
//! here, executed with `ledger::operations`, and the replies Candid-encoded
//! back, so the wire types are exercised as well.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use async_trait::async_trait;
use candid::utils::{ArgumentDecoder, ArgumentEncoder};
use candid::{Nat, Principal, decode_one, encode_args, encode_one};
use ic_stable_structures::DefaultMemoryImpl;
use icrc_ledger_types::icrc1::account::Account;
use icrc1_test_env::LedgerEnv;
use ledger::amount::nat;
use ledger::{InitArgs, State, operations};

const T0: u64 = 1_735_689_600_000_000_000;

/// One caller's view of a ledger shared by all forks.
#[derive(Clone)]
struct NativeLedger {
    state: Rc<RefCell<State>>,
    now: Rc<Cell<u64>>,
    next_principal: Rc<Cell<u32>>,
    caller: Principal,
}

impl NativeLedger {
    fn new() -> Self {
        let root = Principal::from_slice(&[0, 0, 0, 0, 1]);
        let mut state = State::open_with_bucket_size(DefaultMemoryImpl::default(), 1);
        let args = InitArgs {
            token_name: "Suite Token".into(),
            token_symbol: "SUITE".into(),
            decimals: None,
            transfer_fee: None,
            minting_account: Account::from(Principal::from_slice(&[0xFF])),
            initial_balances: vec![(Account::from(root), Nat::from(1_000_000_000_000u64))],
        };
        operations::install(&mut state, &args, T0).expect("valid init args");
        Self {
            state: Rc::new(RefCell::new(state)),
            now: Rc::new(Cell::new(T0)),
            next_principal: Rc::new(Cell::new(2)),
            caller: root,
        }
    }

    /// Executes `method` as the canister would; time moves 1 µs per call.
    fn dispatch(&self, method: &str, arg: &[u8]) -> anyhow::Result<Vec<u8>> {
        let now = self.now.get() + 1_000;
        self.now.set(now);
        let caller = self.caller;
        let mut s = self.state.borrow_mut();
        let reply = match method {
            "icrc1_name" => encode_one(s.config().token_name.clone()),
            "icrc1_symbol" => encode_one(s.config().token_symbol.clone()),
            "icrc1_decimals" => encode_one(s.config().decimals),
            "icrc1_fee" => encode_one(nat(s.config().fee)),
            "icrc1_metadata" => encode_one(operations::metadata(&s)),
            "icrc1_total_supply" => encode_one(nat(s.total_supply())),
            "icrc1_minting_account" => encode_one(Some(s.config().minting_account)),
            "icrc1_balance_of" => encode_one(nat(s.balance(&decode_one(arg)?))),
            "icrc1_supported_standards" | "icrc10_supported_standards" => {
                encode_one(operations::supported_standards())
            }
            "icrc1_transfer" => encode_one(
                operations::transfer(&mut s, caller, &decode_one(arg)?, now).map(Nat::from),
            ),
            "icrc2_approve" => encode_one(
                operations::approve(&mut s, caller, &decode_one(arg)?, now).map(Nat::from),
            ),
            "icrc2_transfer_from" => encode_one(
                operations::transfer_from(&mut s, caller, &decode_one(arg)?, now).map(Nat::from),
            ),
            "icrc2_allowance" => encode_one(operations::allowance(&s, &decode_one(arg)?, now)),
            other => bail!("no method {other}"),
        };
        reply.with_context(|| format!("encoding the reply of {method}"))
    }

    fn call<Input, Output>(&self, method: &str, input: Input) -> anyhow::Result<Output>
    where
        Input: ArgumentEncoder,
        Output: for<'a> ArgumentDecoder<'a>,
    {
        let arg = encode_args(input)?;
        let reply = self.dispatch(method, &arg)?;
        candid::decode_args(&reply).with_context(|| format!("decoding the reply of {method}"))
    }
}

#[async_trait(?Send)]
impl LedgerEnv for NativeLedger {
    fn fork(&self) -> Self {
        let n = self.next_principal.get();
        self.next_principal.set(n + 1);
        let mut bytes = vec![0xAA];
        bytes.extend_from_slice(&n.to_be_bytes());
        Self {
            caller: Principal::from_slice(&bytes),
            ..self.clone()
        }
    }

    fn principal(&self) -> Principal {
        self.caller
    }

    async fn time(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_nanos(self.now.get())
    }

    async fn query<Input, Output>(&self, method: &str, input: Input) -> anyhow::Result<Output>
    where
        Input: ArgumentEncoder + std::fmt::Debug,
        Output: for<'a> ArgumentDecoder<'a>,
    {
        self.call(method, input)
    }

    async fn update<Input, Output>(&self, method: &str, input: Input) -> anyhow::Result<Output>
    where
        Input: ArgumentEncoder + std::fmt::Debug,
        Output: for<'a> ArgumentDecoder<'a>,
    {
        self.call(method, input)
    }
}

#[test]
fn icrc1_and_icrc2_test_suite_passes() {
    let env = NativeLedger::new();
    let passed = futures::executor::block_on(async {
        let tests = icrc1_test_suite::test_suite(env.clone()).await;
        assert_eq!(
            tests.len(),
            16,
            "the suite should run all ICRC-1 and ICRC-2 tests"
        );
        icrc1_test_suite::execute_tests(tests).await
    });
    assert!(
        passed,
        "icrc1-test-suite reported failures (see the TAP output above)"
    );
    let s = env.state.borrow();
    let sum: u64 = s.balances().iter().map(|(_, b)| b).sum();
    assert_eq!(sum, s.total_supply());
}
