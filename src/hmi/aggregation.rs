//! The HMI's aggregation rework pages: `GET /aggregation` lists the cases and pallets
//! held for rework (with every reason), the cases open for rework and a scan field;
//! `GET /aggregation/container?code=CODE` shows a scanned case or pallet (or the one a
//! unit is in) as its tree down to the units, with the forms of the steps its state
//! allows; `POST /aggregation/step` does one step through the daemon's
//! [`AggService`]. Same conventions as every HMI form: a session, the CSRF token, the
//! permission checked on the server, the step audited before it takes effect (by the
//! service), errors shown on a page of their own with nothing changed.
//!
//! Holds: the list shows the open holds (`?resolved=1` adds the resolved ones with who,
//! why and when); `POST /aggregation/hold` resolves one (`action=resolve`) or closes a
//! short hold — the last case of a batch, held with its units and no label yet — as a
//! partial case (`action=partial`: the case station prints and reads back its label,
//! the outcome is shown). Both need a supervisor and a reason and are audited first.
//!
//! Roles (what a line engineer expects at a rework table): operators and supervisors
//! (`packml_command`, the people running the line) open cases, take units out, put
//! units in, re-close a case at its packing level and dissolve a case; closing a case
//! short as a partial case and dissolving a pallet need a supervisor (refusals are
//! audited as `access_denied`). QA and admins look, they do not rework.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use super::pages::{Frame, esc};
use super::{Ctx, Hmi, back, internal, refused};
use crate::aggregation::AggError;
use crate::aggregation::service::{AggService, Step};
use crate::aggregation::show::parse_code;
use crate::aggregation::store::{Child, Container, Level, Status, StoreError};
use crate::audit::{Action, Entry};
use crate::users::{Acting, Permission, Role};

fn service(h: &Hmi) -> Result<Arc<AggService>, Response> {
    h.0.agg.get().cloned().ok_or_else(|| {
        refused(
            StatusCode::NOT_FOUND,
            "No aggregation",
            "this line's profile has no [aggregation] section",
        )
    })
}

/// A rework form's preamble: the session with its CSRF token and the right to command
/// the line, then the aggregation service.
fn posted(h: &Hmi, headers: &HeaderMap, csrf: &str) -> Result<(Ctx, Arc<AggService>), Response> {
    let ctx = h.auth_post(headers, Permission::PackmlCommand, csrf)?;
    Ok((ctx, service(h)?))
}

/// A form the HMI refuses before anything is touched.
fn bad_request(m: &str) -> Response {
    refused(
        StatusCode::BAD_REQUEST,
        "Bad request",
        &format!("{m} — nothing was changed."),
    )
}

#[derive(Debug, Deserialize, Default)]
pub(super) struct ListQuery {
    #[serde(default)]
    msg: Option<String>,
    #[serde(default)]
    resolved: Option<String>,
}

