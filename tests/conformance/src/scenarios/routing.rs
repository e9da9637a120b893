//! Routing: the thin path, matching and its precedence, splits, subsets, redirects,
//! rewrites, direct responses and header manipulation (Istio's VirtualService HTTPRoute).

use crate::client::Via;
use crate::scenario::{get, req, Scenario};

const REVIEWS: &str = "http://reviews:9080";

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario::new("thin path: a service with no VirtualService answers")
            .check(
                get("http://reviews:9080/")
                    .status(200)
                    .served_by("reviews-v"),
            )
            .check(
                get("http://ratings:9080/r")
                    .status(200)
                    .served_by("ratings-v1")
                    .upstream_path("/r"),
            )
            .check(
                get("http://reviews.default.svc.cluster.local:9080/")
                    .status(200)
                    .served_by("reviews-v"),
            )
            .check(
                get("http://reviews:9080/h")
                    .via(Via::SidecarHost)
                    .status(200)
                    .served_by("reviews-v"),
            ),
        Scenario::new("default load balancing reaches every instance").check(
            get("http://stateful:9080/")
                .times(60)
                .status(200)
                .served_delta("stateful-a", 5, 60)
                .served_delta("stateful-b", 5, 60)
                .served_delta("stateful-c", 5, 60),
        ),
        Scenario::new("auto-registered workload behind its own sidecar").check(
            get("http://details:9080/d")
                .status(200)
                .served_by("details-v1")
                .upstream_path("/d"),
        ),
        Scenario::new("subset by labels takes all traffic")
            .yaml(VS_V3)
            .check(get(REVIEWS).times(20).status(200).served_by("reviews-v3"))
            .check(
                get("http://reviews.default.svc.cluster.local:9080/")
                    .status(200)
                    .served_by("reviews-v3"),
            ),
        Scenario::new("uri exact, prefix and regex; regex is a full match")
            .yaml(URI_MATCH)
            .check(
                get("http://reviews:9080/exact")
                    .status(200)
                    .served_by("reviews-v2"),
            )
            .check(get("http://reviews:9080/exact/more").served_by("reviews-v1"))
            .check(get("http://reviews:9080/prefix/x").served_by("reviews-v3"))
            .check(get("http://reviews:9080/re/123").served_by("reviews-v2"))
            .check(get("http://reviews:9080/re/123x").served_by("reviews-v1"))
            .check(get("http://reviews:9080/").served_by("reviews-v1")),
        Scenario::new("header exact, prefix, regex and withoutHeaders")
            .yaml(HEADER_MATCH)
            .check(
                get(REVIEWS)
                    .header("x-user", "jason")
                    .served_by("reviews-v2"),
            )
            .check(
                get(REVIEWS)
                    .header("x-user", "jasonx")
                    .served_by("reviews-v1"),
            )
            .check(
                get(REVIEWS)
                    .header("x-group", "beta-7")
                    .served_by("reviews-v3"),
            )
            .check(get(REVIEWS).header("x-id", "123").served_by("reviews-v2"))
            .check(get(REVIEWS).header("x-id", "12a").served_by("reviews-v1"))
            .check(get("http://reviews:9080/canary").served_by("reviews-v3"))
            .check(
                get("http://reviews:9080/canary")
                    .header("x-canary", "no")
                    .served_by("reviews-v1"),
            ),
        Scenario::new("query parameters, method and authority")
            .yaml(OTHER_MATCH)
            .check(get("http://reviews:9080/?flag=on").served_by("reviews-v2"))
            .check(get("http://reviews:9080/?flag=off").served_by("reviews-v1"))
            .check(req("POST", REVIEWS).body("x").served_by("reviews-v3"))
            .check(get("http://reviews.default.svc.cluster.local:9080/a").served_by("reviews-v2"))
            .check(get("http://reviews:9080/a").served_by("reviews-v1")),
        Scenario::new("ignoreUriCase applies per match")
            .yaml(IGNORE_CASE)
            .check(get("http://reviews:9080/loud").served_by("reviews-v2"))
            .check(get("http://reviews:9080/LoUd").served_by("reviews-v2"))
            .check(get("http://reviews:9080/STRICT").served_by("reviews-v1"))
            .check(get("http://reviews:9080/strict").served_by("reviews-v3")),
        Scenario::new("first matching rule wins; conditions in one match are ANDed")
            .yaml(PRECEDENCE)
            .check(get("http://reviews:9080/a/b").served_by("reviews-v2"))
            .check(
                get("http://reviews:9080/and")
                    .header("x-and", "yes")
                    .served_by("reviews-v3"),
            )
            .check(get("http://reviews:9080/and").served_by("reviews-v1")),
        Scenario::new("sourceLabels: a rule only for clients with given labels")
            .yaml(SOURCE_LABELS)
            .check(
                get(REVIEWS)
                    .via(Via::CanarySidecar)
                    .times(10)
                    .status(200)
                    .served_by("reviews-v3"),
            )
            .check(get(REVIEWS).times(10).status(200).served_by("reviews-v1")),
        Scenario::new("weighted split 50/30/20 over 1000 requests")
            .yaml(SPLIT)
            .check(get(REVIEWS).status(200).served_by("reviews-v"))
            .check(get(REVIEWS).times(1000).concurrency(4).status(200).split(&[
                ("reviews-v1", 50.0),
                ("reviews-v2", 30.0),
                ("reviews-v3", 20.0),
            ])),
        Scenario::new("redirect with uri, authority and code")
            .yaml(REDIRECT)
            .check(
                get("http://reviews:9080/old")
                    .status(301)
                    .response_header("location", Some("http://reviews:9080/new"))
                    .served_delta("reviews", 0, 0),
            )
            .check(
                get("http://reviews:9080/moved")
                    .status(308)
                    .response_header("location", Some("http://ratings:9080/here")),
            ),
        Scenario::new("rewrite uri prefix and authority")
            .yaml(REWRITE)
            .check(
                get("http://reviews:9080/v1/api/x")
                    .status(200)
                    .upstream_path("/api/x")
                    .served_by("reviews-v1"),
            )
            .check(get("http://reviews:9080/host").upstream_host("reviews.internal")),
        Scenario::new("direct response")
            .yaml(DIRECT)
            .check(
                get("http://reviews:9080/teapot")
                    .status(418)
                    .body_contains("short and stout")
                    .served_delta("reviews", 0, 0),
            )
            .check(
                get("http://reviews:9080/")
                    .status(200)
                    .served_by("reviews-v1"),
            ),
        Scenario::new("request and response header set, add and remove")
            .yaml(HEADERS)
            .check(
                get(REVIEWS)
                    .header("x-set", "old")
                    .header("x-remove", "1")
                    .status(200)
                    .upstream_header("x-set", Some("new"))
                    .upstream_header("x-add", Some("added"))
                    .upstream_header("x-remove", None)
                    .response_header("x-resp-set", Some("yes"))
                    .response_header("x-echo-version", None),
            ),
        Scenario::new("gateway routes by host and path (HTTP)")
            .yaml(GATEWAY)
            .check(
                get("http://shop.example.com/reviews/x")
                    .via(Via::Gateway)
                    .status(200)
                    .served_by("reviews-v2"),
            )
            .check(
                get("http://shop.example.com/other")
                    .via(Via::Gateway)
                    .status(404),
            )
            .check(
                get("http://other.example.com/reviews/x")
                    .via(Via::Gateway)
                    .status(404),
            ),
    ]
}

