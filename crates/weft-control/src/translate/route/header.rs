//! VirtualService `headers` (set/add/remove on requests and responses) -> Envoy header edits.

use envoy_types::pb::envoy::config::core::v3::{
    header_value_option::HeaderAppendAction, HeaderValue, HeaderValueOption,
};
use std::collections::BTreeMap;
use weft_config::networking::virtual_service::Headers;

/// Header edits of a route or of one weighted destination.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HeaderEdits {
    pub request_add: Vec<HeaderValueOption>,
    pub request_remove: Vec<String>,
    pub response_add: Vec<HeaderValueOption>,
    pub response_remove: Vec<String>,
    /// Setting `:authority`/`host` is a host rewrite in Envoy, not a header edit.
    pub authority: Option<String>,
}

/// Pseudo-headers and `host` cannot be edited as headers by Envoy.
fn is_internal(name: &str) -> bool {
    name.starts_with(':') || name.eq_ignore_ascii_case("host")
}

fn is_authority(name: &str) -> bool {
    name.eq_ignore_ascii_case(":authority") || name.eq_ignore_ascii_case("host")
}

/// `set` overwrites, `add` appends to an existing value; both add a missing header.
fn options(
    map: &BTreeMap<String, String>,
    action: HeaderAppendAction,
    out: &mut Vec<HeaderValueOption>,
) {
    for (key, value) in map.iter().filter(|(k, _)| !is_internal(k)) {
        out.push(HeaderValueOption {
            header: Some(HeaderValue {
                key: key.clone(),
                value: value.clone(),
                ..Default::default()
            }),
            append_action: action as i32,
            ..Default::default()
        });
    }
}

fn authority_in(map: &BTreeMap<String, String>) -> Option<String> {
    map.iter()
        .filter(|(k, _)| is_authority(k))
        .map(|(_, v)| v.clone())
        .next_back()
}

/// Translates Istio's header operations. Sets come before adds so that an add of the same
/// header appends to the value just set.
pub fn header_edits(headers: &Headers) -> HeaderEdits {
    let mut out = HeaderEdits::default();
    if let Some(req) = &headers.request {
        options(
            &req.set,
            HeaderAppendAction::OverwriteIfExistsOrAdd,
            &mut out.request_add,
        );
        options(
            &req.add,
            HeaderAppendAction::AppendIfExistsOrAdd,
            &mut out.request_add,
        );
        out.request_remove = req
            .remove
            .iter()
            .filter(|h| !is_internal(h))
            .cloned()
            .collect();
        out.authority = authority_in(&req.set).or_else(|| authority_in(&req.add));
    }
    if let Some(resp) = &headers.response {
        options(
            &resp.set,
            HeaderAppendAction::OverwriteIfExistsOrAdd,
            &mut out.response_add,
        );
        options(
            &resp.add,
            HeaderAppendAction::AppendIfExistsOrAdd,
            &mut out.response_add,
        );
        out.response_remove = resp
            .remove
            .iter()
            .filter(|h| !is_internal(h))
            .cloned()
            .collect();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_add_remove_and_authority() {
        let h: Headers = serde_yaml::from_str(
            "request: {set: {x-a: '1', ':authority': new.example.com}, add: {x-b: '2'}, remove: [x-c, host]}\nresponse: {add: {x-d: '3'}, remove: [x-e]}",
        )
        .unwrap();
        let e = header_edits(&h);
        let keys: Vec<_> = e
            .request_add
            .iter()
            .map(|o| (o.header.as_ref().unwrap().key.as_str(), o.append_action))
            .collect();
        assert_eq!(
            keys,
            [
                ("x-a", HeaderAppendAction::OverwriteIfExistsOrAdd as i32),
                ("x-b", HeaderAppendAction::AppendIfExistsOrAdd as i32)
            ]
        );
        assert_eq!(e.request_remove, ["x-c"]);
        assert_eq!(e.authority.as_deref(), Some("new.example.com"));
        assert_eq!(e.response_add.len(), 1);
        assert_eq!(e.response_remove, ["x-e"]);
    }
}
