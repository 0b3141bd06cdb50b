//! Private jobs and services, the buyer's half of
//! [`market_api::privacy`]: seal a job's input and secret env (or a
//! lease's secret env) to the job's key before submitting it, ask the
//! provider to seal its output, and open a sealed output with the job's
//! key.
//!
//! Sealing needs no secret of the buyer's: the contents are encrypted under
//! the matcher's public key to the identity of the owner and a fresh key
//! id. Only the job's provider (while it runs the job) and its owner (for
//! the output) get the key. The provider sees the plaintext while it runs
//! the job: sealing hides the contents from everyone else, not from it.

use std::fmt;

use candid::Principal;
use market_api::matcher::{Job, JobSpec, MAX_INPUT_BYTES, ReservationSpec, Sha256};
use market_api::privacy::{
    IBE_OVERHEAD, JobKey, JobKeyRequest, PrivacyKey, Sealed, check_secret_env, job_identity,
};
use market_client::client::MarketClient;
use market_client::sealing::{self, TransportKey};
use market_client::transport::Transport;

use super::{BuyerError, JobRequest, with_retries};

/// Largest input a sealed job takes: the matcher's bound less what the
/// encryption adds.
pub const MAX_SEALED_INPUT_BYTES: usize = MAX_INPUT_BYTES - IBE_OVERHEAD;

/// What of a job its buyer seals to the job's key (`--seal-input`,
/// `--secret-env`, `--seal-output`, or all three with `--private`). Its
/// `Debug` shows the secret env's names, never their values.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Sealing {
    /// The input is sealed.
    pub input: bool,
    /// Variables sealed as a whole into the spec's `sealed.env`; added to
    /// the plain env when the job runs (replacing one of the same name).
    pub secret_env: Vec<(String, String)>,
    /// The provider seals the output to the job.
    pub output: bool,
}

impl fmt::Debug for Sealing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.secret_env.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("Sealing")
            .field("input", &self.input)
            .field("secret_env_names", &names)
            .field("output", &self.output)
            .finish()
    }
}

impl Sealing {
    /// Everything sealed: `--private`.
    pub fn all(secret_env: Vec<(String, String)>) -> Self {
        Sealing {
            input: true,
            secret_env,
            output: true,
        }
    }

    /// Whether nothing is sealed (a plain job).
    pub fn is_none(&self) -> bool {
        !self.input && self.secret_env.is_empty() && !self.output
    }

    /// Checks the sealing of a job with `input_len` bytes of input, with
    /// the flag to change. Errors never quote a secret value.
    pub fn validate(&self, input_len: usize) -> Result<(), BuyerError> {
        if self.input && input_len > MAX_SEALED_INPUT_BYTES {
            return Err(BuyerError::Request(format!(
                "--input: {input_len} bytes; sealed (--seal-input, --private), at most \
                 {MAX_SEALED_INPUT_BYTES}"
            )));
        }
        check_secret_env_flags(&self.secret_env)
    }
}

/// Checks `--secret-env` variables: names not empty and given once, at
/// most as many and as long as plain ones. Errors name, never quote, a
/// value.
pub fn check_secret_env_flags(env: &[(String, String)]) -> Result<(), BuyerError> {
    let bad = |m: String| BuyerError::Request(format!("--secret-env: {m}"));
    check_secret_env(env).map_err(bad)?;
    let twice = env
        .iter()
        .enumerate()
        .find(|(i, (name, _))| env[..*i].iter().any(|(k, _)| k == name));
    if let Some((_, (name, _))) = twice {
        return Err(bad(format!("{name} given twice")));
    }
    Ok(())
}

/// The matcher's key for sealing, and the owner whose jobs and leases are
/// sealed with it (the identity is the owner's with a fresh key id).
#[derive(Clone, Debug)]
pub struct Sealer {
    public_key: Vec<u8>,
    owner: Principal,
}

impl Sealer {
    /// Seals for `owner` with the matcher's `key`.
    pub fn new(key: &PrivacyKey, owner: Principal) -> Self {
        Sealer {
            public_key: key.public_key.clone(),
            owner,
        }
    }

    /// Seals for `owner` with the key of `client`'s matcher; refused when
    /// the market takes no sealed jobs.
    pub async fn of_market<T: Transport>(
        client: &MarketClient<T>,
        owner: Principal,
    ) -> Result<Self, BuyerError> {
        let key = with_retries(|| client.privacy_key())
            .await?
            .ok_or(BuyerError::NoPrivacy)?;
        Ok(Sealer::new(&key, owner))
    }

