//! reviews: what readers wrote, `GET /reviews/{id}`; v2 and v3 add each reviewer's stars from ratings.
//!
//! v1 never calls ratings. v2 colours stars black and waits up to 10 s for ratings; v3 colours
//! them red and waits 2.5 s — the difference Istio's fault-injection task is built on.

use crate::catalog;
use crate::headers;
use crate::upstream::{service_url, Upstream};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// What the page shows in place of stars when ratings did not answer.
pub const RATINGS_UNAVAILABLE: &str = "Ratings service is currently unavailable";

/// The three versions Bookinfo ships.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Version {
    V1,
    V2,
    V3,
}

impl Version {
    pub fn name(self) -> &'static str {
        match self {
            Version::V1 => "v1",
            Version::V2 => "v2",
            Version::V3 => "v3",
        }
    }

    /// Star colour and how long to wait for ratings; `None`: this version shows no stars.
    fn ratings(self) -> Option<(&'static str, Duration)> {
        match self {
            Version::V1 => None,
            Version::V2 => Some(("black", Duration::from_secs(10))),
            Version::V3 => Some(("red", Duration::from_millis(2500))),
        }
    }
}

struct Reviews {
    version: Version,
    upstream: Upstream,
}

pub fn router(version: Version, upstream: Upstream) -> Router {
    let state = Arc::new(Reviews { version, upstream });
    Router::new()
        .route("/reviews/{id}", get(reviews))
        .route("/health", get(|| async { "reviews is healthy" }))
        .with_state(state)
}

async fn reviews(
    State(s): State<Arc<Reviews>>,
    Path(id): Path<u32>,
    incoming: HeaderMap,
) -> Json<Value> {
    let ratings = match s.version.ratings() {
        None => None,
        Some((color, timeout)) => {
            let url = service_url("ratings", &format!("/ratings/{id}"));
            let answer = s
                .upstream
                .get_json(&url, headers::forward(&incoming), timeout)
                .await;
            if let Err(e) = &answer {
                tracing::warn!(error = %e, "ratings did not answer");
            }
            Some((color, answer.ok()))
        }
    };
    Json(render(id, s.version, ratings))
}

/// The JSON answer: every review, with `rating` as stars and colour, or an error when
/// ratings failed, and no `rating` at all for v1.
fn render(id: u32, version: Version, ratings: Option<(&str, Option<Value>)>) -> Value {
    let reviews: Vec<Value> = catalog::REVIEWS
        .iter()
        .map(|(reviewer, text)| {
            let mut review = json!({"reviewer": reviewer, "text": text});
            if let Some((color, answer)) = &ratings {
                let stars = answer
                    .as_ref()
                    .and_then(|a| a.pointer(&format!("/ratings/{reviewer}")))
                    .and_then(Value::as_u64);
                review["rating"] = match stars {
                    Some(stars) => json!({"stars": stars, "color": color}),
                    None => json!({"error": RATINGS_UNAVAILABLE}),
                };
            }
            review
        })
        .collect();
    json!({
        "id": id.to_string(),
        "podname": format!("reviews-{}", version.name()),
        "reviews": reviews,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_has_no_rating_v2_black_v3_red() {
        let v1 = render(0, Version::V1, None);
        assert!(v1["reviews"][0].get("rating").is_none(), "{v1}");
        assert_eq!(v1["podname"], "reviews-v1");

        let answer = Some(catalog::ratings(0));
        let v2 = render(0, Version::V2, Some(("black", answer.clone())));
        assert_eq!(
            v2["reviews"][0]["rating"],
            json!({"stars": 5, "color": "black"})
        );
        assert_eq!(
            v2["reviews"][1]["rating"],
            json!({"stars": 4, "color": "black"})
        );
        let v3 = render(0, Version::V3, Some(("red", answer)));
        assert_eq!(v3["reviews"][1]["rating"]["color"], "red");
    }

    #[test]
    fn failed_ratings_become_an_error_per_review() {
        let v2 = render(0, Version::V2, Some(("black", None)));
        assert_eq!(v2["reviews"][0]["rating"]["error"], RATINGS_UNAVAILABLE);
        assert_eq!(v2["reviews"][1]["rating"]["error"], RATINGS_UNAVAILABLE);
    }

    #[test]
    fn ratings_waits_longer_in_v2_than_in_v3() {
        assert_eq!(Version::V2.ratings().unwrap().1, Duration::from_secs(10));
        assert_eq!(
            Version::V3.ratings().unwrap().1,
            Duration::from_millis(2500)
        );
    }
}
