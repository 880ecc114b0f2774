//! The aggregation read API of a running daemon: `GET /api/v1/agg/containers/{code}`
//! answers the tree under a scanned case or pallet code (or the containers a unit is
//! in) as `{"code", "tree", "container"}`, `GET /api/v1/agg/holds` the cases and
//! pallets held for rework and not resolved yet (each with its reasons, the units a
//! short case keeps, `resolved: null`). It changes nothing (rework is the HMI's). Every request
//! needs `Authorization: Bearer TOKEN`: the daemon's local token (random per start,
//! written with the address to `<data>/hmi/agg-api.json`, mode 0600, for `linectl agg`
//! on the same PC) or one of `LINECTL_API_TOKENS`. Errors are the APIs' JSON body:
//! `401`/`403` (credentials), `404 not_found` (no such container), `500 store`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::{ApiError, authorize};
use crate::aggregation::service::AggService;

/// The API's state.
#[derive(Clone)]
pub struct AggApi {
    svc: Arc<AggService>,
    tokens: Arc<Vec<String>>,
}

impl std::fmt::Debug for AggApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AggApi").finish_non_exhaustive()
    }
}

impl AggApi {
    /// The API over `svc`, accepting `tokens`.
    pub fn new(svc: Arc<AggService>, tokens: Vec<String>) -> AggApi {
        AggApi {
            svc,
            tokens: Arc::new(tokens),
        }
    }
}

/// The routes.
pub fn agg_router(api: AggApi) -> Router {
    Router::new()
        .route("/api/v1/agg/containers/{code}", get(container))
        .route("/api/v1/agg/holds", get(holds))
        .with_state(api)
}

fn store_err(e: impl std::fmt::Display) -> Response {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "store", e.to_string()).into_response()
}

async fn container(
    State(api): State<AggApi>,
    headers: HeaderMap,
    Path(code): Path<String>,
) -> Response {
    if let Err(e) = authorize(&api.tokens, &headers) {
        return e.into_response();
    }
    let svc = api.svc.clone();
    let c = code.clone();
    let r = tokio::task::spawn_blocking(move || {
        Ok::<_, crate::aggregation::AggError>((svc.show(&c)?, svc.container_of(&c)?))
    })
    .await;
    match r {
        Ok(Ok((Some(tree), container))) => axum::Json(json!({
            "code": code,
            "tree": tree,
            "container": container,
        }))
        .into_response(),
        Ok(Ok((None, _))) => ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{code:?} is no aggregated case or pallet and in none"),
        )
        .into_response(),
        Ok(Err(e)) => store_err(e),
        Err(e) => store_err(e),
    }
}

async fn holds(State(api): State<AggApi>, headers: HeaderMap) -> Response {
    if let Err(e) = authorize(&api.tokens, &headers) {
        return e.into_response();
    }
    let svc = api.svc.clone();
    match tokio::task::spawn_blocking(move || svc.holds()).await {
        Ok(Ok(h)) => axum::Json(json!({ "holds": h })).into_response(),
        Ok(Err(e)) => store_err(e),
        Err(e) => store_err(e),
    }
}
