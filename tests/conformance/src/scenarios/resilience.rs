//! Resilience and traffic policy: retries counted where they land, timeouts, fault
//! injection, mirroring, CORS, consistent hashing, outlier detection and pool limits.

use crate::scenario::{get, req, Scenario};

const REVIEWS: &str = "http://reviews:9080/";
const STATEFUL: &str = "http://stateful:9080/";

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario::new("retries: attempts counted at the server")
            .yaml(RETRIES)
            .check(get(REVIEWS).status(200).served_by("reviews-v1"))
            .check(
                get(REVIEWS)
                    .header("x-echo-status", "503")
                    .status(503)
                    .served_delta("reviews", 4, 4),
            )
            .check(
                get(REVIEWS)
                    .header("x-echo-status", "404")
                    .status(404)
                    .served_delta("reviews", 1, 1),
            ),
        Scenario::new("retries: Istio's default policy retries a 503 twice")
            .yaml(ONLY_V1)
            .check(get(REVIEWS).status(200).served_by("reviews-v1"))
            .check(
                get(REVIEWS)
                    .header("x-echo-status", "503")
                    .status(503)
                    .served_delta("reviews", 3, 3),
            ),
        Scenario::new("retries: attempts 0 disables retrying")
            .yaml(NO_RETRIES)
            .check(
                get(REVIEWS)
                    .header("x-echo-status", "503")
                    .status(503)
                    .served_delta("reviews", 1, 1),
            ),
        Scenario::new("retries: perTryTimeout ends each try, then 504")
            .yaml(PER_TRY)
            .check(get(REVIEWS).status(200).served_by("reviews-v1"))
            .check(
                get(REVIEWS)
                    .header("x-echo-delay-ms", "1000")
                    .status(504)
                    .body_contains("upstream request timeout")
                    .min_ms(550)
                    .max_ms(2500)
                    .served_delta("reviews", 3, 3),
            ),
        Scenario::new("timeout: 504 with response flag UT")
            .yaml(TIMEOUT)
            .check(
                get(REVIEWS)
                    .header("x-echo-delay-ms", "2000")
                    .status(504)
                    .body_contains("upstream request timeout")
                    .min_ms(250)
                    .max_ms(1500)
                    .stat_increase("upstream_rq_timeout", 1),
            )
            .check(
                get(REVIEWS)
                    .header("x-echo-delay-ms", "50")
                    .status(200)
                    .served_by("reviews-v1"),
            ),
        Scenario::new("fault: HTTP abort never reaches the server")
            .yaml(ABORT)
            .check(
                get(REVIEWS)
                    .status(503)
                    .body_contains("fault filter abort")
                    .served_delta("reviews", 0, 0),
            ),
        Scenario::new("fault: gRPC abort answers grpc-status")
            .yaml(GRPC_ABORT)
            .check(
                req("POST", "http://ratings:9080/ratings.Ratings/Get")
                    .header("content-type", "application/grpc")
                    .body("")
                    .response_header("grpc-status", Some("14"))
                    .served_delta("ratings", 0, 0),
            ),
        Scenario::new("fault: abort percentage 50% over 300 requests")
            .yaml(ABORT_HALF)
            .check(
                get(REVIEWS)
                    .times(300)
                    .concurrency(3)
                    .status_count(500, 120, 180)
                    .status_count(200, 120, 180),
            ),
        Scenario::new("fault: fixed delay")
            .yaml(DELAY)
            .check(
                get(REVIEWS)
                    .status(200)
                    .served_by("reviews-v1")
                    .min_ms(400)
                    .max_ms(3000),
            )
            .check(get("http://reviews:9080/fast").status(200).max_ms(300)),
        Scenario::new("mirror: 100% and 50% of requests copied to v3")
            .yaml(MIRROR_ALL)
            .check(get(REVIEWS).times(20).served_by("reviews-v1").served_delta(
                "reviews-v3",
                20,
                20,
            ))
            .check(
                get("http://reviews:9080/half")
                    .times(300)
                    .concurrency(3)
                    .served_by("reviews-v1")
                    .served_delta("reviews-v3", 120, 180),
            ),
        Scenario::new("mirror: 10% of 500 requests copied, 0% copies none")
            .yaml(MIRROR_SOME)
            .check(
                get(REVIEWS)
                    .times(500)
                    .concurrency(4)
                    .status(200)
                    .served_by("reviews-v1")
                    .served_delta("reviews-v3", 20, 80),
            )
            .check(
                get("http://reviews:9080/none")
                    .times(200)
                    .concurrency(4)
                    .status(200)
                    .served_by("reviews-v1")
                    .served_delta("reviews-v3", 0, 0),
            ),
        Scenario::new("fault: delay percentage 50% over 40 requests")
            .yaml(DELAY_HALF)
            .check(
                get(REVIEWS)
                    .times(40)
                    .concurrency(4)
                    .status(200)
                    .served_by("reviews-v1")
                    .slow_count(300, 8, 32),
            ),
        Scenario::new("CORS: preflight answered by the proxy, actual request annotated")
            .yaml(CORS)
            .check(
                req("OPTIONS", REVIEWS)
                    .header("origin", "https://example.com")
                    .header("access-control-request-method", "POST")
                    .status(200)
                    .response_header("access-control-allow-origin", Some("https://example.com"))
                    .response_header("access-control-max-age", Some("86400"))
                    .served_delta("reviews", 0, 0),
            )
            .check(
                get(REVIEWS)
                    .header("origin", "https://example.com")
                    .status(200)
                    .served_by("reviews-v1")
                    .response_header("access-control-allow-origin", Some("https://example.com")),
            )
            .check(
                get(REVIEWS)
                    .header("origin", "https://evil.example")
                    .status(200)
                    .response_header("access-control-allow-origin", None),
            ),
        Scenario::new("consistent hash on a header keeps a user on one instance")
            .yaml(HASH)
            .check(
                get(STATEFUL)
                    .header("x-user", "alice")
                    .times(30)
                    .status(200)
                    .same_instance(),
            )
            .check(
                get(STATEFUL)
                    .header("x-user", "bob")
                    .times(30)
                    .status(200)
                    .same_instance(),
            )
            .check(
                get(STATEFUL)
                    .header("x-user", "user-{n}")
                    .times(20)
                    .status(200)
                    .min_instances(2),
            ),
        Scenario::new("outlier detection ejects the failing instance")
            .yaml(OUTLIER)
            .check(
                get(STATEFUL)
                    .header("x-echo-only-on", "stateful-b")
                    .header("x-echo-status", "503")
                    .times(30)
                    .status_count(503, 1, 3)
                    .served_delta("stateful-b", 1, 3),
            ),
        Scenario::new("connection pool limits overflow with 503 UO")
            .yaml(POOL)
            .check(
                get(STATEFUL)
                    .header("x-echo-delay-ms", "600")
                    .times(12)
                    .concurrency(12)
                    .status_count(503, 1, 11)
                    .status_count(200, 1, 11)
                    .stat_increase("upstream_rq_pending_overflow", 1),
            ),
    ]
}

