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

/// More metric families for `/metrics` (the CA's), given as a layer:
/// `router(xds).layer(Extension(ExtraMetrics(..)))`. Their text has no `# EOF` line.
#[derive(Clone)]
pub struct ExtraMetrics(pub std::sync::Arc<dyn Fn() -> String + Send + Sync>);

async fn metrics(
    State(xds): State<Xds>,
    extra: Option<axum::Extension<ExtraMetrics>>,
) -> impl IntoResponse {
    let mut text = xds.metrics_text();
    if let Some(axum::Extension(ExtraMetrics(more))) = extra {
        // One exposition: the extra families go before the closing `# EOF`.
        let body = text
            .trim_end()
            .strip_suffix("# EOF")
            .unwrap_or(&text)
            .to_string();
        text = format!("{body}{}\n# EOF\n", more().trim_end());
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
}
