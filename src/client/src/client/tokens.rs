//! Token amounts as people write them (`0.01`) and as ledgers count them
//! (e8s), converted with integer arithmetic only.

use market_api::Tokens;

/// Decimals of ICP and of the marketplace's test ledger.
pub const ICP_DECIMALS: u32 = 8;

/// Formats an amount in e8s as ICP, e.g. `1.5 ICP` (trailing zeros dropped).
pub fn format_tokens(e8s: Tokens) -> String {
    format_units(e8s, ICP_DECIMALS, "ICP")
}

/// Formats an amount in the ledger's smallest unit with `decimals` decimals.
pub fn format_units(amount: Tokens, decimals: u32, symbol: &str) -> String {
    let scale = 10u128.pow(decimals);
    let whole = amount / scale;
    let frac = amount % scale;
    if frac == 0 {
        return format!("{whole} {symbol}");
    }
    let digits = format!("{frac:0width$}", width = decimals as usize);
    format!("{whole}.{} {symbol}", digits.trim_end_matches('0'))
}

/// Parses a decimal amount of whole tokens (`1`, `0.01`, `2.5e8s` is not
/// accepted) into the smallest unit; an integer followed by `e8s` is taken
/// as e8s already (`150000e8s`).
pub fn parse_tokens(text: &str) -> Result<Tokens, String> {
    parse_units(text, ICP_DECIMALS)
}

/// Like [`parse_tokens`] for a ledger with `decimals` decimals.
pub fn parse_units(text: &str, decimals: u32) -> Result<Tokens, String> {
    let t = text.trim().trim_end_matches("ICP").trim();
    if let Some(raw) = t.strip_suffix("e8s") {
        return raw
            .trim()
            .parse::<Tokens>()
            .map_err(|e| format!("{text:?}: not a whole number of e8s ({e})"));
    }
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    if whole.is_empty() && frac.is_empty() {
        return Err(format!("{text:?}: not an amount"));
    }
    let digits_ok = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if !digits_ok(whole) || !digits_ok(frac) {
        return Err(format!("{text:?}: expected a decimal amount such as 0.01"));
    }
    if frac.len() > decimals as usize {
        return Err(format!(
            "{text:?}: at most {decimals} decimals (the smallest unit is 1e-{decimals})"
        ));
    }
    let scale = 10u128.pow(decimals);
    let whole: Tokens = if whole.is_empty() {
        0
    } else {
        whole
            .parse()
            .map_err(|_| format!("{text:?}: amount too large"))?
    };
    let frac_units: Tokens = if frac.is_empty() {
        0
    } else {
        let padded = format!("{frac:0<width$}", width = decimals as usize);
        padded.parse().expect("digits only")
    };
    whole
        .checked_mul(scale)
        .and_then(|w| w.checked_add(frac_units))
        .ok_or_else(|| format!("{text:?}: amount too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_round_trip_without_floats() {
        assert_eq!(parse_tokens("0.01"), Ok(1_000_000));
        assert_eq!(parse_tokens("1"), Ok(100_000_000));
        assert_eq!(parse_tokens("1.5 ICP"), Ok(150_000_000));
        assert_eq!(parse_tokens(".5"), Ok(50_000_000));
        assert_eq!(parse_tokens("0.00000001"), Ok(1));
        assert_eq!(parse_tokens("12345e8s"), Ok(12_345));
        assert!(parse_tokens("0.000000001").is_err());
        assert!(parse_tokens("-1").is_err());
        assert!(parse_tokens("1e3").is_err());
        assert!(parse_tokens("").is_err());
        assert!(parse_tokens("340282366920938463463374607431768211455").is_err());
        assert_eq!(format_tokens(150_000_000), "1.5 ICP");
        assert_eq!(format_tokens(1), "0.00000001 ICP");
        assert_eq!(format_tokens(200_000_000), "2 ICP");
        for v in [0u128, 1, 99, 1_000_000, 123_456_789_012] {
            let text = format_tokens(v);
            assert_eq!(parse_tokens(&text), Ok(v), "{text}");
        }
    }
}
