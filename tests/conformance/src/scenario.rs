//! What a scenario is: config to apply, requests to send, what a user must see. Data only;
//! the tables in `scenarios/` build these with the helpers below.

use crate::client::{Request, Via};
use std::time::Duration;

/// Where a scenario's config comes from.
#[derive(Clone, Debug)]
pub enum Source {
    /// Inline YAML (one or more documents). Gateways' server ports are moved to the
    /// fleet's gateway port when applied.
    Yaml(&'static str),
    /// A file of Istio's Bookinfo samples, read from `samples/bookinfo/networking/`.
    Bookinfo(&'static str),
}

#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: &'static str,
    pub config: Vec<Source>,
    /// Run in order; the first is retried until it passes (bounded) to wait for the config
    /// to reach the data plane, so it must tell the new config from the previous one.
    pub checks: Vec<Check>,
    /// Run before the config is applied (e.g. to open a keep-alive connection), each
    /// retried until it passes: the previous scenario's restored config may still be on
    /// its way to a server-side sidecar.
    pub before: Vec<Check>,
    /// Set while the feature is not translated yet: a failure is reported, not counted as
    /// one; a pass fails the run so the marker gets removed.
    pub pending: Option<&'static str>,
}

/// Expectations on every single response of a check.
#[derive(Clone, Debug, Default)]
pub struct Expect {
    pub status: Option<u16>,
    /// The echo instance that answered: its name starts with this (`reviews-v2`, `reviews`).
    pub served_by: Option<&'static str>,
    /// What the echo server saw.
    pub upstream_path: Option<&'static str>,
    pub upstream_host: Option<&'static str>,
    pub upstream_headers: Vec<(&'static str, Option<&'static str>)>,
    /// JSON pointer into the echo's description -> value (`/protocol` -> `HTTP/2`,
    /// `/tls/sni` -> the SNI the echo saw).
    pub upstream_fields: Vec<(&'static str, &'static str)>,
    /// `Some(v)`: present with value v; `None`: absent.
    pub response_headers: Vec<(&'static str, Option<&'static str>)>,
    /// Header present and containing this text.
    pub response_header_contains: Vec<(&'static str, &'static str)>,
    pub body_contains: Option<&'static str>,
    pub min_elapsed: Option<Duration>,
    pub max_elapsed: Option<Duration>,
    /// No HTTP answer at all: the connection was refused, reset or closed (a plaintext
    /// caller at a STRICT mTLS port). Such responses have status 0.
    pub refused: bool,
}

/// One request (sent `times` times, `concurrency` at once) and what must come back. `{n}`
/// in its URL, header values and source address becomes the request's number (from 1), and
/// `{{placeholders}}` the mesh's values (see [`crate::Vars`]).
#[derive(Clone, Debug)]
pub struct Check {
    pub request: Request,
    pub times: usize,
    pub concurrency: usize,
    pub each: Expect,
    /// Instance-name prefix -> expected share in percent, within ±5 points.
    pub split: Vec<(&'static str, f64)>,
    /// Status -> how many responses may have it, inclusive range.
    pub status_counts: Vec<(u16, usize, usize)>,
    /// Instance-name prefix -> how many requests those instances saw during the check,
    /// inclusive range (retries and mirrors are counted where they land).
    pub served_delta: Vec<(&'static str, u64, u64)>,
    /// Admin stat name filter (a regex; `{{placeholders}}` filled) on the proxy the request
    /// entered -> minimum increase.
    pub stat_increase: Vec<(&'static str, u64)>,
    /// Every response came from one and the same instance (consistent hashing).
    pub same_instance: bool,
    /// At least this many distinct instances answered.
    pub min_instances: Option<usize>,
    /// Responses that took at least this long -> how many may, inclusive range.
    pub slow_count: Option<(Duration, usize, usize)>,
    /// The first response must set this cookie; every later request sends it back.
    /// Requests then go one at a time.
    pub resend_cookie: Option<&'static str>,
    /// For a check whose entry proxy may still hold connections to the server accepted
    /// before the server's listener changed: Envoy answers one more request on such a
    /// connection under the listener it was accepted on, then closes it
    /// (`Connection: close`). So the request is first sent 16 times, 8 at once, answers
    /// ignored, to use up those connections; then the check is retried until it passes
    /// (bounded), as a scenario's first check is. A proxy that never drains the old
    /// connections keeps answering on them under the old config and still fails.
    pub wait: bool,
}

impl Scenario {
    pub fn new(name: &'static str) -> Scenario {
        Scenario {
            name,
            config: Vec::new(),
            checks: Vec::new(),
            before: Vec::new(),
            pending: None,
        }
    }
    pub fn yaml(mut self, yaml: &'static str) -> Self {
        self.config.push(Source::Yaml(yaml));
        self
    }
    pub fn bookinfo(mut self, file: &'static str) -> Self {
        self.config.push(Source::Bookinfo(file));
        self
    }
    /// A check run before the scenario's config is applied.
    pub fn before(mut self, check: Check) -> Self {
        self.before.push(check);
        self
    }
    pub fn check(mut self, check: Check) -> Self {
        self.checks.push(check);
        self
    }
    pub fn pending(mut self, reason: &'static str) -> Self {
        self.pending = Some(reason);
        self
    }
}

/// A request through the client sidecar, absolute form.
pub fn req(method: &str, url: &str) -> Check {
    Check {
        request: Request {
            via: Via::Sidecar,
            method: method.to_owned(),
            url: url.to_owned(),
            headers: Vec::new(),
            body: None,
            source: None,
        },
        times: 1,
        concurrency: 1,
        each: Expect::default(),
        split: Vec::new(),
        status_counts: Vec::new(),
        served_delta: Vec::new(),
        stat_increase: Vec::new(),
        same_instance: false,
        min_instances: None,
        slow_count: None,
        resend_cookie: None,
        wait: false,
    }
}

pub fn get(url: &str) -> Check {
    req("GET", url)
}

impl Check {
    pub fn via(mut self, via: Via) -> Self {
        self.request.via = via;
        self
    }
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.request.headers.push((k.to_owned(), v.to_owned()));
        self
    }
    /// Send from this local address; `{n}` in it is the request's number (from 1).
    pub fn source(mut self, ip: &str) -> Self {
        self.request.source = Some(ip.to_owned());
        self
    }
    pub fn body(mut self, body: &str) -> Self {
        self.request.body = Some(body.to_owned());
        self
    }
    pub fn times(mut self, n: usize) -> Self {
        self.times = n;
        self
    }
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }
    /// See [`Check::wait`].
    pub fn wait(mut self) -> Self {
        self.wait = true;
        self
    }
    /// See [`Expect::refused`].
    pub fn refused(mut self) -> Self {
        self.each.refused = true;
        self
    }
    pub fn status(mut self, s: u16) -> Self {
        self.each.status = Some(s);
        self
    }
    pub fn served_by(mut self, prefix: &'static str) -> Self {
        self.each.served_by = Some(prefix);
        self
    }
    pub fn upstream_path(mut self, p: &'static str) -> Self {
        self.each.upstream_path = Some(p);
        self
    }
    pub fn upstream_host(mut self, h: &'static str) -> Self {
        self.each.upstream_host = Some(h);
        self
    }
    pub fn upstream_header(mut self, k: &'static str, v: Option<&'static str>) -> Self {
        self.each.upstream_headers.push((k, v));
        self
    }
    pub fn upstream_field(mut self, pointer: &'static str, v: &'static str) -> Self {
        self.each.upstream_fields.push((pointer, v));
        self
    }
    pub fn response_header_contains(mut self, k: &'static str, text: &'static str) -> Self {
        self.each.response_header_contains.push((k, text));
        self
    }
    pub fn response_header(mut self, k: &'static str, v: Option<&'static str>) -> Self {
        self.each.response_headers.push((k, v));
        self
    }
    pub fn body_contains(mut self, s: &'static str) -> Self {
        self.each.body_contains = Some(s);
        self
    }
    pub fn min_ms(mut self, ms: u64) -> Self {
        self.each.min_elapsed = Some(Duration::from_millis(ms));
        self
    }
    pub fn max_ms(mut self, ms: u64) -> Self {
        self.each.max_elapsed = Some(Duration::from_millis(ms));
        self
    }
    pub fn split(mut self, shares: &[(&'static str, f64)]) -> Self {
        self.split.extend_from_slice(shares);
        self
    }
    pub fn status_count(mut self, status: u16, min: usize, max: usize) -> Self {
        self.status_counts.push((status, min, max));
        self
    }
    pub fn served_delta(mut self, prefix: &'static str, min: u64, max: u64) -> Self {
        self.served_delta.push((prefix, min, max));
        self
    }
    pub fn same_instance(mut self) -> Self {
        self.same_instance = true;
        self
    }
    pub fn min_instances(mut self, n: usize) -> Self {
        self.min_instances = Some(n);
        self
    }
    pub fn slow_count(mut self, at_least_ms: u64, min: usize, max: usize) -> Self {
        self.slow_count = Some((Duration::from_millis(at_least_ms), min, max));
        self
    }
    /// See [`Check::resend_cookie`]; implies [`Check::same_instance`].
    pub fn resend_cookie(mut self, name: &'static str) -> Self {
        self.resend_cookie = Some(name);
        self.same_instance = true;
        self
    }
    pub fn stat_increase(mut self, filter: &'static str, min: u64) -> Self {
        self.stat_increase.push((filter, min));
        self
    }
}
