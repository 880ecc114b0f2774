//! Work orders from the site server or the ERP: `POST /api/v1/orders` validates an order
//! against the product master data and the market's rules and puts the batch in the
//! queue the HMI starts batches from; `GET /api/v1/orders` lists the queue. It owns the
//! order format, its validation, the queue ([`OrderQueue`], durable in a JSON file when
//! given one) and the routes; it does not start batches, reserve serials or know the
//! HMI (the HMI calls [`OrderQueue::take_next`]).
//!
//! # Request
//!
//! ```json
//! {"orderId": "WO-4711", "product": "04012345111118", "batch": "LOT1",
//!  "expiry": "281231", "quantity": 12000, "market": "eu-fmd"}
//! ```
//!
//! `orderId` is optional but makes retries safe: the same id with the same content
//! answers `200` with the order's state again; with other content `409
//! order_conflict`. Without it the server assigns `wo-N` and a retry queues a second
//! order. `product` is the GTIN (8/12/13/14 digits) of a product in the master data;
//! `market` must be the product's market.
//!
//! # Responses
//!
//! `201 {"orderId", "state": "queued", "position"}` for a new order; `400 bad_request`
//! for a body that is not this JSON shape (names the field); `422 invalid_order` with
//! `problems: [..]` listing every rule the order breaks (unknown product, market
//! mismatch, batch or expiry against the market, quantity out of range); `409
//! queue_full`; `401`/`403` as for every API here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ApiError, authorize, error};
use crate::market::{BatchData, Market, Product, normalise_gtin};
use crate::profile::model::ProductSection;

/// One product of the master data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterProduct {
    /// GTIN (any length with check digit; normalised to GTIN-14 when loaded).
    pub gtin: String,
    /// Product name.
    pub name: String,
    /// The market whose rules its codes follow.
    pub market: Market,
    /// National AIs and their values.
    pub national_ais: Vec<(String, String)>,
}

impl MasterProduct {
    /// The product a line profile describes.
    pub fn from_profile(p: &ProductSection) -> MasterProduct {
        MasterProduct {
            gtin: p.gtin.clone(),
            name: p.name.clone(),
            market: p.market,
            national_ais: p
                .national_ais
                .iter()
                .map(|(a, v)| (a.clone(), v.clone()))
                .collect(),
        }
    }
}

/// Configuration of the work-order API.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrdersConfig {
    /// Bearer tokens accepted. Default: none (every request refused).
    pub tokens: Vec<String>,
    /// Largest quantity of one order. Default 10,000,000.
    pub max_quantity: u64,
    /// Most orders waiting in the queue. Default 1,000.
    pub max_queued: usize,
}

impl Default for OrdersConfig {
    fn default() -> Self {
        OrdersConfig {
            tokens: Vec::new(),
            max_quantity: 10_000_000,
            max_queued: 1_000,
        }
    }
}

/// A validated work order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkOrder {
    /// The order's id (the client's, or `wo-N`).
    pub order_id: String,
    /// GTIN-14 of the product.
    pub product: String,
    /// Batch / lot.
    pub batch: String,
    /// Expiry YYMMDD.
    pub expiry: String,
    /// Units ordered.
    pub quantity: u64,
    /// Market.
    pub market: Market,
}

/// Where an order is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderState {
    /// Waiting for the HMI to start it.
    Queued,
    /// Taken by the HMI.
    Started,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct QueueFile {
    next_id: u64,
    orders: Vec<(WorkOrder, OrderState)>,
}

/// Why the order queue failed.
#[derive(Debug, thiserror::Error)]
pub enum OrderQueueError {
    /// Reading or writing the queue file failed.
    #[error("order queue {path}: {what}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The queue file is not valid.
    #[error("order queue {path}: damaged: {reason}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
}

/// The queue of orders, every order ever accepted with its state (so an order id is
/// never reused). Durable when opened on a file: every change is written to
/// `FILE.tmp`, fsynced and renamed over `FILE` before it is answered.
#[derive(Debug)]
pub struct OrderQueue {
    file: Option<PathBuf>,
    state: Mutex<QueueFile>,
}

impl OrderQueue {
    /// A queue that lives in memory only.
    pub fn in_memory() -> OrderQueue {
        OrderQueue {
            file: None,
            state: Mutex::new(QueueFile::default()),
        }
    }

