//! API errors as Kubernetes `Status` objects, so kubectl-minded clients can read them.

use crate::store::StoreError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use weft_config::FieldError;

/// An error answer: HTTP code, Kubernetes reason, message and optional details.
#[derive(Debug)]
pub struct ApiError {
    pub code: StatusCode,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl ApiError {
    fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message)
    }

    /// 422 listing every field error as a cause: `Kind ns/name: path: msg; path: msg`.
    pub fn invalid(kind: &str, namespace: &str, name: &str, errors: &[FieldError]) -> Self {
        let joined: Vec<String> = errors.iter().map(ToString::to_string).collect();
        let causes: Vec<Value> = errors
            .iter()
            .map(|e| json!({"field": e.path, "message": e.message}))
            .collect();
        ApiError {
            details: Some(json!({"kind": kind, "name": name, "causes": causes})),
            ..Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid",
                format!("{kind} {namespace}/{name}: {}", joined.join("; ")),
            )
        }
    }

    /// The Status object this error is answered with.
    pub fn status(&self) -> Value {
        let mut status = json!({
            "apiVersion": "v1",
            "kind": "Status",
            "metadata": {},
            "status": "Failure",
            "code": self.code.as_u16(),
            "reason": self.reason,
            "message": self.message,
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.code, Json(self.status())).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let named = |key: &crate::store::ObjectKey| {
            Some(json!({"kind": key.kind.name(), "group": key.kind.info().group, "name": key.name}))
        };
        let (code, reason, details) = match &e {
            StoreError::NotFound(key) => (StatusCode::NOT_FOUND, "NotFound", named(key)),
            StoreError::AlreadyExists(key) => (StatusCode::CONFLICT, "AlreadyExists", named(key)),
            StoreError::Conflict { key, .. } => (StatusCode::CONFLICT, "Conflict", named(key)),
            StoreError::Expired { .. } | StoreError::WatchLagged => {
                (StatusCode::GONE, "Expired", None)
            }
            StoreError::InvalidObject(_) => (StatusCode::BAD_REQUEST, "BadRequest", None),
            StoreError::Embedded(_) | StoreError::Corrupt(_) | StoreError::Task(_) => {
                tracing::error!(error = %e, "store failure");
                (StatusCode::INTERNAL_SERVER_ERROR, "InternalError", None)
            }
        };
        ApiError {
            code,
            reason,
            message: e.to_string(),
            details,
        }
    }
}
