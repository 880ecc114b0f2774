//! The EPCIS pull API: the site server fetches the line's events from the journal and
//! acknowledges what it has stored. It owns the two routes, their token check and their
//! error bodies; the journal (records, consumer cursor `site-pull`) and the record
//! format ([`crate::uplink::record`]) are someone else's.
//!
//! # Routes
//!
//! * `GET /api/v1/events?after=CURSOR&limit=N` → `200`, body: an EPCIS 2.0 document
//!   (`application/ld+json`) with the events of the journal records from `CURSOR` on
//!   (at most `N` records; `N` defaults to [`PullApiConfig::default_limit`] and is
//!   clamped to [`PullApiConfig::max_limit`]). A cursor is the decimal seq of the next
//!   journal record to read; without `after` reading starts at the consumer's
//!   acknowledged position. The next cursor is in the response header
//!   **`Linectl-Next-Cursor`** (and a `Link: <…?after=NEXT&limit=N>; rel="next"` header);
//!   an empty `eventList` with the next cursor equal to `after` means "nothing new yet".
//!   Records that are not events are passed over (the cursor moves past them).
//! * `POST /api/v1/events/ack` with `{"cursor": "NEXT"}` (a cursor the GET returned;
//!   a string or a number) → `200 {"cursor": "C"}`: every record before `NEXT` is
//!   confirmed for the journal consumer (`site-pull` by default), and `C` is the
//!   consumer's acknowledged position afterwards. Acknowledging an older cursor again
//!   is harmless (idempotent).
//!
//! Every request needs `Authorization: Bearer TOKEN` with one of the configured tokens
//! (compared in constant time). Errors are JSON `{"error": CODE, "message": TEXT}`:
//! `401 unauthorized` (no or malformed credentials, with `WWW-Authenticate: Bearer`),
//! `403 forbidden` (unknown token), `400 bad_request` (bad cursor, limit or body),
//! `410 pruned` (the records were deleted after upload; `firstAvailable` names the
//! oldest kept), `500 journal` / `500 bad_record`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, authorize, error};
use crate::clock::Clock;
use crate::journal::{Journal, JournalError, Seq};
use crate::uplink::record::{EVENT_RECORD, EventRecord};

/// Response header carrying the next cursor.
pub const NEXT_CURSOR_HEADER: &str = "Linectl-Next-Cursor";

/// Configuration of the pull API.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PullApiConfig {
    /// Bearer tokens accepted. Default: none, so every request is refused until one
    /// is configured.
    pub tokens: Vec<String>,
    /// Journal consumer the acknowledgements confirm. Default `"site-pull"`; it must be
    /// one of the journal's configured consumers.
    pub consumer: String,
    /// Records per page when the request names no `limit`. Default 100.
    pub default_limit: usize,
    /// Largest page; larger `limit`s are clamped. Default 1,000.
    pub max_limit: usize,
}

impl Default for PullApiConfig {
    fn default() -> Self {
        PullApiConfig {
            tokens: Vec::new(),
            consumer: "site-pull".to_string(),
            default_limit: 100,
            max_limit: 1_000,
        }
    }
}

/// The state behind the router: the journal, the configuration and a clock (for the
/// documents' `creationDate`).
#[derive(Clone)]
pub struct EventsApi {
    journal: Arc<Journal>,
    config: Arc<PullApiConfig>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for EventsApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventsApi")
            .field("consumer", &self.config.consumer)
            .field("tokens", &self.config.tokens.len())
            .finish_non_exhaustive()
    }
}

impl EventsApi {
    /// Check the configuration against the journal (the consumer must exist, limits ≥ 1).
    pub fn new(
        journal: Arc<Journal>,
        config: PullApiConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<EventsApi, JournalError> {
        if config.default_limit == 0 || config.max_limit == 0 {
            return Err(JournalError::Config(
                "pull API: default_limit and max_limit must be at least 1".into(),
            ));
        }
        journal.cursor(&config.consumer)?;
        Ok(EventsApi {
            journal,
            config: Arc::new(config),
            clock,
        })
    }
}

/// The pull API's routes (`/api/v1/events`, `/api/v1/events/ack`) over `state`.
pub fn events_router(state: EventsApi) -> Router {
    Router::new()
        .route("/api/v1/events", get(list_events))
        .route("/api/v1/events/ack", post(ack))
        .with_state(state)
}

fn journal_error(e: JournalError) -> Response {
    match e {
        JournalError::Pruned {
            requested,
            first_available,
        } => (
            StatusCode::GONE,
            axum::Json(json!({
                "error": "pruned",
                "message": format!("records from {requested} were deleted after upload; the oldest kept is {first_available}"),
                "firstAvailable": first_available.0.to_string(),
            })),
        )
            .into_response(),
        e => error(StatusCode::INTERNAL_SERVER_ERROR, "journal", e.to_string()),
    }
}

fn parse_cursor(what: &str, s: &str) -> Result<Seq, ApiError> {
    let s = s.trim();
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::bad_request(format!(
            "{what} {s:?} is not a cursor (a decimal number)"
        )));
    }
    s.parse::<u64>()
        .map(Seq)
        .map_err(|_| ApiError::bad_request(format!("{what} {s:?} is out of range")))
}

