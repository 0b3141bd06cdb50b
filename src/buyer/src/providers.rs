//! The providers a buyer can choose from: `market providers` lists them
//! with their stake and their track record (jobs completed, audits,
//! missed deadlines, slashes), read from the registry one page at a time.

use market_api::registry::{ListProvidersArgs, Provider, ProviderFilter};

use super::{BuyerError, with_retries};
use market_client::client::MarketClient;
use market_client::client::tokens::format_tokens;
use market_client::transport::Transport;

/// The header of `market providers`.
pub const LIST_HEADER: &str = "PROVIDER                                                         REGION        SLOTS  STAKE              RECORD";

/// Every provider that `filter` lets through, in principal order, read
/// page by page (the registry bounds each page).
pub async fn providers<T: Transport>(
    client: &MarketClient<T>,
    filter: ProviderFilter,
) -> Result<Vec<Provider>, BuyerError> {
    let mut out = Vec::new();
    let mut start_after = None;
    loop {
        let args = ListProvidersArgs {
            filter: filter.clone(),
            start_after,
            limit: None,
        };
        let page = with_retries(|| client.list_providers(args.clone())).await?;
        out.extend(page.providers);
        match page.next {
            Some(next) => start_after = Some(next),
            None => return Ok(out),
        }
    }
}

/// One line of `market providers`: who, where, how many slots, the stake
/// that backs its work (free plus bonded), and its record; a provider that
/// may not take work says why.
pub fn list_row(p: &Provider) -> String {
    let stake = p.stake.free.saturating_add(p.stake.bonded);
    let state = if p.deregistered {
        " (deregistered)"
    } else if p.jailed {
        " (jailed)"
    } else {
        ""
    };
    format!(
        "{:<64} {:<13} {:>5}  {:<18} {}{state}",
        p.id.to_text(),
        p.profile.region,
        p.profile.total_slots,
        format_tokens(stake),
        p.record,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use candid::Principal;
    use market_api::registry::{ProviderProfile, Stake, TrackRecord};

    fn provider() -> Provider {
        let id = Principal::from_slice(&[7; 29]);
        Provider {
            id,
            profile: ProviderProfile {
                display_name: "rack".into(),
                region: "eu-west".into(),
                node: id,
                total_slots: 4,
                memory_per_slot_mib: 512,
                tags: vec![],
                endpoint: None,
            },
            registered_at_ns: 0,
            stake: Stake {
                free: 70 * 100_000_000,
                bonded: 30 * 100_000_000,
                unbonding: vec![],
            },
            slashed_total: 0,
            jailed: false,
            deregistered: false,
            pending_operation: None,
            pending_transfer: None,
            record: TrackRecord {
                jobs_completed: 42,
                deadlines_missed: 1,
                slashes: 1,
                ..TrackRecord::default()
            },
        }
    }

    #[test]
    fn a_row_shows_stake_and_record() {
        let p = provider();
        let row = list_row(&p);
        assert!(row.starts_with(&p.id.to_text()), "{row}");
        assert!(row.contains("eu-west"), "{row}");
        assert!(row.contains(&format_tokens(100 * 100_000_000)), "{row}");
        assert!(
            row.ends_with("42 jobs, 0 audits passed, 0 failed, 1 deadline missed, 1 slash"),
            "{row}"
        );
        let jailed = Provider {
            jailed: true,
            ..provider()
        };
        assert!(list_row(&jailed).ends_with("1 slash (jailed)"));
    }
}
