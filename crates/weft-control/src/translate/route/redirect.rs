//! `redirect` and `directResponse`: routes the proxy answers itself.

use envoy_types::pb::envoy::config::core::v3::{data_source::Specifier, DataSource};
use envoy_types::pb::envoy::config::route::v3::redirect_action::{
    PathRewriteSpecifier, RedirectResponseCode, SchemeRewriteSpecifier,
};
use envoy_types::pb::envoy::config::route::v3::{DirectResponseAction, RedirectAction};
use weft_config::networking::virtual_service::{
    HttpDirectResponse, HttpRedirect, RedirectPortSelection,
};

/// The redirect Envoy sends; `None` for a status code Envoy cannot send (validation
/// rejects those, so this only guards against unvalidated input).
pub fn redirect_action(r: &HttpRedirect, listen_port: u32, is_tls: bool) -> Option<RedirectAction> {
    let response_code = match r.redirect_code() {
        301 => RedirectResponseCode::MovedPermanently,
        302 => RedirectResponseCode::Found,
        303 => RedirectResponseCode::SeeOther,
        307 => RedirectResponseCode::TemporaryRedirect,
        308 => RedirectResponseCode::PermanentRedirect,
        _ => return None,
    };
    let mut out = RedirectAction {
        host_redirect: r.authority.clone().unwrap_or_default(),
        response_code: response_code as i32,
        ..Default::default()
    };
    if let Some(uri) = r.uri.as_deref().filter(|u| !u.is_empty()) {
        out.path_rewrite_specifier = Some(PathRewriteSpecifier::PathRedirect(uri.to_string()));
    } else if let Some(prefix) = r.prefix_rewrite.as_deref().filter(|p| !p.is_empty()) {
        out.path_rewrite_specifier = Some(PathRewriteSpecifier::PrefixRewrite(prefix.to_string()));
    }
    let scheme = r.scheme.as_deref().filter(|s| !s.is_empty());
    if let Some(s) = scheme {
        out.scheme_rewrite_specifier = Some(SchemeRewriteSpecifier::SchemeRedirect(s.to_string()));
    }
    if r.port.is_some() || r.derive_port.is_some() {
        out.port_redirect = match (r.port, r.derive_port) {
            (Some(p), _) => p,
            // Envoy cannot copy the request's port, but routes are generated per listener
            // port, which is the port the request came in on.
            (None, Some(RedirectPortSelection::FromRequestPort)) => listen_port,
            _ => 0,
        };
        let scheme = scheme.unwrap_or(if is_tls { "https" } else { "http" });
        // No explicit :80 / :443 for their own scheme.
        if (out.port_redirect == 80 && scheme == "http")
            || (out.port_redirect == 443 && scheme == "https")
        {
            out.port_redirect = 0;
        }
    }
    Some(out)
}

/// A fixed response with an optional body (text, or base64-encoded bytes).
pub fn direct_response(d: &HttpDirectResponse) -> DirectResponseAction {
    let body = d.body.as_ref().and_then(|b| {
        if let Some(s) = &b.string {
            Some(Specifier::InlineString(s.clone()))
        } else {
            b.bytes
                .as_deref()
                .and_then(decode_base64)
                .map(Specifier::InlineBytes)
        }
    });
    DirectResponseAction {
        status: d.status,
        body: body.map(|s| DataSource {
            specifier: Some(s),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Standard base64 (padding optional), as protobuf's JSON mapping writes `bytes`.
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32)
    };
    let digits: Vec<u8> = s
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        if chunk.len() == 1 {
            return None;
        }
        let mut acc = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            acc |= value(*c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse<T: serde::de::DeserializeOwned>(yaml: &str) -> T {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn redirect_fields() {
        let r = redirect_action(
            &parse("uri: /v1/bookRatings\nauthority: newratings.default.svc.cluster.local\nredirectCode: 302\nscheme: https\nport: 8443"),
            80,
            false,
        )
        .unwrap();
        assert_eq!(r.host_redirect, "newratings.default.svc.cluster.local");
        assert_eq!(
            r.path_rewrite_specifier,
            Some(PathRewriteSpecifier::PathRedirect("/v1/bookRatings".into()))
        );
        assert_eq!(r.response_code, RedirectResponseCode::Found as i32);
        assert_eq!(r.port_redirect, 8443);
        assert_eq!(
            r.scheme_rewrite_specifier,
            Some(SchemeRewriteSpecifier::SchemeRedirect("https".into()))
        );
    }

    #[test]
    fn derive_port() {
        let from_request: HttpRedirect = parse("derivePort: FROM_REQUEST_PORT");
        assert_eq!(
            redirect_action(&from_request, 8080, false)
                .unwrap()
                .port_redirect,
            8080
        );
        assert_eq!(
            redirect_action(&from_request, 80, false)
                .unwrap()
                .port_redirect,
            0
        );
        let default: HttpRedirect = parse("derivePort: FROM_PROTOCOL_DEFAULT");
        assert_eq!(
            redirect_action(&default, 8080, false)
                .unwrap()
                .port_redirect,
            0
        );
        let code = redirect_action(&parse("uri: /x"), 80, false).unwrap();
        assert_eq!(
            code.response_code,
            RedirectResponseCode::MovedPermanently as i32
        );
    }

    #[test]
    fn direct_response_bodies() {
        let text = direct_response(&parse("status: 503\nbody: {string: unavailable}"));
        assert_eq!(text.status, 503);
        assert_eq!(
            text.body.unwrap().specifier,
            Some(Specifier::InlineString("unavailable".into()))
        );
        let bytes = direct_response(&parse("status: 200\nbody: {bytes: aGVsbG8=}"));
        assert_eq!(
            bytes.body.unwrap().specifier,
            Some(Specifier::InlineBytes(b"hello".to_vec()))
        );
    }
}