/// `GET /aggregation[?resolved=1]`.
pub(super) async fn list_page(
    State(h): State<Hmi>,
    headers: HeaderMap,
    Query(m): Query<ListQuery>,
) -> Response {
    let with_resolved = m
        .resolved
        .as_deref()
        .is_some_and(|v| v == "1" || v == "true");
    let ctx = match h.auth(&headers, Permission::ViewLine) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let svc = match service(&h) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let r = tokio::task::spawn_blocking(move || {
        let holds = if with_resolved {
            svc.all_holds()?
        } else {
            svc.holds()?
        };
        Ok::<_, AggError>((holds, svc.containers()?, svc.packing()))
    })
    .await;
    let (holds, containers, packing) = match r {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return internal(e),
        Err(e) => return internal(e),
    };
    let f = Frame::new(&h, &ctx, m.msg.as_deref());
    let mut b = String::new();
    b.push_str(
        "<form method=get action=/aggregation/container><label for=code>Scan a case, pallet or unit code</label>\
<input id=code name=code autofocus required><p><button type=submit id=show>Show</button></p></form>",
    );
    let open_n = holds.iter().filter(|h| h.resolved.is_none()).count();
    let _ = write!(b, "<h2>Held for rework ({open_n})</h2>");
    if with_resolved {
        b.push_str("<p><a href=/aggregation>Open holds only</a></p>");
    } else {
        b.push_str("<p><a href=\"/aggregation?resolved=1\" id=show-resolved>Show resolved holds too</a></p>");
    }
    let supervisor = is_supervisor(&ctx);
    if holds.is_empty() {
        b.push_str("<p>None.</p>");
    } else {
        b.push_str("<table id=holds><tr><th>Hold</th><th>Level</th><th>Batch</th><th>SSCC</th><th>Reasons</th><th>Resolution</th></tr>");
        for hd in holds.iter().rev() {
            let sscc = hd.sscc.as_deref().map_or_else(
                || "—".to_string(),
                |s| {
                    format!(
                        "<a href=\"/aggregation/container?code={}\">{}</a>",
                        esc(s),
                        esc(s)
                    )
                },
            );
            let resolution = match &hd.resolved {
                Some(r) => format!(
                    "resolved by {} at {}: {}",
                    esc(&r.by),
                    esc(&wall_time(r.at_us)),
                    esc(&r.why)
                ),
                None if supervisor => hold_forms(&f, hd),
                None => "open (a supervisor resolves it)".to_string(),
            };
            let _ = write!(
                b,
                "<tr id=hold-{}><td>{}</td><td>{}</td><td>{}</td><td>{sscc}</td><td><ul>{}</ul></td><td>{resolution}</td></tr>",
                hd.id,
                hd.id,
                hd.level.name(),
                esc(&hd.batch),
                hd.reasons
                    .iter()
                    .map(|r| format!("<li>{}</li>", esc(r)))
                    .collect::<String>()
            );
        }
        b.push_str("</table>");
    }
    let open: Vec<&Container> = containers
        .iter()
        .filter(|c| c.status == Status::Open)
        .collect();
    let _ = write!(b, "<h2>Open for rework ({})</h2>", open.len());
    if open.is_empty() {
        b.push_str("<p>None.</p>");
    } else {
        b.push_str("<table id=open><tr><th>Case</th><th>Batch</th><th>Units</th></tr>");
        for c in open {
            let _ = write!(
                b,
                "<tr><td><a href=\"/aggregation/container?code={s}\">{s}</a></td><td>{}</td><td>{} of {}</td></tr>",
                esc(&c.batch),
                c.children.len(),
                packing.units_per_case,
                s = esc(&c.sscc)
            );
        }
        b.push_str("</table>");
    }
    let cases = containers.iter().filter(|c| c.level == Level::Case).count();
    let _ = write!(
        b,
        "<p class=sub>{cases} cases and {} pallets aggregated.</p>",
        containers.len() - cases
    );
    Html(f.render("/aggregation", "Aggregation", &b)).into_response()
}

#[derive(Debug, Deserialize, Default)]
pub(super) struct CodeQuery {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    msg: Option<String>,
}

/// `GET /aggregation/container?code=`.
pub(super) async fn container_page(
    State(h): State<Hmi>,
    headers: HeaderMap,
    Query(q): Query<CodeQuery>,
) -> Response {
    let ctx = match h.auth(&headers, Permission::ViewLine) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let svc = match service(&h) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let code = q.code.unwrap_or_default().trim().to_string();
    if code.is_empty() {
        return refused(
            StatusCode::BAD_REQUEST,
            "No code",
            "scan or type a case, pallet or unit code",
        );
    }
    let c2 = code.clone();
    let s2 = svc.clone();
    let r = tokio::task::spawn_blocking(move || {
        Ok::<_, AggError>((s2.show(&c2)?, s2.container_of(&c2)?))
    })
    .await;
    let (tree, container) = match r {
        Ok(Ok((Some(t), c))) => (t, c),
        Ok(Ok((None, _))) => {
            return refused(
                StatusCode::NOT_FOUND,
                "Not found",
                &format!("{code} is no aggregated case or pallet and in none"),
            );
        }
        Ok(Err(e)) => return internal(e),
        Err(e) => return internal(e),
    };
    let f = Frame::new(&h, &ctx, q.msg.as_deref());
    let mut b = format!("<pre id=tree class=card>{}</pre>", esc(&tree));
    let title = match &container {
        Some(c) => {
            b.push_str(&forms(&f, &ctx, c, svc.packing().units_per_case));
            format!(
                "{} {}",
                if c.level == Level::Case {
                    "Case"
                } else {
                    "Pallet"
                },
                c.sscc
            )
        }
        None => "Aggregation".to_string(),
    };
    b.push_str("<p><a class=btn href=/aggregation>Back to aggregation</a></p>");
    Html(f.render("/aggregation", &title, &b)).into_response()
}

