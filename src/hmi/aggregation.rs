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

fn agg_error(e: AggError) -> Response {
    let (code, title) = match &e {
        AggError::Usage(m) if m.starts_with("no case") => (StatusCode::NOT_FOUND, "Not found"),
        AggError::Store(StoreError::Unknown(_)) => (StatusCode::NOT_FOUND, "Not found"),
        AggError::Usage(_) | AggError::Store(StoreError::Refused(_)) => {
            (StatusCode::CONFLICT, "Step refused")
        }
        _ => return internal(e),
    };
    refused(code, title, &format!("{e} — nothing was changed."))
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

fn units(text: &str) -> Result<Vec<Child>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
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
    let sscc = f.sscc.trim().to_string();
    let is_sscc = sscc.len() == 18 && sscc.bytes().all(|b| b.is_ascii_digit());
    let is_case_sgtin = matches!(
        crate::gs1::container::ContainerId::parse(&sscc),
        Ok(crate::gs1::container::ContainerId::Sgtin { .. })
    );
    if !is_sscc && !is_case_sgtin {
        return bad_request(
            "sscc must be the container's 18-digit SSCC or its case GTIN and serial (01)…(21)…",
        );
    }
    let reason = f.reason.trim().to_string();
    if reason.is_empty() {
        return bad_request("a reason is required");
    }
    let step = match f.step.as_str() {
        "open" => Step::Open,
        "close" => Step::Close,
        "partial" => Step::ClosePartial,
        "dissolve" => Step::Dissolve,
        "remove" | "add" => match units(&f.units) {
            Ok(u) if f.step == "remove" => Step::Remove(u),
            Ok(u) => Step::Add(u),
            Err(m) => return bad_request(&m),
        },
        other => return bad_request(&format!("unknown step {other:?}")),
    };
    // Supervisor-only steps.
    let s2 = svc.clone();
    let sc = sscc.clone();
    let level = match tokio::task::spawn_blocking(move || s2.store().container(&sc)).await {
        Ok(Ok(Some(c))) => c.level,
        Ok(Ok(None)) => {
            return refused(
                StatusCode::NOT_FOUND,
                "Not found",
                &format!("no case or pallet {sscc} — nothing was changed."),
            );
        }
        Ok(Err(e)) => return internal(e),
        Err(e) => return internal(e),
    };
    let needs_supervisor = match &step {
        Step::ClosePartial => Some("closing a partial case"),
        Step::Dissolve if level == Level::Pallet => Some("dissolving a pallet"),
        _ => None,
    };
    if let Some(what) = needs_supervisor
        && !is_supervisor(&ctx)
    {
        if let Err(r) = h.append(
            Entry::new(
                ctx.actor.audit_actor(),
                Action::AccessDenied,
                format!("{}:{sscc}", level.name()),
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
    let s2 = svc.clone();
    let (sc, st, rs) = (sscc.clone(), step.clone(), reason.clone());
    match tokio::task::spawn_blocking(move || s2.apply(&actor, &sc, &st, &rs)).await {
        Ok(Ok(c)) => {
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
            let msg = format!("{} {sscc} {what}", level.name());
            if step == Step::Dissolve {
                back("/aggregation", &msg)
            } else {
                back_to(&sscc, &msg)
            }
        }
        Ok(Err(e)) => agg_error(e),
        Err(e) => internal(e),
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
