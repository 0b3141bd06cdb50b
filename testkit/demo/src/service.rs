//! The demo's service lease: the dapp's canister leases `hello-service`
//! with two replicas, each on its own provider behind that provider's
//! HTTP ingress; the demo calls both over HTTP. When a provider's machine
//! goes dark, the matcher's probes of its replica fail, the provider is
//! slashed, the replica is matched anew with another provider, and the
//! canister is told the new endpoint. The canister then cancels the lease.

use anyhow::{Context, Result, anyhow, bail, ensure};
use candid::{CandidType, Deserialize, Principal};
use market_api::Tokens;
use market_api::matcher::{
    Reservation, ReservationId, ReservationStatus, ServiceNotice, ServiceView,
};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{Demo, PRICE, icp};

/// Length of one paid interval of the lease: long beside the probe
/// interval, so that failed probes, not a missed heartbeat, find a dead
/// replica.
pub const SERVICE_INTERVAL_SECS: u64 = 120;
/// The environment variable the service is given, and its value.
pub const GREETING: (&str, &str) = ("GREETING", "hello from a leased slot");

/// One replica as the demo called it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaCall {
    /// The replica's slot.
    pub slot: u32,
    /// Who runs it.
    pub provider: Principal,
    /// Where it answers.
    pub endpoint: String,
    /// The answer to `GET <endpoint>json`: status and body.
    pub json: (u16, String),
    /// The answer to `GET <endpoint>env/GREETING`.
    pub greeting: (u16, String),
}

/// What the service lease's part of the story left behind.
#[derive(Clone, Debug)]
pub struct ServiceOutcome {
    /// The lease's id (its reservation's).
    pub id: ReservationId,
    /// Both replicas as first called.
    pub first: Vec<ReplicaCall>,
    /// Whether the lost replica's endpoint still answered after its
    /// provider went dark (it must not).
    pub lost_answered: bool,
    /// The replica that replaced the lost one.
    pub replacement: ReplicaCall,
    /// The endpoint of each replica as the dapp's canister last recorded
    /// it from the matcher's notices, in slot order.
    pub recorded: Vec<Option<String>>,
    /// The service as it was just before the lease was cancelled.
    pub view: ServiceView,
    /// The lease, cancelled and settled.
    pub reservation: Reservation,
    /// The fee of its probes, paid to the market.
    pub probe_fee: Tokens,
}

/// A replica's endpoint as the example client canister records it.
#[derive(CandidType, Deserialize)]
struct ReplicaEndpoint {
    notice: ServiceNotice,
    notices: u64,
    #[allow(dead_code)]
    received_at_ns: u64,
}

/// `GET url` (plain http, loopback): the status and the body.
pub async fn http_get(url: &str) -> Result<(u16, String)> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("not an http:// URL: {url}"))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(authority).await?;
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
        let mut response = Vec::new();
        s.read_to_end(&mut response).await?;
        anyhow::Ok(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| anyhow!("GET {url}: no answer in 10 s"))??;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("GET {url}: not an HTTP response"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("GET {url}: no status in {head:?}"))?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

/// The body of a chunked response.
fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

impl Demo {
    fn service_view(&self, id: ReservationId) -> Result<ServiceView> {
        let v: Option<ServiceView> = self.net.query(self.ids.matcher, "get_service", &id)?;
        v.ok_or_else(|| anyhow!("service {id} is gone"))
    }