fn wall_time(us: u64) -> String {
    crate::epcis::EventTime::from_wall_micros(us, 0)
        .map(|t| t.to_rfc3339())
        .unwrap_or_else(|_| us.to_string())
}

/// The supervisor's forms of an open hold: close a short one as a partial case,
/// resolve any.
fn hold_forms(f: &Frame<'_>, h: &crate::aggregation::store::Hold) -> String {
    let form = |action: &str, label: &str, class: &str| {
        format!(
            "<form method=post action=/aggregation/hold id=hold-{action}-{id}>{}<input type=hidden name=hold value={id}><input type=hidden name=action value={action}><label>Reason</label><input name=reason required><button type=submit class=\"{class}\">{label}</button></form>",
            f.csrf_input(),
            id = h.id
        )
    };
    let mut out = String::new();
    if h.is_short() {
        out.push_str(&form(
            "partial",
            &format!("Close as partial case of {} units", h.children.len()),
            "warn",
        ));
    }
    out.push_str(&form("resolve", "Resolve hold", ""));
    out
}

fn is_supervisor(ctx: &Ctx) -> bool {
    ctx.actor.acting() == Acting::Role(Role::Supervisor)
}

fn forms(f: &Frame<'_>, ctx: &Ctx, c: &Container, per_case: u32) -> String {
    let may = ctx.actor.may(Permission::PackmlCommand);
    if !may {
        return "<p class=sub>Rework needs an operator or supervisor.</p>".into();
    }
    let form = |step: &str, label: &str, class: &str, units: bool| {
        let units = if units {
            "<label>Unit codes, one per line (scan)</label><textarea name=units rows=4 required></textarea>"
        } else {
            ""
        };
        format!(
            "<div class=card><form method=post action=/aggregation/step id=step-{step}>{}<input type=hidden name=sscc value=\"{}\"><input type=hidden name=step value={step}>{units}<label>Reason</label><input name=reason required><p><button type=submit class=\"{class}\">{label}</button></p></form></div>",
            f.csrf_input(),
            esc(&c.sscc)
        )
    };
    let mut b = String::new();
    let mut head = String::new();
    match (c.level, c.status) {
        (Level::Case, Status::Closed) if c.parent.is_none() => {
            b.push_str(&form("open", "Open case for rework", "", false));
            b.push_str(&form("dissolve", "Dissolve case", "danger", false));
        }
        (Level::Case, Status::Closed) => {
            head.push_str("<p class=sub>This case is on a pallet: dissolve the pallet first (supervisor).</p>");
        }
        (Level::Case, Status::Open) => {
            let n = c.children.len();
            let _ = write!(head, "<p class=msg>Open: {n} of {per_case} units.</p>");
            b.push_str(&form("remove", "Take units out", "warn", true));
            b.push_str(&form("add", "Put units in", "", true));
            b.push_str(&form("close", "Re-close case", "", false));
            if is_supervisor(ctx) {
                b.push_str(&form(
                    "partial",
                    "Close as partial case (supervisor)",
                    "warn",
                    false,
                ));
            }
            b.push_str(&form("dissolve", "Dissolve case", "danger", false));
        }
        (Level::Pallet, _) => {
            if is_supervisor(ctx) {
                b.push_str(&form(
                    "dissolve",
                    "Dissolve pallet (supervisor)",
                    "danger",
                    false,
                ));
            } else {
                head.push_str("<p class=sub>Dissolving a pallet needs a supervisor.</p>");
            }
        }
    }
    format!("{head}<div class=cards>{b}</div>")
}

/// The step form; every field optional so a malformed form gets a clear answer.
#[derive(Debug, Deserialize, Default)]
pub(super) struct StepForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    sscc: String,
    #[serde(default)]
    step: String,
    #[serde(default)]
    units: String,
    #[serde(default)]
    reason: String,
}

fn units(lines: &[&str]) -> Result<Vec<Child>, String> {
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match parse_code(line) {
            Some(u @ Child::Unit { .. }) => out.push(u),
            _ => return Err(format!("line {}: {line:?} is not a unit code", i + 1)),
        }
    }
    if out.is_empty() {
        return Err("no unit codes given".into());
    }
    Ok(out)
}

/// Why a rework step was not done (nothing was changed): an HTTP status, a title and
/// the message; the form answers it as a page, the console API as JSON.
struct Refusal {
    status: StatusCode,
    title: &'static str,
    message: String,
}