    /// `spec` (made with its plain input) with what `sealing` asks sealed
    /// to a fresh key id: its input replaced by the ciphertext, the secret
    /// env's ciphertext in `sealed.env`. A spec that seals nothing is
    /// returned as it is.
    pub fn seal_job(&self, mut spec: JobSpec, sealing: &Sealing) -> Result<JobSpec, BuyerError> {
        if sealing.is_none() {
            return Ok(spec);
        }
        sealing.validate(spec.input.len())?;
        let key_id = sealing::new_key_id();
        if sealing.input {
            spec.input = self.seal(&key_id, &spec.input)?;
        }
        spec.sealed = Some(Sealed {
            env: self.seal_env(&key_id, &sealing.secret_env)?,
            key_id,
            input: sealing.input,
            output: sealing.output,
        });
        Ok(spec)
    }

    /// The service sealing of `secret_env` (`None` when it is empty): only
    /// the env is sealed, to a fresh key id.
    pub fn seal_service_env(
        &self,
        secret_env: &[(String, String)],
    ) -> Result<Option<Sealed>, BuyerError> {
        if secret_env.is_empty() {
            return Ok(None);
        }
        check_secret_env_flags(secret_env)?;
        let key_id = sealing::new_key_id();
        Ok(Some(Sealed {
            env: self.seal_env(&key_id, secret_env)?,
            key_id,
            input: false,
            output: false,
        }))
    }

    fn seal(&self, key_id: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, BuyerError> {
        sealing::seal(&self.public_key, self.owner, key_id, plaintext)
            .map_err(|e| BuyerError::Seal(e.to_string()))
    }

    fn seal_env(
        &self,
        key_id: &[u8],
        env: &[(String, String)],
    ) -> Result<Option<serde_bytes::ByteBuf>, BuyerError> {
        if env.is_empty() {
            return Ok(None);
        }
        let sealed = sealing::seal_env(&self.public_key, self.owner, key_id, env)
            .map_err(|e| BuyerError::Seal(e.to_string()))?;
        Ok(Some(sealed.into()))
    }
}

/// The job spec of `request` for the stored module `sha256`, paid on
/// `ledger`, with what its sealing asks sealed to the key of `client`'s
/// matcher for `client`'s sender (whose job it is). The matcher's key is
/// read first, so a market that takes no sealed jobs refuses before
/// anything is spent.
pub async fn job_spec<T: Transport>(
    client: &MarketClient<T>,
    request: &JobRequest,
    sha256: Sha256,
    ledger: Principal,
) -> Result<JobSpec, BuyerError> {
    let spec = request.spec(sha256, ledger);
    if request.sealing.is_none() {
        return Ok(spec);
    }
    Sealer::of_market(client, client.sender())
        .await?
        .seal_job(spec, &request.sealing)
}

/// Seals `secret_env` into the service of the lease `spec` for `owner` (who
/// pays for the lease) with the key of `client`'s matcher. Nothing to do,
/// and no call, when it is empty; refused when the market takes no sealed
/// jobs.
pub async fn seal_lease_env<T: Transport>(
    client: &MarketClient<T>,
    spec: &mut ReservationSpec,
    secret_env: &[(String, String)],
    owner: Principal,
) -> Result<(), BuyerError> {
    if secret_env.is_empty() {
        return Ok(());
    }
    let Some(service) = spec.service.as_mut() else {
        return Err(BuyerError::Request("the lease names no service".into()));
    };
    check_secret_env_flags(secret_env)?;
    service.sealed = Sealer::of_market(client, owner)
        .await?
        .seal_service_env(secret_env)?;
    Ok(())
}

/// A job's stdout as its owner reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stdout {
    /// The bytes the job wrote (opened, when sealed).
    pub bytes: Vec<u8>,
    /// Whether the provider sealed them to the job and they were opened
    /// with the job's key.
    pub sealed: bool,
}

/// Whether the job's provider was asked to seal its output.
pub fn output_sealed(job: &Job) -> bool {
    job.spec.sealed.as_ref().is_some_and(|s| s.output)
}

