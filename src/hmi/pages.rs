//! HTML of the HMI's pages: plain server-rendered markup with large touch targets and
//! no hover-only controls, a few lines of JavaScript for the live overview (SSE). It
//! owns presentation only; handlers decide what is shown and who may see it.

use std::fmt::Write as _;

use super::exceptions::{Exception, TrendBucket};
use super::{Ctx, Hmi, HmiConfig};
use crate::api::orders::WorkOrder;
use crate::audit::Record;
use crate::audit::time::format_utc;
use crate::pipeline::LineStatus;
use crate::serve::gauges::{OpsGauges, PoolForecast};
use crate::users::{Permission, Role, UserInfo};

/// Escape text for HTML content and attribute values.
pub(crate) fn esc(s: &str) -> String {
    crate::report::html::esc(s)
}

const CSS: &str = r#"
*{box-sizing:border-box}body{margin:0;font:18px/1.4 system-ui,sans-serif;background:#f2f4f7;color:#111}
header{display:flex;flex-wrap:wrap;align-items:center;gap:8px;background:#12314f;color:#fff;padding:8px 12px}
header .id{font-weight:700;margin-right:12px}header a,header button{color:#fff;background:#24507a;border:0;border-radius:8px;
padding:14px 18px;min-height:56px;font-size:18px;text-decoration:none;display:inline-flex;align-items:center}
header a.on{background:#3d7cc0}header form{margin-left:auto}main{padding:16px;max-width:1200px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(220px,1fr));gap:12px}
.card{background:#fff;border-radius:10px;padding:14px;box-shadow:0 1px 3px #0002}.card .v{font-size:34px;font-weight:700}
.state{font-size:40px;font-weight:800}.ok{color:#0a7a2f}.bad{color:#b00020}
button,.btn{min-height:56px;min-width:120px;font-size:20px;border-radius:10px;border:0;background:#24507a;color:#fff;padding:10px 18px;margin:4px}
button.warn{background:#b05a00}button.danger{background:#b00020}
input,select,textarea{font-size:20px;min-height:52px;padding:8px;border:1px solid #889;border-radius:8px;width:100%;max-width:420px}
label{display:block;margin:10px 0 4px;font-weight:600}table{border-collapse:collapse;width:100%;background:#fff}
td,th{border-bottom:1px solid #ddd;padding:10px;text-align:left;vertical-align:top}.msg{background:#fff6d5;padding:12px;border-radius:8px;margin-bottom:12px}
.card.low{background:#fde8ea;outline:4px solid #b00020}.sub{font-size:16px}
.bar{display:inline-block;height:18px;background:#b00020}.barp{display:inline-block;height:18px;background:#0a7a2f}
"#;

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content=\"width=device-width,initial-scale=1\"><title>{} — linectl</title><style>{CSS}</style></head><body>{body}</body></html>",
        esc(title)
    )
}

/// A bare message page.
pub(crate) fn message(title: &str, msg: &str) -> String {
    page(
        title,
        &format!(
            "<main><h1>{}</h1><p class=msg id=error>{}</p><p><a class=btn href=\"javascript:history.back()\">Back</a> <a class=btn href=\"/\">Overview</a></p></main>",
            esc(title),
            esc(msg)
        ),
    )
}

/// The login page.
pub(crate) fn login(note: Option<&str>) -> String {
    let n = note
        .map(|n| format!("<p class=msg id=error>{}</p>", esc(n)))
        .unwrap_or_default();
    page(
        "Log in",
        &format!(
            "<header><span class=id>linectl</span></header><main><h1>Log in</h1>{n}<form method=post action=/login>\
<label for=user>User</label><input id=user name=user autocomplete=username required autofocus>\
<label for=password>Password</label><input id=password name=password type=password autocomplete=current-password required>\
<p><button type=submit id=login>Log in</button></p></form></main>"
        ),
    )
}

/// What every logged-in page shares.
pub(crate) struct Frame<'a> {
    line_id: &'a str,
    user: String,
    role: &'static str,
    csrf: String,
    msg: Option<String>,
    may_audit: bool,
    may_users: bool,
    may_agg: bool,
}

impl<'a> Frame<'a> {
    pub(crate) fn new(h: &'a Hmi, ctx: &Ctx, msg: Option<&str>) -> Frame<'a> {
        Frame {
            line_id: &h.0.cfg.line_id,
            user: ctx.actor.user().to_string(),
            role: ctx.actor.role_name(),
            csrf: ctx.csrf.clone(),
            msg: msg.map(str::to_string),
            may_audit: ctx.actor.may(Permission::ViewAudit),
            may_users: ctx.actor.may(Permission::ManageUsers),
            may_agg: h.0.agg.get().is_some(),
        }
    }

    pub(crate) fn csrf_input(&self) -> String {
        format!(
            "<input type=hidden name=csrf value=\"{}\">",
            esc(&self.csrf)
        )
    }

    pub(crate) fn render(&self, active: &str, title: &str, body: &str) -> String {
        let mut nav = String::new();
        let mut items = vec![
            ("/", "Overview"),
            ("/batch", "Batch"),
            ("/exceptions", "Exceptions"),
            ("/trends", "Trends"),
        ];
        if self.may_agg {
            items.push(("/aggregation", "Aggregation"));
        }
        if self.may_audit {
            items.push(("/audit", "Audit trail"));
        }
        if self.may_users {
            items.push(("/users", "Users"));
        }
        for (href, name) in items {
            let on = if href == active { " class=on" } else { "" };
            let _ = write!(nav, "<a href=\"{href}\"{on}>{name}</a>");
        }
        let msg = self
            .msg
            .as_ref()
            .map(|m| format!("<p class=msg id=flash>{}</p>", esc(m)))
            .unwrap_or_default();
        page(
            title,
            &format!(
                "<header><span class=id>{}</span>{nav}<form method=post action=/logout>{}<button type=submit id=logout>{} ({}) — Log out</button></form></header><main><h1>{}</h1>{msg}{body}</main>",
                esc(self.line_id),
                self.csrf_input(),
                esc(&self.user),
                self.role,
                esc(title)
            ),
        )
    }
}

fn link(ok: bool) -> &'static str {
    if ok {
        "<span class=ok>connected</span>"
    } else {
        "<span class=bad>down</span>"
    }
}

/// The line overview.
pub(crate) fn overview(
    f: &Frame<'_>,
    s: &LineStatus,
    open: usize,
    uplink: Option<(u64, String)>,
    ops: Option<&OpsGauges>,
) -> String {
    let (backlog, up_state) = match &uplink {
        Some((n, st)) => (n.to_string(), esc(st)),
        None => ("—".to_string(), "no uplink configured".to_string()),
    };
    let oldest = ops
        .and_then(|o| o.upload.as_ref())
        .and_then(|u| u.oldest_age_seconds)
        .map(|a| format!("oldest waiting {}", duration_text(a)))
        .unwrap_or_default();
    let fc = ops.and_then(|o| o.forecast.as_ref());
    let (pool_class, forecast_html) = forecast_parts(fc);
    // The rate the forecast measured (last minute), else the page's own estimate.
    let rate = fc
        .map(|f| format!("{:.0}", f.rate_per_min))
        .unwrap_or_else(|| "—".into());
    let rejected: u64 = s.rejected.values().sum();
    let mut rej = String::new();
    for (k, v) in &s.rejected {
        let _ = write!(rej, "<tr><td>{}</td><td>{v}</td></tr>", esc(k));
    }
    let batch = s
        .batch
        .as_ref()
        .map(|b| {
            format!(
                "{} (exp {}, {} units)",
                esc(&b.lot),
                esc(&b.expiry),
                b.quantity
            )
        })
        .unwrap_or_else(|| "—".into());
    let stop = s
        .stop_reason
        .as_ref()
        .map(|r| esc(&r.message))
        .unwrap_or_default();
    let body = format!(
        "<div class=cards>\
<div class=card><div>PackML state</div><div class=state id=state>{}</div><div id=stop_reason class=bad>{stop}</div></div>\
<div class=card><div>Batch</div><div class=v id=batch style=\"font-size:22px\">{batch}</div></div>\
<div class=card><div>Rate (units/min)</div><div class=v id=rate>{rate}</div></div>\
<div class=card><div>Inspected</div><div class=v id=inspected>{}</div></div>\
<div class=card><div>Passed</div><div class=\"v ok\" id=passed>{}</div></div>\
<div class=card><div>Rejected</div><div class=\"v bad\" id=rejected>{rejected}</div></div>\
<div class=card><div>Commissioned</div><div class=v id=commissioned>{}</div></div>\
<div class=card><div>Journaled (uplink source)</div><div class=v id=journaled>{}</div></div>\
<div class=card><div>Uplink backlog (events)</div><div class=v id=uplink_backlog>{backlog}</div><div id=uplink_state>{up_state}</div><div class=sub id=uplink_oldest>{oldest}</div></div>\
<div class={pool_class} id=pool_card><div>Serial pool</div><div class=v id=pool>{}</div>{forecast_html}</div>\
<div class=card><div>Open exceptions</div><div class=v id=open_exceptions>{open}</div><a class=btn href=/exceptions>Review</a></div>\
<div class=card><div>Devices</div><div>PLC: <b id=link_plc>{}</b></div><div>Printer: <b id=link_printer>{}</b></div><div>Camera: <b id=link_camera>{}</b></div></div>\
</div><h2>Rejects by reason</h2><table id=rejects><tr><th>Reason</th><th>Units</th></tr>{rej}</table>\
<p><small id=live>live updates: connecting…</small></p>\
<script>
(function(){{var last=null;var es=new EventSource('/live');
function dur(x){{x=Math.round(x);var h=Math.floor(x/3600),m=Math.floor(x%3600/60),sec=x%60;return h>0?h+' h '+m+' min':(m>0?m+' min '+sec+' s':sec+' s');}}
function t(id,v){{var e=document.getElementById(id);if(e)e.textContent=v;}}
function l(id,ok){{var e=document.getElementById(id);if(e){{e.textContent=ok?'connected':'down';e.className=ok?'ok':'bad';}}}}
es.addEventListener('status',function(m){{var s=JSON.parse(m.data);t('state',s.state);
t('stop_reason',s.stop_reason?s.stop_reason.message:'');t('inspected',s.inspected);t('passed',s.passed);
var r=0,rows='<tr><th>Reason</th><th>Units</th></tr>';for(var k in s.rejected){{r+=s.rejected[k];rows+='<tr><td></td><td>'+s.rejected[k]+'</td></tr>';}}
t('rejected',r);var tb=document.getElementById('rejects');tb.innerHTML=rows;var i=1;for(var k2 in s.rejected){{tb.rows[i++].cells[0].textContent=k2;}}
t('commissioned',s.commissioned);t('journaled',s.journaled);t('pool',s.pool_available==null?'—':s.pool_available);
t('open_exceptions',s.open_exceptions);if(s.uplink_backlog!=null){{t('uplink_backlog',s.uplink_backlog);t('uplink_state',s.uplink_state);}}
var up=s.ops&&s.ops.upload;t('uplink_oldest',up&&up.oldest_age_seconds!=null?'oldest waiting '+dur(up.oldest_age_seconds):'');
var fc=s.ops&&s.ops.forecast;if(fc){{t('pool_forecast',fc.seconds_left==null?'line not producing':'empty in '+dur(fc.seconds_left)+' at '+Math.round(fc.rate_per_min)+'/min');
t('pool_covers',fc.covers_batch?'covers the batch ('+fc.batch_remaining+' to go)':'short '+fc.shortfall+' for the batch ('+fc.batch_remaining+' to go)');
var pc=document.getElementById('pool_covers');if(pc)pc.className='sub '+(fc.covers_batch?'ok':'bad');
t('pool_low',fc.below_low_water?'below low water ('+fc.low_water+')':(fc.alarm?'runs dry before the batch ends':''));
var pk=document.getElementById('pool_card');if(pk)pk.className=(fc.below_low_water||fc.alarm)?'card low':'card';}}t('batch',s.batch?(s.batch.lot+' (exp '+s.batch.expiry+', '+s.batch.quantity+' units)'):'—');
l('link_plc',s.links.plc);l('link_printer',s.links.printer);l('link_camera',s.links.camera);
var now=Date.now();if(fc&&fc.rate_per_min!=null){{t('rate',Math.round(fc.rate_per_min));}}else if(last){{var dt=(now-last.t)/60000;if(dt>0)t('rate',Math.round((s.inspected-last.n)/dt));}}last={{t:now,n:s.inspected}};
t('live','live updates: '+new Date().toLocaleTimeString());}});
es.onerror=function(){{t('live','live updates: reconnecting…');}};}})();
</script>",
        esc(&s.state),
        s.inspected,
        s.passed,
        s.commissioned,
        s.journaled,
        s.pool_available.map_or("—".to_string(), |p| p.to_string()),
        link(s.links.plc),
        link(s.links.printer),
        link(s.links.camera),
    );
    f.render("/", "Line overview", &body)
}

/// `3 h 20 min`, `4 min 10 s`, `12 s` (the overview's script formats the same way).
pub(crate) fn duration_text(secs: f64) -> String {
    let x = if secs.is_finite() && secs > 0.0 {
        secs.round() as u64
    } else {
        0
    };
    let (h, m, s) = (x / 3600, x % 3600 / 60, x % 60);
    if h > 0 {
        format!("{h} h {m} min")
    } else if m > 0 {
        format!("{m} min {s} s")
    } else {
        format!("{s} s")
    }
}

/// The pool card's class and forecast lines (time to empty, batch coverage, low water).
fn forecast_parts(fc: Option<&PoolForecast>) -> (&'static str, String) {
    let Some(fc) = fc else {
        return (
            "card",
            "<div class=sub id=pool_forecast>forecast: pool level not known yet</div><div class=sub id=pool_covers></div><div class=\"sub bad\" id=pool_low></div>".into(),
        );
    };
    let empty = match fc.seconds_left {
        Some(s) => format!(
            "empty in {} at {}/min",
            duration_text(s),
            fc.rate_per_min.round()
        ),
        None => "line not producing".into(),
    };
    let covers = if fc.covers_batch {
        format!(
            "<div class=\"sub ok\" id=pool_covers>covers the batch ({} to go)</div>",
            fc.batch_remaining
        )
    } else {
        format!(
            "<div class=\"sub bad\" id=pool_covers>short {} for the batch ({} to go)</div>",
            fc.shortfall, fc.batch_remaining
        )
    };
    let low = if fc.below_low_water {
        format!("below low water ({})", fc.low_water)
    } else if fc.alarm {
        "runs dry before the batch ends".into()
    } else {
        String::new()
    };
    let class = if fc.below_low_water || fc.alarm {
        "\"card low\""
    } else {
        "card"
    };
    (
        class,
        format!(
            "<div class=sub id=pool_forecast>{empty}</div>{covers}<div class=\"sub bad\" id=pool_low>{low}</div>"
        ),
    )
}

/// Batch setup and PackML commands.
pub(crate) fn batch(
    f: &Frame<'_>,
    cfg: &HmiConfig,
    s: &LineStatus,
    orders: &[WorkOrder],
) -> String {
    let c = f.csrf_input();
    let devices_ready = s.links.plc && s.links.printer && s.links.camera;
    let idle = s.state == "Idle";
    let check = |ok: bool, what: &str| {
        format!(
            "<li class={}>{} {}</li>",
            if ok { "ok" } else { "bad" },
            if ok { "✔" } else { "✘" },
            esc(what)
        )
    };
    let pool = s
        .pool_available
        .map_or("unknown".to_string(), |p| p.to_string());
    let mut body = format!(
        "<h2>Start checks</h2><ul id=checks>{}{}<li>Serials available in the pool: <b id=pool>{pool}</b> (the line checks coverage of the quantity when the batch starts)</li></ul>",
        check(idle, &format!("line is Idle (now {})", s.state)),
        check(devices_ready, "PLC, printer and camera connected"),
    );
    let _ = write!(body, "<h2>Work orders</h2>");
    if orders.is_empty() {
        body.push_str("<p>No work orders queued.</p>");
    } else {
        body.push_str("<table id=orders><tr><th>Order</th><th>Product</th><th>Batch</th><th>Expiry</th><th>Quantity</th></tr>");
        for o in orders {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&o.order_id),
                esc(&o.product),
                esc(&o.batch),
                esc(&o.expiry),
                o.quantity
            );
        }
        let _ = write!(
            body,
            "</table><form method=post action=/batch/start-order>{c}<button type=submit id=start-order>Start next work order</button></form>"
        );
    }
    let _ = write!(
        body,
        "<h2>Batch by hand</h2><form method=post action=/batch/start id=batch-form>{c}\
<label>Product</label><div>{} — GTIN {}</div>\
<label for=lot>Batch / lot</label><input id=lot name=lot required maxlength=20>\
<label for=expiry>Expiry (YYMMDD)</label><input id=expiry name=expiry required pattern=\"[0-9]{{6}}\" inputmode=numeric>\
<label for=quantity>Quantity</label><input id=quantity name=quantity required inputmode=numeric value=100>\
<p><button type=submit id=start>Start batch</button></p></form>",
        esc(&cfg.product_name),
        esc(&cfg.gtin)
    );
    body.push_str("<h2>PackML commands</h2><div id=commands>");
    for (cmd, label, class) in [
        ("reset", "Reset", ""),
        ("hold", "Hold", "warn"),
        ("unhold", "Unhold", ""),
        ("stop", "Stop", "warn"),
        ("abort", "Abort", "danger"),
        ("clear", "Clear", ""),
    ] {
        let _ = write!(
            body,
            "<form method=post action=/command style=\"display:inline\">{c}<input type=hidden name=cmd value={cmd}><button type=submit class=\"{class}\" id=cmd-{cmd}>{label}</button></form>"
        );
    }
    body.push_str("</div>");
    f.render("/batch", "Batch setup", &body)
}

/// The exception queue.
pub(crate) fn exceptions(f: &Frame<'_>, list: &[Exception], need_sign: bool) -> String {
    let c = f.csrf_input();
    let mut body = String::from(
        "<table id=exceptions><tr><th>#</th><th>Time</th><th>Unit</th><th>Reason</th><th>Expected serial</th><th>What was seen</th><th>Frame</th><th>Grade</th><th>Status</th></tr>",
    );
    if list.is_empty() {
        body.push_str("<tr><td colspan=9>No exceptions.</td></tr>");
    }
    let req = if need_sign { " required" } else { "" };
    for e in list {
        let status = match &e.resolution {
            Some(r) => format!(
                "resolved by {} {}: {}{}",
                esc(&r.by),
                format_utc(r.time_us),
                esc(&r.reason),
                r.signed_by
                    .as_ref()
                    .map(|s| format!(" (signed: {})", esc(s)))
                    .unwrap_or_default()
            ),
            None => format!(
                "<form method=post action=/exceptions/{}/resolve class=resolve>{c}\
<label for=reason-{0}>Reason</label><textarea id=reason-{0} name=reason required rows=2></textarea>\
<details{}><summary style=\"min-height:44px\">Second person e-signature{}</summary>\
<label for=signer-{0}>Signer</label><input id=signer-{0} name=signer{req}>\
<label for=signpw-{0}>Signer password</label><input id=signpw-{0} name=signer_password type=password{req}></details>\
<button type=submit id=resolve-{0}>Resolve</button></form>",
                e.id,
                if need_sign { " open" } else { "" },
                if need_sign {
                    " (required)"
                } else {
                    " (optional)"
                },
            ),
        };
        // The camera frame next to decoded vs expected content.
        let frame = if e.frame.is_some() {
            format!(
                "<a href=/exceptions/{0}/frame><img id=frame-{0} src=/exceptions/{0}/frame alt=\"camera frame of unit {1}\" width=160 loading=lazy></a>",
                e.id, e.unit
            )
        } else {
            "—".to_string()
        };
        let _ = write!(
            body,
            "<tr id=exception-{}><td>{0}</td><td>{}</td><td>{}</td><td><b>{}</b></td><td>{}</td><td>{}</td><td>{frame}</td><td>{}</td><td>{status}</td></tr>",
            e.id,
            format_utc(e.time_us),
            e.unit,
            esc(&e.reason),
            esc(e.serial.as_deref().unwrap_or("—")),
            esc(&e.detail),
            e.grade.map_or("—".to_string(), |g| g.to_string()),
        );
    }
    body.push_str("</table>");
    f.render("/exceptions", "Exceptions", &body)
}

/// Rejects by reason and grade per minute.
pub(crate) fn trends(f: &Frame<'_>, t: &[TrendBucket]) -> String {
    let mut body = String::from(
        "<p>Outcomes per minute and batch of this line's product (newest first): a rising share of rejects or falling grades shows a worn printhead before it stops the line.</p>\
<table id=trends><tr><th>Minute (UTC)</th><th>Batch</th><th>Passed</th><th>Rejected by reason</th><th>Grades</th><th>Reject share</th></tr>",
    );
    if t.is_empty() {
        body.push_str("<tr><td colspan=6>No units yet.</td></tr>");
    }
    for b in t.iter().rev() {
        let rej: u64 = b.rejected.values().sum();
        let total = b.passed + rej;
        let share = if total == 0 {
            0.0
        } else {
            rej as f64 * 100.0 / total as f64
        };
        let reasons: Vec<String> = b
            .rejected
            .iter()
            .map(|(k, v)| format!("{}: {v}", esc(k)))
            .collect();
        let grades: Vec<String> = b.grades.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><span class=bar style=\"width:{}px\"></span> {share:.1}%</td></tr>",
            format_utc(b.minute_us).get(..16).unwrap_or(""),
            esc(b.lot.as_deref().unwrap_or("—")),
            b.passed,
            reasons.join(", "),
            grades.join(", "),
            (share * 3.0).round() as u64,
        );
    }
    body.push_str("</table>");
    f.render("/trends", "Trends", &body)
}

/// The audit trail (newest first).
pub(crate) fn audit(f: &Frame<'_>, recs: &[Record], user: &str, object: &str) -> String {
    let mut body = format!(
        "<form method=get action=/audit><label for=user>User</label><input id=user name=user value=\"{}\">\
<label for=object>Object starts with</label><input id=object name=object value=\"{}\" placeholder=\"batch: exception: user:\">\
<p><button type=submit>Filter</button></p></form>\
<table id=audit><tr><th>#</th><th>When (UTC)</th><th>Who</th><th>What</th><th>Object</th><th>Why</th><th>Old → new</th><th>Signed</th></tr>",
        esc(user),
        esc(object)
    );
    for r in recs {
        let change = match (&r.old_value, &r.new_value) {
            (None, None) => String::new(),
            (o, n) => format!(
                "{} → {}",
                esc(o.as_deref().unwrap_or("—")),
                esc(n.as_deref().unwrap_or("—"))
            ),
        };
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{} ({})</td><td>{}<br><small>{}</small></td><td>{}</td><td>{}</td><td>{change}</td><td>{}</td></tr>",
            r.seq,
            format_utc(r.time_us),
            esc(&r.user),
            esc(&r.role),
            esc(r.action.as_str()),
            esc(&r.detail),
            esc(&r.object),
            esc(&r.reason),
            r.signature
                .as_ref()
                .map(|s| format!(
                    "{} ({}, {})",
                    esc(&s.signer),
                    esc(&s.signer_role),
                    s.meaning.as_str()
                ))
                .unwrap_or_default(),
        );
    }
    body.push_str("</table>");
    f.render("/audit", "Audit trail", &body)
}

/// User administration.
pub(crate) fn users(f: &Frame<'_>, list: &[UserInfo]) -> String {
    let c = f.csrf_input();
    let roles = |sel: Option<Role>| {
        Role::ALL
            .iter()
            .map(|r| {
                let s = if Some(*r) == sel { " selected" } else { "" };
                format!("<option value={}{s}>{}</option>", r.as_str(), r.as_str())
            })
            .collect::<String>()
    };
    let mut body = String::from(
        "<table id=users><tr><th>User</th><th>Role</th><th>Status</th><th>Failed logins</th><th>Change (reason required)</th></tr>",
    );
    for u in list {
        let status = if !u.enabled {
            "disabled".to_string()
        } else if let Some(l) = &u.locked {
            format!("<span class=bad>locked {}</span>", esc(&format!("{l:?}")))
        } else {
            "active".to_string()
        };
        let n = esc(&u.name);
        let _ = write!(
            body,
            "<tr id=user-{n}><td>{n}</td><td>{}</td><td>{status}</td><td>{}</td><td><form method=post action=\"/users/{n}/change\">{c}\
<select name=op><option value=role>set role</option><option value=unlock>unlock</option><option value=enable>enable</option><option value=disable>disable</option></select>\
<select name=role>{}</select><input name=reason placeholder=reason required><button type=submit>Apply</button></form></td></tr>",
            u.role.as_str(),
            u.failed_logins,
            roles(Some(u.role)),
        );
    }
    let _ = write!(
        body,
        "</table><h2>Add a user</h2><form method=post action=/users/add>{c}\
<label for=name>Name</label><input id=name name=name required>\
<label for=role>Role</label><select id=role name=role>{}</select>\
<label for=password>Initial password</label><input id=password name=password type=password required>\
<label for=reason>Reason</label><input id=reason name=reason required>\
<p><button type=submit>Add user</button></p></form>",
        roles(None)
    );
    f.render("/users", "Users", &body)
}