    /// Open (or start) the queue kept in `path`.
    pub fn open(path: &Path) -> Result<OrderQueue, OrderQueueError> {
        let state = match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| OrderQueueError::Damaged {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => QueueFile::default(),
            Err(source) => {
                return Err(OrderQueueError::Io {
                    path: path.to_path_buf(),
                    what: "read",
                    source,
                });
            }
        };
        Ok(OrderQueue {
            file: Some(path.to_path_buf()),
            state: Mutex::new(state),
        })
    }

    fn lock(&self) -> MutexGuard<'_, QueueFile> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn save(&self, q: &QueueFile) -> Result<(), OrderQueueError> {
        use std::io::Write;
        let Some(path) = &self.file else {
            return Ok(());
        };
        let io = |what, source| OrderQueueError::Io {
            path: path.clone(),
            what,
            source,
        };
        let tmp = path.with_extension("tmp");
        let bytes = serde_json::to_vec_pretty(q).map_err(|e| io("encode", e.into()))?;
        let mut f = std::fs::File::create(&tmp).map_err(|e| io("create temporary file", e))?;
        f.write_all(&bytes).map_err(|e| io("write", e))?;
        f.sync_all().map_err(|e| io("fsync", e))?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(|e| io("rename", e))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| io("fsync directory", e))?;
        }
        Ok(())
    }

    /// Orders waiting, in the order they were accepted.
    pub fn queued(&self) -> Vec<WorkOrder> {
        self.lock()
            .orders
            .iter()
            .filter(|(_, s)| *s == OrderState::Queued)
            .map(|(o, _)| o.clone())
            .collect()
    }

    /// Take the oldest waiting order (the HMI starts it); durable before it returns.
    pub fn take_next(&self) -> Result<Option<WorkOrder>, OrderQueueError> {
        let mut q = self.lock();
        let mut next = q.clone();
        let Some(slot) = next
            .orders
            .iter_mut()
            .find(|(_, s)| *s == OrderState::Queued)
        else {
            return Ok(None);
        };
        slot.1 = OrderState::Started;
        let order = slot.0.clone();
        self.save(&next)?;
        *q = next;
        Ok(Some(order))
    }
}

/// The state behind the orders router.
#[derive(Debug, Clone)]
pub struct OrdersApi {
    master: Arc<BTreeMap<String, MasterProduct>>,
    queue: Arc<OrderQueue>,
    config: Arc<OrdersConfig>,
}

impl OrdersApi {
    /// The API over `products` (master data; GTINs are normalised, a malformed one is
    /// an error naming it) and `queue`.
    pub fn new(
        products: Vec<MasterProduct>,
        queue: Arc<OrderQueue>,
        config: OrdersConfig,
    ) -> Result<OrdersApi, String> {
        let mut master = BTreeMap::new();
        for p in products {
            let gtin = normalise_gtin(&p.gtin)
                .map_err(|e| format!("master data: product {:?}: GTIN: {e}", p.name))?;
            master.insert(gtin, p);
        }
        Ok(OrdersApi {
            master: Arc::new(master),
            queue,
            config: Arc::new(config),
        })
    }

    /// The queue (for the HMI).
    pub fn queue(&self) -> &Arc<OrderQueue> {
        &self.queue
    }
}

