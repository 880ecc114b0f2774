//! The operator HMI: an axum app served by the daemon on the profile's `[hmi] listen`
//! address. Server-rendered pages (login, line overview with live updates over SSE,
//! batch setup with the start checks and the PackML commands, the exception queue with
//! its resolution workflow, aggregation rework ([`aggregation`]: held and open cases, a
//! scanned container's tree, the rework steps), trends, the audit trail and user administration), plus the
//! daemon's `GET /status` and `GET /healthz`. Every request that shows line data needs
//! a session ([`crate::users`]); every POST is permission-checked on the server, carries
//! a per-session CSRF token, and is recorded in the audit trail ([`crate::audit`])
//! before it takes effect. The session cookie is `HttpOnly; SameSite=Strict`.
//!
//! It owns the HTTP surface and the exception store ([`exceptions`]); it does not own
//! the line (a [`LineControl`]), accounts (`Users`) or the trail (`AuditTrail`).

// Handlers answer with a ready `Response` on every early exit (`Result<_, Response>`);
// boxing it would only add noise on a path that runs once per request.
#![allow(clippy::result_large_err)]

mod aggregation;
pub mod exceptions;
mod pages;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::api::orders::OrderQueue;
use crate::audit::record::hex;
use crate::audit::{Action, AuditTrail, Entry, Meaning};
use crate::clock::Clock;
use crate::pipeline::{BatchOrder, Line, LineCommand, LineError, StatusCell, UnitRecord};
use crate::serve::ServeError;
use crate::users::session::SessionToken;
use crate::users::{Actor, AuthError, LoginError, Permission, Role, Users};
use exceptions::{Exceptions, Resolution};

/// Name of the session cookie.
pub const COOKIE: &str = "linectl_session";

/// What the HMI needs of the line: commands and the live status.
pub trait LineControl: Send + Sync {
    /// Give the line a command.
    fn command(&self, command: LineCommand) -> Result<(), LineError>;
    /// The live status.
    fn status(&self) -> &StatusCell;
}

impl LineControl for Line {
    fn command(&self, command: LineCommand) -> Result<(), LineError> {
        Line::command(self, command)
    }
    fn status(&self) -> &StatusCell {
        Line::status(self)
    }
}

/// HMI settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HmiConfig {
    /// Line id shown in the header.
    pub line_id: String,
    /// Product name shown on the batch page.
    pub product_name: String,
    /// Product GTIN shown on the batch page.
    pub gtin: String,
    /// Resolving an exception needs a second person's e-signature (default false).
    pub resolve_needs_second_signature: bool,
}

impl HmiConfig {
    /// Settings from a line profile.
    pub fn from_profile(p: &crate::profile::Profile) -> HmiConfig {
        HmiConfig {
            line_id: p.line.id.clone(),
            product_name: p.product.name.clone(),
            gtin: p.product.gtin.clone(),
            resolve_needs_second_signature: p.hmi.resolve_needs_second_signature,
        }
    }
}

struct Inner {
    cfg: HmiConfig,
    line: Arc<dyn LineControl>,
    users: Arc<Users>,
    audit: Arc<AuditTrail>,
    exceptions: Arc<Exceptions>,
    orders: Option<Arc<OrderQueue>>,
    secret: [u8; 32],
    stop: Arc<AtomicBool>,
    uplink: std::sync::OnceLock<UplinkProbe>,
    ops: std::sync::OnceLock<OpsProbe>,
    agg: std::sync::OnceLock<Arc<crate::aggregation::service::AggService>>,
    agg_token: std::sync::OnceLock<String>,
}

/// Reads the EPCIS uplink's backlog: events journaled but not yet confirmed by the
/// site server, and the uplink's state; `None` while there is no uplink.
pub type UplinkProbe = Arc<dyn Fn() -> Option<(u64, String)> + Send + Sync>;

/// Reads the operations gauges (journal size, upload backlog, pool forecast) for the
/// overview, its live stream and `/metrics`.
pub type OpsProbe = Arc<dyn Fn() -> crate::serve::gauges::OpsGauges + Send + Sync>;

