//! Load balancing: simple policies by their distributions, and consistent hashing on every
//! key Istio offers (header, cookie, source IP, query parameter), over three equal instances.

use crate::scenario::{get, Check, Scenario};

const STATEFUL: &str = "http://stateful:9080/";

/// Every instance gets a real share and none more than 60% of 300 requests.
fn spread_over_three(check: Check) -> Check {
    check
        .times(300)
        .status(200)
        .served_delta("stateful-a", 30, 180)
        .served_delta("stateful-b", 30, 180)
        .served_delta("stateful-c", 30, 180)
}

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario::new("load balancing: ROUND_ROBIN is even over three instances")
            .yaml(ROUND_ROBIN)
            // One at a time, so every pick follows the previous one.
            .check(get(STATEFUL).times(300).status(200).split(&[
                ("stateful-a", 100.0 / 3.0),
                ("stateful-b", 100.0 / 3.0),
                ("stateful-c", 100.0 / 3.0),
            ])),
        Scenario::new("load balancing: LEAST_REQUEST spreads over every instance")
            .yaml(LEAST_REQUEST)
            .check(spread_over_three(get(STATEFUL).concurrency(3))),
        Scenario::new("load balancing: RANDOM spreads over every instance")
            .yaml(RANDOM)
            .check(spread_over_three(get(STATEFUL))),
        Scenario::new("consistent hash on a cookie with ttl: set when absent, then sticky")
            .yaml(HASH_COOKIE)
            .check(
                get(STATEFUL)
                    .status(200)
                    .response_header_contains("set-cookie", "sticky=")
                    .response_header_contains("set-cookie", "Max-Age=60"),
            )
            .check(get(STATEFUL).times(20).status(200).resend_cookie("sticky"))
            .check(
                get(STATEFUL)
                    .header("cookie", "sticky=alice")
                    .times(20)
                    .status(200)
                    .same_instance()
                    .response_header("set-cookie", None),
            )
            .check(
                get(STATEFUL)
                    .header("cookie", "sticky=user-{n}")
                    .times(20)
                    .status(200)
                    .min_instances(2),
            ),
        Scenario::new("consistent hash on the source IP")
            .yaml(HASH_SOURCE_IP)
            .check(
                get(STATEFUL)
                    .source("127.0.0.7")
                    .times(20)
                    .status(200)
                    .same_instance(),
            )
            .check(
                get(STATEFUL)
                    .source("127.0.0.{n}")
                    .times(20)
                    .status(200)
                    .min_instances(2),
            ),
        Scenario::new("consistent hash on a query parameter")
            .yaml(HASH_QUERY)
            .check(
                get("http://stateful:9080/?user=alice")
                    .times(20)
                    .status(200)
                    .same_instance(),
            )
            .check(
                get("http://stateful:9080/?user=bob&x={n}")
                    .times(20)
                    .status(200)
                    .same_instance(),
            )
            .check(
                get("http://stateful:9080/?user=user-{n}")
                    .times(20)
                    .status(200)
                    .min_instances(2),
            ),
    ]
}

const ROUND_ROBIN: &str = "
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: stateful}
spec:
  host: stateful
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
";

const LEAST_REQUEST: &str = "
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: stateful}
spec:
  host: stateful
  trafficPolicy:
    loadBalancer: {simple: LEAST_REQUEST}
";

const RANDOM: &str = "
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: stateful}
spec:
  host: stateful
  trafficPolicy:
    loadBalancer: {simple: RANDOM}
";

const HASH_COOKIE: &str = "
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: stateful}
spec:
  host: stateful
  trafficPolicy:
    loadBalancer: {consistentHash: {httpCookie: {name: sticky, ttl: 60s}}}
";

const HASH_SOURCE_IP: &str = "
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: stateful}
spec:
  host: stateful
  trafficPolicy:
    loadBalancer: {consistentHash: {useSourceIp: true}}
";

const HASH_QUERY: &str = "
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: stateful}
spec:
  host: stateful
  trafficPolicy:
    loadBalancer: {consistentHash: {httpQueryParameterName: user}}
";