impl Refusal {
    fn new(status: StatusCode, title: &'static str, message: String) -> Refusal {
        Refusal {
            status,
            title,
            message,
        }
    }

    fn bad(m: &str) -> Refusal {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            "Bad request",
            format!("{m} — nothing was changed."),
        )
    }

    fn page(self) -> Response {
        if self.status == StatusCode::INTERNAL_SERVER_ERROR {
            return internal(self.message);
        }
        refused(self.status, self.title, &self.message)
    }

    fn json(self) -> Response {
        let code = match self.status {
            StatusCode::BAD_REQUEST => "bad_request",
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::CONFLICT => "refused",
            _ => "internal",
        };
        crate::api::ApiError::new(self.status, code, self.message).into_response()
    }
}

fn agg_refusal(e: AggError) -> Refusal {
    let (status, title) = match &e {
        AggError::Usage(m) if m.starts_with("no case") => (StatusCode::NOT_FOUND, "Not found"),
        AggError::Store(StoreError::Unknown(_)) => (StatusCode::NOT_FOUND, "Not found"),
        AggError::Usage(_) | AggError::Store(StoreError::Refused(_)) => {
            (StatusCode::CONFLICT, "Step refused")
        }
        _ => {
            tracing::error!(error = %e, "rework step failed");
            return Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, "Error", e.to_string());
        }
    };
    Refusal::new(status, title, format!("{e} — nothing was changed."))
}

fn join_error(e: tokio::task::JoinError) -> Refusal {
    Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, "Error", e.to_string())
}

/// A rework step as asked (form or console API).
struct StepAsk<'a> {
    sscc: &'a str,
    step: &'a str,
    units: Vec<&'a str>,
    reason: &'a str,
}

/// What a done step reports: the container's level and code, the step, and a message.
struct Done {
    level: Level,
    sscc: String,
    step: Step,
    message: String,
}

/// One rework step by `actor` (a logged-in user who may command the line): the request
/// checked (a container code with its check digit, a reason, a known step, unit
/// codes), the supervisor-only steps refused otherwise (audited `access_denied`), then
/// done by the service (audited first). Shared by the form and the console API.
async fn do_step(
    h: &Hmi,
    svc: &Arc<AggService>,
    actor: &crate::users::Actor,
    ask: StepAsk<'_>,
) -> Result<Done, Refusal> {
    // The container's code, check digits included: a mistyped or misread code is a
    // bad request, not an unknown container.
    let sscc = match crate::gs1::container::ContainerId::parse(ask.sscc) {
        Ok(id) => id.id(),
        Err(e) => {
            return Err(Refusal::bad(&format!(
                "sscc must be the container's 18-digit SSCC (check digit included) or its case GTIN and serial (01)…(21)…: {e}"
            )));
        }
    };
    let reason = ask.reason.trim().to_string();
    if reason.is_empty() {
        return Err(Refusal::bad("a reason is required"));
    }
    let step = match ask.step {
        "open" => Step::Open,
        "close" => Step::Close,
        "partial" => Step::ClosePartial,
        "dissolve" => Step::Dissolve,
        "remove" | "add" => match units(&ask.units) {
            Ok(u) if ask.step == "remove" => Step::Remove(u),
            Ok(u) => Step::Add(u),
            Err(m) => return Err(Refusal::bad(&m)),
        },
        other => return Err(Refusal::bad(&format!("unknown step {other:?}"))),
    };
    // Supervisor-only steps.
    let s2 = svc.clone();
    let sc = sscc.clone();
    let level = match tokio::task::spawn_blocking(move || s2.store().container(&sc)).await {
        Ok(Ok(Some(c))) => c.level,
        Ok(Ok(None)) => {
            return Err(Refusal::new(
                StatusCode::NOT_FOUND,
                "Not found",
                format!("no case or pallet {sscc} — nothing was changed."),
            ));
        }
        Ok(Err(e)) => return Err(agg_refusal(e.into())),
        Err(e) => return Err(join_error(e)),
    };
    let needs_supervisor = match &step {
        Step::ClosePartial => Some("closing a partial case"),
        Step::Dissolve if level == Level::Pallet => Some("dissolving a pallet"),
        _ => None,
    };
    if let Some(what) = needs_supervisor
        && actor.acting() != Acting::Role(Role::Supervisor)
    {
        h.0.audit
            .append(
                Entry::new(
                    actor.audit_actor(),
                    Action::AccessDenied,
                    format!("{}:{sscc}", level.name()),
                )
                .detail(format!("{what} needs a supervisor")),
            )
            .map_err(|e| Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, "Error", e.to_string()))?;
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "Not permitted",
            format!("{what} needs a supervisor — nothing was changed."),
        ));
    }
    let audit_actor = actor.audit_actor();
    let s2 = svc.clone();
    let (sc, st, rs) = (sscc.clone(), step.clone(), reason.clone());
    let c = match tokio::task::spawn_blocking(move || s2.apply(&audit_actor, &sc, &st, &rs)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Err(agg_refusal(e)),
        Err(e) => return Err(join_error(e)),
    };
    let what = match &step {
        Step::Open => "opened".to_string(),
        Step::Close => "closed".to_string(),
        Step::ClosePartial => {
            format!("closed as a partial case of {} units", c.children.len())
        }
        Step::Remove(u) => format!("{} units taken out", u.len()),
        Step::Add(u) => format!("{} units put in", u.len()),
        Step::Dissolve => "dissolved".to_string(),
    };
    Ok(Done {
        level,
        message: format!("{} {sscc} {what}", level.name()),
        sscc,
        step,
    })
}

