//! The simulated site server: what the line's uplink talks to in a hil-sim run. It owns
//! an EPCIS 2.0 capture interface (`OPTIONS/POST /capture`, asynchronous capture jobs
//! polled at `GET /capture/{id}`, the `GS1-EPCIS-Capture-Limit`, error behaviour
//! `rollback`, 409 for an eventID it already holds), a serial-number provider
//! (`POST /serials`: the same collection for a retried request token), injectable
//! faults (connections refused, 503, slowness, random 5xx by rate from a seed) and the
//! statistics the hil-sim report shows ([`SiteStats`], [`SiteServer::missing`]).
//! It does not validate events against the EPCIS schema (the line's tests do that) and
//! keeps everything in memory.
//!
//! The server runs on its own tokio runtime on a loopback port; the API here is
//! blocking so the scenario runner and tests can drive it from plain threads.
//!
//! # Wire behaviour
//!
//! * `OPTIONS /capture` → 204 with `GS1-EPCIS-Capture-Limit` (events per request) and
//!   `GS1-Capture-Error-Behaviour: rollback`. Every capture response carries the limit.
//! * `POST /capture` (EPCIS document) → 202 + `Location: /capture/{id}`; 400 for a
//!   document that is not JSON, has no `epcisBody.eventList`, an event without
//!   `eventID`, or the same eventID twice; 413 above the capture limit; 409 (problem
//!   JSON, member `eventIDs` lists them unless `name_duplicates` is off) if any eventID is already held or in a running
//!   job: nothing of that document is stored (rollback).
//! * `GET /capture/{id}` → the job: `captureID`, `running`, `success`,
//!   `captureErrorBehaviour`, `errors` (problem JSON objects; a duplicate found when the
//!   job commits is a 409 problem with `eventIDs`).
//! * `POST /serials` `{"requestToken": "...", "count": N}` → `{"requestToken", "serials"}`.
//! * With a token configured, every request needs `Authorization: Bearer <token>` (401).
//! * Injected 5xx: half of them are answered before the request is processed, half after
//!   (the capture was accepted but the client never learns it), so clients must cope
//!   with both.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::watch;

/// Header naming the most events one capture request may carry.
pub const CAPTURE_LIMIT_HEADER: &str = "GS1-EPCIS-Capture-Limit";

/// Configuration of the simulated site server.
#[derive(Debug, Clone)]
pub struct SiteConfig {
    /// Most events one `POST /capture` may carry (`GS1-EPCIS-Capture-Limit`). Default 500.
    pub capture_limit: usize,
    /// How long a capture job runs before it commits (slowness of the repository).
    /// Default 0.
    pub job_delay: Duration,
    /// Delay added before every response (a slow network or server). Default 0.
    pub response_delay: Duration,
    /// Fraction (0..=1) of capture and job requests answered with a random 500/502/503.
    /// Default 0.
    pub error_rate: f64,
    /// Seed of the fault and serial generators, so a run is reproducible. Default 1.
    pub seed: u64,
    /// Bearer token every request must carry; `None` accepts anonymous clients. Default none.
    pub token: Option<String>,
    /// Most serials one `POST /serials` may ask for. Default 100,000.
    pub max_serials_per_request: usize,
    /// Whether a 409 names the duplicate eventIDs (problem member `eventIDs`); false
    /// mimics a repository that only says "conflict". Default true.
    pub name_duplicates: bool,
}

impl Default for SiteConfig {
    fn default() -> Self {
        SiteConfig {
            capture_limit: 500,
            job_delay: Duration::ZERO,
            response_delay: Duration::ZERO,
            error_rate: 0.0,
            seed: 1,
            token: None,
            max_serials_per_request: 100_000,
            name_duplicates: true,
        }
    }
}

/// An injected outage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    /// Serving normally.
    None,
    /// The port is closed: connections are refused.
    Refuse,
    /// Connections are accepted and every request gets 503 Service Unavailable.
    Unavailable,
}

