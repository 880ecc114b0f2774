//! The HMI over real HTTP on loopback, in front of a real line (devices unreachable):
//! every role × every action is allowed or refused with 403 exactly as the permission
//! table says; refusals and actions land in the audit trail; a form without the
//! session's CSRF token is refused and changes nothing; the session cookie is HttpOnly
//! and SameSite=Strict; repeated failed logins lock the account visibly; exceptions
//! are resolved with a reason and an optional second-person e-signature.

mod hmi_support;

use hmi_support::*;
use linectl::audit::{Action, Query};
use linectl::pipeline::UnitRecord;
use linectl::users::{Permission, Role};

const ROLES: [(&str, Role); 4] = [
    ("op", Role::Operator),
    ("sup", Role::Supervisor),
    ("qa", Role::Qa),
    ("admin", Role::Admin),
];

/// (permission, method, path, form, audited action when allowed)
type Case<'a> = (
    Permission,
    &'static str,
    String,
    Vec<(&'static str, &'a str)>,
    Option<Action>,
);

fn reject(unit: u64) -> UnitRecord {
    UnitRecord {
        unit,
        serial: Some(format!("SERIAL{unit}").into()),
        verdict: "mismatch",
        detail: format!("decoded SERIALX{unit}, expected SERIAL{unit}"),
        grade: Some('C'),
        latency_us: None,
        frame: None,
    }
}

