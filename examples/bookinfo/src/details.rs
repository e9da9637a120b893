//! details: the book's publishing facts, `GET /details/{id}`.

use crate::catalog;
use axum::extract::Path;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;

pub fn router() -> Router {
    Router::new()
        .route("/details/{id}", get(details))
        .route("/health", get(|| async { "details is healthy" }))
}

async fn details(Path(id): Path<u32>) -> Json<Value> {
    Json(catalog::details(id))
}
