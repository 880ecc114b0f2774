//! The work-order API over real loopback HTTP: valid orders are queued (durably, in a
//! file that a reopened queue reads back), retries with the same orderId are
//! idempotent, conflicting ones refused, invalid orders get every broken rule listed
//! (product master data, market, batch, expiry, quantity), malformed bodies and missing
//! or wrong tokens get JSON errors, and the HMI takes orders in order.

use std::net::SocketAddr;
use std::sync::Arc;

use linectl::api::orders::MasterProduct;
use linectl::api::{OrderQueue, OrdersApi, OrdersConfig, orders_router};
use linectl::market::Market;
use serde_json::{Value, json};

const TOKEN: &str = "erp-token";

struct Server {
    addr: SocketAddr,
    _rt: tokio::runtime::Runtime,
}

fn serve(api: OrdersApi) -> Server {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    rt.spawn(async move { axum::serve(listener, orders_router(api)).await });
    Server { addr, _rt: rt }
}

fn call(addr: SocketAddr, method: &str, body: Option<&str>, token: Option<&str>) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let url = format!("http://{addr}/api/v1/orders");
    let resp = match method {
        "POST" => {
            let mut rb = agent.post(&url).header("Content-Type", "application/json");
            if let Some(t) = token {
                rb = rb.header("Authorization", format!("Bearer {t}"));
            }
            rb.send(body.unwrap_or_default())
        }
        _ => {
            let mut rb = agent.get(&url);
            if let Some(t) = token {
                rb = rb.header("Authorization", format!("Bearer {t}"));
            }
            rb.call()
        }
    };
    let mut resp = resp.expect("request");
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn api(queue: Arc<OrderQueue>) -> OrdersApi {
    OrdersApi::new(
        vec![
            MasterProduct {
                gtin: "04012345111118".into(),
                name: "Paracetamol 500 mg".into(),
                market: Market::UsDscsa,
                national_ais: Vec::new(),
            },
            MasterProduct {
                gtin: "4012345111125".into(),
                name: "Ibuprofen 400 mg".into(),
                market: Market::EuFmd,
                national_ais: Vec::new(),
            },
        ],
        queue,
        OrdersConfig {
            tokens: vec![TOKEN.into()],
            max_quantity: 100_000,
            ..OrdersConfig::default()
        },
    )
    .expect("api")
}

fn order(id: Option<&str>, quantity: u64) -> String {
    let mut o = json!({
        "product": "04012345111118", "batch": "LOT-1", "expiry": "281231",
        "quantity": quantity, "market": "us-dscsa"
    });
    if let Some(id) = id {
        o["orderId"] = json!(id);
    }
    o.to_string()
}

#[test]
fn orders_are_validated_queued_durably_and_taken_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("orders.json");
    let queue = Arc::new(OrderQueue::open(&file).expect("queue"));
    let srv = serve(api(queue.clone()));
    let a = srv.addr;

    let (st, body) = call(a, "POST", Some(&order(Some("WO-1"), 5000)), Some(TOKEN));
    assert_eq!(st, 201, "{body}");
    assert_eq!(
        body,
        json!({"orderId": "WO-1", "state": "queued", "position": 0})
    );
    // A retry is idempotent; other content under the same id is refused.
    let (st, body) = call(a, "POST", Some(&order(Some("WO-1"), 5000)), Some(TOKEN));
    assert_eq!((st, body["orderId"].clone()), (200, json!("WO-1")));
    let (st, body) = call(a, "POST", Some(&order(Some("WO-1"), 6000)), Some(TOKEN));
    assert_eq!((st, body["error"].clone()), (409, json!("order_conflict")));
    let (st, body) = call(a, "POST", Some(&order(None, 10)), Some(TOKEN));
    assert_eq!(st, 201, "{body}");
    assert_eq!(body["orderId"], "wo-1");
    assert_eq!(body["position"], 1);

    let (st, body) = call(a, "GET", None, Some(TOKEN));
    assert_eq!(st, 200);
    let ids: Vec<&str> = body["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .filter_map(|o| o["orderId"].as_str())
        .collect();
    assert_eq!(ids, ["WO-1", "wo-1"]);

    // Durable: a queue reopened on the file sees the same orders.
    let reopened = OrderQueue::open(&file).expect("reopen");
    assert_eq!(reopened.queued(), queue.queued());
    drop(reopened);

    let first = queue.take_next().expect("take").expect("an order");
    assert_eq!((first.order_id.as_str(), first.quantity), ("WO-1", 5000));
    assert_eq!(first.product, "04012345111118");
    assert_eq!(queue.queued().len(), 1);
    assert_eq!(OrderQueue::open(&file).expect("reopen").queued().len(), 1);
    // A started order still answers its retry (and is not queued again).
    let (st, body) = call(a, "POST", Some(&order(Some("WO-1"), 5000)), Some(TOKEN));
    assert_eq!((st, body["state"].clone()), (200, json!("started")));
    assert_eq!(queue.queued().len(), 1);
}

#[test]
fn invalid_orders_list_every_broken_rule() {
    let srv = serve(api(Arc::new(OrderQueue::in_memory())));
    let a = srv.addr;
    let bad = json!({
        "product": "4012345111125", "batch": "THIS-BATCH-IS-FAR-TOO-LONG-FOR-ANY-MARKET",
        "expiry": "281341", "quantity": 0, "market": "us-dscsa"
    });
    let (st, body) = call(a, "POST", Some(&bad.to_string()), Some(TOKEN));
    assert_eq!(st, 422, "{body}");
    assert_eq!(body["error"], "invalid_order");
    let problems: Vec<String> = serde_json::from_value(body["problems"].clone()).expect("list");
    let all = problems.join(" | ");
    assert!(all.contains("is made for eu-fmd"), "{all}");
    assert!(all.contains("quantity 0"), "{all}");
    assert!(
        problems.len() >= 4,
        "market, batch, expiry, quantity: {all}"
    );

    let unknown = json!({
        "product": "04012345999992", "batch": "L", "expiry": "281231",
        "quantity": 1, "market": "mars"
    });
    let (st, body) = call(a, "POST", Some(&unknown.to_string()), Some(TOKEN));
    assert_eq!(st, 422);
    let all = body["problems"].to_string();
    assert!(
        all.contains("mars") && all.contains("04012345999992"),
        "{all}"
    );

    for (b, what) in [
        ("", "work order"),
        ("{", "work order"),
        (r#"{"product": "04012345111118"}"#, "batch"),
        (
            r#"{"product": "04012345111118", "batch": "L", "expiry": "281231", "quantity": -1, "market": "us-dscsa"}"#,
            "quantity",
        ),
        (
            r#"{"product": "04012345111118", "batch": "L", "expiry": "281231", "quantity": 1, "market": "us-dscsa", "colour": "red"}"#,
            "colour",
        ),
    ] {
        let (st, body) = call(a, "POST", Some(b), Some(TOKEN));
        assert_eq!(st, 400, "{b}: {body}");
        assert_eq!(body["error"], "bad_request");
        let msg = body["message"].as_str().unwrap_or_default();
        assert!(msg.contains(what), "{b}: {msg}");
    }

    assert_eq!(call(a, "POST", Some(&order(None, 1)), None).0, 401);
    assert_eq!(call(a, "POST", Some(&order(None, 1)), Some("nope")).0, 403);
    assert_eq!(call(a, "GET", None, None).0, 401);
    let (st, body) = call(a, "GET", None, Some(TOKEN));
    assert_eq!(
        (st, body),
        (200, json!({"orders": []})),
        "nothing was queued"
    );
}
