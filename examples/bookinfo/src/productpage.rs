//! productpage: the HTML page and JSON API, built from details and reviews; sign-in by session cookie.
//!
//! The signed-in user travels to reviews and ratings as the `end-user` header, which is what
//! Istio's routing tasks match on. Reviews get a 3 s timeout and two tries, so a ratings delay
//! longer than 6 s in total shows up on the page as unavailable reviews.

use crate::catalog;
use crate::headers;
use crate::page::{self, Page, DETAILS_UNAVAILABLE, REVIEWS_UNAVAILABLE};
use crate::upstream::{service_url, Upstream, UpstreamError};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// The cookie that holds the signed-in user's name.
const SESSION_COOKIE: &str = "session";
/// How long productpage waits for details, and for each try at reviews.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(3);
/// Tries at reviews before the page gives up on them.
const REVIEWS_TRIES: u32 = 2;

struct ProductPage {
    upstream: Upstream,
}

pub fn router(upstream: Upstream) -> Router {
    let state = Arc::new(ProductPage { upstream });
    Router::new()
        .route("/", get(index))
        .route("/productpage", get(product_page))
        .route("/login", post(login))
        .route("/logout", get(logout))
        .route(
            "/api/v1/products",
            get(|| async { Json(catalog::products()) }),
        )
        .route("/api/v1/products/{id}", get(api_details))
        .route("/api/v1/products/{id}/reviews", get(api_reviews))
        .route("/api/v1/products/{id}/ratings", get(api_ratings))
        .route("/health", get(|| async { "productpage is healthy" }))
        .with_state(state)
}

async fn index() -> Html<&'static str> {
    Html(
        "<!DOCTYPE html>\n<html><head><title>Simple Bookstore App</title></head><body>\n\
         <h1>Simple Bookstore App</h1>\n<p>A small shop of one book, served by four services.</p>\n\
         <p><a href=\"/productpage\">Open the product page</a></p>\n</body></html>\n",
    )
}

/// The signed-in user, from the session cookie.
fn user(h: &HeaderMap) -> Option<String> {
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty())
}

/// Headers for calls upstream: the forwarded ones, plus `end-user` when someone is signed in.
fn upstream_headers(incoming: &HeaderMap) -> HeaderMap {
    let mut out = headers::forward(incoming);
    if let Some(value) = user(incoming).and_then(|u| HeaderValue::from_str(&u).ok()) {
        out.insert("end-user", value);
    }
    out
}

impl ProductPage {
    async fn details(&self, id: u32, h: &HeaderMap) -> Result<Value, UpstreamError> {
        let url = service_url("details", &format!("/details/{id}"));
        self.upstream
            .get_json(&url, h.clone(), UPSTREAM_TIMEOUT)
            .await
    }

    async fn reviews(&self, id: u32, h: &HeaderMap) -> Result<Value, UpstreamError> {
        let url = service_url("reviews", &format!("/reviews/{id}"));
        let mut last = UpstreamError::Timeout;
        for attempt in 1..=REVIEWS_TRIES {
            match self
                .upstream
                .get_json(&url, h.clone(), UPSTREAM_TIMEOUT)
                .await
            {
                Ok(v) => return Ok(v),
                Err(e) => {
                    tracing::warn!(attempt, error = %e, "reviews did not answer");
                    last = e;
                }
            }
        }
        Err(last)
    }

    async fn ratings(&self, id: u32, h: &HeaderMap) -> Result<Value, UpstreamError> {
        let url = service_url("ratings", &format!("/ratings/{id}"));
        self.upstream
            .get_json(&url, h.clone(), UPSTREAM_TIMEOUT)
            .await
    }
}

async fn product_page(State(s): State<Arc<ProductPage>>, incoming: HeaderMap) -> Html<String> {
    let h = upstream_headers(&incoming);
    let id = catalog::PRODUCT_ID;
    let (details, reviews) = tokio::join!(s.details(id, &h), s.reviews(id, &h));
    let products = catalog::products();
    let user = user(&incoming);
    Html(page::render(&Page {
        user: user.as_deref(),
        product: &products[0],
        details: details.map_err(|_| DETAILS_UNAVAILABLE),
        reviews: reviews.map_err(|_| REVIEWS_UNAVAILABLE),
    }))
}

#[derive(Debug, Deserialize)]
struct Login {
    username: String,
    // Any password is accepted, as in Istio's sample; the field is part of the form.
    #[serde(default)]
    #[allow(dead_code)]
    passwd: String,
}

async fn login(Form(form): Form<Login>) -> Response {
    // Only characters a cookie value and a header value can carry unquoted.
    let name: String = form
        .username
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "._-@".contains(*c))
        .collect();
    let cookie = format!("{SESSION_COOKIE}={name}; Path=/; HttpOnly");
    session_redirect(&cookie)
}

async fn logout() -> Response {
    session_redirect(&format!("{SESSION_COOKIE}=; Path=/; Max-Age=0"))
}

fn session_redirect(cookie: &str) -> Response {
    let mut response = Redirect::to("/productpage").into_response();
    if let Ok(v) = HeaderValue::from_str(cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

/// An upstream failure as an API answer: the upstream's own status when it gave one.
fn api_error(e: UpstreamError, what: &str) -> Response {
    let status = match e {
        UpstreamError::Status(code) => {
            StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY)
        }
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    (
        status,
        Json(json!({"error": format!("{what} not available: {e}")})),
    )
        .into_response()
}

async fn api_details(
    State(s): State<Arc<ProductPage>>,
    Path(id): Path<u32>,
    incoming: HeaderMap,
) -> Response {
    match s.details(id, &upstream_headers(&incoming)).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => api_error(e, "product details"),
    }
}

async fn api_reviews(
    State(s): State<Arc<ProductPage>>,
    Path(id): Path<u32>,
    incoming: HeaderMap,
) -> Response {
    match s.reviews(id, &upstream_headers(&incoming)).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => api_error(e, "product reviews"),
    }
}

async fn api_ratings(
    State(s): State<Arc<ProductPage>>,
    Path(id): Path<u32>,
    incoming: HeaderMap,
) -> Response {
    match s.ratings(id, &upstream_headers(&incoming)).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => api_error(e, "product ratings"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_cookie_becomes_end_user() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; session=jason"),
        );
        h.insert("x-request-id", HeaderValue::from_static("r1"));
        let out = upstream_headers(&h);
        assert_eq!(out.get("end-user").unwrap(), "jason");
        assert_eq!(out.get("x-request-id").unwrap(), "r1");

        let anonymous = upstream_headers(&HeaderMap::new());
        assert!(anonymous.get("end-user").is_none());
        let mut signed_out = HeaderMap::new();
        signed_out.insert(header::COOKIE, HeaderValue::from_static("session="));
        assert!(upstream_headers(&signed_out).get("end-user").is_none());
    }
}