/// The sealed output of `job` to open: `None` without a result, or when
/// the output is not sealed or empty (a run that wrote nothing has nothing
/// to seal). A sealed output the matcher kept only part of can't be opened.
fn sealed_output(job: &Job) -> Result<Option<&[u8]>, BuyerError> {
    let Some(result) = job.result.as_ref().filter(|_| output_sealed(job)) else {
        return Ok(None);
    };
    if result.output.is_empty() {
        return Ok(None);
    }
    if super::output_truncated(result) {
        return Err(BuyerError::SealedOutput {
            id: job.id,
            reason: format!(
                "the matcher kept only {} bytes of it (the sealed output's sha256 is {}), and a \
                 partial ciphertext does not open",
                result.output.len(),
                hex::encode(result.output_sha256)
            ),
        });
    }
    Ok(Some(&result.output))
}

/// Opens `job`'s sealed output `ciphertext` with the job's `key`, sent
/// encrypted to `transport`: the key must be the one of the job's identity
/// (its owner and key id).
fn open_output(
    job: &Job,
    ciphertext: &[u8],
    transport: &TransportKey,
    key: &JobKey,
) -> Result<Vec<u8>, BuyerError> {
    let fail = |reason: String| BuyerError::SealedOutput { id: job.id, reason };
    let key_id = job.spec.sealed.as_ref().map_or(&[][..], |s| &s.key_id[..]);
    if key.identity != job_identity(job.owner, key_id) {
        return Err(fail(
            "the matcher answered with the key of another identity".into(),
        ));
    }
    let secret = transport.open(key).map_err(|e| fail(e.to_string()))?;
    secret.open(ciphertext).map_err(|e| fail(e.to_string()))
}