/// Query of `GET /api/v1/events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    after: Option<String>,
    limit: Option<String>,
}

async fn list_events(
    State(api): State<EventsApi>,
    headers: HeaderMap,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Response {
    if let Err(e) = authorize(&api.config.tokens, &headers) {
        return e.into_response();
    }
    let Query(q) = match query {
        Ok(q) => q,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("query: {}", e.body_text()),
            );
        }
    };
    let limit = match q.limit.as_deref() {
        None => api.config.default_limit,
        Some(s) => match s.trim().parse::<usize>() {
            Ok(n) if n >= 1 => n.min(api.config.max_limit),
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!("limit {s:?} must be a whole number of at least 1"),
                );
            }
        },
    };
    let after = match q.after.as_deref() {
        Some(s) => match parse_cursor("after", s) {
            Ok(c) => Some(c),
            Err(e) => return e.into_response(),
        },
        None => None,
    };
    let j = api.journal.clone();
    let consumer = api.config.consumer.clone();
    let read = tokio::task::spawn_blocking(move || {
        let from = match after {
            Some(c) => c,
            None => j.cursor(&consumer)?,
        };
        let end = j.end_seq();
        if from > end {
            return Ok(Err(end));
        }
        j.read_from(from, limit).map(|r| Ok((from, r)))
    })
    .await;
    let (from, records) = match read {
        Ok(Ok(Ok(x))) => x,
        Ok(Ok(Err(end))) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("cursor is beyond the end of the journal ({end})"),
            );
        }
        Ok(Err(e)) => return journal_error(e),
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "journal",
                format!("journal read task failed: {e}"),
            );
        }
    };
    let next = records.last().map(|r| r.seq.next()).unwrap_or(from);
    let mut events = Vec::with_capacity(records.len());
    for r in &records {
        if r.kind != EVENT_RECORD {
            continue;
        }
        match EventRecord::decode(r.seq, &r.payload) {
            Ok(rec) => events.push(rec.event),
            Err(e) => {
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "bad_record",
                    e.to_string(),
                );
            }
        }
    }
    let doc = json!({
        "@context": ["https://ref.gs1.org/standards/epcis/epcis-context.jsonld"],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": crate::uplink::client::creation_date(api.clock.as_ref()),
        "epcisBody": { "eventList": events },
    });
    let mut resp = (StatusCode::OK, axum::Json(doc)).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/ld+json"),
    );
    if let Ok(v) = HeaderValue::from_str(&next.0.to_string()) {
        h.insert(NEXT_CURSOR_HEADER, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!(
        "</api/v1/events?after={}&limit={limit}>; rel=\"next\"",
        next.0
    )) {
        h.insert(header::LINK, v);
    }
    resp
}

async fn ack(State(api): State<EventsApi>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(e) = authorize(&api.config.tokens, &headers) {
        return e.into_response();
    }
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("body must be JSON {{\"cursor\": \"N\"}}: {e}"),
            );
        }
    };
    let cursor = match v.get("cursor") {
        Some(Value::String(s)) => parse_cursor("cursor", s).map_err(IntoResponse::into_response),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(n) => Ok(Seq(n)),
            None => Err(error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("cursor {n} is not a whole non-negative number"),
            )),
        },
        _ => Err(error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "body must be JSON {\"cursor\": \"N\"}",
        )),
    };
    let cursor = match cursor {
        Ok(c) => c,
        Err(r) => return r,
    };
    let j = api.journal.clone();
    let consumer = api.config.consumer.clone();
    let done = tokio::task::spawn_blocking(move || {
        let current = j.cursor(&consumer)?;
        if cursor > current {
            j.confirm(&consumer, Seq(cursor.0 - 1))?;
        }
        j.cursor(&consumer)
    })
    .await;
    match done {
        Ok(Ok(c)) => axum::Json(json!({ "cursor": c.0.to_string() })).into_response(),
        Ok(Err(e @ JournalError::CursorBeyondEnd { .. })) => {
            error(StatusCode::BAD_REQUEST, "bad_request", e.to_string())
        }
        Ok(Err(e)) => journal_error(e),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "journal",
            format!("journal confirm task failed: {e}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors() {
        assert_eq!(parse_cursor("after", "42").ok(), Some(Seq(42)));
        assert!(parse_cursor("after", "-1").is_err());
        assert!(parse_cursor("after", "").is_err());
        assert!(parse_cursor("after", "99999999999999999999").is_err());
    }
}