    /// Waits (narrating) until the service satisfies `cond`.
    async fn until_service(
        &mut self,
        id: ReservationId,
        what: &str,
        cond: impl Fn(&ServiceView) -> bool,
    ) -> Result<ServiceView> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            self.narrate_events()?;
            let v = self.service_view(id)?;
            if cond(&v) {
                return Ok(v);
            }
            if Instant::now() > deadline {
                bail!("timed out waiting for service {id}: {what}; it is {v:?}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Calls one replica's `/json` and `/env/GREETING`, printing the answers.
    async fn call_replica(
        &self,
        slot: u32,
        provider: Principal,
        endpoint: &str,
    ) -> Result<ReplicaCall> {
        let json_url = format!("{endpoint}json");
        let json = http_get(&json_url).await?;
        self.say(format!("GET {json_url} -> {} {}", json.0, json.1.trim()));
        let greeting_url = format!("{endpoint}env/{}", GREETING.0);
        let greeting = http_get(&greeting_url).await?;
        self.say(format!(
            "GET {greeting_url} -> {} {:?}",
            greeting.0, greeting.1
        ));
        Ok(ReplicaCall {
            slot,
            provider,
            endpoint: endpoint.to_string(),
            json,
            greeting,
        })
    }

    /// The endpoints the example client canister `client` recorded for
    /// service `id`, in slot order.
    fn recorded_endpoints(
        &self,
        client: Principal,
        id: ReservationId,
    ) -> Result<Vec<Option<String>>> {
        let got: Vec<ReplicaEndpoint> = self.net.query(client, "service_endpoints", &id)?;
        let mut out = vec![];
        for e in got {
            let slot = e.notice.slot as usize;
            if out.len() <= slot {
                out.resize(slot + 1, None);
            }
            out[slot] = e.notice.endpoint;
        }
        Ok(out)
    }

    /// The dapp's canister (`client`, controlled by `owner`) leases
    /// `hello-service` (stored as `sha256`) with two replicas; returns the
    /// lease's id and both replicas as first called.
    pub(crate) async fn lease_service(
        &mut self,
        client: Principal,
        owner: Principal,
        sha256: [u8; 32],
    ) -> Result<(ReservationId, Vec<ReplicaCall>)> {
        let mut spec = test_world::service_lease(self.ids.ledger, sha256, 2, 10, 3 * PRICE);
        spec.interval_secs = SERVICE_INTERVAL_SECS;
        let service = spec.service.as_mut().expect("a service");
        service.env = vec![(GREETING.0.into(), GREETING.1.into())];
        service.limits.timeout_ms = 5_000;
        self.say(format!(
            "the dapp's canister calls lease_service: hello-service.wasm, 2 replicas on different \
             providers, {} intervals of {SERVICE_INTERVAL_SECS} s at up to {} ICP each, health \
             path /healthz, env {}={:?}",
            spec.intervals,
            icp(spec.max_price_per_interval),
            GREETING.0,
            GREETING.1
        ));
        let leased: Result<ReservationId, String> =
            self.net.update(client, owner, "lease_service", &spec)?;
        let id = leased.map_err(|e| anyhow!("lease_service: {e}"))?;
        self.services.insert(id);
        let view = self
            .until_service(id, "both replicas answering", |v| {
                v.replicas.iter().all(|r| r.endpoint.is_some())
            })
            .await?;
        self.say(format!(
            "the matcher probes each replica's /healthz by HTTPS outcall every {} s; {} ICP a \
             probe, paid to the market when the lease settles",
            self.net.settings.probe_interval_secs.unwrap_or(60),
            icp(self
                .net
                .settings
                .probe_fee
                .unwrap_or(market_api::matcher::DEFAULT_PROBE_FEE))
        ));
        let mut calls = vec![];
        for r in &view.replicas {
            let endpoint = r.endpoint.clone().context("checked")?;
            let provider = r
                .provider
                .context("an acknowledged replica has a provider")?;
            calls.push(self.call_replica(r.slot, provider, &endpoint).await?);
        }
        Ok((id, calls))
    }

    /// Calls the `/healthz` of replica `slot` (of those in `first`) after
    /// its provider went dark; returns whether it still answered.
    pub(crate) async fn call_lost_replica(&self, first: &[ReplicaCall], slot: u32) -> Result<bool> {
        let old = first
            .iter()
            .find(|c| c.slot == slot)
            .context("the lost replica was called")?;
        let url = format!("{}healthz", old.endpoint);
        Ok(match http_get(&url).await {
            Ok((status, _)) => {
                self.say(format!(
                    "GET {url} -> {status}: the dead node still answers?"
                ));
                true
            }
            Err(e) => {
                self.say(format!(
                    "GET {url} -> {}: replica {slot} is gone with its node; the matcher's \
                     probes will find out",
                    e.root_cause()
                ));
                false
            }
        })
    }

    /// After the provider of replica `lost.0` went dark (`lost.1`: whether
    /// its endpoint still answered then): waits for the probes to fail it
    /// and for its replacement to answer, checks what the dapp's canister
    /// was told, then has the canister cancel the lease.
    pub(crate) async fn service_failover(
        &mut self,
        client: Principal,
        owner: Principal,
        id: ReservationId,
        first: Vec<ReplicaCall>,
        lost: (u32, bool),
    ) -> Result<ServiceOutcome> {
        let (lost, lost_answered) = lost;
        let old = first
            .iter()
            .find(|c| c.slot == lost)
            .context("the lost replica was called")?
            .clone();
        let slot = lost as usize;
        let view = self
            .until_service(id, "the lost replica answering elsewhere", |v| {
                v.replicas.get(slot).is_some_and(|r| {
                    r.rematches >= 1
                        && r.provider != Some(old.provider)
                        && r.endpoint.as_ref().is_some_and(|e| *e != old.endpoint)
                })
            })
            .await?;
        let r = &view.replicas[slot];
        let endpoint = r.endpoint.clone().context("checked")?;
        let provider = r.provider.context("checked")?;
        self.say(format!(
            "replica {lost} re-matched with {} ({} re-match)",
            self.name(provider),
            r.rematches
        ));
        let replacement = self.call_replica(lost, provider, &endpoint).await?;

        // The canister learns of endpoints by the matcher's notices.
        let mut recorded = vec![];
        for _ in 0..400 {
            recorded = self.recorded_endpoints(client, id)?;
            if recorded.get(slot) == Some(&Some(endpoint.clone())) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let notices: Vec<ReplicaEndpoint> = self.net.query(client, "service_endpoints", &id)?;
        let told = notices
            .iter()
            .find(|e| e.notice.slot == lost)
            .map_or(0, |e| e.notices);
        ensure!(
            recorded.get(slot) == Some(&Some(endpoint.clone())),
            "the dapp's canister records {recorded:?}, not {endpoint} for replica {lost}"
        );
        self.say(format!(
            "the dapp's canister was told by its service_changed callback ({told} notices for \
             replica {lost}); its service_endpoints now read {}",
            recorded
                .iter()
                .map(|e| e.as_deref().unwrap_or("-"))
                .collect::<Vec<_>>()
                .join(" and ")
        ));

        let cancelled: Result<(), String> = self.net.update(client, owner, "cancel_lease", &id)?;
        cancelled.map_err(|e| anyhow!("cancel_lease: {e}"))?;
        self.say("the dapp's canister cancels its lease (cancel_lease)");
        let probe_fee = self.until_probe_fee(id).await?;
        let reservation: Option<Reservation> =
            self.net.query(self.ids.matcher, "get_reservation", &id)?;
        let reservation = reservation.ok_or_else(|| anyhow!("lease {id} is gone"))?;
        ensure!(
            reservation.status == ReservationStatus::Cancelled,
            "the lease is {:?} after cancel",
            reservation.status
        );
        self.until_service(id, "both replicas stopped", |v| {
            v.replicas.iter().all(|r| r.endpoint.is_none())
        })
        .await?;
        let intervals: u32 = reservation.slots.iter().map(|s| s.intervals_paid).sum();
        self.say(format!(
            "lease {id} settled: {} ICP to providers for {intervals} replica-interval(s), {} ICP \
             for probes to the market; the rest of its {} ICP lock returns to the canister",
            icp(reservation.paid.saturating_sub(probe_fee)),
            icp(probe_fee),
            icp(reservation.locked)
        ));
        Ok(ServiceOutcome {
            id,
            first,
            lost_answered,
            replacement,
            recorded,
            view,
            reservation,
            probe_fee,
        })
    }

    /// Waits (narrating) for the settled lease's probe fee to be paid to
    /// the market; returns it.
    async fn until_probe_fee(&mut self, id: ReservationId) -> Result<Tokens> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            self.narrate_events()?;
            if let Some(fee) = self.probe_fees.get(&id) {
                return Ok(*fee);
            }
            if Instant::now() > deadline {
                bail!("lease {id}: its probe fee was never paid");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}
