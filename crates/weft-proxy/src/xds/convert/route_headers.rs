//! Header edits (`*_headers_to_add` / `*_headers_to_remove`) at every level of a route
//! configuration, and `FractionalPercent` probabilities.

use super::{at, invalid, unsupported, Result};
use crate::model::route::{
    AppendAction, Fraction, HeaderAdd, HeaderMutations, HeaderOps, ValuePart,
};
use envoy_types::pb::envoy::config::core::v3::{
    header_value_option::HeaderAppendAction, HeaderValueOption, RuntimeFractionalPercent,
};
use envoy_types::pb::envoy::r#type::v3::{fractional_percent::DenominatorType, FractionalPercent};

/// The four header lists of a route, virtual host, configuration or weighted cluster.
pub fn mutations(
    field: &str,
    request_add: &[HeaderValueOption],
    request_remove: &[String],
    response_add: &[HeaderValueOption],
    response_remove: &[String],
) -> Result<HeaderMutations> {
    Ok(HeaderMutations {
        request: ops(
            field,
            "request_headers_to_add",
            request_add,
            "request_headers_to_remove",
            request_remove,
        )?,
        response: ops(
            field,
            "response_headers_to_add",
            response_add,
            "response_headers_to_remove",
            response_remove,
        )?,
    })
}

fn ops(
    field: &str,
    add_name: &str,
    add: &[HeaderValueOption],
    remove_name: &str,
    remove: &[String],
) -> Result<HeaderOps> {
    let mut out = HeaderOps::default();
    for (i, name) in remove.iter().enumerate() {
        let lower = name.to_ascii_lowercase();
        // Envoy refuses to remove pseudo-headers and Host.
        if lower.starts_with(':') || lower == "host" {
            return Err(invalid(
                format!("{}[{i}]", at(field, remove_name)),
                format!("{name} cannot be removed"),
            ));
        }
        out.remove.push(lower);
    }
    for (i, o) in add.iter().enumerate() {
        out.add
            .push(header_add(&format!("{}[{i}]", at(field, add_name)), o)?);
    }
    Ok(out)
}

// `append` is deprecated but still what older control planes send.
#[allow(deprecated)]
fn header_add(field: &str, o: &HeaderValueOption) -> Result<HeaderAdd> {
    let Some(h) = &o.header else {
        return Err(invalid(field, "no header"));
    };
    let name = h.key.to_ascii_lowercase();
    if name.is_empty() || name.starts_with(':') || name == "host" {
        return Err(unsupported(
            at(field, "header.key"),
            format!("adding {:?} (pseudo-headers and host)", h.key),
        ));
    }
    if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(invalid(at(field, "header.key"), format!("{:?}", h.key)));
    }
    let raw = if h.value.is_empty() && !h.raw_value.is_empty() {
        String::from_utf8(h.raw_value.clone())
            .map_err(|_| invalid(at(field, "header.raw_value"), "not UTF-8"))?
    } else {
        h.value.clone()
    };
    // The deprecated `append` wins when set, as in Envoy.
    let action = match (o.append, HeaderAppendAction::try_from(o.append_action)) {
        (Some(b), _) if b.value => AppendAction::AppendIfExistsOrAdd,
        (Some(_), _) => AppendAction::OverwriteIfExistsOrAdd,
        (None, Ok(HeaderAppendAction::AppendIfExistsOrAdd)) => AppendAction::AppendIfExistsOrAdd,
        (None, Ok(HeaderAppendAction::AddIfAbsent)) => AppendAction::AddIfAbsent,
        (None, Ok(HeaderAppendAction::OverwriteIfExistsOrAdd)) => {
            AppendAction::OverwriteIfExistsOrAdd
        }
        (None, Ok(HeaderAppendAction::OverwriteIfExists)) => AppendAction::OverwriteIfExists,
        (None, Err(_)) => {
            return Err(invalid(
                at(field, "append_action"),
                o.append_action.to_string(),
            ))
        }
    };
    Ok(HeaderAdd {
        name,
        value: value_parts(&at(field, "header.value"), &raw)?,
        action,
        keep_empty_value: o.keep_empty_value,
    })
}