/// What the site server holds and refused, for the hil-sim report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SiteStats {
    /// Distinct eventIDs held.
    pub events: usize,
    /// EventIDs refused because they were already held (409 or a failed job).
    pub duplicates_refused: u64,
    /// Distinct identifiers (epcList entries) of held commissioning events.
    pub commissioned: usize,
    /// Capture requests accepted (202).
    pub captures_accepted: u64,
    /// Capture jobs that committed.
    pub jobs_succeeded: u64,
    /// Capture jobs that failed (rolled back).
    pub jobs_failed: u64,
    /// Requests answered with an injected 5xx.
    pub errors_injected: u64,
    /// Requests answered 503 during an `Outage::Unavailable`.
    pub unavailable_answers: u64,
    /// Serial requests answered.
    pub serial_requests: u64,
}

#[derive(Debug, Clone)]
struct Job {
    id: u64,
    running: bool,
    success: bool,
    errors: Vec<Value>,
    ids: Vec<String>,
    events: Vec<Value>,
}

struct Inner {
    /// eventID → position in `order`.
    held: HashMap<String, usize>,
    /// Events in the order they were committed.
    order: Vec<Value>,
    /// EventIDs of running jobs.
    pending: HashSet<String>,
    jobs: BTreeMap<u64, Job>,
    commissioned: HashSet<String>,
    serial_collections: HashMap<String, Vec<String>>,
    next_serial: u64,
    rng: ChaCha8Rng,
    stats: SiteStats,
    config: SiteConfig,
}

struct Shared {
    inner: Mutex<Inner>,
    next_job: AtomicU64,
    outage: watch::Sender<Outage>,
    stopped: watch::Sender<bool>,
}

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running simulated site server. Dropping it stops it.
pub struct SiteServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for SiteServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SiteServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Why the site server could not start.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    /// Runtime or socket setup failed.
    #[error("site server: cannot {what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A configuration value is out of range.
    #[error("site server: invalid configuration: {0}")]
    Config(String),
}

impl SiteServer {
    /// Start on `127.0.0.1` on a free port.
    pub fn start(config: SiteConfig) -> Result<SiteServer, SiteError> {
        if config.capture_limit == 0 {
            return Err(SiteError::Config("capture_limit must be at least 1".into()));
        }
        if !(0.0..=1.0).contains(&config.error_rate) {
            return Err(SiteError::Config(format!(
                "error_rate {} must be within 0..=1",
                config.error_rate
            )));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("site-server")
            .enable_all()
            .build()
            .map_err(|source| SiteError::Io {
                what: "build the runtime",
                source,
            })?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(("127.0.0.1", 0)))
            .map_err(|source| SiteError::Io {
                what: "bind 127.0.0.1",
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SiteError::Io {
            what: "read the local address",
            source,
        })?;
        let (outage, _) = watch::channel(Outage::None);
        let (stopped, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                held: HashMap::new(),
                order: Vec::new(),
                pending: HashSet::new(),
                jobs: BTreeMap::new(),
                commissioned: HashSet::new(),
                serial_collections: HashMap::new(),
                next_serial: 0,
                rng: ChaCha8Rng::seed_from_u64(config.seed),
                stats: SiteStats::default(),
                config,
            }),
            next_job: AtomicU64::new(1),
            outage,
            stopped,
        });
        let app = router(shared.clone());
        runtime.spawn(serve_loop(listener, addr, app, shared.clone()));
        tracing::info!(%addr, "simulated site server started");
        Ok(SiteServer {
            addr,
            shared,
            runtime: Some(runtime),
        })
    }

    /// The loopback address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` — the EPCIS base URL (`/capture` below it).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Start or end an outage.
    pub fn set_outage(&self, outage: Outage) {
        self.shared.outage.send_replace(outage);
    }

    /// Change the injected 5xx rate (0..=1; values outside are clamped).
    pub fn set_error_rate(&self, rate: f64) {
        lock(&self.shared.inner).config.error_rate = rate.clamp(0.0, 1.0);
    }

    /// Change the delay before every response.
    pub fn set_response_delay(&self, d: Duration) {
        lock(&self.shared.inner).config.response_delay = d;
    }

    /// Change how long capture jobs run.
    pub fn set_job_delay(&self, d: Duration) {
        lock(&self.shared.inner).config.job_delay = d;
    }

    /// The statistics so far.
    pub fn stats(&self) -> SiteStats {
        let inner = lock(&self.shared.inner);
        let mut s = inner.stats.clone();
        s.events = inner.held.len();
        s.commissioned = inner.commissioned.len();
        s
    }

    /// EventIDs held, in the order they were committed.
    pub fn event_ids(&self) -> Vec<String> {
        lock(&self.shared.inner)
            .order
            .iter()
            .filter_map(|e| e.get("eventID").and_then(Value::as_str).map(String::from))
            .collect()
    }

    /// The events held, in the order they were committed.
    pub fn events(&self) -> Vec<Value> {
        lock(&self.shared.inner).order.clone()
    }

    /// How many of `commissioned_serials` (the line's record of what it commissioned:
    /// full identifier URIs, or bare serial numbers) the server holds no commissioning
    /// event for. Must be 0 at the end of a run.
    pub fn missing(&self, commissioned_serials: &[String]) -> usize {
        let inner = lock(&self.shared.inner);
        let serials: HashSet<String> = inner
            .commissioned
            .iter()
            .filter_map(|uri| serial_of_uri(uri))
            .collect();
        commissioned_serials
            .iter()
            .filter(|s| !inner.commissioned.contains(*s) && !serials.contains(*s))
            .count()
    }

    /// Stop serving and shut the runtime down.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.stopped.send_replace(true);
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

