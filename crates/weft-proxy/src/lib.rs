//! weft-proxy: a lean data plane configured over xDS exactly like Envoy.
//!
//! It reads the bootstrap `weft bootstrap envoy` writes (node id and metadata, admin
//! address, the ADS cluster), opens ADS to weftd and serves what it is given. It never reads
//! Istio config: any xDS server speaking Envoy v3 can drive it.
//!
//! # Supported resource subset
//!
//! Anything outside this list is NACKed with a reason naming the resource and field
//! (`Listener x: filter_chains[0].filters[0]: unsupported: network filter ...`); the
//! previous version stays in force. Nothing is silently ignored except the fields listed
//! under "accepted but not applied yet".
//!
//! - **xDS**: ADS, state-of-the-world (`GRPC`) or incremental (`DELTA_GRPC`, the
//!   bootstrap's `ads_config.api_type` chooses). CDS and LDS wildcard, EDS, RDS and SDS
//!   (`Secret`) by the names clusters and listeners reference; delta subscribes (in Envoy's
//!   order CDS, EDS, SDS, LDS, RDS) and unsubscribes those names as they change, applies `removed_resources`, ACKs or NACKs (with `error_detail`) each
//!   response as a whole, and resumes with `initial_resource_versions` after a reconnect.
//! - **Health**: `GET /healthz/ready` on Istio's status port 15021 (node metadata
//!   `WEFT_HEALTH_PORT`, else `--health-port`): 200 once listeners are applied, 503 before;
//!   a port that cannot be bound is skipped with a warning.
//! - **Admin**: `/ready`, `/server_info`, `/config_dump`, `/clusters`, `/stats`; `POST
//!   /drain` closes every listener, lets open connections finish (keep-alive ones close after
//!   their response) for at most `--drain-time-s` (default 5), then exits 0; `POST
//!   /quitquitquit` exits at once.
//! - **Listener**: TCP `socket_address` with an IP; listener filters `tls_inspector`
//!   (SNI and ALPN from the ClientHello), `http_inspector` (HTTP/1.1 or h2c) and
//!   `original_dst`; one or more filter chains, chosen per connection in Envoy's order by
//!   `filter_chain_match` `destination_port`, `prefix_ranges` (longest prefix),
//!   `server_names` (exact, then `*.suffix`), `transport_protocol` (`tls`/`raw_buffer`),
//!   `application_protocols`; a connection no chain matches is closed.
//!   - Transparent capture (iptables REDIRECT): the original destination is read with
//!     SO_ORIGINAL_DST (IPv4 and IPv6) on listeners with `use_original_dst` or the
//!     `original_dst` listener filter; where it cannot be read (the connection was not
//!     redirected) the local address stands, as in Envoy. A `use_original_dst` listener
//!     hands the connection to the listener on exactly that address, else on the wildcard
//!     address with its port, else serves it with its own chains; either way chains match
//!     the original destination. `bind_to_port: false` listeners are not bound and only
//!     receive such handoffs. Each chain has exactly one network filter:
//!   - `http_connection_manager` with `rds` (over ADS) or inline `route_config`; HTTP
//!     filters: the router last, before it only `fault` and `cors` with empty config
//!     (they act through per-route config); codec AUTO (HTTP/1.1, or HTTP/2 on the h2c preface), HTTP1 or HTTP2; HTTP/1.1 upgrades
//!     of the types `upgrade_configs` enables (`enabled`; no upgrade `filters`, no
//!     CONNECT) are forwarded and, on the upstream's 101, spliced byte for byte; other
//!     routed upgrade requests get Envoy's 403 and the connection closes;
//!     `use_remote_address`, `generate_request_id`, `normalize_path` accepted.
//!   - HTTP filter `envoy.filters.http.jwt_authn` (at most one; see [`jwt`]), run before
//!     RBAC and routing: providers with `issuer`, `audiences`, `local_jwks` (inline or
//!     file; RS/PS 256-512, ES256/384, EdDSA, HS256-512), `from_headers`/`from_params`/
//!     `from_cookies` (default `Authorization: Bearer`, `access_token`), `forward`,
//!     `forward_payload_header` (+`pad_`), `claim_to_headers` (`claim_name`/`claim_path`),
//!     `payload_in_metadata` with `normalize_payload_in_metadata`, `clock_skew_seconds`
//!     (60 s default); rules on `prefix`/`path` with every requirement type but
//!     `extract_only_without_validation`; `bypass_cors_preflight`. Failures answer Envoy's
//!     401/403 text and `www-authenticate`. NACKed: `remote_jwks`, `requirement_map`,
//!     `filter_state_rules`, `subjects`, `require_expiration`, `max_lifetime`,
//!     `header_in_metadata`, `failed_status_in_metadata`.
//!   - `tcp_proxy` to a `cluster` or `weighted_clusters`.
//!   - RBAC (`rbac`): `envoy.filters.http.rbac` before the router and
//!     `envoy.filters.network.rbac` before `tcp_proxy`, in order; `rules` and `shadow_rules`
//!     (ALLOW, DENY, LOG) with permissions `any`, `and_rules`, `or_rules`, `not_rule`,
//!     `header`, `url_path`, `uri_template`, `destination_ip`, `destination_port(_range)`,
//!     `metadata`, `requested_server_name`, and principals `any`, `and_ids`, `or_ids`,
//!     `not_id`, `authenticated`, `source_ip`, `direct_remote_ip`, `remote_ip`, `header`,
//!     `url_path`, `metadata` (JWT claims from `jwt_authn`). A refused request gets 403
//!     `RBAC: access denied` (flag `RBAC`, details `rbac_access_denied_matched_policy[..]`);
//!     a refused connection is closed. NACKed: CEL conditions, matcher trees, filter-state
//!     and custom principals, CONTINUOUS enforcement, `delay_deny`, audit loggers.
//!   - Not supported: other listener filters, `filter_chain_match` on address suffixes or
//!     source.
//!   - TLS termination: a chain's `transport_socket` `envoy.transport_sockets.tls` with a
//!     `DownstreamTlsContext`, applied after the chain is chosen (by SNI): see **TLS**.
//! - **RouteConfiguration**: virtual hosts by domain (exact `host`/`host:port`, `*.suffix`,
//!   `prefix.*`, `*`); routes matching `prefix`, `path`, `safe_regex` (with
//!   `case_sensitive`), headers (`present_match`, `exact`/`prefix`/`suffix`/`contains`/
//!   `safe_regex`, `string_match`, `invert_match`, `treat_missing_header_as_empty`; the
//!   pseudo-headers `:method`, `:authority`, `:path`, `:scheme`), query parameters
//!   (`string_match`, `present_match`).
//!   - actions: `route` (`cluster`; `weighted_clusters` picked at random by weight, each
//!     with its own header edits and `host_rewrite_literal`; `timeout` over all tries with
//!     Envoy's 15s default and `0s` = none, then 504 `upstream request timeout` UT;
//!     `prefix_rewrite`, `regex_rewrite` (RE2 `\N` substitutions), `host_rewrite_literal`,
//!     the original path in `x-envoy-original-path`), `direct_response` (inline body),
//!     `redirect` (`scheme_redirect`/`https_redirect`, `host_redirect`, `port_redirect`,
//!     `path_redirect`, `prefix_rewrite`, `regex_rewrite`, `strip_query`, 301/302/303/307/
//!     308; the request's port kept or dropped as Envoy's router does).
//!   - header edits (`request_headers_to_add` with every `append_action` and the deprecated
//!     `append`, `keep_empty_value`, `request_headers_to_remove`, `response_headers_*`) at
//!     weighted-cluster, route, virtual-host and configuration level, removals first, most
//!     specific level first unless `most_specific_header_mutations_wins`; values may use
//!     `%%`, `%DOWNSTREAM_REMOTE_ADDRESS%`, `%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%`,
//!     `%REQ(name)%` (other commands are NACKed). Route response edits also apply to the
//!     router's local replies, direct responses and redirects.
//!   - `retry_policy` (route, else virtual host): `retry_on` `5xx`, `gateway-error`,
//!     `reset`, `connect-failure`, `retriable-4xx`, `refused-stream`,
//!     `retriable-status-codes`, and the gRPC `cancelled`, `deadline-exceeded`,
//!     `resource-exhausted`, `unavailable`, `internal` (from a trailers-only
//!     `grpc-status`); `num_retries` (default 1), `per_try_timeout` (a timed-out try is
//!     retried under `5xx`/`gateway-error`/`reset`, the last one ends in 504 UT),
//!     `retriable_status_codes`, `retry_back_off` (Envoy's jittered exponential back-off,
//!     25ms base), `host_selection_retry_max_attempts`; the cluster's `max_retries`
//!     circuit breaker is honoured. Request bodies up to 64 KiB are kept for replays and
//!     mirrors; a larger body is streamed once and not retried, nor is a gRPC call over
//!     HTTP/2 (never held back, it may be a stream). `x-envoy-attempt-count` on upstream
//!     requests (`include_request_attempt_count`) and responses
//!     (`include_attempt_count_in_response`).
//!   - `request_mirror_policies` (route and virtual host): `cluster`, `runtime_fraction`
//!     default value, `disable_shadow_host_suffix_append`; the copy's Host gets `-shadow`,
//!     its answer is discarded; `trace_sampled` accepted.
//!   - `hash_policy`: `header`, `cookie` (a missing cookie with a `ttl` is generated from
//!     the client address and sent in `Set-Cookie`, as Envoy does), `connection_properties.
//!     source_ip`, `query_parameter`, `terminal`; xxHash64, combined like Envoy; the hash
//!     goes to RING_HASH / MAGLEV clusters (`Upstream::send`, [`http::LbContext`]).
//!   - `typed_per_filter_config` (route, virtual host, configuration; the most specific
//!     wins, CORS fields fall back field by field), also inside `FilterConfig`:
//!     `envoy.filters.http.fault` `HTTPFault` (`delay` fixed or `header_delay`, `abort`
//!     `http_status`/`grpc_status`/`header_abort`, percentages, `headers`,
//!     `max_active_faults`; runtime keys name overrides weft-proxy has none of) answering
//!     `fault filter abort` with flag FI; `envoy.filters.http.cors` `CorsPolicy`
//!     (`allow_origin_string_match`, methods, headers, expose, `max_age`,
//!     `allow_credentials`, `allow_private_network_access`, `filter_enabled`,
//!     `forward_not_matching_preflights`): preflights answered by the proxy, actual
//!     requests annotated. The filters run in Envoy's sidecar order fault, CORS, router
//!     whether or not the connection manager lists them.
//!   - `include_request_attempt_count`, `stat_prefix`; `decorator` and `metadata`
//!     accepted (tracing only); `require_tls: ALL` (301 to https when `x-forwarded-proto`
//!     is not https). NACKed: `cluster_header`, `metadata_match`, other rewrites
//!     (`path_rewrite_policy`, `auto_host_rewrite`, ...), `hedge_policy`, rate limits,
//!     retry `retriable_headers`, non-previous-hosts host predicates, `require_tls:
//!     EXTERNAL_ONLY`, `virtual_clusters`, hash `filter_state`, other per-filter configs.
//! - **Cluster**: `STATIC`; `STRICT_DNS` and `LOGICAL_DNS` (each endpoint name resolved
//!   when a connection is opened, so every connection sees fresh DNS; `dns_refresh_rate`
//!   kept, `respect_dns_ttl` accepted); `EDS`; `ORIGINAL_DST` with
//!   `original_dst_lb_config.use_http_header` (host from `x-envoy-original-dst-host`),
//!   otherwise the connection's original destination: the TCP proxy connects to it (no
//!   original destination, e.g. explicit mode: UH); HTTP requests still get 503 UH until
//!   the connection manager passes it down. `lb_policy` `ROUND_ROBIN` (weighted),
//!   `LEAST_REQUEST` (power of `choice_count` choices by requests in flight, counted until
//!   the response body ends), `RANDOM`, `RING_HASH` (xxHash64 ring, `minimum_ring_size`/
//!   `maximum_ring_size`, XX_HASH only) and `MAGLEV` (`table_size`, prime, default 65537),
//!   both fed by the route's request hash and random without one (an ejected host is
//!   skipped by deterministic rehashing, not by rebuilding the ring).
//!   `common_lb_config.healthy_panic_threshold` (default 50%: below it every host is used).
//!   `circuit_breakers` DEFAULT thresholds `max_connections`, `max_pending_requests`,
//!   `max_requests` (in flight until the body ends), `max_retries` (`Upstream::retry_permit`);
//!   over a limit: 503 UO, `upstream_rq_pending_overflow`. `outlier_detection`
//!   `consecutive_5xx`, `consecutive_gateway_failure` with their `enforcing_*`, `interval`,
//!   `base_ejection_time` x ejections capped by `max_ejection_time`, `max_ejection_percent`;
//!   success-rate and failure-percentage detection accepted, not applied;
//!   `split_external_local_origin_errors` NACKed. `typed_extension_protocol_options`
//!   `HttpProtocolOptions`: explicit HTTP/1.1 or HTTP/2 (h2c, one multiplexed connection per
//!   host), `use_downstream_protocol_config` (the request's version), `auto_config` (HTTP/1.1
//!   in cleartext), `common_http_protocol_options.idle_timeout` (default 1h) and
//!   `max_requests_per_connection`. `connect_timeout`; `upstream_connection_options` and
//!   `upstream_bind_config` accepted. `transport_socket` `envoy.transport_sockets.tls` with
//!   an `UpstreamTlsContext` (HTTP pools and the TCP proxy originate TLS; see **TLS**).
//!   `transport_socket_matches` (per endpoint by its `envoy.transport_socket_match`
//!   metadata, string values; `raw_buffer` = plain text: Istio's auto mTLS).
//!   NACKed: per-host thresholds, retry budgets.
//! - **TLS** (rustls, ring): certificates and CAs by SDS over ADS only
//!   (`tls_certificate_sds_secret_configs`, `validation_context_sds_secret_config`,
//!   `combined_validation_context` = inline `default_validation_context` + SDS CA), or a
//!   CA inline in `validation_context.trusted_ca`. `Secret` resources: `tls_certificate`
//!   (`certificate_chain`, `private_key`) and `validation_context` (`trusted_ca`), each an
//!   `inline_bytes`, `inline_string` or `filename` (read when the secret arrives).
//!   Upstream: `sni` (none when empty), one client certificate (MUTUAL), `alpn_protocols`;
//!   verified as Envoy does — the chain against the trusted CA, names only against
//!   `match_typed_subject_alt_names` (DNS or URI, exact; wildcard certificates match; URI
//!   for the SPIFFE ids of ISTIO_MUTUAL), never against the SNI; no validation context =
//!   not verified. Downstream: the first
//!   certificate serves every connection, `require_client_certificate` with a validation
//!   context (MUTUAL; without `require`, OPTIONAL_MUTUAL: a sent certificate must verify),
//!   `alpn_protocols` (h2 negotiated → HTTP/2). Like Envoy's warming, a resource whose
//!   secrets have not arrived is in force but waits: its cluster's connections fail (503
//!   UF) and its TLS chains close connections before the handshake, until they come;
//!   `initial_fetch_timeout` accepted. The secret `default` is never fetched: it is the
//!   proxy's own workload certificate (`--token-file`/`WEFT_TOKEN`, see [`identity`]),
//!   key made in the process, renewed at half its lifetime without a rebuild; a verified
//!   client's SPIFFE id is the connection's peer principal. A client offering none of a
//!   chain's ALPN protocols is served without ALPN, as Envoy does. NACKed: other SAN
//!   types and matchers, client SAN
//!   matchers, `tls_params`, inline `tls_certificates`, certificate providers, session
//!   options, `auto_host_sni`/`auto_sni_san_validation`, secrets not over ADS.
//! - **ClusterLoadAssignment**: endpoints with IP or name, `health_status` (UNHEALTHY,
//!   DRAINING, TIMEOUT are never picked), `load_balancing_weight`; localities flattened;
//!   priorities other than 0 NACKed.
//!
//! # Accepted but not applied yet
//!
//! `RouteAction.max_stream_duration`; the `previous_hosts` retry host predicate (a retry
//! goes through the cluster's balancer again, which for round robin is the next host);
//! `retry_priority` `previous_priorities` (every endpoint is in priority 0);
//! `CorsPolicy.shadow_enabled` (stats only); `Cluster.dns_lookup_family`, locality weights.
//!
//! # Data path
//!
//! HTTP/1.1 downstream with keep-alive; absolute-form requests (HTTP proxy clients) are
//! routed by their authority, origin-form ones by `Host`. Local replies carry Envoy's
//! statuses: 404 (NR), 503 `no healthy upstream` (UH), 503 (NC, UF, UC, UO), 504 (UT),
//! fault aborts (FI). A request with a gRPC content type gets every local reply (direct
//! responses included) as a trailers-only gRPC response: HTTP 200, `grpc-status` (the
//! fault's, or Envoy's mapping of the HTTP status) and `grpc-message`.
//! `x-request-id` is generated when absent, `x-envoy-upstream-service-time` added to
//! responses. Each request reads one config snapshot (`ArcSwap`); an update never changes
//! a request in flight.