/// `POST /aggregation/step`.
pub(super) async fn step(
    State(h): State<Hmi>,
    headers: HeaderMap,
    Form(f): Form<StepForm>,
) -> Response {
    let (ctx, svc) = match posted(&h, &headers, &f.csrf) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let ask = StepAsk {
        sscc: &f.sscc,
        step: &f.step,
        units: f.units.lines().collect(),
        reason: &f.reason,
    };
    match do_step(&h, &svc, &ctx.actor, ask).await {
        Ok(d) if d.step == Step::Dissolve => back("/aggregation", &d.message),
        Ok(d) => back_to(&d.sscc, &d.message),
        Err(r) => r.page(),
    }
}

/// The console's rework request (`linectl agg open|swap|close|dissolve` while the
/// daemon runs).
#[derive(Debug, Deserialize, Default)]
pub(super) struct ConsoleStep {
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    sscc: String,
    #[serde(default)]
    step: String,
    #[serde(default)]
    units: Vec<String>,
    #[serde(default)]
    reason: String,
}

/// `POST /api/v1/agg/rework`: one rework step from the console of the line PC. It needs
/// the daemon's local token (`Authorization: Bearer`, from `<data>/hmi/agg-api.json`,
/// readable by the daemon's OS user only) and an HMI user's name and password: the user
/// logs in (failures count towards the lock-out, as at the HMI), must hold the right to
/// command the line, and the step runs exactly as the HMI's form does (supervisor-only
/// steps refused and audited `access_denied`, the step audited first); the session
/// ends with the request. Answers `{"message", "sscc", "level", "tree"}` or the APIs'
/// JSON error (`400`, `401`, `403`, `404`, `409`, `500`), nothing changed on an error.
pub(super) async fn console_step(
    State(h): State<Hmi>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some(token) = h.0.agg_token.get() else {
        return Refusal::new(
            StatusCode::NOT_FOUND,
            "Not found",
            "this daemon runs no aggregation".into(),
        )
        .json();
    };
    if let Err(e) = crate::api::authorize(std::slice::from_ref(token), &headers) {
        return e.into_response();
    }
    let ask: ConsoleStep = match serde_json::from_slice(&body) {
        Ok(a) => a,
        Err(e) => {
            return Refusal::bad(&format!("the request is not a rework step: {e}")).json();
        }
    };
    let svc = match h.0.agg.get().cloned() {
        Some(s) => s,
        None => {
            return Refusal::new(
                StatusCode::NOT_FOUND,
                "Not found",
                "this daemon runs no aggregation".into(),
            )
            .json();
        }
    };
    if ask.user.trim().is_empty() || ask.password.is_empty() {
        return Refusal::new(
            StatusCode::UNAUTHORIZED,
            "Not logged in",
            "a rework step needs an HMI user's name and password".into(),
        )
        .json();
    }
    let users = h.0.users.clone();
    let (name, pw) = (ask.user.clone(), ask.password.clone());
    let session = match tokio::task::spawn_blocking(move || users.login(&name, &pw)).await {
        Ok(Ok(s)) => s,
        Ok(Err(crate::users::LoginError::Internal(e))) => {
            return Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, "Error", e.to_string()).json();
        }
        Ok(Err(e)) => {
            return Refusal::new(StatusCode::UNAUTHORIZED, "Not logged in", e.to_string()).json();
        }
        Err(e) => return join_error(e).json(),
    };
    let r = match h
        .0
        .users
        .authorize(&session.token, Permission::PackmlCommand)
    {
        Ok(actor) => {
            let step = StepAsk {
                sscc: &ask.sscc,
                step: &ask.step,
                units: ask.units.iter().map(String::as_str).collect(),
                reason: &ask.reason,
            };
            do_step(&h, &svc, &actor, step).await
        }
        Err(crate::users::AuthError::Forbidden { role, permission }) => Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "Not permitted",
            format!("role {role} may not {permission} — nothing was changed."),
        )),
        Err(e) => Err(Refusal::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Error",
            e.to_string(),
        )),
    };
    if let Err(e) = h.0.users.logout(&session.token) {
        tracing::warn!(error = %e, "console rework session not ended cleanly");
    }
    match r {
        Ok(d) => {
            let svc2 = svc.clone();
            let code = d.sscc.clone();
            let tree = tokio::task::spawn_blocking(move || svc2.show(&code))
                .await
                .ok()
                .and_then(Result::ok)
                .flatten();
            axum::Json(serde_json::json!({
                "message": d.message,
                "sscc": d.sscc,
                "level": d.level.name(),
                "tree": tree,
            }))
            .into_response()
        }
        Err(r) => r.json(),
    }
}

