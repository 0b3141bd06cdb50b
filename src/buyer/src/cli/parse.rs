//! Values of the command line: amounts, `NAME=VALUE` pairs, hashes, URLs,
//! accounts, and the files flags name.

use std::io::Read;
use std::path::Path;

use market::BuyerError;
use market_api::matcher::Sha256;
use market_api::{Account, Tokens};
use market_client::client::prices::{Price, parse_price};
use market_client::client::tokens::parse_tokens;

/// An amount of ICP or e8s, possibly zero.
pub fn amount(text: &str) -> Result<Tokens, String> {
    parse_tokens(text)
}

/// An amount of ICP or e8s, more than zero.
pub fn positive_amount(text: &str) -> Result<Tokens, String> {
    match parse_tokens(text)? {
        0 => Err("must be more than zero".into()),
        a => Ok(a),
    }
}

/// A price, more than zero: in ICP as an amount is (`0.01`, `0.01icp`,
/// `100000e8s`) or in XDR (`0.02xdr`, paid in ICP at the rate of the day).
pub fn price(text: &str) -> Result<Price, String> {
    let p = parse_price(text, &market::paying_unit())?;
    if p.amount == 0 {
        return Err("must be more than zero".into());
    }
    Ok(p)
}

/// `NAME=VALUE`.
pub fn env_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected NAME=VALUE, got {text:?}")),
    }
}

/// A `--secret-env` as given: `NAME=VALUE`, or `NAME` alone for the value
/// of the caller's variable `NAME`. Parsing never fails, so that clap never
/// quotes a secret in an error: [`SecretEnv::resolve`] checks it. Its
/// `Debug` hides the value.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretEnv {
    name: String,
    value: Option<String>,
}

impl std::fmt::Debug for SecretEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value = self.value.as_ref().map(|_| "<hidden>");
        f.debug_struct("SecretEnv")
            .field("name", &self.name)
            .field("value", &value)
            .finish()
    }
}

/// `NAME=VALUE` or `NAME` (see [`SecretEnv`]).
pub fn secret_env(text: &str) -> Result<SecretEnv, String> {
    Ok(match text.split_once('=') {
        Some((name, value)) => SecretEnv {
            name: name.to_string(),
            value: Some(value.to_string()),
        },
        None => SecretEnv {
            name: text.to_string(),
            value: None,
        },
    })
}

impl SecretEnv {
    /// The variables of `given`, a name alone taking its value from
    /// `lookup` (the caller's environment); errors name the variable,
    /// never its value.
    pub fn resolve(
        given: &[SecretEnv],
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Vec<(String, String)>, BuyerError> {
        let env = given
            .iter()
            .map(|s| {
                if s.name.is_empty() {
                    return Err(BuyerError::Request(
                        "--secret-env: expected NAME=VALUE or NAME, and a name before the `=`"
                            .into(),
                    ));
                }
                let value = match &s.value {
                    Some(v) => v.clone(),
                    None => lookup(&s.name).ok_or_else(|| {
                        BuyerError::Request(format!(
                            "--secret-env {0}: your environment has no variable {0} (set it, \
                             or give {0}=VALUE)",
                            s.name
                        ))
                    })?,
                };
                Ok((s.name.clone(), value))
            })
            .collect::<Result<Vec<_>, _>>()?;
        market::check_secret_env_flags(&env)?;
        Ok(env)
    }
}

/// The bytes of `path` (`-`: stdin); `what` names it in errors.
pub fn read(path: &Path, what: &str) -> Result<Vec<u8>, BuyerError> {
    if path == Path::new("-") {
        let mut bytes = vec![];
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| BuyerError::Request(format!("cannot read {what} from stdin: {e}")))?;
        return Ok(bytes);
    }
    std::fs::read(path)
        .map_err(|e| BuyerError::Request(format!("cannot read {what} {}: {e}", path.display())))
}

/// Reads a module file.
pub fn read_module(path: &Path) -> Result<Vec<u8>, BuyerError> {
    read(path, "module")
}

/// 32 bytes as 64 hex digits.
pub fn sha256_hex(text: &str) -> Result<Sha256, String> {
    let bytes = hex::decode(text.trim()).map_err(|e| format!("not hex: {e}"))?;
    Sha256::try_from(bytes.as_slice())
        .map_err(|_| format!("a sha256 is 32 bytes (64 hex digits), not {}", bytes.len()))
}

/// An https URL (providers fetch only those).
pub fn https_url(text: &str) -> Result<String, String> {
    match text.strip_prefix("https://") {
        Some(rest) if !rest.is_empty() => Ok(text.to_string()),
        _ => Err("providers fetch modules only from https:// URLs".into()),
    }
}

/// An ICRC-1 account in text form.
pub fn account(text: &str) -> Result<Account, String> {
    text.parse::<Account>()
        .map_err(|e| format!("not an ICRC-1 account ({e:?})"))
}