pub mod admin;
pub mod bootstrap;
pub mod cluster;
pub mod health;
pub mod http;
pub mod identity;
pub mod jwt;
pub mod listener;
pub mod model;
pub mod rbac;
pub mod state;
pub mod stats;
pub mod telemetry;
pub mod xds;

use std::sync::Arc;

/// Runs the proxy: ADS client, listener manager and admin endpoint, with the default
/// telemetry (stats port 15090 unless the node metadata says otherwise, text access log).
pub async fn run(settings: bootstrap::Settings) -> std::io::Result<()> {
    let options = telemetry::Options {
        access_log: true,
        ..Default::default()
    };
    run_with(settings, options).await
}

/// [`run`] with telemetry options from the command line.
pub async fn run_with(
    settings: bootstrap::Settings,
    telemetry_options: telemetry::Options,
) -> std::io::Result<()> {
    run_with_health(settings, telemetry_options, None).await
}

/// [`run_with`] and the `--health-port` flag (node metadata `WEFT_HEALTH_PORT` wins).
pub async fn run_with_health(
    settings: bootstrap::Settings,
    telemetry_options: telemetry::Options,
    health_port: Option<u16>,
) -> std::io::Result<()> {
    run_with_identity(settings, telemetry_options, health_port, None).await
}

/// [`run_with_health`] with a workload identity: its certificate, obtained from the CA
/// and renewed in the background, is the SDS secret `default` ([`identity`]).
pub async fn run_with_identity(
    settings: bootstrap::Settings,
    telemetry_options: telemetry::Options,
    health_port: Option<u16>,
    identity: Option<identity::Config>,
) -> std::io::Result<()> {
    let proxy = state::Proxy::new();
    if let Some(config) = identity {
        identity::start(&proxy, config);
    }
    tokio::spawn(health::serve(
        proxy.clone(),
        health::port(&settings.metadata, health_port),
    ));
    proxy.telemetry.start(&settings, &telemetry_options);
    let stats_port = telemetry::stats_port(&settings.metadata, telemetry_options.stats_port);
    tokio::spawn(telemetry::server::serve(
        proxy.telemetry.clone(),
        stats_port,
    ));
    let settings = Arc::new(settings);
    if settings.delta {
        tokio::spawn(xds::delta::run(proxy.clone(), settings.clone()));
    } else {
        tokio::spawn(xds::client::run(proxy.clone(), settings.clone()));
    }
    tokio::spawn(listener::run(proxy.clone()));
    match settings.admin {
        Some(addr) => admin::serve(proxy, settings.clone(), addr).await,
        None => {
            std::future::pending::<()>().await;
            Ok(())
        }
    }
}