/// Splits a header value into literals and the `%COMMAND%`s weft-proxy evaluates;
/// `%%` is a literal `%`. Other commands are refused rather than sent verbatim.
pub fn value_parts(field: &str, raw: &str) -> Result<Vec<ValuePart>> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = raw;
    while let Some(start) = rest.find('%') {
        literal.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        if let Some(tail) = after.strip_prefix('%') {
            literal.push('%');
            rest = tail;
            continue;
        }
        let Some(end) = after.find('%') else {
            return Err(invalid(field, format!("unterminated % in {raw:?}")));
        };
        let command = &after[..end];
        let part = match command {
            "DOWNSTREAM_REMOTE_ADDRESS" => ValuePart::DownstreamRemoteAddress,
            "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT" => {
                ValuePart::DownstreamRemoteAddressWithoutPort
            }
            c if c.starts_with("REQ(") && c.ends_with(')') => {
                let name = c[4..c.len() - 1].to_ascii_lowercase();
                // Envoy's `:authority` pseudo-header is the Host header here.
                let name = if name == ":authority" {
                    "host".to_owned()
                } else {
                    name
                };
                ValuePart::RequestHeader(name)
            }
            other => {
                return Err(unsupported(
                    field,
                    format!("header value command %{other}%"),
                ))
            }
        };
        if !literal.is_empty() {
            parts.push(ValuePart::Literal(std::mem::take(&mut literal)));
        }
        parts.push(part);
        rest = &after[end + 1..];
    }
    literal.push_str(rest);
    if !literal.is_empty() || parts.is_empty() {
        parts.push(ValuePart::Literal(literal));
    }
    Ok(parts)
}

/// A `FractionalPercent`; a numerator above the denominator means always.
pub fn fraction(field: &str, p: &FractionalPercent) -> Result<Fraction> {
    let denominator = match DenominatorType::try_from(p.denominator) {
        Ok(DenominatorType::Hundred) => 100,
        Ok(DenominatorType::TenThousand) => 10_000,
        Ok(DenominatorType::Million) => 1_000_000,
        Err(_) => return Err(invalid(at(field, "denominator"), p.denominator.to_string())),
    };
    Ok(Fraction {
        numerator: p.numerator.min(denominator),
        denominator,
    })
}

/// The `default_value` of a runtime fraction (weft-proxy has no runtime); Envoy's default
/// when it is missing is 0%.
pub fn runtime_fraction(field: &str, r: Option<&RuntimeFractionalPercent>) -> Result<Fraction> {
    match r.and_then(|r| r.default_value.as_ref()) {
        Some(p) => fraction(&at(field, "default_value"), p),
        None => Ok(Fraction {
            numerator: 0,
            denominator: 100,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::HeaderValue;
    use envoy_types::pb::google::protobuf::BoolValue;

    fn opt(key: &str, value: &str, action: HeaderAppendAction) -> HeaderValueOption {
        HeaderValueOption {
            header: Some(HeaderValue {
                key: key.into(),
                value: value.into(),
                ..Default::default()
            }),
            append_action: action as i32,
            ..Default::default()
        }
    }

    #[test]
    #[allow(deprecated)]
    fn append_actions_and_deprecated_append() {
        let mut legacy = opt("x-b", "2", HeaderAppendAction::AddIfAbsent);
        legacy.append = Some(BoolValue { value: false });
        let m = mutations(
            "route",
            &[opt("X-A", "1", HeaderAppendAction::AddIfAbsent), legacy],
            &["X-Gone".into()],
            &[],
            &[],
        )
        .unwrap();
        assert_eq!(m.request.remove, ["x-gone"]);
        let got: Vec<_> = m
            .request
            .add
            .iter()
            .map(|a| (a.name.as_str(), a.action))
            .collect();
        assert_eq!(
            got,
            [
                ("x-a", AppendAction::AddIfAbsent),
                ("x-b", AppendAction::OverwriteIfExistsOrAdd)
            ]
        );
    }

    #[test]
    fn pseudo_headers_are_refused() {
        let err = mutations("route", &[], &[":path".into()], &[], &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "route.request_headers_to_remove[0]: invalid: :path cannot be removed"
        );
    }

    #[test]
    fn value_commands() {
        assert_eq!(
            value_parts("v", "100%% from %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%!").unwrap(),
            [
                ValuePart::Literal("100% from ".into()),
                ValuePart::DownstreamRemoteAddressWithoutPort,
                ValuePart::Literal("!".into())
            ]
        );
        assert_eq!(
            value_parts("v", "%REQ(X-User)%").unwrap(),
            [ValuePart::RequestHeader("x-user".into())]
        );
        assert_eq!(
            value_parts("v", "%REQ(:AUTHORITY)%").unwrap(),
            [ValuePart::RequestHeader("host".into())]
        );
        assert!(value_parts("v", "%START_TIME%").is_err());
        assert_eq!(
            value_parts("v", "").unwrap(),
            [ValuePart::Literal("".into())]
        );
    }

    #[test]
    fn fractions() {
        let p = FractionalPercent {
            numerator: 105_000,
            denominator: DenominatorType::Million as i32,
        };
        assert_eq!(
            fraction("f", &p).unwrap(),
            Fraction {
                numerator: 105_000,
                denominator: 1_000_000
            }
        );
        assert_eq!(runtime_fraction("f", None).unwrap().numerator, 0);
    }
}
