//! Istio's Bookinfo traffic-management samples, read from Istio's own files, against
//! Bookinfo-shaped echo services.

use crate::client::Via;
use crate::scenario::{get, Scenario};

const REVIEWS: &str = "http://reviews:9080/reviews/0";
const RATINGS: &str = "http://ratings:9080/ratings/0";

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario::new("bookinfo: gateway sends /productpage to productpage")
            .bookinfo("bookinfo-gateway.yaml")
            .check(
                get("http://bookinfo.example.com/productpage")
                    .via(Via::Gateway)
                    .status(200)
                    .served_by("productpage-v1"),
            )
            .check(
                get("http://bookinfo.example.com/static/app.js")
                    .via(Via::Gateway)
                    .status(200)
                    .served_by("productpage-v1"),
            )
            .check(
                get("http://bookinfo.example.com/admin")
                    .via(Via::Gateway)
                    .status(404),
            ),
        Scenario::new("bookinfo: virtual-service-all-v1")
            .bookinfo("virtual-service-all-v1.yaml")
            .check(get(REVIEWS).times(30).status(200).served_by("reviews-v1"))
            .check(get(RATINGS).status(200).served_by("ratings-v1"))
            .check(
                get("http://productpage:9080/productpage")
                    .status(200)
                    .served_by("productpage-v1"),
            ),
        Scenario::new("bookinfo: reviews-test-v2 routes jason to v2")
            .bookinfo("virtual-service-reviews-test-v2.yaml")
            .check(
                get(REVIEWS)
                    .header("end-user", "jason")
                    .times(10)
                    .status(200)
                    .served_by("reviews-v2"),
            )
            .check(get(REVIEWS).times(10).status(200).served_by("reviews-v1"))
            .check(
                get(REVIEWS)
                    .header("end-user", "Jason")
                    .status(200)
                    .served_by("reviews-v1"),
            ),
        Scenario::new("bookinfo: reviews 80-20")
            .bookinfo("virtual-service-reviews-80-20.yaml")
            .check(get(REVIEWS).status(200).served_by("reviews-v"))
            .check(get(REVIEWS).times(1000).concurrency(4).status(200).split(&[
                ("reviews-v1", 80.0),
                ("reviews-v2", 20.0),
                ("reviews-v3", 0.0),
            ])),
        Scenario::new("bookinfo: reviews 50-v3")
            .bookinfo("virtual-service-reviews-50-v3.yaml")
            .check(get(REVIEWS).status(200).served_by("reviews-v"))
            .check(get(REVIEWS).times(1000).concurrency(4).status(200).split(&[
                ("reviews-v1", 50.0),
                ("reviews-v2", 0.0),
                ("reviews-v3", 50.0),
            ])),
        Scenario::new("bookinfo: reviews v3")
            .bookinfo("virtual-service-reviews-v3.yaml")
            .check(get(REVIEWS).times(30).status(200).served_by("reviews-v3")),
        Scenario::new("bookinfo: ratings delay 7s for jason")
            .bookinfo("virtual-service-ratings-test-delay.yaml")
            .check(
                get(RATINGS)
                    .status(200)
                    .served_by("ratings-v1")
                    .max_ms(1000),
            )
            .check(
                get(RATINGS)
                    .header("end-user", "jason")
                    .status(200)
                    .served_by("ratings-v1")
                    .min_ms(7000)
                    .max_ms(12000),
            ),
        Scenario::new("bookinfo: ratings abort 500 for jason")
            .bookinfo("virtual-service-ratings-test-abort.yaml")
            .check(
                get(RATINGS)
                    .header("end-user", "jason")
                    .status(500)
                    .body_contains("fault filter abort"),
            )
            .check(get(RATINGS).status(200).served_by("ratings-v1")),
    ]
}