/// The work-order routes (`POST` and `GET /api/v1/orders`) over `state`.
pub fn orders_router(state: OrdersApi) -> Router {
    Router::new()
        .route("/api/v1/orders", post(create_order).get(list_orders))
        .with_state(state)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct OrderRequest {
    order_id: Option<String>,
    product: String,
    batch: String,
    expiry: String,
    quantity: u64,
    market: String,
}

/// Every rule `req` breaks, or the order it makes (without an id yet).
fn validate(api: &OrdersApi, req: &OrderRequest) -> Result<WorkOrder, Vec<String>> {
    let mut problems = Vec::new();
    if let Some(id) = &req.order_id
        && (id.is_empty() || id.len() > 64 || id.chars().any(char::is_control))
    {
        problems.push(format!(
            "orderId {id:?}: 1-64 characters without control characters"
        ));
    }
    let market = match req.market.parse::<Market>() {
        Ok(m) => Some(m),
        Err(e) => {
            problems.push(format!("market: {e}"));
            None
        }
    };
    let gtin = match normalise_gtin(&req.product) {
        Ok(g) => Some(g),
        Err(e) => {
            problems.push(format!("product {:?}: {e}", req.product));
            None
        }
    };
    let product = gtin.as_ref().and_then(|g| api.master.get(g));
    if let (Some(g), None) = (&gtin, product) {
        problems.push(format!("product {g}: not in the product master data"));
    }
    if let (Some(p), Some(m)) = (product, market) {
        if p.market != m {
            problems.push(format!(
                "market {m}: product {} ({}) is made for {}",
                p.gtin, p.name, p.market
            ));
        }
        let prod = Product {
            gtin: p.gtin.clone(),
            national_ais: p.national_ais.clone(),
        };
        problems.extend(
            m.product_problems(&prod)
                .into_iter()
                .map(|e| format!("product master data: {e}")),
        );
    }
    if let Some(m) = market {
        let batch = BatchData {
            batch: req.batch.clone(),
            expiry: req.expiry.clone(),
        };
        problems.extend(m.batch_problems(&batch).into_iter().map(|e| e.to_string()));
    }
    if req.quantity == 0 || req.quantity > api.config.max_quantity {
        problems.push(format!(
            "quantity {} must be within 1..={}",
            req.quantity, api.config.max_quantity
        ));
    }
    match (problems.is_empty(), gtin, market) {
        (true, Some(product), Some(market)) => Ok(WorkOrder {
            order_id: req.order_id.clone().unwrap_or_default(),
            product,
            batch: req.batch.clone(),
            expiry: req.expiry.clone(),
            quantity: req.quantity,
            market,
        }),
        _ => Err(problems),
    }
}

async fn create_order(State(api): State<OrdersApi>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(e) = authorize(&api.config.tokens, &headers) {
        return e.into_response();
    }
    let req: OrderRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!(
                    "body must be a work order (orderId?, product, batch, expiry, quantity, market): {e}"
                ),
            );
        }
    };
    let mut order = match validate(&api, &req) {
        Ok(o) => o,
        Err(problems) => {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                axum::Json(json!({
                    "error": "invalid_order",
                    "message": format!("the order breaks {} rule(s)", problems.len()),
                    "problems": problems,
                })),
            )
                .into_response();
        }
    };
    let queue = api.queue.clone();
    let max_queued = api.config.max_queued;
    let named = req.order_id.is_some();
    let done = tokio::task::spawn_blocking(move || {
        let mut q = queue.lock();
        if named
            && let Some((pos, (existing, state))) = q
                .orders
                .iter()
                .enumerate()
                .find(|(_, (o, _))| o.order_id == order.order_id)
        {
            let ahead = q.orders[..pos]
                .iter()
                .filter(|(_, s)| *s == OrderState::Queued)
                .count();
            return if *existing == order {
                Ok((StatusCode::OK, order.order_id.clone(), *state, ahead))
            } else {
                Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "order_conflict",
                    format!("order {:?} exists with other content", order.order_id),
                ))
            };
        }
        let waiting = q
            .orders
            .iter()
            .filter(|(_, s)| *s == OrderState::Queued)
            .count();
        if waiting >= max_queued {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "queue_full",
                format!("{waiting} orders are waiting; the queue holds {max_queued}"),
            ));
        }
        let mut next = q.clone();
        if !named {
            next.next_id += 1;
            order.order_id = format!("wo-{}", next.next_id);
        }
        next.orders.push((order.clone(), OrderState::Queued));
        queue.save(&next).map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "queue", e.to_string())
        })?;
        *q = next;
        Ok((
            StatusCode::CREATED,
            order.order_id,
            OrderState::Queued,
            waiting,
        ))
    })
    .await;
    match done {
        Ok(Ok((status, id, state, position))) => (
            status,
            axum::Json(json!({ "orderId": id, "state": state, "position": position })),
        )
            .into_response(),
        Ok(Err(e)) => e.into_response(),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "queue",
            format!("queue task failed: {e}"),
        ),
    }
}

async fn list_orders(State(api): State<OrdersApi>, headers: HeaderMap) -> Response {
    if let Err(e) = authorize(&api.config.tokens, &headers) {
        return e.into_response();
    }
    axum::Json(json!({ "orders": api.queue.queued() })).into_response()
}