const ONLY_V1: &str = "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews, subset: v1}}]
";

const RETRIES: &str = "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - retries: {attempts: 3, retryOn: 5xx}
    route: [{destination: {host: reviews, subset: v1}}]
";

const NO_RETRIES: &str = "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - retries: {attempts: 0}
    route: [{destination: {host: reviews, subset: v1}}]
";

const PER_TRY: &str = "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - retries: {attempts: 2, perTryTimeout: 0.2s, retryOn: 5xx}
    route: [{destination: {host: reviews, subset: v1}}]
";

const TIMEOUT: &str = "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - timeout: 0.3s
    retries: {attempts: 0}
    route: [{destination: {host: reviews, subset: v1}}]
";

const ABORT: &str = "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - fault: {abort: {httpStatus: 503, percentage: {value: 100}}}
    route: [{destination: {host: reviews, subset: v1}}]
";

const GRPC_ABORT: &str = "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings}
spec:
  hosts: [ratings]
  http:
  - fault: {abort: {grpcStatus: UNAVAILABLE, percentage: {value: 100}}}
    route: [{destination: {host: ratings, subset: v1}}]
";

const ABORT_HALF: &str = "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - fault: {abort: {httpStatus: 500, percentage: {value: 50}}}
    route: [{destination: {host: reviews, subset: v1}}]
";

const DELAY: &str = "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {exact: /fast}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - fault: {delay: {fixedDelay: 0.5s, percentage: {value: 100}}}
    route: [{destination: {host: reviews, subset: v1}}]
";

const MIRROR_ALL: &str = "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {exact: /half}}]
    route: [{destination: {host: reviews, subset: v1}}]
    mirror: {host: reviews, subset: v3}
    mirrorPercentage: {value: 50}
  - route: [{destination: {host: reviews, subset: v1}}]
    mirror: {host: reviews, subset: v3}
";

const MIRROR_SOME: &str = "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {exact: /none}}]
    route: [{destination: {host: reviews, subset: v1}}]
    mirror: {host: reviews, subset: v3}
    mirrorPercentage: {value: 0}
  - route: [{destination: {host: reviews, subset: v1}}]
    mirror: {host: reviews, subset: v3}
    mirrorPercentage: {value: 10}
";

const DELAY_HALF: &str = "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - fault: {delay: {fixedDelay: 0.3s, percentage: {value: 50}}}
    route: [{destination: {host: reviews, subset: v1}}]
";

const CORS: &str = "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - corsPolicy:
      allowOrigins: [{exact: 'https://example.com'}]
      allowMethods: [POST, GET]
      allowHeaders: [x-custom]
      maxAge: 24h
    route: [{destination: {host: reviews, subset: v1}}]
";

const HASH: &str = "
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: stateful}
spec:
  host: stateful
  trafficPolicy:
    loadBalancer: {consistentHash: {httpHeaderName: x-user}}
";

const OUTLIER: &str = "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: stateful}
spec:
  hosts: [stateful]
  http:
  - retries: {attempts: 0}
    route: [{destination: {host: stateful}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: stateful}
spec:
  host: stateful
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection: {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 60s, maxEjectionPercent: 100}
";

const POOL: &str = "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: stateful}
spec:
  hosts: [stateful]
  http:
  - retries: {attempts: 0}
    route: [{destination: {host: stateful}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: stateful}
spec:
  host: stateful
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 1}
      http: {http1MaxPendingRequests: 1, maxRequestsPerConnection: 1}
";
