//! The demo's SNS DAO: a stand-in for its governance canister funds the
//! DAO's escrow balance from the treasury, reserves a slot by proposal
//! (voters read the validator's summary), names the dapp's canister a
//! delegate whose job runs in the slot, and cancels by proposal.

use anyhow::{Result, anyhow, bail};
use candid::{CandidType, Deserialize, Principal};
use market_api::escrow::{EscrowError, NotifyDepositArgs};
use market_api::matcher::{
    CancelReservationArgs, JobSpec, MatcherError, Reservation, ReservationSpec, ReservationStatus,
};
use market_api::sns::{ExecuteGenericNervousSystemFunction, SNS_ACTIONS, SnsAction, function};
use market_api::{JobId, Tokens};
use std::time::Duration;

use crate::{Demo, INTERVAL_SECS, PRICE, icp};

/// The stand-in governance canister's record of a proposal.
#[derive(CandidType, Deserialize)]
struct Proposal {
    rendering: String,
}

/// What the DAO's part of the story left behind.
#[derive(Clone, Debug)]
pub struct DaoOutcome {
    /// The DAO's governance canister.
    pub governance: Principal,
    /// The reservation, cancelled.
    pub reservation: Reservation,
    /// What the delegate's job printed, delivered by callback.
    pub callback_output: Vec<u8>,
}

impl Demo {
    fn propose(&self, gov: Principal, action: &SnsAction) -> Result<(u64, String)> {
        let index = SNS_ACTIONS
            .iter()
            .position(|a| *a == action.name())
            .unwrap_or(0);
        let arg = ExecuteGenericNervousSystemFunction {
            function_id: 1000 + index as u64,
            payload: action.payload(),
        };
        let made: Result<u64, String> =
            self.net
                .update(gov, market_fixture::admin(), "submit_proposal", &arg)?;
        let id = made.map_err(|e| anyhow!("the proposal was refused: {e}"))?;
        let p: Option<Proposal> = self.net.query(gov, "get_proposal", &id)?;
        let rendering = p.map(|p| p.rendering).unwrap_or_default();
        Ok((id, rendering))
    }

    fn execute(&self, gov: Principal, id: u64) -> Result<()> {
        let r: Result<(), String> =
            self.net
                .update(gov, market_fixture::admin(), "execute_proposal", &id)?;
        r.map_err(|e| anyhow!("proposal {id} failed at execution: {e}"))
    }

    fn reservation(&self, id: JobId) -> Result<Reservation> {
        let r: Option<Reservation> = self.net.query(self.ids.matcher, "get_reservation", &id)?;
        r.ok_or_else(|| anyhow!("reservation {id} is gone"))
    }

