//! HTTP APIs linectl serves to the site server, as axum routers the daemon's HTTP server
//! mounts. This module owns only the routers and their request/response rules; it does
//! not start a server, bind a port or load TLS (the daemon does): the EPCIS pull API
//! ([`events`]) and work orders from the site server / ERP ([`orders`]). Shared here:
//! bearer-token checking (constant-time) and the JSON error body
//! `{"error": CODE, "message": TEXT}`.

pub mod agg;
pub mod events;
pub mod orders;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

pub use events::{EventsApi, PullApiConfig, events_router};
pub use orders::{OrderQueue, OrdersApi, OrdersConfig, orders_router};

/// A JSON error response `{"error": code, "message": message}`.
pub(crate) fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(json!({ "error": code, "message": message.into() })),
    )
        .into_response()
}

/// A refusal before the journal is touched (kept small; turned into a response late).
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: String) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "bad_request",
            message,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = error(self.status, self.code, self.message);
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"linectl\""),
            );
        }
        r
    }
}

/// Equal in time independent of where they differ (length is not hidden).
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u64;
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= u64::from(x ^ y);
    }
    diff == 0
}

pub(crate) fn authorize(tokens: &[String], headers: &HeaderMap) -> Result<(), ApiError> {
    let unauthorized = |msg: &str| ApiError {
        status: StatusCode::UNAUTHORIZED,
        code: "unauthorized",
        message: msg.to_string(),
    };
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(unauthorized("missing Authorization: Bearer token"));
    };
    let Some(token) = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
    else {
        return Err(unauthorized("Authorization must be `Bearer TOKEN`"));
    };
    // Check every token, without stopping at the first match.
    let ok = tokens
        .iter()
        .fold(false, |acc, t| acc | ct_eq(t.as_bytes(), token.as_bytes()));
    if ok {
        Ok(())
    } else {
        Err(ApiError {
            status: StatusCode::FORBIDDEN,
            code: "forbidden",
            message: "token not accepted".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_compare() {
        assert!(ct_eq(b"secret", b"secret"));
        assert!(!ct_eq(b"secret", b"secreT"));
        assert!(!ct_eq(b"secret", b"secret2"));
        assert!(!ct_eq(b"", b"x"));
        assert!(ct_eq(b"", b""));
    }

    #[test]
    fn auth_rules() {
        let cfg = vec!["t1".to_string(), "t2".to_string()];
        let mut h = HeaderMap::new();
        let status = |r: Result<(), ApiError>| r.err().map(|e| e.status.as_u16());
        assert_eq!(status(authorize(&cfg, &h)), Some(401));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(status(authorize(&cfg, &h)), Some(401));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer nope"),
        );
        assert_eq!(status(authorize(&cfg, &h)), Some(403));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer t2"));
        assert_eq!(status(authorize(&cfg, &h)), None);
        let none: Vec<String> = Vec::new();
        assert_eq!(status(authorize(&none, &h)), Some(403));
    }
}
