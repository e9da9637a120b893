//! `?watch=true`: newline-delimited JSON events, streamed until the client or weftd leaves.

use super::{ApiError, AppState};
use crate::store::ListOptions;
use axum::body::Body;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{json, Value};
use std::convert::Infallible;

pub(super) async fn serve(
    state: &AppState,
    api_version: String,
    options: ListOptions,
    from: Option<u64>,
) -> Result<Response, ApiError> {
    // An expired resourceVersion is answered with 410 before the stream starts.
    let events = state.store.watch(from).await?;
    let mut shutdown = state.shutdown.clone();
    let stopped = async move {
        let _ = shutdown.wait_for(|down| *down).await;
    };
    let lines = events
        .filter_map(move |item| {
            let line = match item {
                Ok(event) if options.matches(&event.object) => {
                    let mut event = serde_json::to_value(&event).unwrap_or(Value::Null);
                    event["object"]["apiVersion"] = api_version.clone().into();
                    Some(event)
                }
                Ok(_) => None,
                // Like Kubernetes: an ERROR event carrying a 410 Status, then the end,
                // so the client knows to list again rather than wait.
                Err(e) => Some(json!({"type": "ERROR", "object": ApiError::from(e).status()})),
            };
            std::future::ready(line.map(|v| Ok::<_, Infallible>(format!("{v}\n"))))
        })
        .take_until(stopped);
    Ok((
        [(CONTENT_TYPE, "application/json")],
        Body::from_stream(lines),
    )
        .into_response())
}
