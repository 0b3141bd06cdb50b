//! Sealed jobs and secret envs ([`market_api::privacy`]): the node asks the
//! matcher for the job's vetKey (`job_key`), encrypted to the daemon's
//! transport key, opens it into a [`JobSecret`] held in memory for the
//! job's life, and with it decrypts the job's input and secret env and
//! seals its output.
//!
//! A ciphertext that does not open, or a secret env outside the env's
//! bounds, is the buyer's doing: every honest provider finds the same, so
//! the job's result says so ([`RunOutcome::Undecryptable`], nothing run,
//! no fuel) and an audit's re-run agrees. A key the matcher refuses means
//! the node may not run the job; a key call that fails on the way is
//! retried like any other call.
//!
//! Nothing secret is logged: not the key, not the plaintexts, not the
//! errors of decoding a decrypted env (they could quote its bytes).

use std::sync::Arc;

use market_api::matcher::{JobResult, JobSpec, RunOutcome};
use market_api::privacy::JobKeyRequest;
use market_client::sealing::{JobSecret, SealError, TransportKey};
use market_client::transport::Transport;
use market_client::{ClientError, MarketClient};
use sha2::Digest;

use crate::sandbox::ENGINE_VERSION;

/// Why a job's key (or the lease read with it) could not be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A call failed or its reply could not be read (a refusal by the
    /// matcher is one of these).
    #[error(transparent)]
    Call(#[from] ClientError),
    /// The key came back but did not open with the transport key or did
    /// not verify for the job's identity (the matcher's doing, not the
    /// buyer's).
    #[error("the job's key did not open")]
    Unusable,
}

impl KeyError {
    /// Whether asking again later may succeed (`Busy`, `Downstream`, a
    /// transport error); a refusal (`Unauthorized`, `InvalidArgument`...)
    /// or an unusable key is final.
    pub fn is_transient(&self) -> bool {
        match self {
            KeyError::Call(e) => e.is_transient(),
            KeyError::Unusable => false,
        }
    }
}

/// Asks the matcher for the vetKey of job `job_id` (held by this node in
/// assignment `attempt`) and opens it with `transport`.
pub async fn job_secret<T: Transport>(
    client: &MarketClient<T>,
    transport: &TransportKey,
    job_id: market_api::JobId,
    attempt: u32,
) -> Result<JobSecret, KeyError> {
    let key = client
        .job_key(JobKeyRequest {
            job_id,
            attempt,
            transport_public_key: transport.public_key(),
        })
        .await?;
    transport.open(&key).map_err(|_| KeyError::Unusable)
}

/// The part of a sealed job that would not open: `"input"` or `"env"`, as
/// [`RunOutcome::Undecryptable`] names it.
pub type SealedPart = &'static str;

/// Opens job `spec`'s sealed contents with its key: its input decrypted in
/// place, its secret env added to its env (a secret named like a plain
/// variable replaces it). The input is tried first, so every node names
/// the same part.
pub fn open_job(secret: &JobSecret, spec: &mut JobSpec) -> Result<(), SealedPart> {
    let Some(sealed) = spec.sealed.clone() else {
        return Ok(());
    };
    if sealed.input {
        spec.input = secret.open(&spec.input).map_err(|_| "input")?;
    }
    if let Some(env) = &sealed.env {
        let secret_env = secret.open_env(env).map_err(|_| "env")?;
        spec.env = with_secret_env(std::mem::take(&mut spec.env), secret_env);
    }
    Ok(())
}

/// `plain` with `secret` added, a secret replacing a plain variable of its
/// name.
pub fn with_secret_env(
    mut plain: Vec<(String, String)>,
    secret: Vec<(String, String)>,
) -> Vec<(String, String)> {
    plain.retain(|(name, _)| !secret.iter().any(|(s, _)| s == name));
    plain.extend(secret);
    plain
}

/// What a service's replica learns of its secret env, without saying it in
/// logs or debug output.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretEnv(pub Vec<(String, String)>);

impl std::fmt::Debug for SecretEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretEnv({} variables)", self.0.len())
    }
}

/// Opens a service's sealed env: `Err` with a description that quotes
/// nothing of it.
pub fn open_service_env(secret: &JobSecret, ciphertext: &[u8]) -> Result<SecretEnv, &'static str> {
    match secret.open_env(ciphertext) {
        Ok(env) => Ok(SecretEnv(env)),
        Err(SealError::Env(_)) => Err("the secret env decrypted to no env within the bounds"),
        Err(_) => Err("the secret env did not decrypt with the job's key"),
    }
}

/// The result of a sealed job whose `part` would not open: nothing run,
/// no output, no fuel.
pub fn undecryptable_result(part: SealedPart) -> JobResult {
    JobResult {
        outcome: RunOutcome::Undecryptable { part: part.into() },
        output: vec![],
        output_sha256: sha2::Sha256::digest([]).into(),
        fuel_used: 0,
        engine: ENGINE_VERSION.to_string(),
    }
}

/// `result` with its output sealed to the job (for a job whose
/// `sealed.output` asks for it): what is reported, and hashed, is the
/// ciphertext.
pub fn seal_result(secret: &JobSecret, mut result: JobResult) -> JobResult {
    result.output = secret.seal_output(&result.output);
    result.output_sha256 = sha2::Sha256::digest(&result.output).into();
    result
}

/// A job read and, if sealed, opened: what the daemon runs.
pub struct OpenedJob {
    /// The spec, its input and env in plaintext.
    pub spec: JobSpec,
    /// The job's key, if it is sealed (kept for sealing its output).
    pub secret: Option<Arc<JobSecret>>,
    /// The part that would not open, if one did not: the job is reported
    /// [`RunOutcome::Undecryptable`] without running.
    pub undecryptable: Option<SealedPart>,
}

impl OpenedJob {
    /// Opens `spec` with `secret` (`None` for a job that is not sealed).
    pub fn open(mut spec: JobSpec, secret: Option<JobSecret>) -> Self {
        let Some(secret) = secret else {
            return Self {
                spec,
                secret: None,
                undecryptable: None,
            };
        };
        let undecryptable = open_job(&secret, &mut spec).err();
        Self {
            spec,
            secret: Some(Arc::new(secret)),
            undecryptable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_replaces_the_plain_variable_of_its_name() {
        let plain = vec![("A".into(), "plain".into()), ("B".into(), "b".into())];
        let secret = vec![("A".into(), "secret".into()), ("C".into(), "c".into())];
        let env = with_secret_env(plain, secret);
        assert_eq!(
            env,
            vec![
                ("B".to_string(), "b".to_string()),
                ("A".to_string(), "secret".to_string()),
                ("C".to_string(), "c".to_string()),
            ]
        );
    }

    #[test]
    fn a_secret_env_says_nothing_of_itself_in_debug_output() {
        let env = SecretEnv(vec![("API_KEY".into(), "s3cret".into())]);
        let shown = format!("{env:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("API_KEY"),
            "{shown}"
        );
    }
}
