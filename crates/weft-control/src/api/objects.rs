//! Handlers for get, list, create, create-or-replace and delete.

use super::body::{check, decode, warning_headers, Target};
use super::{authorize, authorize_read, resolve, watch, ApiError, AppState};
use crate::selector::Selector;
use crate::store::{ListOptions, ObjectKey};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use weft_config::Kind;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ListQuery {
    label_selector: Option<String>,
    watch: Option<String>,
    resource_version: Option<String>,
}

/// The parts of an object path: `/apis/{group}/{version}/[namespaces/{ns}/]{plural}[/{name}]`,
/// or `/api/{version}/...` for Kubernetes' core group, where `group` is empty.
#[derive(Debug, Deserialize)]
pub(super) struct ObjectPath {
    #[serde(default)]
    group: String,
    version: String,
    #[serde(default)]
    ns: Option<String>,
    plural: String,
    #[serde(default)]
    name: Option<String>,
}

impl ObjectPath {
    fn kind(&self) -> Result<Kind, ApiError> {
        resolve(&self.group, &self.version, &self.plural)
    }

    /// `group/version`, or the bare version of the core group: what objects are shown in.
    fn api_version(&self) -> String {
        weft_config::kind::api_version(&self.group, &self.version)
    }

    /// The namespace segment; every route that needs one has it.
    fn namespace(&self) -> String {
        self.ns.clone().unwrap_or_default()
    }

    fn name(&self) -> String {
        self.name.clone().unwrap_or_default()
    }
}

/// Objects are stored in the kind's preferred version and shown in the one asked for.
fn present(mut object: Value, api_version: &str) -> Value {
    object["apiVersion"] = api_version.into();
    object
}

pub(super) async fn list_all(
    State(state): State<AppState>,
    Path(path): Path<ObjectPath>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    list(state, path, &headers, query).await
}

pub(super) async fn list_namespaced(
    State(state): State<AppState>,
    Path(path): Path<ObjectPath>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    list(state, path, &headers, query).await
}

async fn list(
    state: AppState,
    path: ObjectPath,
    headers: &HeaderMap,
    query: ListQuery,
) -> Result<Response, ApiError> {
    let kind = path.kind()?;
    authorize_read(&state, headers, kind)?;
    let api_version = path.api_version();
    let selector: Selector = query
        .label_selector
        .as_deref()
        .unwrap_or_default()
        .parse()
        .map_err(|e: crate::selector::SelectorError| ApiError::bad_request(e.to_string()))?;
    let options = ListOptions {
        kind: Some(kind),
        namespace: path.ns,
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
    Path(path): Path<ObjectPath>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let kind = path.kind()?;
    authorize_read(&state, &headers, kind)?;
    let key = ObjectKey::new(kind, path.namespace(), path.name());
    match state.store.get(key.clone()).await? {
        Some(object) => Ok(Json(present(object, &path.api_version()))),
        None => Err(crate::store::StoreError::NotFound(key).into()),
    }
}

pub(super) async fn create(
    State(state): State<AppState>,
    Path(path): Path<ObjectPath>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let kind = path.kind()?;
    let api_version = path.api_version();
    let ns = path.namespace();
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
    Path(path): Path<ObjectPath>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let kind = path.kind()?;
    let api_version = path.api_version();
    let (ns, name) = (path.namespace(), path.name());
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
    Path(path): Path<ObjectPath>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let kind = path.kind()?;
    let last = state
        .store
        .delete(ObjectKey::new(kind, path.namespace(), path.name()), None)
        .await?;
    tracing::info!(key = %ObjectKey::of(&last)?, "deleted");
    Ok(Json(present(last, &path.api_version())))
}