/// `job`'s stdout (`None` without a result): as the result holds it, or,
/// when its provider sealed it, opened with the job's key, which the
/// matcher gives only to the job's owner (so this works for the owner
/// only). The result's sha256 is of the sealed bytes, checked before they
/// are opened.
pub async fn job_stdout<T: Transport>(
    client: &MarketClient<T>,
    job: &Job,
) -> Result<Option<Stdout>, BuyerError> {
    let Some(result) = &job.result else {
        return Ok(None);
    };
    let Some(ciphertext) = sealed_output(job)? else {
        // Not sealed, or empty: nothing to open.
        return Ok(Some(Stdout {
            bytes: result.output.clone(),
            sealed: false,
        }));
    };
    let transport = TransportKey::new();
    // Not retried: each call derives a key, and the matcher caps them.
    let key = client
        .job_key(JobKeyRequest {
            job_id: job.id,
            attempt: 0,
            transport_public_key: transport.public_key(),
        })
        .await
        .map_err(|e| BuyerError::SealedOutput {
            id: job.id,
            reason: format!("the matcher gave no key for it: {e}"),
        })?;
    let bytes = open_output(job, ciphertext, &transport, &key)?;
    Ok(Some(Stdout {
        bytes,
        sealed: true,
    }))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use candid::Principal;
    use market_api::matcher::{JobResult, JobStatus, RunOutcome};
    use market_fixture::vetkeys::TestKeys;

    const SECRET: &str = "hunter2-the-api-token";

    fn owner() -> Principal {
        Principal::from_slice(&[42; 29])
    }

    fn keys() -> TestKeys {
        TestKeys::new(b"buyer sealing tests")
    }

    fn privacy_key() -> PrivacyKey {
        keys().privacy_key()
    }

    /// What the matcher's `job_key` answers for `identity` and `transport`.
    fn job_key(identity: &[u8], transport: &TransportKey) -> JobKey {
        keys()
            .job_key(identity, &transport.public_key())
            .expect("a transport key")
    }

    /// A request for a job on `input`, sealed as `sealing` says: an
    /// argument and a plain env, a billion fuel at up to 1,000 per billion,
    /// 16 MiB, heartbeats every 60 s.
    pub(crate) fn request(input: &[u8], sealing: Sealing) -> JobRequest {
        JobRequest {
            input: input.to_vec(),
            args: vec!["--verbose".into()],
            env: vec![("MODE".into(), "fast".into())],
            max_price_per_gfuel: 1_000,
            currency: None,
            fuel: 1_000_000_000,
            deadline_secs: None,
            interval_secs: 60,
            memory_mib: 16,
            max_retries: 0,
            min_provider_stake: 0,
            audit_ppm: None,
            sealing,
        }
    }

    /// A request with no input, arguments or env, all in plain: 5 billion
    /// fuel at up to 1,000 per billion, 16 MiB, heartbeats every 60 s.
    pub(crate) fn bare_request() -> JobRequest {
        JobRequest {
            args: vec![],
            env: vec![],
            fuel: 5_000_000_000,
            ..request(&[], Sealing::default())
        }
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    /// The job the matcher would keep for `spec`, with `output` reported.
    fn job(spec: JobSpec, output: &[u8]) -> Job {
        let mut j = crate::watch::tests::job(JobStatus::Reported, 1);
        j.id = 7;
        j.owner = owner();
        j.spec = spec;
        j.result = Some(JobResult {
            outcome: RunOutcome::Exited { code: 0 },
            output: output.to_vec(),
            output_sha256: crate::sha256_of(output),
            fuel_used: 1,
            engine: "test".into(),
        });
        j
    }

    #[test]
    fn the_encoded_spec_carries_ciphertexts_never_the_plaintext() {
        let input = b"the-private-input-bytes";
        let sealing = Sealing::all(vec![("API_TOKEN".into(), SECRET.into())]);
        let r = request(input, sealing.clone());
        let plain = r.spec([1; 32], Principal::anonymous());
        let spec = Sealer::new(&privacy_key(), owner())
            .seal_job(plain.clone(), &sealing)
            .unwrap();
        let bytes = candid::encode_one(&spec).unwrap();
        assert!(!contains(&bytes, SECRET.as_bytes()), "the secret's value");
        assert!(!contains(&bytes, input), "the input");
        // The plain parts stay as they were.
        assert!(contains(&bytes, b"fast") && contains(&bytes, b"--verbose"));
        assert_eq!(
            (spec.env.clone(), spec.args.clone()),
            (plain.env, plain.args)
        );
        let sealed = spec.sealed.clone().unwrap();
        assert!(sealed.input && sealed.output);
        sealed.check_job(&spec.input).unwrap();
        assert_eq!(spec.input.len(), input.len() + IBE_OVERHEAD);

        // The job's key opens what was sealed: the input and the env.
        let transport = TransportKey::new();
        let identity = job_identity(owner(), &sealed.key_id);
        let secret = transport.open(&job_key(&identity, &transport)).unwrap();
        assert_eq!(secret.open(&spec.input).unwrap(), input);
        assert_eq!(
            secret.open_env(sealed.env.as_ref().unwrap()).unwrap(),
            [("API_TOKEN".to_string(), SECRET.to_string())]
        );
        // And a debug print of the request names the variable only.
        let debug = format!("{r:?}");
        assert!(
            debug.contains("API_TOKEN") && !debug.contains(SECRET),
            "{debug}"
        );
    }

    #[test]
    fn each_flag_seals_its_part_only() {
        let sealer = Sealer::new(&privacy_key(), owner());
        let seal = |sealing: Sealing| {
            let r = request(b"in", sealing.clone());
            sealer
                .seal_job(r.spec([1; 32], Principal::anonymous()), &sealing)
                .unwrap()
        };
        let plain = seal(Sealing::default());
        assert_eq!((plain.sealed, plain.input), (None, b"in".to_vec()));

        let input = seal(Sealing {
            input: true,
            ..Sealing::default()
        });
        let s = input.sealed.unwrap();
        assert!(s.input && !s.output && s.env.is_none());
        assert_ne!(input.input, b"in");

        let output = seal(Sealing {
            output: true,
            ..Sealing::default()
        });
        let s = output.sealed.unwrap();
        assert!(!s.input && s.output && s.env.is_none());
        assert_eq!(output.input, b"in", "the input stays plain");

        let env = seal(Sealing {
            secret_env: vec![("K".into(), "v".into())],
            ..Sealing::default()
        });
        let s = env.sealed.unwrap();
        assert!(!s.input && !s.output && s.env.is_some());
        // Two jobs of one owner get different key ids.
        let again = seal(Sealing {
            output: true,
            ..Sealing::default()
        });
        assert_ne!(s.key_id, again.sealed.unwrap().key_id);
    }

    #[test]
    fn sealing_bounds_name_the_flag_and_not_the_value() {
        let sealing = Sealing {
            input: true,
            ..Sealing::default()
        };
        let e = sealing
            .validate(MAX_SEALED_INPUT_BYTES + 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--input") && e.contains("sealed"), "{e}");
        sealing.validate(MAX_SEALED_INPUT_BYTES).unwrap();

        let twice = vec![("K".to_string(), SECRET.into()), ("K".into(), "b".into())];
        let e = check_secret_env_flags(&twice).unwrap_err().to_string();
        assert!(e.contains("--secret-env: K given twice"), "{e}");
        let long = vec![("K".to_string(), format!("{SECRET}{}", "x".repeat(2000)))];
        let e = check_secret_env_flags(&long).unwrap_err().to_string();
        assert!(e.contains("--secret-env") && !e.contains(SECRET), "{e}");
        let sealer = Sealer::new(&privacy_key(), owner());
        assert!(sealer.seal_service_env(&long).is_err());
        let no_key = PrivacyKey {
            public_key: vec![1; 96],
            ..privacy_key()
        };
        let e = Sealer::new(&no_key, owner())
            .seal_service_env(&[("K".into(), "v".into())])
            .unwrap_err();
        assert!(matches!(e, BuyerError::Seal(_)), "{e}");
    }

    #[test]
    fn a_service_seals_its_env_only() {
        let sealer = Sealer::new(&privacy_key(), owner());
        assert_eq!(sealer.seal_service_env(&[]).unwrap(), None);
        let s = sealer
            .seal_service_env(&[("DB_PASSWORD".into(), SECRET.into())])
            .unwrap()
            .unwrap();
        s.check_service().unwrap();
        assert!(!contains(s.env.as_ref().unwrap(), SECRET.as_bytes()));
    }

    #[test]
    fn a_sealed_output_opens_with_the_jobs_key_only() {
        let sealing = Sealing {
            output: true,
            ..Sealing::default()
        };
        let spec = Sealer::new(&privacy_key(), owner())
            .seal_job(
                request(b"", sealing.clone()).spec([1; 32], Principal::anonymous()),
                &sealing,
            )
            .unwrap();
        let key_id = spec.sealed.as_ref().unwrap().key_id.clone();
        let identity = job_identity(owner(), &key_id);
        // The provider seals the output with the job's key.
        let provider = TransportKey::new();
        let sealed = provider
            .open(&job_key(&identity, &provider))
            .unwrap()
            .seal_output(b"the result\n");
        let j = job(spec, &sealed);
        assert_eq!(sealed_output(&j).unwrap(), Some(&sealed[..]));

        let mine = TransportKey::new();
        let out = open_output(&j, &sealed, &mine, &job_key(&identity, &mine)).unwrap();
        assert_eq!(out, b"the result\n");

        // The key of another identity (another key id, another owner) is refused.
        for other in [
            job_identity(owner(), &[3; 32]),
            job_identity(Principal::from_slice(&[43; 29]), &key_id),
        ] {
            let e = open_output(&j, &sealed, &mine, &job_key(&other, &mine))
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with("job 7's sealed stdout can't be opened"),
                "{e}"
            );
        }
        // A key encrypted to someone else's transport key does not open.
        let e = open_output(&j, &sealed, &mine, &job_key(&identity, &provider))
            .unwrap_err()
            .to_string();
        assert!(e.contains("job 7") && e.contains("did not open"), "{e}");
        // Nor does a forged ciphertext.
        let mut forged = sealed.clone();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        let e = open_output(&j, &forged, &mine, &job_key(&identity, &mine))
            .unwrap_err()
            .to_string();
        assert!(e.contains("job 7") && e.contains("did not decrypt"), "{e}");

        // What the matcher kept only part of can't be opened, and says so.
        let mut cut = j.clone();
        let r = cut.result.as_mut().unwrap();
        r.output.truncate(10);
        let e = sealed_output(&cut).unwrap_err().to_string();
        assert!(
            e.contains("job 7") && e.contains("partial ciphertext"),
            "{e}"
        );
        // The summary says the output is sealed.
        let settlement = crate::Settlement {
            locked: 0,
            paid: 0,
            refunded: 0,
            fee: 0,
            exact: true,
        };
        let summary = crate::summary(&j, &settlement);
        assert!(
            summary.contains(&format!(
                "stdout    {} bytes sealed to the job's key",
                sealed.len()
            )),
            "{summary}"
        );
        // A plain job's output is read as it is.
        let mut plain = j.clone();
        plain.spec.sealed = None;
        assert_eq!(sealed_output(&plain).unwrap(), None);
        assert!(!output_sealed(&plain));
        assert!(!crate::summary(&plain, &settlement).contains("sealed"));
    }
}