impl Drop for SiteServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The serial number of a GS1 identifier URI: the `/21/` segment of a Digital Link
/// (percent-decoded) or the last field of an `urn:epc:id:sgtin:` URN (URN-escaped).
fn serial_of_uri(uri: &str) -> Option<String> {
    if let Some(rest) = uri.strip_prefix("urn:epc:id:sgtin:") {
        return rest.rsplit('.').next().map(linectl::gs1::percent_decode);
    }
    let idx = uri.rfind("/21/")?;
    let tail = &uri[idx + 4..];
    let serial = tail.split(['/', '?']).next().unwrap_or(tail);
    Some(linectl::gs1::percent_decode(serial))
}

async fn serve_loop(
    first: tokio::net::TcpListener,
    addr: SocketAddr,
    app: Router,
    shared: Arc<Shared>,
) {
    let mut listener = Some(first);
    let mut outage_rx = shared.outage.subscribe();
    let mut stop_rx = shared.stopped.subscribe();
    loop {
        if *stop_rx.borrow() {
            return;
        }
        if *outage_rx.borrow_and_update() == Outage::Refuse {
            drop(listener.take());
            tokio::select! {
                _ = outage_rx.changed() => {}
                _ = stop_rx.changed() => {}
            }
            continue;
        }
        let l = match listener.take() {
            Some(l) => l,
            None => match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(%addr, error = %e, "site server cannot rebind; retrying");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let mut o = outage_rx.clone();
        let mut s = stop_rx.clone();
        let shutdown = async move {
            loop {
                if *o.borrow_and_update() == Outage::Refuse || *s.borrow_and_update() {
                    return;
                }
                tokio::select! {
                    r = o.changed() => if r.is_err() { return },
                    r = s.changed() => if r.is_err() { return },
                }
            }
        };
        if let Err(e) = axum::serve(l, app.clone())
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::warn!(error = %e, "site server stopped serving");
        }
        // Let the outage/stop flags be re-read at the top of the loop.
        let _ = outage_rx.has_changed();
        let _ = stop_rx.has_changed();
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/capture", post(capture).options(capture_options))
        .route("/capture/{id}", get(capture_job))
        .route("/serials", post(serials))
        .with_state(shared)
}

fn problem(status: StatusCode, kind: &str, detail: impl Into<String>) -> Value {
    json!({
        "type": kind,
        "title": status.canonical_reason().unwrap_or("error"),
        "status": status.as_u16(),
        "detail": detail.into(),
    })
}

fn problem_response(status: StatusCode, body: Value, limit: usize) -> Response {
    let mut r = (status, axum::Json(body)).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    add_limit(&mut r, limit);
    r
}

fn add_limit(r: &mut Response, limit: usize) {
    if let Ok(v) = HeaderValue::from_str(&limit.to_string()) {
        r.headers_mut().insert(CAPTURE_LIMIT_HEADER, v);
    }
}

/// What the gate in front of every handler decided.
enum Gate {
    Go {
        /// Answer with this injected error after processing.
        fail_after: Option<StatusCode>,
        limit: usize,
    },
    Stop(Response),
}

/// Authentication, outage, slowness and injected errors, common to every request.
async fn gate(shared: &Shared, headers: &HeaderMap, inject: bool) -> Gate {
    let (delay, token, limit) = {
        let i = lock(&shared.inner);
        (
            i.config.response_delay,
            i.config.token.clone(),
            i.config.capture_limit,
        )
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if *shared.outage.borrow() != Outage::None {
        lock(&shared.inner).stats.unavailable_answers += 1;
        return Gate::Stop(problem_response(
            StatusCode::SERVICE_UNAVAILABLE,
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "epcisException:ServiceUnavailableException",
                "site server outage (injected)",
            ),
            limit,
        ));
    }
    if let Some(t) = token {
        let ok = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|v| v == t);
        if !ok {
            let mut r = problem_response(
                StatusCode::UNAUTHORIZED,
                problem(
                    StatusCode::UNAUTHORIZED,
                    "epcisException:SecurityException",
                    "missing or wrong bearer token",
                ),
                limit,
            );
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return Gate::Stop(r);
        }
    }
    if inject {
        let mut i = lock(&shared.inner);
        let rate = i.config.error_rate;
        if rate > 0.0 && i.rng.random::<f64>() < rate {
            i.stats.errors_injected += 1;
            let status = match i.rng.random_range(0..3u8) {
                0 => StatusCode::INTERNAL_SERVER_ERROR,
                1 => StatusCode::BAD_GATEWAY,
                _ => StatusCode::SERVICE_UNAVAILABLE,
            };
            if i.rng.random::<bool>() {
                return Gate::Go {
                    fail_after: Some(status),
                    limit,
                };
            }
            drop(i);
            return Gate::Stop(problem_response(
                status,
                problem(
                    status,
                    "epcisException:ImplementationException",
                    "injected failure",
                ),
                limit,
            ));
        }
    }
    Gate::Go {
        fail_after: None,
        limit,
    }
}

