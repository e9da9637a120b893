//! ratings: stars per reviewer, `GET /ratings/{id}`.

use crate::catalog;
use axum::extract::Path;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;

pub fn router() -> Router {
    Router::new()
        .route("/ratings/{id}", get(ratings))
        .route("/health", get(|| async { "ratings is healthy" }))
}

async fn ratings(Path(id): Path<u32>) -> Json<Value> {
    Json(catalog::ratings(id))
}
