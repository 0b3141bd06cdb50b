//! What the suites that run the market as separate processes (the devnet's
//! HTTP server, provider daemons, the buyer's tool, the browser) share: the
//! built binaries and modules, and a [`Scene`] that holds the identities,
//! the devnet and the processes in a temp dir.

#![allow(dead_code)]

use candid::Principal;
use sha2::Digest;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// One ICP in e8s.
pub const ICP: u128 = 100_000_000;
/// The local ledger's transfer fee.
pub const FEE: u128 = 10_000;
/// How long a command the tests run may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// A built binary: this test's executable is in `target/<profile>/deps/`,
/// the binaries one level up.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable lies in target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the binaries with `cargo build -p local-replica -p provider-node -p market` \
         (cargo test --workspace builds them too)",
        path.display()
    );
    path
}

/// A built file, or a panic naming the script that builds it.
fn built(path: PathBuf, script: &str) -> PathBuf {
    assert!(
        path.is_file(),
        "{} is missing: build it with {script}",
        path.display()
    );
    path
}

/// A built WASI workload, e.g. `sha256sum.wasm`.
pub fn workload(name: &str) -> PathBuf {
    built(
        market_artifacts::workload_dir().join(name),
        "scripts/build-workloads.sh",
    )
}

/// A built canister module, e.g. `matcher`.
pub fn canister(name: &str) -> PathBuf {
    built(
        market_artifacts::canister_dir().join(format!("{name}.wasm")),
        "scripts/build-canisters.sh",
    )
}

/// The id the devnet gives its `index`-th canister (as a local
/// application subnet numbers them, from `bkyz2-fmaaa-aaaaa-qaaaq-cai`).
pub fn canister_id(index: u8) -> Principal {
    let mut bytes = [1u8; 10];
    bytes[..8].copy_from_slice(&(0x8000_0000_0010_0001u64 + u64::from(index)).to_be_bytes());
    Principal::from_slice(&bytes)
}

