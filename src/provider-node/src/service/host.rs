//! [`ServiceHost`]: the services a node runs, and how one request to one
//! of them is served.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use market_api::matcher::{MAX_ALLOWED_HOSTS, MAX_HOST_LEN, ServiceLimits, ServiceSpec};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use wasmtime::{Store, Trap};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;

use super::ServiceError;
use super::body::{GuardedBody, ResponseBody, text};
use super::egress::EgressPolicy;
use super::engine::{Components, FUEL_YIELD_INTERVAL, ServiceHostConfig};
use super::metrics::{self, ServiceMetrics};
use super::state::RequestState;
use crate::sandbox::CodeHash;

/// Most environment variables a service may be given, and their total size.
pub const MAX_ENV_VARS: usize = 256;
/// Largest total size of a service's env, bytes.
pub const MAX_ENV_BYTES: usize = 64 * 1024;

/// How one service runs: what its [`ServiceSpec`] and its reservation's
/// memory say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceSettings {
    /// The component's environment.
    pub env: Vec<(String, String)>,
    /// Hosts its outgoing requests may go to.
    pub allowed_hosts: Vec<String>,
    /// Per-request limits.
    pub limits: ServiceLimits,
    /// Linear memory of one instance, bytes.
    pub memory_bytes: u64,
}

impl ServiceSettings {
    /// The settings of a service leased with `spec` on slots of
    /// `memory_mib`.
    pub fn from_spec(spec: &ServiceSpec, memory_mib: u32) -> Self {
        Self {
            env: spec.env.clone(),
            allowed_hosts: spec.allowed_hosts.clone(),
            limits: spec.limits,
            memory_bytes: u64::from(memory_mib) << 20,
        }
    }

    fn check(&self, config: &ServiceHostConfig) -> Result<(), ServiceError> {
        self.limits
            .check()
            .map_err(|(field, range)| ServiceError::Limits(format!("{field} must be {range}")))?;
        if self.memory_bytes == 0 || self.memory_bytes > config.max_memory_bytes {
            return Err(ServiceError::Limits(format!(
                "memory must be 1 byte to {} bytes",
                config.max_memory_bytes
            )));
        }
        if self.allowed_hosts.len() > MAX_ALLOWED_HOSTS
            || self.allowed_hosts.iter().any(|h| h.len() > MAX_HOST_LEN)
        {
            return Err(ServiceError::Limits(format!(
                "at most {MAX_ALLOWED_HOSTS} allowed hosts of {MAX_HOST_LEN} bytes"
            )));
        }
        check_env(&self.env)
    }
}

/// Checks a service's environment against [`MAX_ENV_VARS`] and
/// [`MAX_ENV_BYTES`] (HTTP and TCP services alike).
pub(crate) fn check_env(env: &[(String, String)]) -> Result<(), ServiceError> {
    let env_bytes: usize = env.iter().map(|(k, v)| k.len() + v.len()).sum();
    if env.len() > MAX_ENV_VARS || env_bytes > MAX_ENV_BYTES {
        return Err(ServiceError::Limits(format!(
            "at most {MAX_ENV_VARS} env variables, {MAX_ENV_BYTES} bytes"
        )));
    }
    Ok(())
}

/// A running service, as [`ServiceHost::list`] shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceInfo {
    /// Its id (the reservation's).
    pub id: u64,
    /// Its component's sha256.
    pub code_hash: CodeHash,
    /// Its per-request limits.
    pub limits: ServiceLimits,
    /// Requests it is serving now.
    pub in_flight: u32,
}

struct Service {
    id: u64,
    code_hash: CodeHash,
    pre: ProxyPre<RequestState>,
    env: Arc<[(String, String)]>,
    egress: Arc<EgressPolicy>,
    limits: ServiceLimits,
    memory_bytes: u64,
    slots: Arc<Semaphore>,
}

/// The services a node runs behind its ingress: each a component,
/// pre-instantiated once, with a fresh instance per request. Cheap to
/// clone (shared).
#[derive(Clone)]
pub struct ServiceHost {
    inner: Arc<HostInner>,
}