/// The shared state of the HMI's handlers.
#[derive(Clone)]
pub struct Hmi(Arc<Inner>);

impl std::fmt::Debug for Hmi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hmi")
            .field("cfg", &self.0.cfg)
            .finish_non_exhaustive()
    }
}

impl Hmi {
    /// The HMI over a line, its accounts, trail and exception store. `orders` is the
    /// work-order queue the batch page offers.
    pub fn new(
        cfg: HmiConfig,
        line: Arc<dyn LineControl>,
        users: Arc<Users>,
        audit: Arc<AuditTrail>,
        exceptions: Arc<Exceptions>,
        orders: Option<Arc<OrderQueue>>,
    ) -> Hmi {
        let secret: [u8; 32] = rand::random();
        Hmi(Arc::new(Inner {
            cfg,
            line,
            users,
            audit,
            exceptions,
            orders,
            secret,
            stop: Arc::new(AtomicBool::new(false)),
            uplink: std::sync::OnceLock::new(),
            ops: std::sync::OnceLock::new(),
            agg: std::sync::OnceLock::new(),
            agg_token: std::sync::OnceLock::new(),
        }))
    }

    /// Show the uplink's backlog on the overview (set once; later calls are ignored).
    pub fn set_uplink_probe(&self, probe: UplinkProbe) {
        let _ = self.0.uplink.set(probe);
    }

    /// Show the pool forecast and upload backlog on the overview and in `/metrics` (set
    /// once; later calls are ignored).
    pub fn set_ops_probe(&self, probe: OpsProbe) {
        let _ = self.0.ops.set(probe);
    }

    /// Serve the aggregation rework pages over the daemon's aggregation (set once;
    /// later calls are ignored).
    pub fn set_aggregation(&self, svc: Arc<crate::aggregation::service::AggService>) {
        let _ = self.0.agg.set(svc);
    }

    /// Accept console rework steps (`POST /api/v1/agg/rework`) bearing this daemon's
    /// local aggregation token, with an HMI user's credentials (set once).
    pub fn set_aggregation_token(&self, token: String) {
        let _ = self.0.agg_token.set(token);
    }

    fn ops(&self) -> Option<crate::serve::gauges::OpsGauges> {
        self.0.ops.get().map(|p| p())
    }

    fn uplink(&self) -> Option<(u64, String)> {
        self.0.uplink.get().and_then(|p| p())
    }

    /// The app's routes (mount other routers with `Router::merge`).
    pub fn router(&self) -> Router {
        Router::new()
            .route("/status", get(status))
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/metrics", get(metrics))
            .route("/login", get(login_page).post(login))
            .route("/logout", post(logout))
            .route("/", get(overview))
            .route("/live", get(live))
            .route("/batch", get(batch_page))
            .route("/batch/start", post(batch_start))
            .route("/batch/start-order", post(batch_start_order))
            .route("/command", post(command))
            .route("/exceptions", get(exceptions_page))
            .route("/exceptions/{id}/resolve", post(resolve))
            .route("/exceptions/{id}/frame", get(exception_frame))
            .route("/trends", get(trends_page))
            .route("/audit", get(audit_page))
            .route("/users", get(users_page))
            .route("/users/add", post(user_add))
            .route("/users/{name}/change", post(user_change))
            .route("/aggregation", get(aggregation::list_page))
            .route("/aggregation/container", get(aggregation::container_page))
            .route("/aggregation/step", post(aggregation::step))
            .route("/aggregation/hold", post(aggregation::hold_action))
            .route("/api/v1/agg/rework", post(aggregation::console_step))
            .with_state(self.clone())
    }

    /// The CSRF token of a session.
    fn csrf(&self, token: &str) -> String {
        let mut h = Sha256::new();
        h.update(self.0.secret);
        h.update(b"csrf");
        h.update(token.as_bytes());
        hex(&h.finalize())
    }

