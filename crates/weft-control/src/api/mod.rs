//! weftd's HTTP API: Kubernetes-shaped paths over the [`Store`](crate::store::Store).
//! The contract is docs/api.md.

mod body;
pub mod debug;
mod objects;
pub mod status;
mod tokens;
mod watch;

pub use status::ApiError;

use crate::auth::Token;
use crate::store::Store;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch as signal;
use weft_config::Kind;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub token: Arc<Token>,
    pub data_dir: PathBuf,
    /// Where the xDS server listens, so tools (`weft bootstrap`) can find it.
    pub xds_addr: Option<std::net::SocketAddr>,
    /// Turns true when weftd shuts down, so open watch streams end and the server drains.
    pub shutdown: signal::Receiver<bool>,
    /// The CA, for bootstrap tokens (`/api/weft/v1/tokens`); none in API-only tests.
    pub ca: Option<Arc<crate::ca::Ca>>,
}

/// The API's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(readiness))
        .route("/apis/{group}/{version}/{plural}", get(objects::list_all))
        .route(
            "/apis/{group}/{version}/namespaces/{ns}/{plural}",
            get(objects::list_namespaced).post(objects::create),
        )
        .route(
            "/apis/{group}/{version}/namespaces/{ns}/{plural}/{name}",
            get(objects::get_one)
                .put(objects::put)
                .delete(objects::delete),
        )
        // Kubernetes' core group (Secrets) has no group segment: `/api/v1/...`.
        .route("/api/{version}/{plural}", get(objects::list_all))
        .route(
            "/api/{version}/namespaces/{ns}/{plural}",
            get(objects::list_namespaced).post(objects::create),
        )
        .route(
            "/api/{version}/namespaces/{ns}/{plural}/{name}",
            get(objects::get_one)
                .put(objects::put)
                .delete(objects::delete),
        )
        .route("/api/weft/v1/tokens", axum::routing::post(tokens::create))
        .fallback(not_found)
        .with_state(state)
}

async fn readiness(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "name": "weftd",
        "version": env!("CARGO_PKG_VERSION"),
        "status": "ok",
        "store": state.store.backend(),
        "dataDir": state.data_dir.display().to_string(),
        "xdsAddr": state.xds_addr.map(|a| a.to_string()),
    }))
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(format!(
        "the server could not find the requested resource {}",
        uri.path()
    ))
}

/// The kind named by `{group}/{version}/{plural}` (group empty for the core group), if
/// weftd serves it in that version.
fn resolve(group: &str, version: &str, plural: &str) -> Result<Kind, ApiError> {
    Kind::from_plural(group, plural)
        .filter(|k| k.serves(&weft_config::kind::api_version(group, version)))
        .ok_or_else(|| {
            let resource = if group.is_empty() {
                format!("{plural}/{version}")
            } else {
                format!("{plural}.{group}/{version}")
            };
            ApiError::not_found(format!(
                "the server could not find the requested resource: {resource}"
            ))
        })
}

/// Reads of kinds holding private keys (Secrets) need the token, as writes do.
fn authorize_read(state: &AppState, headers: &HeaderMap, kind: Kind) -> Result<(), ApiError> {
    if kind.is_sensitive() {
        authorize(state, headers)
    } else {
        Ok(())
    }
}

/// Writes (and reads of secrets) need `Authorization: Bearer <token>`.
fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let presented = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(token) if state.token.verify(token) => Ok(()),
        Some(_) => Err(ApiError::unauthorized(format!(
            "the bearer token is not valid; use the one in {}",
            state.token.path().display()
        ))),
        None => Err(ApiError::unauthorized(format!(
            "writes and reads of secrets need \"Authorization: Bearer <token>\"; the token is in {}",
            state.token.path().display()
        ))),
    }
}