struct HostInner {
    config: ServiceHostConfig,
    components: Components,
    services: RwLock<HashMap<u64, Arc<Service>>>,
    instances: Arc<Semaphore>,
    metrics: ServiceMetrics,
}

/// How a request's instance ended, when it gave no response.
enum Ended {
    /// The guest returned without setting a response.
    NoResponse,
    /// The wall-clock limit passed.
    Timeout,
    /// The guest trapped or failed.
    Failed(wasmtime::Error),
}

impl ServiceHost {
    /// A host with no services, counting into `metrics`.
    pub fn new(config: ServiceHostConfig, metrics: ServiceMetrics) -> Result<Self, ServiceError> {
        let engine = config.engine()?;
        let components = Components::new(&config, engine)?;
        let instances = Arc::new(Semaphore::new(config.max_instances as usize));
        Ok(Self {
            inner: Arc::new(HostInner {
                config,
                components,
                services: RwLock::new(HashMap::new()),
                instances,
                metrics,
            }),
        })
    }

    /// The node-wide settings.
    pub fn config(&self) -> &ServiceHostConfig {
        &self.inner.config
    }

    /// The metrics it counts into.
    pub fn metrics(&self) -> &ServiceMetrics {
        &self.inner.metrics
    }

    /// Starts (or restarts with new settings) service `id` running
    /// `component`, whose sha256 must be `code_hash`. Requests already in
    /// flight on a replaced service finish under its old settings.
    pub async fn start(
        &self,
        id: u64,
        component: &[u8],
        code_hash: &CodeHash,
        settings: ServiceSettings,
    ) -> Result<(), ServiceError> {
        let inner = &self.inner;
        settings.check(&inner.config)?;
        let pre = inner.components.prepare(code_hash, component).await?;
        let mut egress = EgressPolicy::new(&settings.allowed_hosts, settings.limits.max_body_bytes);
        for ip in &inner.config.egress_local_addresses {
            egress = egress.with_local_address(*ip);
        }
        let service = Arc::new(Service {
            id,
            code_hash: *code_hash,
            pre,
            env: settings.env.into(),
            egress: Arc::new(egress),
            limits: settings.limits,
            memory_bytes: settings.memory_bytes,
            slots: Arc::new(Semaphore::new(settings.limits.max_concurrent as usize)),
        });
        let mut services = inner.services.write().unwrap_or_else(|p| p.into_inner());
        services.insert(id, service);
        inner.metrics.services_running.set(services.len() as i64);
        tracing::info!(service = id, code = %hex::encode(code_hash), "service started");
        Ok(())
    }

    /// Stops service `id`: new requests get 404, those in flight finish.
    /// Whether it was running.
    pub fn stop(&self, id: u64) -> bool {
        let mut services = self
            .inner
            .services
            .write()
            .unwrap_or_else(|p| p.into_inner());
        let was = services.remove(&id).is_some();
        self.inner
            .metrics
            .services_running
            .set(services.len() as i64);
        if was {
            tracing::info!(service = id, "service stopped");
        }
        was
    }

    /// The running services, by id.
    pub fn list(&self) -> Vec<ServiceInfo> {
        let services = self
            .inner
            .services
            .read()
            .unwrap_or_else(|p| p.into_inner());
        let mut list: Vec<ServiceInfo> = services
            .values()
            .map(|s| ServiceInfo {
                id: s.id,
                code_hash: s.code_hash,
                limits: s.limits,
                in_flight: s
                    .limits
                    .max_concurrent
                    .saturating_sub(s.slots.available_permits() as u32),
            })
            .collect();
        list.sort_by_key(|s| s.id);
        list
    }

    /// Where service `id` answers: `<public base URL>/<id>/`, if the host
    /// has a public base URL.
    pub fn endpoint(&self, id: u64) -> Option<String> {
        endpoint(self.inner.config.public_base_url.as_deref()?, id)
    }

    /// The compiled-component cache (and its engine), shared with the TCP
    /// services.
    pub(super) fn components(&self) -> &Components {
        &self.inner.components
    }

