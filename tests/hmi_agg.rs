//! Aggregation rework at the HMI over real HTTP: a real line (devices unreachable, no
//! batch running), the daemon's `AggService` over its journal and the HMI's trail, and
//! an aggregation store holding cases and a pallet of commissioned units. An operator
//! opens a case, takes a unit out, puts a commissioned unit in and re-closes it; a case
//! short of the packing level is refused a full close, refused a partial close for the
//! operator and closed as partial by a supervisor; a pallet is dissolved by a
//! supervisor only. Every step's audit entry (written before the change) and its
//! DELETE/ADD event with the right children are checked; bad requests (unknown code,
//! foreign unit, malformed form, missing CSRF token) get clear errors and change
//! nothing.

mod hmi_support;

use std::sync::Arc;

use hmi_support::{PW, csrf, get, login, offline_profile, post, start};
use linectl::aggregation::rework::Packing;
use linectl::aggregation::service::{AggService, ServiceParts, running_batch};
use linectl::aggregation::store::{AggStore, Child, Intent, Level, Stage, Status};
use linectl::audit::{Action, Record};
use linectl::clock::{Clock, SystemClock};
use linectl::epcis::aggregation::AggregationEvents;
use linectl::epcis::{EventTime, LineEvents};
use linectl::gs1::sscc::SsccScheme;
use linectl::journal::{Journal, Seq};
use linectl::uplink::record::{EVENT_RECORD, EventRecord};
use serde_json::Value;

const GTIN: &str = "09506000134352";
const LOT: &str = "LOT-AGG-1";

fn unit(s: &str) -> Child {
    Child::Unit {
        gtin: GTIN.into(),
        serial: s.into(),
    }
}

fn pack(store: &AggStore, sscc: &str, level: Level, children: Vec<Child>) {
    store
        .begin(&Intent {
            sscc: sscc.into(),
            level,
            batch: LOT.into(),
            children,
            stage: Stage::Printing,
            at_us: 1_767_225_600_000_000,
            partial_of: None,
        })
        .unwrap();
    store.advance(sscc, Stage::Verified).unwrap();
    store.commit(sscc, &[]).unwrap();
}

/// Aggregation events in the journal from `from` on.
fn agg_events(j: &Journal, from: u64) -> Vec<Value> {
    j.read_from(Seq(from), usize::MAX)
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == EVENT_RECORD)
        .filter_map(|r| EventRecord::decode(r.seq, &r.payload).ok())
        .map(|e| e.event)
        .filter(|e| e["type"] == "AggregationEvent")
        .collect()
}

fn rework_records(trail: &linectl::audit::AuditTrail) -> Vec<Record> {
    trail
        .query(&linectl::audit::Query::default())
        .unwrap()
        .into_iter()
        .filter(|r| {
            matches!(
                r.action,
                Action::AggregationRework | Action::AggregationReworkFailed | Action::AccessDenied
            )
        })
        .collect()
}