fn injected(status: StatusCode, limit: usize) -> Response {
    problem_response(
        status,
        problem(
            status,
            "epcisException:ImplementationException",
            "injected failure after processing",
        ),
        limit,
    )
}

async fn capture_options(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let limit = match gate(&shared, &headers, false).await {
        Gate::Stop(r) => return r,
        Gate::Go { limit, .. } => limit,
    };
    let mut r = StatusCode::NO_CONTENT.into_response();
    add_limit(&mut r, limit);
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("OPTIONS, POST"));
    r.headers_mut().insert(
        "GS1-Capture-Error-Behaviour",
        HeaderValue::from_static("rollback"),
    );
    r
}

async fn capture(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let (fail_after, limit) = match gate(&shared, &headers, true).await {
        Gate::Stop(r) => return r,
        Gate::Go { fail_after, limit } => (fail_after, limit),
    };
    let bad = |detail: String| {
        problem_response(
            StatusCode::BAD_REQUEST,
            problem(
                StatusCode::BAD_REQUEST,
                "epcisException:ValidationException",
                detail,
            ),
            limit,
        )
    };
    let doc: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad(format!("body is not JSON: {e}")),
    };
    let Some(list) = doc
        .get("epcisBody")
        .and_then(|b| b.get("eventList"))
        .and_then(Value::as_array)
    else {
        return bad("no epcisBody.eventList array".into());
    };
    if list.len() > limit {
        return problem_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                "epcisException:CaptureLimitExceededException",
                format!("{} events exceed the capture limit of {limit}", list.len()),
            ),
            limit,
        );
    }
    let mut ids = Vec::with_capacity(list.len());
    let mut seen = HashSet::with_capacity(list.len());
    for (n, ev) in list.iter().enumerate() {
        let Some(id) = ev.get("eventID").and_then(Value::as_str) else {
            return bad(format!("eventList[{n}] has no eventID"));
        };
        if !seen.insert(id) {
            return bad(format!("eventList[{n}]: eventID {id} appears twice"));
        }
        ids.push(id.to_string());
    }
    let job_delay;
    let id;
    {
        let mut i = lock(&shared.inner);
        let dups: Vec<&String> = ids
            .iter()
            .filter(|id| i.held.contains_key(*id) || i.pending.contains(*id))
            .collect();
        if !dups.is_empty() {
            let mut p = problem(
                StatusCode::CONFLICT,
                "epcisException:ResourceAlreadyExistsException",
                format!("{} event(s) already captured; nothing stored", dups.len()),
            );
            if i.config.name_duplicates {
                p["eventIDs"] = json!(dups);
            }
            i.stats.duplicates_refused += dups.len() as u64;
            return problem_response(StatusCode::CONFLICT, p, limit);
        }
        id = shared.next_job.fetch_add(1, Ordering::Relaxed);
        for e in &ids {
            i.pending.insert(e.clone());
        }
        let events = list.clone();
        i.jobs.insert(
            id,
            Job {
                id,
                running: true,
                success: false,
                errors: Vec::new(),
                ids,
                events,
            },
        );
        i.stats.captures_accepted += 1;
        job_delay = i.config.job_delay;
    }
    let s2 = shared.clone();
    tokio::spawn(async move {
        if !job_delay.is_zero() {
            tokio::time::sleep(job_delay).await;
        }
        finish_job(&s2, id);
    });
    if let Some(status) = fail_after {
        return injected(status, limit);
    }
    let mut r = StatusCode::ACCEPTED.into_response();
    add_limit(&mut r, limit);
    if let Ok(v) = HeaderValue::from_str(&format!("/capture/{id}")) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn finish_job(shared: &Shared, id: u64) {
    let mut guard = lock(&shared.inner);
    let i = &mut *guard;
    let Some(job) = i.jobs.get_mut(&id) else {
        return;
    };
    for e in &job.ids {
        i.pending.remove(e);
    }
    let dups: Vec<String> = job
        .ids
        .iter()
        .filter(|e| i.held.contains_key(*e))
        .cloned()
        .collect();
    job.running = false;
    if dups.is_empty() {
        for ev in std::mem::take(&mut job.events) {
            let eid = ev
                .get("eventID")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let commissioning = ev.get("bizStep").and_then(Value::as_str) == Some("commissioning")
                && ev.get("action").and_then(Value::as_str) == Some("ADD");
            if commissioning && let Some(epcs) = ev.get("epcList").and_then(Value::as_array) {
                for e in epcs.iter().filter_map(Value::as_str) {
                    i.commissioned.insert(e.to_string());
                }
            }
            i.held.insert(eid, i.order.len());
            i.order.push(ev);
        }
        job.success = true;
        i.stats.jobs_succeeded += 1;
    } else {
        let mut p = problem(
            StatusCode::CONFLICT,
            "epcisException:ResourceAlreadyExistsException",
            format!("{} event(s) already captured; job rolled back", dups.len()),
        );
        if i.config.name_duplicates {
            p["eventIDs"] = json!(dups);
        }
        i.stats.duplicates_refused += dups.len() as u64;
        job.errors.push(p);
        job.events.clear();
        job.success = false;
        i.stats.jobs_failed += 1;
    }
}