/// Waits until `file` has a line containing `needle`; returns that line.
pub fn wait_for_line(file: &Path, needle: &str, timeout: Duration) -> String {
    let end = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains(needle)) {
            return line.to_string();
        }
        assert!(
            Instant::now() < end,
            "no line containing {needle:?} in {} within {timeout:?}; it holds:\n{text}",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process that is killed when dropped, however the test ends.
pub struct Proc {
    pub name: String,
    pub child: Child,
}

impl Proc {
    /// Kills the process at once (SIGKILL: no cleanup, no goodbye).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let end = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < end,
                "{} did not exit within {timeout:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What a finished command printed.
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// A canister the devnet installs at its start.
pub struct Install {
    /// Its name, unique among the devnet's canisters.
    pub name: &'static str,
    /// Its module: `target/canisters/<module>.wasm`.
    pub module: &'static str,
    /// Its init argument, in Candid text.
    pub arg: String,
}

impl Install {
    /// The canister named after its module.
    pub fn of(module: &'static str, arg: String) -> Install {
        Install {
            name: module,
            module,
            arg,
        }
    }
}

/// A temp dir with identities, the devnet, the processes started in it and
/// the environment that points `provider-node` and `market` at the
/// devnet. Processes are dropped (killed) before the directory is removed.
pub struct Scene {
    /// The devnet's HTTP server, once [`Scene::start_devnet`] ran.
    pub devnet: Option<Proc>,
    /// Provider daemons and other long-running processes.
    pub daemons: Vec<Proc>,
    /// The devnet's URL.
    pub url: String,
    pub env: HashMap<&'static str, String>,
    pub principals: HashMap<&'static str, Principal>,
    commands: u32,
    dir: tempfile::TempDir,
}

impl Scene {
    /// A temp dir with a new identity (`<who>.pem`) for each of `who`, as
    /// a provider or buyer creates them.
    pub fn new(who: &[&'static str]) -> Scene {
        let mut scene = Scene {
            devnet: None,
            daemons: vec![],
            url: String::new(),
            env: HashMap::new(),
            principals: HashMap::new(),
            commands: 0,
            dir: tempfile::tempdir().expect("temp dir"),
        };
        for &name in who {
            let pem = scene.path(&format!("{name}.pem"));
            let out = scene.ok(
                &bin("provider-node"),
                &["--identity", pem.to_str().unwrap(), "identity", "new"],
            );
            let principal = Principal::from_text(out.stdout.trim()).expect("a principal");
            scene.principals.insert(name, principal);
        }
        scene
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn principal(&self, who: &str) -> Principal {
        self.principals[who]
    }

    /// A command with the scene's environment: the network, the canister
    /// ids, XDG directories inside the temp dir, nothing inherited of
    /// provider-node's or market's settings.
    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        for (key, _) in std::env::vars() {
            if key.starts_with("PROVIDER_NODE_") || key.starts_with("MARKET_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("XDG_CONFIG_HOME", self.path("xdg-config"))
            .env("XDG_CACHE_HOME", self.path("xdg-cache"))
            .env("XDG_STATE_HOME", self.path("xdg-state"))
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .envs(&self.env)
            .stdin(Stdio::null());
        cmd
    }

    /// Starts `program args` in the background, its stdout and stderr going
    /// to `<name>.out` and `<name>.log` in the temp dir.
    pub fn spawn(&self, name: &str, program: &Path, args: &[&str]) -> Proc {
        let out = std::fs::File::create(self.path(&format!("{name}.out"))).unwrap();
        let log = std::fs::File::create(self.path(&format!("{name}.log"))).unwrap();
        let child = self
            .command(program)
            .args(args)
            .stdout(out)
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", program.display()));
        Proc {
            name: name.to_string(),
            child,
        }
    }

    /// Runs a command to its end (at most `timeout`).
    pub fn run(&mut self, program: &Path, args: &[&str], timeout: Duration) -> Output {
        self.commands += 1;
        let name = format!("cmd-{}", self.commands);
        let mut proc = self.spawn(&name, program, args);
        proc.name = format!("{} {}", program.display(), args.join(" "));
        let status = proc.wait(timeout);
        let read = |ext: &str| {
            std::fs::read_to_string(self.path(&format!("{name}.{ext}"))).unwrap_or_default()
        };
        Output {
            status,
            stdout: read("out"),
            stderr: read("log"),
        }
    }

    /// Runs a command that must succeed.
    pub fn ok(&mut self, program: &Path, args: &[&str]) -> Output {
        let out = self.run(program, args, COMMAND_TIMEOUT);
        assert!(
            out.status.success(),
            "{} {} failed ({}):\n{}{}",
            program.display(),
            args.join(" "),
            out.status,
            out.stdout,
            out.stderr
        );
        out
    }

    /// `provider-node` as provider `n` (its own config file, written by
    /// [`Scene::provider_config`]).
    pub fn provider(&mut self, n: u8, args: &[&str]) -> Output {
        let config = self.path(&format!("provider-{n}/config.toml"));
        let mut all = vec!["--config", config.to_str().unwrap()];
        all.extend_from_slice(args);
        self.ok(&bin("provider-node"), &all)
    }

    /// `market` as alice, the buyer.
    pub fn market(&mut self, args: &[&str]) -> Output {
        let identity = self.path("alice.pem");
        let mut all = vec!["--identity", identity.to_str().unwrap()];
        all.extend_from_slice(args);
        self.ok(&bin("market"), &all)
    }

    /// Alice deposits 1 ICP and runs `sha256sum.wasm` on `input.txt` (a
    /// line of text) with `market run`, bidding up to 0.002 ICP per billion
    /// fuel; checks that the job printed the input's sha256 and returns
    /// what `market` said with that sha256 in hex.
    pub fn deposit_and_run_sha256(&mut self) -> (Output, String) {
        const INPUT: &[u8] = b"pay for compute in ICP\n";
        self.market(&["deposit", "1"]);
        let input = self.path("input.txt");
        std::fs::write(&input, INPUT).unwrap();
        let out = self.market(&[
            "run",
            workload("sha256sum.wasm").to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--max-price-per-gfuel",
            "0.002",
            "--fuel",
            "1000000000",
            "--interval-secs",
            "20",
        ]);
        let expected = hex::encode(sha2::Sha256::digest(INPUT));
        assert!(
            out.stdout.contains(&expected),
            "the job printed {:?}, expected {expected}:\n{}",
            out.stdout,
            out.stderr
        );
        (out, expected)
    }

    /// Writes provider `n`'s config file (`provider-n/config.toml`: its
    /// identity `provider-n.pem`, state and cache inside the temp dir, two
    /// concurrent jobs) and returns its path.
    pub fn provider_config(&self, n: u8) -> PathBuf {
        let dir = self.path(&format!("provider-{n}"));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "identity = {:?}\nstate_dir = {:?}\ncache_dir = {:?}\nmetrics_addr = \"127.0.0.1:0\"\n\
                 [sandbox]\nconcurrent_jobs = 2\nmax_job_memory_mib = 256\n\
                 [daemon]\npoll_interval_ms = 100\nshutdown_grace_secs = 5\n",
                self.path(&format!("provider-{n}.pem")),
                dir.join("state"),
                dir.join("cache"),
            ),
        )
        .unwrap();
        config
    }

    /// Starts provider `n`'s daemon (`provider-n.log`) and waits until it
    /// serves its metrics.
    pub fn start_daemon(&mut self, n: u8) {
        let config = self.path(&format!("provider-{n}/config.toml"));
        let name = format!("provider-{n}");
        let daemon = self.spawn(
            &name,
            &bin("provider-node"),
            &["--config", config.to_str().unwrap(), "run"],
        );
        self.daemons.push(daemon);
        wait_for_line(
            &self.path(&format!("{name}.log")),
            "metrics at http://127.0.0.1:",
            Duration::from_secs(30),
        );
    }

    /// The Candid account of identity `who`.
    fn account(&self, who: &str) -> String {
        format!(
            "record {{ owner = principal \"{}\"; subaccount = null }}",
            self.principal(who)
        )
    }

    /// The market's four canisters with init arguments that name each
    /// other (they get the ids [`canister_id`] 0 to 3, in this order): a
    /// local ICP ledger minted by `minter` that gives each of `balances`
    /// its e8s, a registry with a 5 ICP minimum stake, the escrow, and a
    /// matcher with a 10 s grace and the given challenge window.
    pub fn market_installs(
        &self,
        balances: &[(&str, u128)],
        challenge_window_secs: u64,
    ) -> Vec<Install> {
        let [ledger, registry, escrow, matcher] = [0, 1, 2, 3].map(canister_id);
        let balances = balances
            .iter()
            .map(|(who, e8s)| format!("record {{ {}; {e8s} }}", self.account(who)))
            .collect::<Vec<_>>()
            .join("; ");
        vec![
            Install::of(
                "ledger",
                format!(
                    "(variant {{ Init = record {{ token_name = \"Local ICP\"; token_symbol = \"ICP\"; \
                     decimals = opt 8; transfer_fee = opt {FEE}; minting_account = {}; \
                     initial_balances = vec {{ {balances} }} }} }})",
                    self.account("minter"),
                ),
            ),
            Install::of(
                "registry",
                format!(
                    "(record {{ ledger = principal \"{ledger}\"; matcher = opt principal \"{matcher}\"; \
                     min_stake = {}; unbonding_period_secs = opt 604_800 }})",
                    5 * ICP
                ),
            ),
            Install::of(
                "escrow",
                format!(
                    "(record {{ matcher = opt principal \"{matcher}\"; \
                     ledgers = vec {{ principal \"{ledger}\" }} }})"
                ),
            ),
            Install::of(
                "matcher",
                format!(
                    "(record {{ registry = principal \"{registry}\"; escrow = principal \"{escrow}\"; \
                     stake_ledger = principal \"{ledger}\"; grace_secs = 10; bond_multiple = 10; \
                     slash_multiple = 5; challenge_window_secs = opt {challenge_window_secs} }})"
                ),
            ),
        ]
    }

    /// Starts the `local-replica` binary at `speed` devnet seconds per
    /// real second with `installs` (the first four as
    /// [`Scene::market_installs`] gives them) and `extra` arguments; waits
    /// for its URL, checks that the ids were assigned in install order, and
    /// points `provider-node` and `market` at it.
    pub fn start_devnet(&mut self, speed: u32, installs: &[Install], extra: &[&str]) {
        let installs: Vec<String> = installs
            .iter()
            .map(|i| format!("{}={}:{}", i.name, canister(i.module).display(), i.arg))
            .collect();
        let speed = speed.to_string();
        let mut args = vec!["--port", "0", "--time-speed", &speed];
        args.extend_from_slice(extra);
        for install in &installs {
            args.extend(["--install", install]);
        }
        self.devnet = Some(self.spawn("devnet", &bin("local-replica"), &args));
        let out = self.path("devnet.out");
        self.url = wait_for_line(&out, "devnet listening on ", Duration::from_secs(90))
            .trim_start_matches("devnet listening on ")
            .to_string();
        assert!(self.url.starts_with("http://127.0.0.1:"), "{}", self.url);
        let printed = std::fs::read_to_string(&out).unwrap();
        for (index, install) in installs.iter().enumerate() {
            let name = install.split('=').next().unwrap();
            let line = format!("installed {name} = {}", canister_id(index as u8));
            assert!(
                printed.lines().any(|l| l == line),
                "ids are not assigned in install order: expected {line:?} in\n{printed}"
            );
        }
        let [ledger, registry, escrow, matcher] = [0, 1, 2, 3].map(canister_id);
        let url = self.url.clone();
        // provider-node and market each read their own variables.
        self.env = HashMap::from([
            ("PROVIDER_NODE_NETWORK", url.clone()),
            ("PROVIDER_NODE_LEDGER", ledger.to_text()),
            ("PROVIDER_NODE_REGISTRY", registry.to_text()),
            ("PROVIDER_NODE_ESCROW", escrow.to_text()),
            ("PROVIDER_NODE_MATCHER", matcher.to_text()),
            ("MARKET_NETWORK", url),
            ("MARKET_LEDGER", ledger.to_text()),
            ("MARKET_REGISTRY", registry.to_text()),
            ("MARKET_ESCROW", escrow.to_text()),
            ("MARKET_MATCHER", matcher.to_text()),
        ]);
    }
}
