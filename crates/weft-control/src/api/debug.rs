//! The debug API over the ADS server: `/debug/proxies`, `/debug/config_dump`, `/metrics`
//! (docs/xds.md, "Debug API").

use super::ApiError;
use crate::xds::Xds;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;

/// Routes to merge into the API router.
pub fn router(xds: Xds) -> Router {
    Router::new()
        .route("/debug/proxies", get(proxies))
        .route("/debug/config_dump", get(config_dump))
        .route("/metrics", get(metrics))
        .with_state(xds)
}

async fn proxies(State(xds): State<Xds>) -> Json<Vec<Value>> {
    Json(xds.proxies())
}

#[derive(Debug, Deserialize)]
struct DumpQuery {
    proxy: Option<String>,
}

async fn config_dump(
    State(xds): State<Xds>,
    Query(query): Query<DumpQuery>,
) -> Result<Json<Value>, ApiError> {
    let Some(id) = query.proxy.filter(|p| !p.is_empty()) else {
        return Err(ApiError::bad_request(
            "name the proxy: /debug/config_dump?proxy=<node id> (ids are in /debug/proxies)",
        ));
    };
    xds.config_dump(&id).map(Json).ok_or_else(|| {
        ApiError::not_found(format!(
            "proxy {id:?} is not connected; /debug/proxies lists the connected ones"
        ))
    })
}

async fn metrics(State(xds): State<Xds>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        xds.metrics_text(),
    )
}