    /// Takes one of the node's instance slots (the pooling allocator's) for
    /// as long as the permit lives; `None` if all are taken.
    pub(super) fn reserve_instance(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        Arc::clone(&self.inner.instances).try_acquire_owned().ok()
    }

    fn service(&self, id: u64) -> Option<Arc<Service>> {
        let services = self
            .inner
            .services
            .read()
            .unwrap_or_else(|p| p.into_inner());
        services.get(&id).cloned()
    }

    /// Serves one request routed to service `id`; `rest` is the path and
    /// query the guest sees, `prefix` (if any) goes to it in
    /// `x-forwarded-prefix`.
    pub(super) async fn serve(
        &self,
        id: u64,
        request: hyper::Request<Incoming>,
        rest: http::uri::PathAndQuery,
        prefix: Option<String>,
    ) -> hyper::Response<ResponseBody> {
        let Some(service) = self.service(id) else {
            self.inner.metrics.unknown_service.inc();
            return host_answer(404, "no such service", &[]);
        };
        let started = Instant::now();
        let response = self.run(&service, request, rest, prefix, started).await;
        let m = &self.inner.metrics;
        let class = format!("{}xx", response.status().as_u16() / 100);
        m.requests
            .get_or_create(&metrics::with(id, "class", &class))
            .inc();
        m.latency
            .get_or_create(&metrics::service(id))
            .observe(started.elapsed().as_secs_f64());
        response
    }

