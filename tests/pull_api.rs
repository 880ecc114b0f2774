//! The pull API over real loopback HTTP (the router served by axum, requests by ureq):
//! cursor paging through the journal, the documents validating against the EPCIS 2.0
//! schema, acknowledgement moving the `site-pull` consumer (idempotently, never past
//! the end), and the 401/403/400 refusals with JSON error bodies.

mod uplink_support;

use std::net::SocketAddr;
use std::sync::Arc;

use linectl::api::{EventsApi, PullApiConfig, events_router};
use linectl::clock::SystemClock;
use linectl::journal::RecordType;
use serde_json::{Value, json};
use uplink_support::{append, doc_ids, journal, records, schema_errors, validator};

struct Server {
    addr: SocketAddr,
    _rt: tokio::runtime::Runtime,
}

fn serve(api: EventsApi) -> Server {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    rt.spawn(async move { axum::serve(listener, events_router(api)).await });
    Server { addr, _rt: rt }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent()
}

struct Reply {
    status: u16,
    next: Option<String>,
    www_auth: Option<String>,
    body: Value,
}

fn get(addr: SocketAddr, query: &str, token: Option<&str>) -> Reply {
    let mut rb = agent().get(format!("http://{addr}/api/v1/events{query}"));
    if let Some(t) = token {
        rb = rb.header("Authorization", format!("Bearer {t}"));
    }
    let mut resp = rb.call().expect("GET");
    reply(&mut resp)
}

fn ack(addr: SocketAddr, body: &str, token: Option<&str>) -> Reply {
    let mut rb = agent()
        .post(format!("http://{addr}/api/v1/events/ack"))
        .header("Content-Type", "application/json");
    if let Some(t) = token {
        rb = rb.header("Authorization", format!("Bearer {t}"));
    }
    let mut resp = rb.send(body).expect("POST");
    reply(&mut resp)
}

fn reply(resp: &mut ureq::http::Response<ureq::Body>) -> Reply {
    let h = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    let next = h("Linectl-Next-Cursor");
    let www_auth = h("WWW-Authenticate");
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Reply {
        status,
        next,
        www_auth,
        body,
    }
}

const TOKEN: &str = "site-server-token-1";

fn setup(dir: &std::path::Path) -> (Arc<linectl::journal::Journal>, Server, Vec<String>) {
    let j = journal(dir);
    let mut ids = append(&j, &records("LOT1", "P", 12));
    // A record of another type in between: passed over, the cursor moves past it.
    j.append(RecordType(99), b"not an event".to_vec())
        .expect("append other");
    ids.extend(append(&j, &records("LOT1", "Q", 13)));
    let api = EventsApi::new(
        j.clone(),
        PullApiConfig {
            tokens: vec!["other".into(), TOKEN.into()],
            ..PullApiConfig::default()
        },
        Arc::new(SystemClock::new()),
    )
    .expect("api");
    (j, serve(api), ids)
}