    /// Who is asking, if they may `p`; otherwise the response to send.
    fn auth(&self, headers: &HeaderMap, p: Permission) -> Result<Ctx, Response> {
        let Some(token) = cookie(headers) else {
            return Err(Redirect::to("/login").into_response());
        };
        let t = SessionToken::from_client(&token);
        match self.0.users.authorize(&t, p) {
            Ok(actor) => Ok(Ctx {
                csrf: self.csrf(&token),
                token,
                actor,
            }),
            Err(AuthError::Forbidden { role, permission }) => Err((
                StatusCode::FORBIDDEN,
                Html(pages::message(
                    "Not permitted",
                    &format!("Role {role} may not {permission}."),
                )),
            )
                .into_response()),
            Err(e @ AuthError::Internal(_)) => Err(internal(e)),
            Err(_) => Err(Redirect::to("/login?expired=1").into_response()),
        }
    }

    /// As [`Hmi::auth`], and the form's CSRF token must match the session's.
    fn auth_post(&self, headers: &HeaderMap, p: Permission, csrf: &str) -> Result<Ctx, Response> {
        // Check the token before the permission so a forged request is not even audited
        // as a refusal of the victim.
        let Some(token) = cookie(headers) else {
            return Err(Redirect::to("/login").into_response());
        };
        if !ct_eq(self.csrf(&token).as_bytes(), csrf.as_bytes()) {
            return Err((
                StatusCode::FORBIDDEN,
                Html(pages::message(
                    "Refused",
                    "Invalid or missing form token (CSRF).",
                )),
            )
                .into_response());
        }
        self.auth(headers, p)
    }

    fn append(&self, entry: Entry) -> Result<(), Response> {
        self.0.audit.append(entry).map(|_| ()).map_err(internal)
    }
}

/// The requester of one request.
struct Ctx {
    token: String,
    csrf: String,
    actor: Actor,
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "hmi request failed");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Html(pages::message("Error", &e.to_string())),
    )
        .into_response()
}

fn refused(code: StatusCode, title: &str, msg: &str) -> Response {
    (code, Html(pages::message(title, msg))).into_response()
}

fn back(to: &str, msg: &str) -> Response {
    let q: String = form_urlencoded_encode(msg);
    Redirect::to(&format!("{to}?msg={q}")).into_response()
}

fn form_urlencoded_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `?msg=` on a page after a POST.
#[derive(Debug, Deserialize, Default)]
struct Msg {
    #[serde(default)]
    msg: Option<String>,
    #[serde(default)]
    expired: Option<String>,
}

async fn metrics(State(h): State<Hmi>) -> Response {
    let mut text = crate::serve::metrics::render(&h.0.cfg.line_id, &h.0.line.status().snapshot());
    if let Some(g) = h.ops() {
        text.push_str(&crate::serve::metrics::render_ops(&h.0.cfg.line_id, &g));
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        text,
    )
        .into_response()
}

async fn status(State(h): State<Hmi>) -> Response {
    axum::Json(crate::serve::status_json(h.0.line.status())).into_response()
}

async fn login_page(Query(m): Query<Msg>) -> Html<String> {
    let note = if m.expired.is_some() {
        Some("Your session ended; log in again.".to_string())
    } else {
        m.msg
    };
    Html(pages::login(note.as_deref()))
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    user: String,
    password: String,
}

