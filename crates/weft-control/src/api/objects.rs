//! Handlers for get, list, create, create-or-replace and delete.

use super::body::{check, decode, warning_headers, Target};
use super::{authorize, resolve, watch, ApiError, AppState};
use crate::selector::Selector;
use crate::store::{ListOptions, ObjectKey};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ListQuery {
    label_selector: Option<String>,
    watch: Option<String>,
    resource_version: Option<String>,
}

/// Objects are stored in the kind's preferred version and shown in the one asked for.
fn present(mut object: Value, api_version: &str) -> Value {
    object["apiVersion"] = api_version.into();
    object
}

pub(super) async fn list_all(
    State(state): State<AppState>,
    Path((group, version, plural)): Path<(String, String, String)>,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    list(state, group, version, plural, None, query).await
}

pub(super) async fn list_namespaced(
    State(state): State<AppState>,
    Path((group, version, ns, plural)): Path<(String, String, String, String)>,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    list(state, group, version, plural, Some(ns), query).await
}

async fn list(
    state: AppState,
    group: String,
    version: String,
    plural: String,
    namespace: Option<String>,
    query: ListQuery,
) -> Result<Response, ApiError> {
    let kind = resolve(&group, &version, &plural)?;
    let api_version = format!("{group}/{version}");
    let selector: Selector = query
        .label_selector
        .as_deref()
        .unwrap_or_default()
        .parse()
        .map_err(|e: crate::selector::SelectorError| ApiError::bad_request(e.to_string()))?;
    let options = ListOptions {
        kind: Some(kind),
        namespace,
        selector,
    };
    if matches!(query.watch.as_deref(), Some("true" | "1")) {
        let from = match query.resource_version.as_deref() {
            None | Some("") | Some("0") => None,
            Some(rv) => Some(rv.parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!("resourceVersion {rv:?} is not a number"))
            })?),
        };
        return watch::serve(&state, api_version, options, from).await;
    }
    let listing = state.store.list(options).await?;
    let items: Vec<Value> = listing
        .items
        .into_iter()
        .map(|o| present(o, &api_version))
        .collect();
    Ok(Json(json!({
        "apiVersion": api_version,
        "kind": format!("{}List", kind.name()),
        "metadata": {"resourceVersion": listing.revision.to_string()},
        "items": items,
    }))
    .into_response())
}

pub(super) async fn get_one(
    State(state): State<AppState>,
    Path((group, version, ns, plural, name)): Path<(String, String, String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let kind = resolve(&group, &version, &plural)?;
    let key = ObjectKey::new(kind, ns, name);
    match state.store.get(key.clone()).await? {
        Some(object) => Ok(Json(present(object, &format!("{group}/{version}")))),
        None => Err(crate::store::StoreError::NotFound(key).into()),
    }
}

pub(super) async fn create(
    State(state): State<AppState>,
    Path((group, version, ns, plural)): Path<(String, String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let kind = resolve(&group, &version, &plural)?;
    let api_version = format!("{group}/{version}");
    let target = Target {
        kind,
        api_version: api_version.clone(),
        namespace: &ns,
        name: None,
    };
    let write = check(&target, decode(&headers, &body)?)?;
    let stored = state.store.create(write.object).await?;
    tracing::info!(key = %ObjectKey::of(&stored)?, "created");
    Ok((
        StatusCode::CREATED,
        warning_headers(&write.warnings),
        Json(present(stored, &api_version)),
    )
        .into_response())
}

pub(super) async fn put(
    State(state): State<AppState>,
    Path((group, version, ns, plural, name)): Path<(String, String, String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let kind = resolve(&group, &version, &plural)?;
    let api_version = format!("{group}/{version}");
    let target = Target {
        kind,
        api_version: api_version.clone(),
        namespace: &ns,
        name: Some(&name),
    };
    let write = check(&target, decode(&headers, &body)?)?;
    let outcome = state.store.put(write.object, write.expected).await?;
    let code = if outcome.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    tracing::debug!(kind = %kind, ns, name, created = outcome.created, "put");
    Ok((
        code,
        warning_headers(&write.warnings),
        Json(present(outcome.object, &api_version)),
    )
        .into_response())
}

pub(super) async fn delete(
    State(state): State<AppState>,
    Path((group, version, ns, plural, name)): Path<(String, String, String, String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let kind = resolve(&group, &version, &plural)?;
    let last = state
        .store
        .delete(ObjectKey::new(kind, ns, name), None)
        .await?;
    tracing::info!(key = %ObjectKey::of(&last)?, "deleted");
    Ok(Json(present(last, &format!("{group}/{version}"))))
}
