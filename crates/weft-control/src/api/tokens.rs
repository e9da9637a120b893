//! `POST /api/weft/v1/tokens`: creates a bootstrap token for one namespace and service
//! account (the admin token is required). The token is in the answer once; weftd keeps
//! only its digest.

use super::{authorize, body, ApiError, AppState};
use crate::ca::tokens::TokenStoreError;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TokenRequest {
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    service_account: String,
    /// `3600` (seconds) or `"24h"`; none: the token does not expire.
    #[serde(default)]
    ttl: Option<Value>,
}

fn ttl(value: &Value) -> Result<Duration, ApiError> {
    let bad = || {
        ApiError::bad_request(format!(
            "ttl: {value} is not a duration: give seconds (3600) or text such as \"90s\", \"30m\", \"24h\", \"7d\""
        ))
    };
    let secs = match value {
        Value::Number(n) => n.as_u64().ok_or_else(bad)?,
        Value::String(s) => {
            let s = s.trim();
            let at = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
            let (n, unit) = s.split_at(at);
            let n: u64 = n.parse().map_err(|_| bad())?;
            let scale = match unit {
                "s" => 1,
                "m" => 60,
                "h" => 3600,
                "d" => 86400,
                _ => return Err(bad()),
            };
            n.checked_mul(scale).ok_or_else(bad)?
        }
        _ => return Err(bad()),
    };
    if secs == 0 {
        return Err(ApiError::bad_request("ttl: must be positive"));
    }
    Ok(Duration::from_secs(secs))
}

fn rfc3339(secs: u64) -> Value {
    let at = i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok());
    at.and_then(|t| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    })
    .map(Value::String)
    .unwrap_or(Value::Null)
}

pub(super) async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    raw: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    authorize(&state, &headers)?;
    let Some(ca) = state.ca.as_ref() else {
        return Err(ApiError::internal("this weftd runs without a CA"));
    };
    let request: TokenRequest = serde_json::from_value(body::decode(&headers, &raw)?)
        .map_err(|e| ApiError::bad_request(format!("the token request is not valid: {e}")))?;
    let ttl = request.ttl.as_ref().map(ttl).transpose()?;
    let issued = ca
        .tokens
        .create(&request.namespace, &request.service_account, ttl)
        .map_err(|e| match e {
            TokenStoreError::Invalid { .. } => ApiError::bad_request(e.to_string()),
            other => ApiError::internal(other.to_string()),
        })?;
    let identity = ca.identity(&issued.binding);
    tracing::info!(%identity, expires = ?issued.expires, "created a bootstrap token");
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "kind": "BootstrapToken",
            "token": issued.token,
            "namespace": issued.binding.namespace,
            "serviceAccount": issued.binding.service_account,
            "identity": identity.to_string(),
            "expires": issued.expires.map(rfc3339).unwrap_or(Value::Null),
        })),
    ))
}