async fn login(State(h): State<Hmi>, Form(f): Form<LoginForm>) -> Response {
    let users = h.0.users.clone();
    let r = tokio::task::spawn_blocking(move || users.login(f.user.trim(), &f.password)).await;
    match r {
        Ok(Ok(s)) => {
            let mut resp = Redirect::to("/").into_response();
            let c = format!(
                "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict",
                s.token.as_str()
            );
            if let Ok(v) = HeaderValue::from_str(&c) {
                resp.headers_mut().insert(header::SET_COOKIE, v);
            }
            resp
        }
        Ok(Err(e @ LoginError::Internal(_))) => internal(e),
        Ok(Err(e)) => (
            StatusCode::UNAUTHORIZED,
            Html(pages::login(Some(&e.to_string()))),
        )
            .into_response(),
        Err(e) => internal(e),
    }
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(State(h): State<Hmi>, headers: HeaderMap, Form(f): Form<CsrfForm>) -> Response {
    let ctx = match h.auth_post(&headers, Permission::ViewLine, &f.csrf) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let _ = h.0.users.logout(&SessionToken::from_client(&ctx.token));
    let mut resp = Redirect::to("/login").into_response();
    let c = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    if let Ok(v) = HeaderValue::from_str(&c) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

async fn overview(State(h): State<Hmi>, headers: HeaderMap, Query(m): Query<Msg>) -> Response {
    let ctx = match h.auth(&headers, Permission::ViewLine) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let s = h.0.line.status().snapshot();
    Html(pages::overview(
        &pages::Frame::new(&h, &ctx, m.msg.as_deref()),
        &s,
        h.0.exceptions.open_count(),
        h.uplink(),
        h.ops().as_ref(),
    ))
    .into_response()
}

async fn live(State(h): State<Hmi>, headers: HeaderMap) -> Response {
    if let Err(r) = h.auth(&headers, Permission::ViewLine) {
        return r;
    }
    let st = h.clone();
    let stream = futures_util::stream::unfold(0u64, move |n| {
        let st = st.clone();
        async move {
            if n > 0 {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            if st.0.stop.load(Ordering::SeqCst) {
                return None;
            }
            let mut v = crate::serve::status_json(st.0.line.status());
            if let Some(o) = v.as_object_mut() {
                o.remove("latencies_us");
                if let Some((n, state)) = st.uplink() {
                    o.insert("uplink_backlog".into(), n.into());
                    o.insert("uplink_state".into(), state.into());
                }
                if let Some(g) = st.ops() {
                    o.insert("ops".into(), serde_json::to_value(g).unwrap_or_default());
                }
                o.insert(
                    "open_exceptions".into(),
                    st.0.exceptions.open_count().into(),
                );
            }
            let ev = Event::default().event("status").data(v.to_string());
            Some((Ok::<Event, std::convert::Infallible>(ev), n + 1))
        }
    });
    Sse::new(stream).into_response()
}

async fn batch_page(State(h): State<Hmi>, headers: HeaderMap, Query(m): Query<Msg>) -> Response {
    let ctx = match h.auth(&headers, Permission::ViewLine) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let s = h.0.line.status().snapshot();
    let orders = h.0.orders.as_ref().map(|q| q.queued()).unwrap_or_default();
    Html(pages::batch(
        &pages::Frame::new(&h, &ctx, m.msg.as_deref()),
        &h.0.cfg,
        &s,
        &orders,
    ))
    .into_response()
}

#[derive(Debug, Deserialize)]
struct BatchForm {
    csrf: String,
    lot: String,
    expiry: String,
    quantity: String,
}

fn start_batch(h: &Hmi, ctx: &Ctx, order: BatchOrder, source: &str) -> Result<(), Response> {
    let before = h.0.line.status().snapshot();
    let detail = format!(
        "lot={} expiry={} quantity={} source={source}",
        order.lot, order.expiry, order.quantity
    );
    h.append(
        Entry::new(
            ctx.actor.audit_actor(),
            Action::BatchStarted,
            format!("batch:{}", order.lot),
        )
        .detail(detail.clone())
        .change(Some(before.state.clone()), Some("Execute".into())),
    )?;
    if let Err(e) = h.0.line.command(LineCommand::StartBatch(order.clone())) {
        h.append(
            Entry::new(
                ctx.actor.audit_actor(),
                Action::BatchStarted,
                format!("batch:{}", order.lot),
            )
            .detail(format!("refused: {e} ({detail})"))
            .change(Some(before.state), None),
        )?;
        return Err(refused(
            StatusCode::CONFLICT,
            "Batch not started",
            &e.to_string(),
        ));
    }
    Ok(())
}

async fn batch_start(
    State(h): State<Hmi>,
    headers: HeaderMap,
    Form(f): Form<BatchForm>,
) -> Response {
    let ctx = match h.auth_post(&headers, Permission::StartBatch, &f.csrf) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let lot = f.lot.trim().to_string();
    let expiry = f.expiry.trim().to_string();
    let Ok(quantity) = f.quantity.trim().parse::<u64>() else {
        return refused(
            StatusCode::BAD_REQUEST,
            "Batch not started",
            &format!("quantity {:?} is not a whole number", f.quantity),
        );
    };
    if lot.is_empty()
        || quantity == 0
        || expiry.len() != 6
        || !expiry.bytes().all(|b| b.is_ascii_digit())
    {
        return refused(
            StatusCode::BAD_REQUEST,
            "Batch not started",
            "lot must not be empty, expiry must be YYMMDD and quantity at least 1",
        );
    }
    match start_batch(
        &h,
        &ctx,
        BatchOrder {
            lot,
            expiry,
            quantity,
        },
        "manual",
    ) {
        Ok(()) => back("/", "batch started"),
        Err(r) => r,
    }
}

async fn batch_start_order(
    State(h): State<Hmi>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    let ctx = match h.auth_post(&headers, Permission::StartBatch, &f.csrf) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Some(q) = h.0.orders.clone() else {
        return refused(
            StatusCode::CONFLICT,
            "No work orders",
            "this line has no work-order queue",
        );
    };
    let Some(next) = q.queued().into_iter().next() else {
        return refused(
            StatusCode::CONFLICT,
            "No work orders",
            "the work-order queue is empty",
        );
    };
    let order = BatchOrder {
        lot: next.batch.clone(),
        expiry: next.expiry.clone(),
        quantity: next.quantity,
    };
    if let Err(r) = start_batch(&h, &ctx, order, &format!("order {}", next.order_id)) {
        return r;
    }
    match q.take_next() {
        Ok(_) => back("/", &format!("work order {} started", next.order_id)),
        Err(e) => internal(e),
    }
}

#[derive(Debug, Deserialize)]
struct CommandForm {
    csrf: String,
    cmd: String,
}

async fn command(State(h): State<Hmi>, headers: HeaderMap, Form(f): Form<CommandForm>) -> Response {
    let ctx = match h.auth_post(&headers, Permission::PackmlCommand, &f.csrf) {
        Ok(c) => c,
        Err(r) => return r,
    };
    // The command and the state it leads to (through its acting state).
    let (cmd, target) = match f.cmd.as_str() {
        "reset" => (LineCommand::Reset, "Idle"),
        "hold" => (LineCommand::Hold, "Held"),
        "unhold" => (LineCommand::Unhold, "Execute"),
        "stop" => (LineCommand::Stop, "Stopped"),
        "abort" => (LineCommand::Abort, "Aborted"),
        "clear" => (LineCommand::Clear, "Stopped"),
        other => {
            return refused(
                StatusCode::BAD_REQUEST,
                "Unknown command",
                &format!("no PackML command {other:?}"),
            );
        }
    };
    let before = h.0.line.status().snapshot().state;
    if let Err(r) = h.append(
        Entry::new(
            ctx.actor.audit_actor(),
            Action::PackmlCommand,
            format!("line:{}", h.0.cfg.line_id),
        )
        .detail(f.cmd.clone())
        .change(Some(before.clone()), Some(target.into())),
    ) {
        return r;
    }
    match h.0.line.command(cmd) {
        Ok(()) => back("/batch", &format!("{} sent", f.cmd)),
        Err(e) => {
            if let Err(r) = h.append(
                Entry::new(
                    ctx.actor.audit_actor(),
                    Action::PackmlCommand,
                    format!("line:{}", h.0.cfg.line_id),
                )
                .detail(format!("{} refused: {e}", f.cmd))
                .change(Some(before), None),
            ) {
                return r;
            }
            refused(StatusCode::CONFLICT, "Command refused", &e.to_string())
        }
    }
}

async fn exceptions_page(
    State(h): State<Hmi>,
    headers: HeaderMap,
    Query(m): Query<Msg>,
) -> Response {
    let ctx = match h.auth(&headers, Permission::ViewLine) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let list = h.0.exceptions.list(500);
    Html(pages::exceptions(
        &pages::Frame::new(&h, &ctx, m.msg.as_deref()),
        &list,
        h.0.cfg.resolve_needs_second_signature,
    ))
    .into_response()
}

/// The camera frame of a rejected unit (PNG), for whoever may see the exception queue.
/// An image, not a page: a missing or expired session is 401, not a redirect to login.
async fn exception_frame(
    State(h): State<Hmi>,
    headers: HeaderMap,
    Path(id): Path<u64>,
) -> Response {
    if let Err(r) = h.auth(&headers, Permission::ViewLine) {
        return if r.status().is_redirection() {
            (StatusCode::UNAUTHORIZED, "a session is required\n").into_response()
        } else {
            r
        };
    }
    let Some(path) = h.0.exceptions.frame_path(id) else {
        return (StatusCode::NOT_FOUND, "no frame for this exception\n").into_response();
    };
    match tokio::task::spawn_blocking(move || std::fs::read(path)).await {
        Ok(Ok(png)) => (
            [
                (axum::http::header::CONTENT_TYPE, "image/png"),
                (axum::http::header::CACHE_CONTROL, "private, no-store"),
            ],
            png,
        )
            .into_response(),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => (
            StatusCode::NOT_FOUND,
            "the frame was pruned (reject-frame retention)\n",
        )
            .into_response(),
        Ok(Err(e)) => internal(e),
        Err(e) => internal(e),
    }
}

#[derive(Debug, Deserialize)]
struct ResolveForm {
    csrf: String,
    reason: String,
    #[serde(default)]
    signer: String,
    #[serde(default)]
    signer_password: String,
}

async fn resolve(
    State(h): State<Hmi>,
    headers: HeaderMap,
    Path(id): Path<u64>,
    Form(f): Form<ResolveForm>,
) -> Response {
    let ctx = match h.auth_post(&headers, Permission::ResolveException, &f.csrf) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let reason = f.reason.trim().to_string();
    if reason.is_empty() {
        return refused(
            StatusCode::BAD_REQUEST,
            "Not resolved",
            "a reason is required",
        );
    }
    let Some(ex) = h.0.exceptions.get(id) else {
        return refused(
            StatusCode::NOT_FOUND,
            "Not resolved",
            &format!("no exception {id}"),
        );
    };
    if ex.resolution.is_some() {
        return refused(
            StatusCode::CONFLICT,
            "Not resolved",
            &format!("exception {id} is already resolved"),
        );
    }
    let sig = if h.0.cfg.resolve_needs_second_signature || !f.signer.trim().is_empty() {
        let users = h.0.users.clone();
        let actor = ctx.actor.clone();
        let (name, pw) = (f.signer.trim().to_string(), f.signer_password.clone());
        match tokio::task::spawn_blocking(move || {
            users.e_sign(&actor, &name, &pw, Meaning::Verification)
        })
        .await
        {
            Ok(Ok(s)) => Some(s),
            Ok(Err(e)) => {
                return refused(StatusCode::FORBIDDEN, "Signature refused", &e.to_string());
            }
            Err(e) => return internal(e),
        }
    } else {
        None
    };
    let signed_by = sig.as_ref().map(|s| s.signer.clone());
    let mut entry = Entry::new(
        ctx.actor.audit_actor(),
        Action::ExceptionResolved,
        format!("exception:{id}"),
    )
    .detail(format!("unit {} {} {}", ex.unit, ex.reason, ex.detail))
    .reason(reason.clone())
    .change(Some("open".into()), Some("resolved".into()));
    if let Some(s) = sig {
        entry = entry.signed(s);
    }
    let rec = match h.0.audit.append(entry) {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    let res = Resolution {
        by: ctx.actor.user().to_string(),
        time_us: rec.time_us,
        reason,
        signed_by,
    };
    match h.0.exceptions.resolve(id, res) {
        Ok(()) => back("/exceptions", &format!("exception {id} resolved")),
        Err(e) => internal(e),
    }
}

async fn trends_page(State(h): State<Hmi>, headers: HeaderMap) -> Response {
    let ctx = match h.auth(&headers, Permission::ViewLine) {
        Ok(c) => c,
        Err(r) => return r,
    };
    Html(pages::trends(
        &pages::Frame::new(&h, &ctx, None),
        &h.0.exceptions.trend(),
    ))
    .into_response()
}

#[derive(Debug, Deserialize, Default)]
struct AuditQuery {
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    object: Option<String>,
}

async fn audit_page(
    State(h): State<Hmi>,
    headers: HeaderMap,
    Query(q): Query<AuditQuery>,
) -> Response {
    let ctx = match h.auth(&headers, Permission::ViewAudit) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let query = crate::audit::Query {
        user: q.user.clone().filter(|s| !s.is_empty()),
        object_prefix: q.object.clone().filter(|s| !s.is_empty()),
        ..crate::audit::Query::default()
    };
    match h.0.audit.query(&query) {
        Ok(mut recs) => {
            recs.reverse();
            recs.truncate(500);
            Html(pages::audit(
                &pages::Frame::new(&h, &ctx, None),
                &recs,
                &q.user.unwrap_or_default(),
                &q.object.unwrap_or_default(),
            ))
            .into_response()
        }
        Err(e) => internal(e),
    }
}

async fn users_page(State(h): State<Hmi>, headers: HeaderMap, Query(m): Query<Msg>) -> Response {
    let ctx = match h.auth(&headers, Permission::ManageUsers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    match h.0.users.list(&ctx.actor) {
        Ok(list) => Html(pages::users(
            &pages::Frame::new(&h, &ctx, m.msg.as_deref()),
            &list,
        ))
        .into_response(),
        Err(e) => internal(e),
    }
}

#[derive(Debug, Deserialize)]
struct AddUserForm {
    csrf: String,
    name: String,
    role: String,
    password: String,
    reason: String,
}

async fn user_add(
    State(h): State<Hmi>,
    headers: HeaderMap,
    Form(f): Form<AddUserForm>,
) -> Response {
    let ctx = match h.auth_post(&headers, Permission::ManageUsers, &f.csrf) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Ok(role) = f.role.parse::<Role>() else {
        return refused(
            StatusCode::BAD_REQUEST,
            "User not added",
            &format!("no role {:?}", f.role),
        );
    };
    let users = h.0.users.clone();
    let name = f.name.trim().to_string();
    let n2 = name.clone();
    match tokio::task::spawn_blocking(move || {
        users.add_user(&ctx.actor, &n2, role, &f.password, &f.reason)
    })
    .await
    {
        Ok(Ok(())) => back("/users", &format!("user {name} added")),
        Ok(Err(e)) => refused(StatusCode::BAD_REQUEST, "User not added", &e.to_string()),
        Err(e) => internal(e),
    }
}

#[derive(Debug, Deserialize)]
struct ChangeUserForm {
    csrf: String,
    op: String,
    #[serde(default)]
    role: String,
    reason: String,
}

async fn user_change(
    State(h): State<Hmi>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(f): Form<ChangeUserForm>,
) -> Response {
    let ctx = match h.auth_post(&headers, Permission::ManageUsers, &f.csrf) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let u = &h.0.users;
    let r = match f.op.as_str() {
        "unlock" => u.unlock(&ctx.actor, &name, &f.reason).map(|_| ()),
        "enable" => u.enable(&ctx.actor, &name, &f.reason),
        "disable" => u.disable(&ctx.actor, &name, &f.reason),
        "role" => match f.role.parse::<Role>() {
            Ok(role) => u.set_role(&ctx.actor, &name, role, &f.reason),
            Err(_) => {
                return refused(
                    StatusCode::BAD_REQUEST,
                    "Not changed",
                    &format!("no role {:?}", f.role),
                );
            }
        },
        other => {
            return refused(
                StatusCode::BAD_REQUEST,
                "Not changed",
                &format!("no operation {other:?}"),
            );
        }
    };
    match r {
        Ok(()) => back("/users", &format!("{name}: {} done", f.op)),
        Err(e) => refused(StatusCode::BAD_REQUEST, "Not changed", &e.to_string()),
    }
}

/// Feed the exception store and trends from the pipeline's observer channel until the
/// line drops its sender.
pub fn spawn_observer(
    rx: crossbeam_channel::Receiver<UnitRecord>,
    exceptions: Arc<Exceptions>,
    status: StatusCell,
    clock: Arc<dyn Clock>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("linectl-hmi-observer".into())
        .spawn(move || {
            while let Ok(rec) = rx.recv() {
                let lot = status.snapshot().batch.map(|b| b.lot);
                if let Err(e) = exceptions.observe(&rec, lot, clock.wall_micros()) {
                    tracing::error!(error = %e, unit = rec.unit, "exception not recorded");
                }
            }
        })
}

/// The running HMI server; stops when dropped.
pub struct HmiServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for HmiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HmiServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl HmiServer {
    /// Serve `app` (usually [`Hmi::router`], maybe merged with the API routers) on
    /// `listen` (`host:port`; port 0 picks one) in a thread of its own.
    pub fn start(listen: &str, hmi: &Hmi, app: Router) -> Result<HmiServer, ServeError> {
        let bind = |source| ServeError::Bind {
            addr: listen.to_string(),
            source,
        };
        let listener = std::net::TcpListener::bind(listen).map_err(bind)?;
        let addr = listener.local_addr().map_err(bind)?;
        listener.set_nonblocking(true).map_err(bind)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("linectl-hmi")
            .enable_all()
            .build()
            .map_err(bind)?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("linectl-hmi".into())
            .spawn(move || {
                rt.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!(error = %e, "hmi listener");
                            return;
                        }
                    };
                    let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                        let _ = rx.await;
                    });
                    if let Err(e) = serve.await {
                        tracing::error!(error = %e, "hmi server");
                    }
                });
                rt.shutdown_timeout(Duration::from_secs(2));
            })
            .map_err(bind)?;
        Ok(HmiServer {
            addr,
            stop: hmi.0.stop.clone(),
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for HmiServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The HMI's parts opened from a data directory: the audit trail, the accounts, the
/// exception store and the work-order queue (`<data-dir>/hmi/`).
pub struct HmiParts {
    /// The audit trail.
    pub audit: Arc<AuditTrail>,
    /// The accounts.
    pub users: Arc<Users>,
    /// The exception store.
    pub exceptions: Arc<Exceptions>,
    /// The work-order queue.
    pub orders: Arc<OrderQueue>,
}

impl std::fmt::Debug for HmiParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HmiParts").finish_non_exhaustive()
    }
}

/// Why the HMI's parts could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum HmiOpenError {
    /// The audit trail.
    #[error("audit trail: {0}")]
    Audit(#[from] crate::audit::AuditError),
    /// The accounts.
    #[error("users: {0}")]
    Users(#[from] crate::users::UsersError),
    /// The exception store.
    #[error(transparent)]
    Exceptions(#[from] exceptions::ExceptionError),
    /// The work-order queue.
    #[error("work orders: {0}")]
    Orders(#[from] crate::api::orders::OrderQueueError),
}

impl HmiParts {
    /// Open everything the HMI keeps in `data_dir`.
    pub fn open(
        data_dir: &std::path::Path,
        users_cfg: crate::users::UsersConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<HmiParts, HmiOpenError> {
        let (trail, report) = AuditTrail::open(data_dir, clock.clone())?;
        for n in &report.notices {
            tracing::warn!(notice = %n, "audit trail");
        }
        let audit = Arc::new(trail);
        let users = Arc::new(Users::open(data_dir, users_cfg, clock, audit.clone())?);
        let hmi_dir = data_dir.join("hmi");
        // Reject frames are only read here: the retention bound is the pipeline's.
        let frames = crate::pipeline::frames::FrameStore::new(
            data_dir,
            crate::pipeline::frames::FrameRetention::default(),
        );
        let exceptions = Arc::new(Exceptions::open(&hmi_dir)?.with_frames(frames));
        let orders = Arc::new(OrderQueue::open(&hmi_dir.join("work-orders.json"))?);
        Ok(HmiParts {
            audit,
            users,
            exceptions,
            orders,
        })
    }
}