fn back_to(sscc: &str, msg: &str) -> Response {
    let q = super::form_urlencoded_encode(msg);
    let code = super::form_urlencoded_encode(sscc);
    axum::response::Redirect::to(&format!("/aggregation/container?code={code}&msg={q}"))
        .into_response()
}

/// The hold form.
#[derive(Debug, Deserialize, Default)]
pub(super) struct HoldForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    hold: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    reason: String,
}

/// `POST /aggregation/hold`: resolve a hold, or close a short one as a partial case.
pub(super) async fn hold_action(
    State(h): State<Hmi>,
    headers: HeaderMap,
    Form(f): Form<HoldForm>,
) -> Response {
    let (ctx, svc) = match posted(&h, &headers, &f.csrf) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Ok(id) = f.hold.trim().parse::<u64>() else {
        return bad_request("hold must be a hold number");
    };
    let reason = f.reason.trim().to_string();
    if reason.is_empty() {
        return bad_request("a reason is required");
    }
    let what = match f.action.as_str() {
        "resolve" => "resolving a hold",
        "partial" => "closing a partial case",
        other => return bad_request(&format!("unknown action {other:?}")),
    };
    if !is_supervisor(&ctx) {
        if let Err(r) = h.append(
            Entry::new(
                ctx.actor.audit_actor(),
                Action::AccessDenied,
                format!("hold:{id}"),
            )
            .detail(format!("{what} needs a supervisor")),
        ) {
            return r;
        }
        return refused(
            StatusCode::FORBIDDEN,
            "Not permitted",
            &format!("{what} needs a supervisor — nothing was changed."),
        );
    }
    let actor = ctx.actor.audit_actor();
    let partial = f.action == "partial";
    let r = tokio::task::spawn_blocking(move || {
        if partial {
            svc.close_short(&actor, id, &reason).map(|(c, frame)| {
                format!(
                    "hold {id} closed as a partial case of {} units: label {} read back from frame {frame}",
                    c.children.len(),
                    c.sscc
                )
            })
        } else {
            svc.resolve_hold(&actor, id, &reason)
                .map(|_| format!("hold {id} resolved"))
        }
    })
    .await;
    match r {
        Ok(Ok(msg)) => back("/aggregation", &msg),
        Ok(Err(e)) => match &e {
            AggError::Usage(m) if m.starts_with("no hold") => refused(
                StatusCode::NOT_FOUND,
                "Not found",
                &format!("{e} — nothing was changed."),
            ),
            AggError::Usage(_) | AggError::Store(StoreError::Refused(_)) => {
                refused(StatusCode::CONFLICT, "Refused", &format!("{e}"))
            }
            _ => internal(e),
        },
        Err(e) => internal(e),
    }
}