fn wait_exceptions(env: &Env, n: usize) {
    let t0 = std::time::Instant::now();
    while env.parts.exceptions.list(1000).len() < n {
        assert!(t0.elapsed().as_secs() < 20, "exceptions did not arrive");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn audited(env: &Env, user: &str, action: Action) -> usize {
    env.parts
        .audit
        .query(&Query {
            user: Some(user.into()),
            action: Some(action),
            ..Query::default()
        })
        .unwrap()
        .iter()
        .filter(|r| r.user == user)
        .count()
}

#[test]
fn every_role_and_action_is_allowed_or_refused_as_the_table_says() {
    let env = start(&offline_profile(), false);
    let addr = env.addr();
    for u in 1..=4 {
        env.observer.send(reject(u)).unwrap();
    }
    wait_exceptions(&env, 4);
    let mut next_exception = 1u64;
    for (name, role) in ROLES {
        let token = login(addr, name, PW).unwrap_or_else(|r| panic!("{name}: {r:?}"));
        let c = csrf(addr, &token);
        let ex = format!("/exceptions/{next_exception}/resolve");
        let new_user = format!("new-{name}");
        // (permission, method, path, form, audited action when allowed)
        let actions: Vec<Case<'_>> = vec![
            (Permission::ViewLine, "GET", "/".into(), vec![], None),
            (Permission::ViewLine, "GET", "/batch".into(), vec![], None),
            (
                Permission::ViewLine,
                "GET",
                "/exceptions".into(),
                vec![],
                None,
            ),
            (Permission::ViewLine, "GET", "/trends".into(), vec![], None),
            (Permission::ViewAudit, "GET", "/audit".into(), vec![], None),
            (
                Permission::ManageUsers,
                "GET",
                "/users".into(),
                vec![],
                None,
            ),
            (
                Permission::StartBatch,
                "POST",
                "/batch/start".into(),
                vec![
                    ("csrf", &c),
                    ("lot", "L1"),
                    ("expiry", "281231"),
                    ("quantity", "10"),
                ],
                Some(Action::BatchStarted),
            ),
            (
                Permission::PackmlCommand,
                "POST",
                "/command".into(),
                vec![("csrf", &c), ("cmd", "stop")],
                Some(Action::PackmlCommand),
            ),
            (
                Permission::ResolveException,
                "POST",
                ex.clone(),
                vec![("csrf", &c), ("reason", "re-inspected, code unreadable")],
                Some(Action::ExceptionResolved),
            ),
            (
                Permission::ManageUsers,
                "POST",
                "/users/add".into(),
                vec![
                    ("csrf", &c),
                    ("name", &new_user),
                    ("role", "operator"),
                    ("password", "another-pass-word-1"),
                    ("reason", "new starter"),
                ],
                Some(Action::UserAdded),
            ),
            (
                Permission::ManageUsers,
                "POST",
                "/users/op/change".into(),
                vec![("csrf", &c), ("op", "unlock"), ("reason", "asked to")],
                None,
            ),
        ];
        for (perm, method, path, fields, action) in actions {
            let denied_before = audited(&env, name, Action::AccessDenied);
            let done_before = action.as_ref().map(|a| audited(&env, name, a.clone()));
            let r = if method == "GET" {
                get(addr, &path, Some(&token))
            } else {
                post(addr, &path, Some(&token), &fields)
            };
            if role.may(perm) {
                assert_ne!(r.status, 403, "{name} ({role}) {method} {path}: {}", r.body);
                assert!(
                    r.status == 200 || r.status == 303 || r.status == 409,
                    "{name} {method} {path}: {} {}",
                    r.status,
                    r.body
                );
                if r.status == 303 {
                    assert!(
                        !r.header("location").unwrap_or("").starts_with("/login"),
                        "{name} {path}"
                    );
                }
                if let (Some(a), Some(n)) = (action, done_before) {
                    assert!(
                        audited(&env, name, a.clone()) > n,
                        "{name} {path}: no {a:?} record"
                    );
                }
            } else {
                assert_eq!(
                    r.status, 403,
                    "{name} ({role}) {method} {path} must be refused: {}",
                    r.body
                );
                assert!(
                    audited(&env, name, Action::AccessDenied) > denied_before,
                    "{name} {path}: refusal not audited"
                );
                if let (Some(a), Some(n)) = (action, done_before) {
                    assert_eq!(
                        audited(&env, name, a),
                        n,
                        "{name} {path}: refused but recorded as done"
                    );
                }
            }
        }
        if role.may(Permission::ResolveException) {
            let e = env.parts.exceptions.get(next_exception).unwrap();
            assert_eq!(e.resolution.unwrap().by, name);
            next_exception += 1;
        } else {
            assert!(
                env.parts
                    .exceptions
                    .get(next_exception)
                    .unwrap()
                    .resolution
                    .is_none()
            );
        }
    }
    // Resolutions show in the trail with who, why and old → new.
    let recs = env
        .parts
        .audit
        .query(&Query {
            action: Some(Action::ExceptionResolved),
            ..Query::default()
        })
        .unwrap();
    assert_eq!(recs.len(), 2);
    for r in &recs {
        assert_eq!(r.reason, "re-inspected, code unreadable");
        assert_eq!(r.old_value.as_deref(), Some("open"));
        assert_eq!(r.new_value.as_deref(), Some("resolved"));
        assert!(r.detail.contains("mismatch"), "{}", r.detail);
    }
    assert!(env.parts.audit.verify().is_ok());
}

#[test]
fn forms_without_the_session_csrf_token_are_refused_and_change_nothing() {
    let env = start(&offline_profile(), false);
    let addr = env.addr();
    let token = login(addr, "sup", PW).unwrap();
    let before = audited(&env, "sup", Action::PackmlCommand);
    for bad in ["", "0000", &"a".repeat(64)] {
        let r = post(
            addr,
            "/command",
            Some(&token),
            &[("csrf", bad), ("cmd", "abort")],
        );
        assert_eq!(r.status, 403, "{}", r.body);
        assert!(r.body.contains("CSRF"), "{}", r.body);
    }
    assert_eq!(audited(&env, "sup", Action::PackmlCommand), before);
    // Another session's token does not work either.
    let other = login(addr, "op", PW).unwrap();
    let c_other = csrf(addr, &other);
    let r = post(
        addr,
        "/command",
        Some(&token),
        &[("csrf", &c_other), ("cmd", "abort")],
    );
    assert_eq!(r.status, 403);
    // The right one does.
    let c = csrf(addr, &token);
    let r = post(
        addr,
        "/command",
        Some(&token),
        &[("csrf", &c), ("cmd", "abort")],
    );
    assert_ne!(r.status, 403, "{}", r.body);
    assert_eq!(audited(&env, "sup", Action::PackmlCommand), before + 1);
}

#[test]
fn login_sets_a_strict_http_only_cookie_and_pages_need_a_session() {
    let env = start(&offline_profile(), false);
    let addr = env.addr();
    let r = get(addr, "/", None);
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/login"));
    let r = get(addr, "/", Some("not-a-session"));
    assert_eq!(r.status, 303);
    let r = post(addr, "/login", None, &[("user", "op"), ("password", PW)]);
    assert_eq!(r.status, 303);
    let c = r.header("set-cookie").unwrap();
    assert!(c.contains("HttpOnly"), "{c}");
    assert!(c.contains("SameSite=Strict"), "{c}");
    // The status endpoint stays open (same JSON as before) and so does the health check.
    let s = get(addr, "/status", None);
    assert_eq!(s.status, 200);
    let v: serde_json::Value = serde_json::from_str(&s.body).unwrap();
    assert!(
        v.get("state").is_some() && v.get("latency_ms").is_some(),
        "{v}"
    );
    assert_eq!(get(addr, "/healthz", None).body, "ok\n");
    // Logging out ends the session.
    let token = login(addr, "op", PW).unwrap();
    let c = csrf(addr, &token);
    assert_eq!(
        post(addr, "/logout", Some(&token), &[("csrf", &c)]).status,
        303
    );
    assert_eq!(get(addr, "/", Some(&token)).status, 303);
}

#[test]
fn repeated_failed_logins_lock_the_account_visibly() {
    let env = start(&offline_profile(), false);
    let addr = env.addr();
    for i in 0..MAX_FAILED {
        let r = login(addr, "op", "wrong-password-0").unwrap_err();
        assert_eq!(r.status, 401);
        if i + 1 < MAX_FAILED {
            assert!(r.body.contains("wrong user name or password"), "{}", r.body);
        }
    }
    let r = login(addr, "op", PW).unwrap_err();
    assert_eq!(r.status, 401);
    assert!(r.body.contains("locked"), "{}", r.body);
    assert!(audited(&env, "op", Action::AccountLocked) >= 1);
    // The administrator sees it and unlocks.
    let admin = login(addr, "admin", PW).unwrap();
    let page = get(addr, "/users", Some(&admin));
    assert!(page.body.contains("locked"), "{}", page.body);
    let c = csrf(addr, &admin);
    let r = post(
        addr,
        "/users/op/change",
        Some(&admin),
        &[("csrf", &c), ("op", "unlock"), ("reason", "phoned in")],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(login(addr, "op", PW).is_ok());
}

#[test]
fn resolving_with_a_second_signature_records_the_signer() {
    let env = start(&offline_profile(), true);
    let addr = env.addr();
    env.observer.send(reject(7)).unwrap();
    wait_exceptions(&env, 1);
    let sup = login(addr, "sup", PW).unwrap();
    let c = csrf(addr, &sup);
    let page = get(addr, "/exceptions", Some(&sup));
    assert!(
        page.body.contains("decoded SERIALX7, expected SERIAL7"),
        "{}",
        page.body
    );
    // No reason: refused.
    let r = post(
        addr,
        "/exceptions/1/resolve",
        Some(&sup),
        &[
            ("csrf", &c),
            ("reason", " "),
            ("signer", "qa"),
            ("signer_password", PW),
        ],
    );
    assert_eq!(r.status, 400);
    // The signature is required here: missing or self-signed or wrong password is refused.
    for (signer, pw) in [
        ("", ""),
        ("sup", PW),
        ("qa", "wrong-password-1"),
        ("op", PW),
    ] {
        let r = post(
            addr,
            "/exceptions/1/resolve",
            Some(&sup),
            &[
                ("csrf", &c),
                ("reason", "checked"),
                ("signer", signer),
                ("signer_password", pw),
            ],
        );
        assert_eq!(r.status, 403, "signer {signer:?}: {}", r.body);
    }
    assert!(env.parts.exceptions.get(1).unwrap().resolution.is_none());
    let r = post(
        addr,
        "/exceptions/1/resolve",
        Some(&sup),
        &[
            ("csrf", &c),
            ("reason", "checked by hand"),
            ("signer", "qa"),
            ("signer_password", PW),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let e = env.parts.exceptions.get(1).unwrap();
    assert_eq!(
        e.resolution.as_ref().unwrap().signed_by.as_deref(),
        Some("qa")
    );
    let recs = env
        .parts
        .audit
        .query(&Query {
            action: Some(Action::ExceptionResolved),
            ..Query::default()
        })
        .unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].user, "sup");
    assert_eq!(recs[0].reason, "checked by hand");
    assert_eq!(recs[0].signature.as_ref().unwrap().signer, "qa");
    // Twice is refused; the audit page shows it to QA.
    let r = post(
        addr,
        "/exceptions/1/resolve",
        Some(&sup),
        &[
            ("csrf", &c),
            ("reason", "again"),
            ("signer", "qa"),
            ("signer_password", PW),
        ],
    );
    assert_eq!(r.status, 409);
    let qa = login(addr, "qa", PW).unwrap();
    let page = get(addr, "/audit?object=exception:", Some(&qa));
    assert!(
        page.body.contains("exception_resolved") && page.body.contains("checked by hand"),
        "{}",
        page.body
    );
}

#[test]
fn work_orders_are_offered_and_a_refused_start_keeps_the_order_queued() {
    use std::io::{Read, Write};
    let profile = offline_profile();
    let env = start(&profile, false);
    let api = linectl::api::OrdersApi::new(
        vec![linectl::api::orders::MasterProduct::from_profile(
            &profile.product,
        )],
        env.parts.orders.clone(),
        linectl::api::OrdersConfig {
            tokens: vec!["t0k3n".into()],
            ..Default::default()
        },
    )
    .unwrap();
    let app = env.hmi.router().merge(linectl::api::orders_router(api));
    let server = linectl::hmi::HmiServer::start("127.0.0.1:0", &env.hmi, app).unwrap();
    let addr = server.local_addr();
    let body = serde_json::json!({
        "orderId": "WO-7", "product": profile.product.gtin, "batch": "LOT-WO-7",
        "expiry": "301231", "quantity": 50, "market": "eu-fmd"
    })
    .to_string();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST /api/v1/orders HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer t0k3n\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 20"), "{out}");
    let op = login(addr, "op", PW).unwrap();
    let page = get(addr, "/batch", Some(&op));
    assert!(
        page.body.contains("WO-7") && page.body.contains("LOT-WO-7"),
        "{}",
        page.body
    );
    // The devices are unreachable: the start is refused, said so, and the order waits.
    let c = csrf(addr, &op);
    let r = post(addr, "/batch/start-order", Some(&op), &[("csrf", &c)]);
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        r.body.contains("cannot start") || r.body.contains("not allowed"),
        "{}",
        r.body
    );
    assert_eq!(env.parts.orders.queued().len(), 1);
    let recs = env
        .parts
        .audit
        .query(&Query {
            action: Some(Action::BatchStarted),
            object_prefix: Some("batch:LOT-WO-7".into()),
            ..Query::default()
        })
        .unwrap();
    assert_eq!(recs.len(), 2, "the request and its refusal: {recs:?}");
    assert!(recs[1].detail.starts_with("refused:"), "{}", recs[1].detail);
    // QA may not start batches.
    let qa = login(addr, "qa", PW).unwrap();
    let cq = csrf(addr, &qa);
    assert_eq!(
        post(addr, "/batch/start-order", Some(&qa), &[("csrf", &cq)]).status,
        403
    );
}

#[test]
fn the_live_stream_sends_the_status_with_the_uplink_backlog() {
    use std::io::{BufRead, BufReader, Write};
    let env = start(&offline_profile(), false);
    let addr = env.addr();
    env.hmi
        .set_uplink_probe(std::sync::Arc::new(|| Some((42, "Retrying".to_string()))));
    let op = login(addr, "op", PW).unwrap();
    let page = get(addr, "/", Some(&op));
    assert!(
        page.body.contains("id=uplink_backlog>42<") && page.body.contains("Retrying"),
        "{}",
        page.body
    );
    // Without a session: no stream.
    assert_eq!(get(addr, "/live", None).status, 303);
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    write!(
        s,
        "GET /live HTTP/1.1\r\nHost: x\r\nCookie: {}={op}\r\n\r\n",
        linectl::hmi::COOKIE
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    let mut data = None;
    for _ in 0..50 {
        line.clear();
        r.read_line(&mut line).unwrap();
        if let Some(d) = line.strip_prefix("data: ") {
            data = Some(d.trim().to_string());
            break;
        }
    }
    let v: serde_json::Value = serde_json::from_str(&data.expect("no SSE data line")).unwrap();
    assert_eq!(v["uplink_backlog"], 42);
    assert_eq!(v["uplink_state"], "Retrying");
    assert!(
        v.get("state").is_some() && v.get("open_exceptions").is_some(),
        "{v}"
    );
}

#[test]
fn a_rejects_frame_is_served_to_a_session_only_and_the_retention_bound_holds() {
    use linectl::pipeline::frames::{FrameRetention, FrameStore};
    use linectl::vision::GreyFrame;
    let env = start(&offline_profile(), false);
    let addr = env.addr();
    // The pipeline's store in the same data dir, keeping the newest two frames.
    let store = FrameStore::new(
        env.dir.path(),
        FrameRetention {
            keep: 2,
            max_bytes: u64::MAX,
        },
    );
    let pixels: Vec<u8> = (0..32 * 24).map(|i| (i % 251) as u8).collect();
    let frame = GreyFrame::new(32, 24, pixels).unwrap();
    for unit in 1..=3u64 {
        let name = FrameStore::name_for(1_000 + unit, unit, Some(&format!("SERIAL{unit}")));
        store.save(&name, &frame).unwrap();
        let mut r = reject(unit);
        r.frame = Some(name);
        env.observer.send(r).unwrap();
    }
    env.observer.send(reject(4)).unwrap();
    wait_exceptions(&env, 4);
    let kept = store.list().unwrap();
    assert_eq!(kept.len(), 2, "retention keeps the newest two: {kept:?}");

    // An image, not a page: no session or a forged one is 401.
    assert_eq!(get(addr, "/exceptions/3/frame", None).status, 401);
    assert_eq!(
        get(addr, "/exceptions/3/frame", Some("forged-session")).status,
        401
    );

    let op = login(addr, "op", PW).unwrap();
    let r = get(addr, "/exceptions/3/frame", Some(&op));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("image/png"));
    let (_, len) = kept.last().unwrap();
    assert_eq!(r.header("content-length"), Some(len.to_string().as_str()));
    assert!(r.body.contains("PNG"), "not a PNG body");

    // Shown on the exception page next to decoded vs expected content.
    let page = get(addr, "/exceptions", Some(&op));
    assert!(
        page.body.contains("src=/exceptions/3/frame"),
        "{}",
        page.body
    );
    assert!(page.body.contains("decoded SERIALX3, expected SERIAL3"));
    assert!(!page.body.contains("src=/exceptions/4/frame"));

    // The oldest frame was pruned; a reject without frame and an unknown one have none.
    for id in [1, 4, 99] {
        assert_eq!(
            get(addr, &format!("/exceptions/{id}/frame"), Some(&op)).status,
            404,
            "exception {id}"
        );
    }
}

#[test]
fn the_overview_and_metrics_show_the_pool_forecast_and_upload_backlog() {
    use linectl::serve::gauges::{OpsGauges, PoolForecast, UploadBacklog};
    let env = start(&offline_profile(), false);
    let addr = env.addr();
    let gauges = OpsGauges {
        journal_bytes: 8192,
        journal_segments: 1,
        upload: Some(UploadBacklog {
            events: 17,
            bytes: 5000,
            oldest_age_seconds: Some(125.0),
        }),
        forecast: Some(PoolForecast {
            available: 600,
            batch_remaining: 1000,
            rate_per_min: 120.0,
            seconds_left: Some(300.0),
            covers_batch: false,
            shortfall: 400,
            low_water: 1000,
            below_low_water: true,
            alarm: true,
        }),
    };
    let g = gauges.clone();
    env.hmi
        .set_ops_probe(std::sync::Arc::new(move || g.clone()));
    let op = login(addr, "op", PW).unwrap();
    let page = get(addr, "/", Some(&op));
    for part in [
        "class=\"card low\" id=pool_card",
        "id=pool_forecast>empty in 5 min 0 s at 120/min<",
        "short 400 for the batch (1000 to go)",
        "id=pool_low>below low water (1000)<",
        "id=uplink_oldest>oldest waiting 2 min 5 s<",
    ] {
        assert!(page.body.contains(part), "{part} missing:\n{}", page.body);
    }
    let m = get(addr, "/metrics", None);
    assert_eq!(m.status, 200);
    for line in [
        "linectl_pool_forecast_seconds{line=\"PL-EU-01\"} 300.0",
        "linectl_pool_covers_batch{line=\"PL-EU-01\"} 0",
        "linectl_upload_backlog_events{line=\"PL-EU-01\"} 17",
        "linectl_journal_bytes{line=\"PL-EU-01\"} 8192",
        "# TYPE linectl_units_total counter",
    ] {
        assert!(m.body.contains(line), "{line} missing:\n{}", m.body);
    }
    // The live stream carries the same gauges for the overview's script.
    use std::io::{BufRead, BufReader, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    write!(
        s,
        "GET /live HTTP/1.1\r\nHost: x\r\nCookie: {}={op}\r\n\r\n",
        linectl::hmi::COOKIE
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    let data = loop {
        line.clear();
        assert!(r.read_line(&mut line).unwrap() > 0, "stream ended");
        if let Some(d) = line.strip_prefix("data: ") {
            break d.trim().to_string();
        }
    };
    let v: serde_json::Value = serde_json::from_str(&data).unwrap();
    assert_eq!(v["ops"]["forecast"]["seconds_left"], 300.0, "{v}");
    assert_eq!(v["ops"]["forecast"]["covers_batch"], false);
    assert_eq!(v["ops"]["upload"]["events"], 17);
}