    async fn run(
        &self,
        service: &Arc<Service>,
        request: hyper::Request<Incoming>,
        rest: http::uri::PathAndQuery,
        prefix: Option<String>,
        started: Instant,
    ) -> hyper::Response<ResponseBody> {
        let m = &self.inner.metrics;
        let id = service.id;
        let error = |kind: &str| {
            m.errors
                .get_or_create(&metrics::with(id, "kind", kind))
                .inc()
        };
        let limits = service.limits;
        let max_body = limits.max_body_bytes;
        // A declared body over the cap is refused before any instance runs.
        if let Some(len) = request.headers().get(http::header::CONTENT_LENGTH) {
            let len = len.to_str().ok().and_then(|s| s.parse::<u64>().ok());
            if len.is_none_or(|len| len > max_body) {
                error("too_large");
                return host_answer(
                    413,
                    &format!("request body over {max_body} bytes"),
                    &[("connection", "close")],
                );
            }
        }
        // Concurrency: the service's own cap, then the node's instances.
        let Ok(slot) = Arc::clone(&service.slots).try_acquire_owned() else {
            error("busy");
            return host_answer(503, "service busy", &[("retry-after", "1")]);
        };
        let Ok(instance) = Arc::clone(&self.inner.instances).try_acquire_owned() else {
            error("busy");
            return host_answer(503, "node busy", &[("retry-after", "1")]);
        };

        let (mut parts, body) = request.into_parts();
        parts.uri = http::Uri::from(rest);
        if let Some(prefix) = prefix
            && let Ok(value) = http::HeaderValue::from_str(&prefix)
        {
            parts.headers.insert("x-forwarded-prefix", value);
        }
        let bytes_in = m.bytes_in.get_or_create(&metrics::service(id)).clone();
        let limit = usize::try_from(max_body).unwrap_or(usize::MAX);
        let body = Limited::new(body, limit)
            .map_frame(move |frame: hyper::body::Frame<Bytes>| {
                if let Some(data) = frame.data_ref() {
                    bytes_in.inc_by(data.len() as u64);
                }
                frame
            })
            .map_err(move |e| match e.downcast::<hyper::Error>() {
                Ok(e) => wasmtime_wasi_http::Error::from(*e),
                Err(_) => wasmtime_wasi_http::Error::HttpRequestBodySize(Some(max_body)),
            });
        let request = hyper::Request::from_parts(parts, body);

        let mut store = Store::new(
            self.inner.components.engine(),
            RequestState::new(
                &service.env,
                Arc::clone(&service.egress),
                service.memory_bytes,
            ),
        );
        store.limiter(|s| &mut s.limiter);
        let prepared = store
            .set_fuel(limits.fuel_per_request)
            .and_then(|()| store.fuel_async_yield_interval(Some(FUEL_YIELD_INTERVAL)));
        if let Err(e) = prepared {
            error("internal");
            return host_answer(500, &format!("internal error: {e}"), &[]);
        }
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let handles = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, request)
            .and_then(|req| {
                let out = store.data_mut().http().new_response_outparam(sender)?;
                Ok((req, out))
            });
        let (req, out) = match handles {
            Ok(h) => h,
            Err(e) => {
                error("internal");
                return host_answer(500, &format!("internal error: {e}"), &[]);
            }
        };
        let timeout = Duration::from_millis(limits.timeout_ms);
        let deadline = started + timeout;
        let pre = service.pre.clone();
        let fuel = m.fuel.get_or_create(&metrics::service(id)).clone();
        // The instance runs in its own task (it may keep streaming the body
        // after the head is sent) and holds the concurrency permits until
        // it ends; the deadline drops it, and the store with it.
        let task = tokio::spawn(async move {
            let _permits = (slot, instance);
            let run = async {
                let proxy = pre.instantiate_async(&mut store).await?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, req, out)
                    .await
            };
            let ended = match tokio::time::timeout_at(deadline, run).await {
                Ok(Ok(())) => Ended::NoResponse,
                Ok(Err(e)) => Ended::Failed(e),
                Err(_) => Ended::Timeout,
            };
            let left = store.get_fuel().unwrap_or(0);
            fuel.inc_by(limits.fuel_per_request.saturating_sub(left));
            (ended, store.data().limiter.memory_refused)
        });

        match receiver.await {
            Ok(Ok(response)) => response.map(|body| {
                GuardedBody::new(
                    body,
                    deadline,
                    max_body,
                    m.bytes_out.get_or_create(&metrics::service(id)).clone(),
                    m.errors
                        .get_or_create(&metrics::with(id, "kind", "body_cut"))
                        .clone(),
                )
                .boxed_unsync()
            }),
            Ok(Err(code)) => {
                error("guest_error");
                host_answer(500, &format!("service error: {code:?}"), &[])
            }
            Err(_) => {
                let (ended, memory_refused) = match task.await {
                    Ok(ended) => ended,
                    Err(e) => (Ended::Failed(wasmtime::format_err!("{e}")), false),
                };
                match ended {
                    Ended::Timeout => {
                        error("timeout");
                        host_answer(
                            504,
                            &format!("no response within {} ms", limits.timeout_ms),
                            &[],
                        )
                    }
                    Ended::NoResponse => {
                        error("trap");
                        host_answer(500, "the service set no response", &[])
                    }
                    Ended::Failed(e) => {
                        let (kind, what) = if memory_refused {
                            ("out_of_memory", "out of memory".to_string())
                        } else {
                            match e.downcast_ref::<Trap>() {
                                Some(Trap::OutOfFuel) => ("out_of_fuel", "out of fuel".to_string()),
                                Some(trap) => ("trap", format!("trap: {trap}")),
                                None => ("trap", "the service failed".to_string()),
                            }
                        };
                        tracing::debug!(service = id, error = %format!("{e:?}"), "request failed");
                        error(kind);
                        host_answer(500, &what, &[])
                    }
                }
            }
        }
    }
}

/// `<base>/<id>/`, or `None` if `base` is not an http(s) URL.
pub fn endpoint(base: &str, id: u64) -> Option<String> {
    let base = base.trim_end_matches('/');
    (base.starts_with("https://") || base.starts_with("http://")).then(|| format!("{base}/{id}/"))
}

/// The host's own answer: `status`, a one-line text body and `headers`.
pub(super) fn host_answer(
    status: u16,
    message: &str,
    headers: &[(&'static str, &str)],
) -> hyper::Response<ResponseBody> {
    let mut builder = hyper::Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(http::header::CACHE_CONTROL, "no-store")
        .header("x-content-type-options", "nosniff");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder
        .body(text(format!("{message}\n")))
        .expect("static status and headers are valid")
}