#[test]
fn cursor_paging_and_ack() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (j, srv, ids) = setup(dir.path());
    let v = validator();
    let mut cursor = "0".to_string();
    let mut got = Vec::new();
    let mut pages = 0;
    loop {
        let r = get(srv.addr, &format!("?after={cursor}&limit=10"), Some(TOKEN));
        assert_eq!(r.status, 200, "{:?}", r.body);
        let errs = schema_errors(&v, &r.body);
        assert!(errs.is_empty(), "{errs:?}");
        let page = doc_ids(&r.body);
        let next = r.next.expect("next cursor header");
        if page.is_empty() {
            assert_eq!(next, cursor, "no new events: the cursor stays");
            break;
        }
        assert!(page.len() <= 10);
        got.extend(page);
        cursor = next;
        pages += 1;
    }
    assert_eq!(got, ids, "every event once, in journal order");
    assert_eq!(pages, 3);
    assert_eq!(cursor, "26", "26 records including the non-event one");

    // Without `after`, reading starts at the acknowledged position.
    let r = get(srv.addr, "?limit=5", Some(TOKEN));
    assert_eq!(doc_ids(&r.body), ids[..5].to_vec());
    let r = ack(srv.addr, r#"{"cursor": "5"}"#, Some(TOKEN));
    assert_eq!((r.status, r.body.clone()), (200, json!({"cursor": "5"})));
    assert_eq!(j.cursor("site-pull").expect("cursor").0, 5);
    let r = get(srv.addr, "?limit=2", Some(TOKEN));
    assert_eq!(doc_ids(&r.body), ids[5..7].to_vec());
    assert_eq!(r.next.as_deref(), Some("7"));
    // Acknowledging an older cursor again changes nothing; a number works too.
    let r = ack(srv.addr, r#"{"cursor": 3}"#, Some(TOKEN));
    assert_eq!((r.status, r.body.clone()), (200, json!({"cursor": "5"})));
    let r = ack(srv.addr, r#"{"cursor": 26}"#, Some(TOKEN));
    assert_eq!((r.status, r.body.clone()), (200, json!({"cursor": "26"})));
    // Past the end: refused.
    let r = ack(srv.addr, r#"{"cursor": "27"}"#, Some(TOKEN));
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(r.body["error"], "bad_request");
    assert_eq!(j.cursor("site-pull").expect("cursor").0, 26);
    // Limit above the maximum is clamped, not refused.
    let r = get(srv.addr, "?after=0&limit=100000", Some(TOKEN));
    assert_eq!(r.status, 200);
    assert_eq!(doc_ids(&r.body).len(), 25);
}

#[test]
fn authentication_and_bad_requests_get_json_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (j, srv, _) = setup(dir.path());
    let r = get(srv.addr, "", None);
    assert_eq!(r.status, 401);
    assert_eq!(r.body["error"], "unauthorized");
    assert!(r.www_auth.is_some_and(|w| w.starts_with("Bearer")));
    let r = get(srv.addr, "", Some("nope"));
    assert_eq!(r.status, 403);
    assert_eq!(r.body["error"], "forbidden");
    let r = ack(srv.addr, r#"{"cursor": "5"}"#, None);
    assert_eq!(r.status, 401);
    let r = ack(srv.addr, r#"{"cursor": "5"}"#, Some("nope"));
    assert_eq!(r.status, 403);
    assert_eq!(
        j.cursor("site-pull").expect("cursor").0,
        0,
        "refused acks change nothing"
    );

    for (query, what) in [
        ("?after=abc", "after"),
        ("?after=-1", "after"),
        ("?limit=0", "limit"),
        ("?limit=ten", "limit"),
        ("?after=1000", "beyond"),
        ("?bogus=1", "bogus"),
    ] {
        let r = get(srv.addr, query, Some(TOKEN));
        assert_eq!(r.status, 400, "{query}: {:?}", r.body);
        assert_eq!(r.body["error"], "bad_request", "{query}");
        let msg = r.body["message"].as_str().unwrap_or_default();
        assert!(msg.contains(what), "{query}: {msg}");
    }
    for body in [
        "",
        "[]",
        r#"{"cursor": "x"}"#,
        r#"{"cursor": -4}"#,
        r#"{"other": 1}"#,
    ] {
        let r = ack(srv.addr, body, Some(TOKEN));
        assert_eq!(r.status, 400, "{body}: {:?}", r.body);
        assert_eq!(r.body["error"], "bad_request", "{body}");
    }
}

#[test]
fn unknown_consumer_is_refused_at_construction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let j = journal(dir.path());
    let e = EventsApi::new(
        j,
        PullApiConfig {
            consumer: "nobody".into(),
            ..PullApiConfig::default()
        },
        Arc::new(SystemClock::new()),
    )
    .expect_err("unknown consumer");
    assert!(e.to_string().contains("nobody"), "{e}");
}