/// All of reviews to one subset.
const VS_V3: &str = "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews, subset: v3}}]
";

const URI_MATCH: &str = "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {exact: /exact}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{uri: {prefix: /prefix}}]
    route: [{destination: {host: reviews, subset: v3}}]
  - match: [{uri: {regex: '/re/[0-9]+'}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route: [{destination: {host: reviews, subset: v1}}]
";

const HEADER_MATCH: &str = "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{headers: {x-user: {exact: jason}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{headers: {x-group: {prefix: beta}}}]
    route: [{destination: {host: reviews, subset: v3}}]
  - match: [{headers: {x-id: {regex: '[0-9]{3}'}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{uri: {prefix: /canary}, withoutHeaders: {x-canary: {exact: 'no'}}}]
    route: [{destination: {host: reviews, subset: v3}}]
  - route: [{destination: {host: reviews, subset: v1}}]
";

const OTHER_MATCH: &str = "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{queryParams: {flag: {exact: 'on'}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{method: {exact: POST}}]
    route: [{destination: {host: reviews, subset: v3}}]
  - match: [{authority: {prefix: reviews.default}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route: [{destination: {host: reviews, subset: v1}}]
";

const IGNORE_CASE: &str = "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {exact: /LOUD}, ignoreUriCase: true}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{uri: {exact: /strict}}]
    route: [{destination: {host: reviews, subset: v3}}]
  - route: [{destination: {host: reviews, subset: v1}}]
";

const PRECEDENCE: &str = "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /a/}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{uri: {exact: /a/b}}]
    route: [{destination: {host: reviews, subset: v3}}]
  - match: [{uri: {exact: /and}, headers: {x-and: {exact: 'yes'}}}]
    route: [{destination: {host: reviews, subset: v3}}]
  - route: [{destination: {host: reviews, subset: v1}}]
";

/// The canary client's workload has `track: canary` (mesh::CANARY_LABELS), the other not.
const SOURCE_LABELS: &str = "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{sourceLabels: {app: sleep, track: canary}}]
    route: [{destination: {host: reviews, subset: v3}}]
  - route: [{destination: {host: reviews, subset: v1}}]
";

const SPLIT: &str = "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 50}
    - {destination: {host: reviews, subset: v2}, weight: 30}
    - {destination: {host: reviews, subset: v3}, weight: 20}
";

const REDIRECT: &str = "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {exact: /old}}]
    redirect: {uri: /new}
  - match: [{uri: {exact: /moved}}]
    redirect: {uri: /here, authority: 'ratings:9080', redirectCode: 308}
  - route: [{destination: {host: reviews, subset: v1}}]
";

const REWRITE: &str = "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /v1/api}}]
    rewrite: {uri: /api}
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{uri: {prefix: /host}}]
    rewrite: {authority: reviews.internal}
    route: [{destination: {host: reviews, subset: v1}}]
  - route: [{destination: {host: reviews, subset: v1}}]
";

const DIRECT: &str = "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {exact: /teapot}}]
    directResponse: {status: 418, body: {string: \"I'm a teapot, short and stout\"}}
  - route: [{destination: {host: reviews, subset: v1}}]
";

const HEADERS: &str = "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - headers:
      request:
        set: {x-set: new}
        add: {x-add: added}
        remove: [x-remove]
      response:
        set: {x-resp-set: 'yes'}
        remove: [x-echo-version]
    route: [{destination: {host: reviews, subset: v1}}]
";

const GATEWAY: &str = "
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: shop}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [shop.example.com]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop}
spec:
  hosts: [shop.example.com]
  gateways: [shop]
  http:
  - match: [{uri: {prefix: /reviews}}]
    route: [{destination: {host: reviews, subset: v2, port: {number: 9080}}}]
";
