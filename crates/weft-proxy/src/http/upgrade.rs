//! HTTP/1.1 upgrades (WebSocket): which the connection manager's `upgrade_configs` allow,
//! and the tunnel that splices the upgraded downstream and upstream connections.

use super::local_reply::{local_reply, ResponseFlag};
use super::ResponseBody;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode, Version};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

/// The upgrade an HTTP/1.1 request asks for (`Upgrade`, with `upgrade` among the
/// `Connection` tokens), lowercase.
pub fn requested(version: Version, headers: &HeaderMap) -> Option<String> {
    if version != Version::HTTP_11 {
        return None;
    }
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    let upgrade = headers.get(header::UPGRADE)?.to_str().ok()?.trim();
    (connection_upgrade && !upgrade.is_empty()).then(|| upgrade.to_ascii_lowercase())
}

/// Envoy's answer to an upgrade the configuration does not allow: 403, and the
/// connection closes (what follows an unaccepted upgrade may be a smuggled request).
pub fn refused() -> Response<ResponseBody> {
    let mut r = local_reply(StatusCode::FORBIDDEN, ResponseFlag::None, "");
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// Puts the upgrade headers back on a request or response after the hop-by-hop ones were
/// dropped: they are what the next hop must see to upgrade too.
pub fn restore(headers: &mut HeaderMap, upgrade: HeaderValue) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, upgrade);
}

/// Once both sides have upgraded (the downstream one after the 101 went out), copies
/// bytes both ways until either side closes. `hold` (the upstream request's breaker and
/// host counts) lives as long as the tunnel: an upgraded stream is still a request.
pub fn splice<H: Send + 'static>(downstream: OnUpgrade, upstream: OnUpgrade, hold: H) {
    tokio::spawn(async move {
        let (down, up) = match tokio::try_join!(downstream, upstream) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(error = %e, "upgrade did not complete");
                return;
            }
        };
        let (mut down, mut up) = (TokioIo::new(down), TokioIo::new(up));
        match tokio::io::copy_bidirectional(&mut down, &mut up).await {
            Ok((sent, received)) => tracing::debug!(sent, received, "upgraded stream closed"),
            Err(e) => tracing::debug!(error = %e, "upgraded stream ended with an error"),
        }
        drop(hold);
    });
}

#[cfg(test)]
#[path = "upgrade_tests.rs"]
mod tests;