async fn capture_job(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let (fail_after, limit) = match gate(&shared, &headers, true).await {
        Gate::Stop(r) => return r,
        Gate::Go { fail_after, limit } => (fail_after, limit),
    };
    if let Some(status) = fail_after {
        return injected(status, limit);
    }
    let job = id
        .parse::<u64>()
        .ok()
        .and_then(|n| lock(&shared.inner).jobs.get(&n).cloned());
    let Some(job) = job else {
        return problem_response(
            StatusCode::NOT_FOUND,
            problem(
                StatusCode::NOT_FOUND,
                "epcisException:NoSuchResourceException",
                format!("no capture job {id:?}"),
            ),
            limit,
        );
    };
    let mut r = axum::Json(json!({
        "captureID": job.id.to_string(),
        "running": job.running,
        "success": job.success,
        "captureErrorBehaviour": "rollback",
        "errors": job.errors,
    }))
    .into_response();
    add_limit(&mut r, limit);
    r
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SerialRequest {
    request_token: String,
    count: usize,
}

async fn serials(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let limit = match gate(&shared, &headers, false).await {
        Gate::Stop(r) => return r,
        Gate::Go { limit, .. } => limit,
    };
    let bad = |detail: String| {
        problem_response(
            StatusCode::BAD_REQUEST,
            problem(StatusCode::BAD_REQUEST, "about:blank", detail),
            limit,
        )
    };
    let req: SerialRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad(format!("expected {{\"requestToken\", \"count\"}}: {e}")),
    };
    let mut guard = lock(&shared.inner);
    let i = &mut *guard;
    if req.request_token.is_empty() {
        return bad("requestToken is empty".into());
    }
    if req.count == 0 || req.count > i.config.max_serials_per_request {
        return bad(format!(
            "count {} must be within 1..={}",
            req.count, i.config.max_serials_per_request
        ));
    }
    if !i.serial_collections.contains_key(&req.request_token) {
        // Unique (counter) with a random-looking prefix: 12 digits, never repeated.
        let mut out = Vec::with_capacity(req.count);
        for _ in 0..req.count {
            let n = i.next_serial;
            i.next_serial += 1;
            let salt: u16 = i.rng.random_range(100..1000);
            out.push(format!("{salt}{n:09}"));
        }
        i.serial_collections.insert(req.request_token.clone(), out);
    }
    let serials = i
        .serial_collections
        .get(&req.request_token)
        .cloned()
        .unwrap_or_default();
    if serials.len() != req.count {
        return problem_response(
            StatusCode::CONFLICT,
            problem(
                StatusCode::CONFLICT,
                "about:blank",
                format!(
                    "request token {:?} was already used for {} serials",
                    req.request_token,
                    serials.len()
                ),
            ),
            limit,
        );
    }
    i.stats.serial_requests += 1;
    axum::Json(json!({ "requestToken": req.request_token, "serials": serials })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// One HTTP/1.1 request over a fresh connection: (status, headers+body text).
    fn http(
        addr: SocketAddr,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: &str,
    ) -> std::io::Result<(u16, String)> {
        let mut s = std::net::TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        let auth = auth
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        let status = out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
        Ok((status, out))
    }

    fn doc(ids: &[&str]) -> String {
        let events: Vec<Value> = ids
            .iter()
            .map(|id| json!({"type": "ObjectEvent", "eventID": id, "action": "ADD", "bizStep": "commissioning",
                "epcList": [format!("https://id.gs1.org/01/04012345111118/21/{id}")]}))
            .collect();
        json!({"type": "EPCISDocument", "epcisBody": {"eventList": events}}).to_string()
    }

    fn job_done(addr: SocketAddr, location: &str) -> String {
        for _ in 0..500 {
            let (st, text) = http(addr, "GET", location, Some("tok"), "").expect("poll");
            assert_eq!(st, 200, "{text}");
            if text.contains("\"running\":false") {
                return text;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("job {location} never finished");
    }

    fn location(text: &str) -> String {
        text.lines()
            .find_map(|l| {
                l.strip_prefix("location: ")
                    .or_else(|| l.strip_prefix("Location: "))
            })
            .map(|l| l.trim().to_string())
            .expect("Location header")
    }

    #[test]
    fn capture_jobs_limits_duplicates_auth_and_outages() {
        let site = SiteServer::start(SiteConfig {
            capture_limit: 3,
            token: Some("tok".into()),
            ..SiteConfig::default()
        })
        .expect("start");
        let a = site.addr();
        let (st, text) = http(a, "OPTIONS", "/capture", Some("tok"), "").expect("options");
        assert_eq!(st, 204);
        assert!(
            text.to_lowercase().contains("gs1-epcis-capture-limit: 3"),
            "{text}"
        );
        assert_eq!(
            http(a, "POST", "/capture", None, &doc(&["e1"]))
                .expect("post")
                .0,
            401
        );
        assert_eq!(
            http(a, "POST", "/capture", Some("tok"), "nope")
                .expect("post")
                .0,
            400
        );
        assert_eq!(
            http(a, "POST", "/capture", Some("tok"), &doc(&["x", "x"]))
                .expect("post")
                .0,
            400
        );
        assert_eq!(
            http(
                a,
                "POST",
                "/capture",
                Some("tok"),
                &doc(&["1", "2", "3", "4"])
            )
            .expect("post")
            .0,
            413
        );
        let (st, text) =
            http(a, "POST", "/capture", Some("tok"), &doc(&["e1", "e2"])).expect("post");
        assert_eq!(st, 202, "{text}");
        let job = job_done(a, &location(&text));
        assert!(job.contains("\"success\":true"), "{job}");
        let (st, text) =
            http(a, "POST", "/capture", Some("tok"), &doc(&["e3", "e2"])).expect("post");
        assert_eq!(st, 409, "{text}");
        assert!(text.contains("\"eventIDs\":[\"e2\"]"), "{text}");
        assert_eq!(
            http(a, "GET", "/capture/999", Some("tok"), "")
                .expect("get")
                .0,
            404
        );
        let stats = site.stats();
        assert_eq!(
            (stats.events, stats.duplicates_refused, stats.commissioned),
            (2, 1, 2)
        );
        assert_eq!(site.event_ids(), vec!["e1".to_string(), "e2".to_string()]);
        assert_eq!(site.missing(&["e1".into(), "e2".into(), "e3".into()]), 1);

        site.set_outage(Outage::Unavailable);
        assert_eq!(
            http(a, "POST", "/capture", Some("tok"), &doc(&["e3"]))
                .expect("post")
                .0,
            503
        );
        site.set_outage(Outage::Refuse);
        let mut refused = false;
        for _ in 0..100 {
            if http(a, "OPTIONS", "/capture", Some("tok"), "").is_err() {
                refused = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(refused, "connections refused during the outage");
        site.set_outage(Outage::None);
        let mut back = false;
        for _ in 0..200 {
            if let Ok((204, _)) = http(a, "OPTIONS", "/capture", Some("tok"), "") {
                back = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(back, "serving again on the same port");
        site.stop();
    }

    #[test]
    fn injected_errors_follow_the_seed() {
        let run = |seed| {
            let site = SiteServer::start(SiteConfig {
                error_rate: 0.5,
                seed,
                ..SiteConfig::default()
            })
            .expect("start");
            (0..20)
                .map(|i| {
                    http(
                        site.addr(),
                        "POST",
                        "/capture",
                        None,
                        &doc(&[&format!("s{i}")]),
                    )
                    .expect("post")
                    .0
                })
                .collect::<Vec<u16>>()
        };
        let a = run(3);
        assert_eq!(a, run(3), "same seed, same faults");
        assert!(a.iter().any(|s| *s >= 500) && a.contains(&202), "{a:?}");
    }

    #[test]
    fn serial_provider_repeats_a_collection_for_a_retried_token() {
        let site = SiteServer::start(SiteConfig::default()).expect("start");
        let a = site.addr();
        let req = |tok: &str, n: usize| {
            http(
                a,
                "POST",
                "/serials",
                None,
                &json!({"requestToken": tok, "count": n}).to_string(),
            )
            .expect("post")
        };
        let body = |t: &str| -> Value {
            serde_json::from_str(t.split("\r\n\r\n").nth(1).unwrap_or_default())
                .unwrap_or(Value::Null)
        };
        let (st, t1) = req("T1", 5);
        assert_eq!(st, 200, "{t1}");
        let (_, t1b) = req("T1", 5);
        assert_eq!(body(&t1)["serials"], body(&t1b)["serials"]);
        assert_eq!(body(&t1)["serials"].as_array().map(Vec::len), Some(5));
        let (_, t2) = req("T2", 5);
        let s1: HashSet<String> =
            serde_json::from_value(body(&t1)["serials"].clone()).unwrap_or_default();
        let s2: HashSet<String> =
            serde_json::from_value(body(&t2)["serials"].clone()).unwrap_or_default();
        assert!(s1.is_disjoint(&s2) && s2.len() == 5);
        assert_eq!(req("T1", 6).0, 409, "a token reused for another count");
        assert_eq!(req("T3", 0).0, 400);
        assert_eq!(
            http(a, "POST", "/serials", None, "{}").expect("post").0,
            400
        );
        assert_eq!(site.stats().serial_requests, 3);
    }

    #[test]
    fn serial_of_identifier_uris() {
        assert_eq!(
            serial_of_uri("https://id.gs1.org/01/04012345111118/21/A%2F1").as_deref(),
            Some("A/1")
        );
        assert_eq!(
            serial_of_uri("urn:epc:id:sgtin:4012345.011111.A%2F1").as_deref(),
            Some("A/1")
        );
        assert_eq!(serial_of_uri("urn:x:y"), None);
    }
}