fn children(e: &Value) -> Vec<String> {
    e["childEPCs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn rework_steps_over_http_are_checked_audited_first_and_evented() {
    let profile = offline_profile();
    let env = start(&profile, false);
    let addr = env.addr();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let journal = env.line.journal();
    let site = linectl::pipeline::site_sgln(&profile.line.site).unwrap();
    let form = linectl::pipeline::id_form(profile.epcis.identifiers, &profile.line.site);
    let events = AggregationEvents::new(form, &site, &site).unwrap();
    // Units S01..S12 commissioned in the batch (as the line's recorder journals them).
    let line_events = LineEvents::new(form, GTIN, &site, &site).unwrap();
    let serials: Vec<String> = (1..=12).map(|i| format!("S{i:02}")).collect();
    let refs: Vec<&str> = serials.iter().map(String::as_str).collect();
    let t = EventTime::from_wall_micros(clock.wall_micros(), 0).unwrap();
    let ev = line_events
        .commissioning(t, &refs, LOT, "281231")
        .unwrap()
        .with_hash_id()
        .unwrap();
    journal
        .append(EVENT_RECORD, EventRecord::new(LOT, &ev).unwrap().encode())
        .unwrap();
    // Cases A (S01-S04), B (S05-S08) on pallet P; a hold for a short case.
    let store = AggStore::open(&env.dir.path().join("aggregation")).unwrap();
    let cases = SsccScheme::new(0, "9506000").unwrap();
    let pallets = SsccScheme::new(1, "9506000").unwrap();
    let a = cases.sscc(1).unwrap().as_str().to_string();
    let b = cases.sscc(2).unwrap().as_str().to_string();
    let p = pallets.sscc(1).unwrap().as_str().to_string();
    pack(
        &store,
        &a,
        Level::Case,
        (1..=4).map(|i| unit(&format!("S{i:02}"))).collect(),
    );
    pack(
        &store,
        &b,
        Level::Case,
        (5..=8).map(|i| unit(&format!("S{i:02}"))).collect(),
    );
    pack(
        &store,
        &p,
        Level::Pallet,
        vec![Child::Case { sscc: b.clone() }],
    );
    store
        .hold(
            Level::Case,
            LOT,
            vec!["count: 3 found, packing level 4".into()],
            None,
            clock.wall_micros(),
        )
        .unwrap();
    let svc = Arc::new(AggService::new(ServiceParts {
        store: store.clone(),
        journal: journal.clone(),
        events: events.clone(),
        audit: env.parts.audit.clone(),
        clock: clock.clone(),
        gtin: GTIN.into(),
        packing: Packing {
            units_per_case: 4,
            cases_per_pallet: 2,
        },
        running_batch: running_batch(env.line.status().clone()),
        default_batch: None,
    }));
    env.hmi.set_aggregation(svc);
    let uri = |s: &str| events.unit_uri(GTIN, s).unwrap();
    let op = login(addr, "op", PW).unwrap();
    let sup = login(addr, "sup", PW).unwrap();
    let op_csrf = csrf(addr, &op);
    let sup_csrf = csrf(addr, &sup);

    // The list: nav link, the hold with its reason; the tree of case A.
    let r = get(addr, "/aggregation", Some(&op));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("href=\"/aggregation\""), "{}", r.body);
    assert!(
        r.body.contains("count: 3 found, packing level 4"),
        "{}",
        r.body
    );
    let r = get(addr, "/", Some(&op));
    assert!(r.body.contains(">Aggregation</a>"), "nav link missing");
    let r = get(addr, &format!("/aggregation/container?code={a}"), Some(&op));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body.matches(" unit (01)").count(), 4, "{}", r.body);
    assert!(r.body.contains("id=step-open"), "{}", r.body);
    // A unit's code finds its case.
    let r = get(
        addr,
        &format!("/aggregation/container?code=%2801%29{GTIN}%2821%29S06"),
        Some(&op),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains(&format!("is in (00){b} on (00){p}")),
        "{}",
        r.body
    );

    let journal_start = journal.end_seq().0;
    let step = |who: &str, tok: &str, sscc: &str, step: &str, units: &str| {
        post(
            addr,
            "/aggregation/step",
            Some(who),
            &[
                ("csrf", tok),
                ("sscc", sscc),
                ("step", step),
                ("units", units),
                ("reason", "crushed carton"),
            ],
        )
    };
    let unit_code = |s: &str| format!("(01){GTIN}(21){s}");

    // Open, take S01 out, put S09 in, re-close.
    let r = step(&op, &op_csrf, &a, "open", "");
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(store.container(&a).unwrap().unwrap().status, Status::Open);
    let r = step(&op, &op_csrf, &a, "remove", &unit_code("S01"));
    assert_eq!(r.status, 303, "{}", r.body);
    let r = step(&op, &op_csrf, &a, "add", &unit_code("S09"));
    assert_eq!(r.status, 303, "{}", r.body);

    // Bad requests change nothing: a foreign unit, a unit in another case, a unit not
    // in this case, an unknown container, a malformed form, no CSRF token.
    let audit_before = rework_records(&env.parts.audit).len();
    let journal_before = journal.end_seq().0;
    let r = step(&op, &op_csrf, &a, "add", &unit_code("ZZ99"));
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        r.body.contains("cannot go in") && r.body.contains("nothing was changed"),
        "{}",
        r.body
    );
    let r = step(&op, &op_csrf, &a, "add", &unit_code("S05"));
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains(&format!("it is in {b}")), "{}", r.body);
    let r = step(&op, &op_csrf, &a, "remove", &unit_code("S07"));
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        r.body.contains(&format!("is not in case {a}")),
        "{}",
        r.body
    );
    let r = step(&op, &op_csrf, "095060000000009995", "open", "");
    assert_eq!(r.status, 404, "{}", r.body);
    // A code of SSCC shape with a wrong check digit is a bad request, not unknown.
    let r = step(&op, &op_csrf, "095060000000009999", "open", "");
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body.contains("check digit wrong") && r.body.contains("nothing was changed"),
        "{}",
        r.body
    );
    let r = get(
        addr,
        "/aggregation/container?code=095060000000009999",
        Some(&op),
    );
    assert_eq!(r.status, 404, "{}", r.body);
    let r = step(&op, &op_csrf, &a, "add", "not a code");
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("is not a unit code"), "{}", r.body);
    let r = step(&op, &op_csrf, &a, "explode", "");
    assert_eq!(r.status, 400, "{}", r.body);
    let r = post(addr, "/aggregation/step", Some(&op), &[("csrf", &op_csrf)]);
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("18-digit SSCC"), "{}", r.body);
    let r = post(
        addr,
        "/aggregation/step",
        Some(&op),
        &[("sscc", a.as_str()), ("step", "close"), ("reason", "x")],
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(rework_records(&env.parts.audit).len(), audit_before);
    assert_eq!(journal.end_seq().0, journal_before);
    let c = store.container(&a).unwrap().unwrap();
    assert_eq!(
        c.children,
        vec![unit("S02"), unit("S03"), unit("S04"), unit("S09")]
    );

    let r = step(&op, &op_csrf, &a, "close", "");
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(store.container(&a).unwrap().unwrap().status, Status::Closed);

    // Short case: a full close is refused, a partial close needs a supervisor.
    assert_eq!(step(&op, &op_csrf, &a, "open", "").status, 303);
    assert_eq!(
        step(&op, &op_csrf, &a, "remove", &unit_code("S02")).status,
        303
    );
    let r = step(&op, &op_csrf, &a, "close", "");
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        r.body.contains("holds 3 units, the packing level is 4"),
        "{}",
        r.body
    );
    let r = step(&op, &op_csrf, &a, "partial", "");
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(store.container(&a).unwrap().unwrap().status, Status::Open);
    let r = step(&sup, &sup_csrf, &a, "partial", "");
    assert_eq!(r.status, 303, "{}", r.body);
    let c = store.container(&a).unwrap().unwrap();
    assert_eq!((c.status, c.children.len()), (Status::Closed, 3));

    // QA looks but does not rework; the pallet's page tells the operator who may.
    let qa = login(addr, "qa", PW).unwrap();
    let qa_csrf = csrf(addr, &qa);
    let r = step(&qa, &qa_csrf, &b, "dissolve", "");
    assert_eq!(r.status, 403, "{}", r.body);
    let r = get(
        addr,
        &format!("/aggregation/container?code=(00){p}"),
        Some(&op),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("Dissolving a pallet needs a supervisor"),
        "{}",
        r.body
    );
    assert!(!r.body.contains("id=step-dissolve"), "{}", r.body);
    // A pallet: dissolved by a supervisor only.
    let r = step(&op, &op_csrf, &p, "dissolve", "");
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(store.container(&p).unwrap().is_some());
    let r = step(&sup, &sup_csrf, &p, "dissolve", "");
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(store.container(&p).unwrap().is_none());
    assert_eq!(store.container(&b).unwrap().unwrap().parent, None);

    // Events: DELETE S01, ADD S09, DELETE S02, DELETE of the pallet with case B.
    let ev = agg_events(&journal, journal_start);
    let summary: Vec<(String, String, Vec<String>)> = ev
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_string(),
                e["parentID"].as_str().unwrap().to_string(),
                children(e),
            )
        })
        .collect();
    let sscc_uri = |s: &str| events.sscc_uri(s).unwrap();
    assert_eq!(
        summary,
        vec![
            ("DELETE".into(), sscc_uri(&a), vec![uri("S01")]),
            ("ADD".into(), sscc_uri(&a), vec![uri("S09")]),
            ("DELETE".into(), sscc_uri(&a), vec![uri("S02")]),
            ("DELETE".into(), sscc_uri(&p), vec![sscc_uri(&b)]),
        ]
    );
    assert!(ev.iter().all(|e| e["bizStep"]
        == if e["action"] == "ADD" {
            "packing"
        } else {
            "unpacking"
        }));

    // Audit: one entry per step, written before it, by who did it, with the reason;
    // the refusals of the operator as access_denied; no failure entries.
    let recs = rework_records(&env.parts.audit);
    let got: Vec<(Action, String, String)> = recs
        .iter()
        .map(|r| (r.action.clone(), r.user.clone(), r.detail.clone()))
        .collect();
    let want = [
        (Action::AggregationRework, "op", "open case of 4 units"),
        (Action::AggregationRework, "op", "take out 1; put in 0"),
        (Action::AggregationRework, "op", "take out 0; put in 1"),
        (Action::AggregationRework, "op", "close case with 4 units"),
        (Action::AggregationRework, "op", "open case of 4 units"),
        (Action::AggregationRework, "op", "take out 1; put in 0"),
        (
            Action::AccessDenied,
            "op",
            "closing a partial case needs a supervisor",
        ),
        (
            Action::AggregationRework,
            "sup",
            "close partial case with 3 of 4 units (batch LOT-AGG-1 has ended)",
        ),
        (Action::AccessDenied, "qa", "needs packml_command"),
        (
            Action::AccessDenied,
            "op",
            "dissolving a pallet needs a supervisor",
        ),
        (
            Action::AggregationRework,
            "sup",
            "dissolve pallet of 1 children",
        ),
    ];
    assert_eq!(got.len(), want.len(), "{got:#?}");
    for (g, w) in got.iter().zip(want.iter()) {
        assert_eq!(
            (&g.0, g.1.as_str(), g.2.as_str()),
            (&w.0, w.1, w.2),
            "{got:#?}"
        );
    }
    assert!(
        recs.iter()
            .filter(|r| r.action == Action::AggregationRework)
            .all(|r| r.reason == "crushed carton")
    );
    assert_eq!(
        recs[1].old_value.as_deref(),
        Some(unit("S01").key().as_str())
    );
    assert_eq!(
        recs[2].new_value.as_deref(),
        Some(unit("S09").key().as_str())
    );
    // The trail still verifies (the new actions are part of the hash chain).
    let report = env.parts.audit.verify().unwrap();
    assert!(report.problem.is_none(), "{:?}", report.problem);
}