    /// The DAO's story; `app` is the dapp's canister (its controller is
    /// `app_owner`), `job` what it runs in the reserved slot.
    pub(crate) async fn dao_story(
        &mut self,
        app: Principal,
        app_owner: Principal,
        job: JobSpec,
        treasury: Tokens,
    ) -> Result<DaoOutcome> {
        let ids = self.ids;
        let gov = self.net.deploy_sns_dao("Example DAO", treasury)?;
        self.dao = Some(gov);
        for (i, action) in SNS_ACTIONS.iter().enumerate() {
            let f = function(ids.matcher, action, 1000 + i as u64);
            let r: Result<(), String> =
                self.net
                    .update(gov, market_fixture::admin(), "add_function", &f)?;
            r.map_err(anyhow::Error::msg)?;
        }
        self.say(format!(
            "governance canister {gov} ({} ICP in its treasury) registers the matcher's six \
             generic functions (ids 1000-1005)",
            icp(treasury)
        ));

        let funding = 5 * market_fixture::ICP;
        self.net
            .treasury_to_escrow(gov, u64::try_from(funding)?, 1)?;
        let credited: Result<Tokens, EscrowError> = self.net.update(
            ids.escrow,
            app_owner,
            "notify_deposit",
            &NotifyDepositArgs {
                ledger: ids.ledger,
                beneficiary: gov,
            },
        )?;
        let credited = credited.map_err(|e| anyhow!("notify_deposit: {e:?}"))?;
        self.say(format!(
            "TransferSnsTreasuryFunds: {} ICP to the escrow's deposit account for the DAO; \
             notify_deposit credits {} ICP (less the sweep fee)",
            icp(funding),
            icp(credited)
        ));

        let spec = ReservationSpec {
            currency: None,
            slots: 1,
            memory_mib: 64,
            fuel_per_interval: 10_000_000_000,
            interval_secs: INTERVAL_SECS,
            intervals: 30,
            max_price_per_interval: 2 * PRICE,
            ledger: ids.ledger,
            min_provider_stake: 0,
            max_rematches: 3,
            delegates: vec![app],
            service: None,
        };
        let (pid, rendering) = self.propose(gov, &SnsAction::Reserve(spec))?;
        self.say(format!(
            "proposal {pid} (reserve), as voters read it: \"{rendering}\""
        ));
        self.execute(gov, pid)?;
        self.narrate_events()?;
        let rid = self
            .net
            .reservations_of(gov)?
            .first()
            .map(|r| r.id)
            .ok_or_else(|| anyhow!("the reservation was not made"))?;
        let r = self.reservation(rid)?;
        self.say(format!(
            "adopted and executed: reservation {rid}, {} ICP locked, its slot matched with {}",
            icp(r.locked),
            r.slots[0]
                .provider
                .map(|p| self.name(p))
                .unwrap_or_else(|| "nobody yet".into())
        ));

        // The slot may have gone to the provider that died: it misses its
        // first heartbeat, is slashed, and the slot moves on.
        let mut held = None;
        for _ in 0..2_000 {
            let r = self.reservation(rid)?;
            let slot = &r.slots[0];
            if slot.provider == Some(crate::provider(2)) && slot.intervals_paid >= 1 {
                held = Some(r);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let Some(r) = held else {
            bail!("the reserved slot never came to be held and paid by provider-2");
        };
        self.narrate_events()?;
        if r.slots[0].rematches > 0 {
            self.say(format!(
                "provider-1 is down: the slot missed its heartbeat, provider-1 was slashed, and \
                 the slot was matched anew with provider-2 ({} re-match)",
                r.slots[0].rematches
            ));
        }
        self.say(format!(
            "provider-2 heartbeats the slot every interval, busy or idle: {} interval(s) paid so far",
            r.slots[0].intervals_paid
        ));

        let submitted: (Result<JobId, String>,) =
            self.net
                .update_args(app, app_owner, "submit_reserved", (rid, job))?;
        let jid = submitted.0.map_err(anyhow::Error::msg)?;
        let callback_output = self
            .callback_output(app, jid, 2_000, Duration::from_millis(20))
            .await?;
        if callback_output.is_empty() {
            bail!("the delegate's job {jid} never reported back");
        }
        self.narrate_events()?;
        self.say(format!(
            "the dapp's canister, a delegate, runs job {jid} in the slot at no cost of its own; \
             on its callback's notice it read the output: {:?}",
            String::from_utf8_lossy(&callback_output)
        ));

        let (pid, rendering) = self.propose(
            gov,
            &SnsAction::Cancel(CancelReservationArgs { reservation: rid }),
        )?;
        self.say(format!(
            "proposal {pid} (cancel), as voters read it: \"{rendering}\""
        ));
        self.execute(gov, pid)?;
        let mut reservation = self.reservation(rid)?;
        for _ in 0..200 {
            if reservation.status == ReservationStatus::Cancelled {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            reservation = self.reservation(rid)?;
        }
        if reservation.status != ReservationStatus::Cancelled {
            bail!("the reservation is {:?} after cancel", reservation.status);
        }
        self.narrate_events()?;
        let refused: Result<(), MatcherError> = self.net.update(
            ids.matcher,
            app_owner,
            "cancel_reservation",
            &CancelReservationArgs { reservation: rid },
        )?;
        if refused.is_ok() {
            bail!("someone other than the DAO cancelled its reservation");
        }
        self.say(format!(
            "executed: the slot paid {} ICP for {} interval(s); the rest of the {} ICP lock \
             returns to the DAO's escrow balance",
            icp(reservation.paid),
            reservation.slots[0].intervals_paid,
            icp(reservation.locked)
        ));
        Ok(DaoOutcome {
            governance: gov,
            reservation,
            callback_output,
        })
    }
}
