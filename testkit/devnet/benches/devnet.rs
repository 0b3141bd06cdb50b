//! Devnet throughput and per-message overhead on the probe canister.
//!
//! Run: `scripts/build-canisters.sh probe-canister && cargo bench -p devnet`.
//! Prints a Markdown table (the "Devnet" section of BENCHMARKS.md).

use std::time::{Duration, Instant};

use candid::{Encode, Principal};
use devnet::Devnet;

fn probe_wasm() -> Vec<u8> {
    market_artifacts::canister_wasm("probe-canister")
}

fn per_op(total: Duration, n: u32) -> f64 {
    total.as_secs_f64() * 1e6 / f64::from(n)
}

/// How long `n` runs of `f` take together.
fn repeated(n: u32, mut f: impl FnMut()) -> Duration {
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed()
}

/// What `f` returns and how long it took.
fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let out = f();
    (out, t.elapsed())
}

fn main() {
    let wasm = probe_wasm();
    let user = Principal::from_slice(&[5; 29]);
    let admin = Principal::from_slice(&[0xad; 29]);
    let mut dn = Devnet::new();

    let (a, first_install) = timed(|| dn.deploy(admin, &wasm, &None::<()>).expect("install"));
    let (b, cached_install) = timed(|| dn.deploy(admin, &wasm, &None::<()>).expect("install"));

    let empty = Encode!().unwrap();
    // Warm up.
    repeated(200, || {
        dn.update_call(a, user, "noop", empty.clone()).unwrap();
    });
    let n = 5_000;
    let update = repeated(n, || {
        dn.update_call(a, user, "noop", empty.clone()).unwrap();
    });
    let noop_instructions = dn.last_instructions().unwrap_or(0);
    let inc = repeated(n, || {
        dn.update_call(a, user, "inc", empty.clone()).unwrap();
    });
    let query = repeated(n, || {
        dn.query_call(a, user, "get", empty.clone()).unwrap();
    });

    // Submit many, then one tick delivers them all.
    let ((), batched) = timed(|| {
        let ids: Vec<_> = (0..n)
            .map(|_| dn.submit_call(a, user, "noop", empty.clone()).unwrap())
            .collect();
        dn.tick();
        for id in ids {
            dn.await_call(id).unwrap();
        }
    });

    let m = 1_000;
    let arg = Encode!(&b, &"inc", &empty, &None::<u32>).unwrap();
    let inter = repeated(m, || {
        dn.update_call(a, user, "call", arg.clone()).unwrap();
    });
    let trap = repeated(m, || {
        let _ = dn.update_call(a, user, "trap_now", empty.clone());
    });

    let heap = dn.canister_status(a).unwrap().memory_size;
    dn.take_executions();

    // Saving and loading the whole state (the devnet server's --state-dir),
    // with 64 MiB of stable memory written in one of the canisters.
    let chunk = vec![7u8; 1 << 20];
    for i in 0..64u64 {
        dn.update_call(
            a,
            user,
            "stable_write",
            Encode!(&(i << 20), &chunk).unwrap(),
        )
        .unwrap();
    }
    let (saved, save) = timed(|| dn.save_state().expect("save"));
    let (mut loaded, load) =
        timed(|| Devnet::load_state(devnet::DevnetConfig::default(), &saved).expect("load"));
    loaded.update_call(a, user, "inc", empty.clone()).unwrap();

    println!("| measurement | value |");
    println!("|---|---|");
    println!(
        "| install, first (compile {} KiB module) | {:.1} ms |",
        wasm.len() / 1024,
        first_install.as_secs_f64() * 1e3
    );
    println!(
        "| install, module cached | {:.2} ms |",
        cached_install.as_secs_f64() * 1e3
    );
    println!(
        "| trivial update (`noop`), ingress to reply | {:.1} µs ({:.0}/s) |",
        per_op(update, n),
        f64::from(n) / update.as_secs_f64()
    );
    println!("| counter update (`inc`) | {:.1} µs |", per_op(inc, n));
    println!("| query (`get`) | {:.1} µs |", per_op(query, n));
    println!(
        "| trivial update, {n} submitted then one tick | {:.1} µs each |",
        per_op(batched, n)
    );
    println!(
        "| update making one inter-canister call (3 messages) | {:.1} µs |",
        per_op(inter, m)
    );
    println!(
        "| update that traps (rollback) | {:.1} µs |",
        per_op(trap, m)
    );
    println!("| instructions of `noop` (wasmtime fuel) | {noop_instructions} |");
    println!("| canister memory (heap + stable) | {heap} bytes |");
    println!(
        "| save_state, 2 canisters, 64 MiB stable memory ({} MiB saved) | {:.0} ms |",
        saved.len() >> 20,
        save.as_secs_f64() * 1e3
    );
    println!(
        "| load_state of the same (modules compiled from the cache) | {:.0} ms |",
        load.as_secs_f64() * 1e3
    );
}
