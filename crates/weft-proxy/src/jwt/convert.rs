//! `JwtAuthentication` -> [`JwtAuthn`], with the conversion errors the xDS client NACKs:
//! every field weft-proxy would otherwise ignore is named. JWKS must be inline
//! (`local_jwks`), as Istio sends them by default; `remote_jwks` is refused.

use super::extract::{default_locations, Location};
use super::jwks::Jwks;
use super::{JwtAuthn, PathMatch, Provider, Requirement, Rule};
use crate::xds::convert::{at, invalid, reject_rest, unsupported, Result};
use envoy_types::pb::envoy::config::core::v3::{data_source::Specifier, DataSource};
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::{
    jwt_provider::JwksSourceSpecifier, jwt_requirement::RequiresType,
    requirement_rule::RequirementType, JwtAuthentication, JwtProvider, JwtRequirement,
};
use http::HeaderName;
use std::collections::BTreeMap;

const JWT_AUTHENTICATION: &[(u32, &str)] = &[
    (3, "filter_state_rules"),
    (5, "requirement_map"),
    (6, "strip_failure_response"),
];
const JWT_PROVIDER: &[(u32, &str)] = &[
    (19, "subjects"),
    (20, "require_expiration"),
    (21, "max_lifetime"),
    (14, "header_in_metadata"),
    (16, "failed_status_in_metadata"),
];
const ROUTE_MATCH: &[(u32, &str)] = &[
    (4, "case_sensitive"),
    (6, "headers"),
    (7, "query_parameters"),
    (5, "grpc"),
    (8, "runtime_fraction"),
    (9, "tls_context"),
    (13, "dynamic_metadata"),
    (10, "safe_regex"),
];

/// Converts the filter's typed config; `field` names it inside the listener.
pub fn jwt_authn(field: &str, cfg: &JwtAuthentication) -> Result<JwtAuthn> {
    let mut providers = BTreeMap::new();
    for (name, p) in &cfg.providers {
        let f = at(field, format!("providers[{name}]"));
        providers.insert(name.clone(), provider(&f, p)?);
    }
    let mut rules = Vec::new();
    for (i, r) in cfg.rules.iter().enumerate() {
        let f = at(field, format!("rules[{i}]"));
        let m = r.r#match.clone().unwrap_or_default();
        let path = match &m.path_specifier {
            Some(PathSpecifier::Prefix(p)) => PathMatch::Prefix(p.clone()),
            Some(PathSpecifier::Path(p)) => PathMatch::Path(p.clone()),
            Some(_) => {
                return Err(unsupported(
                    at(&f, "match"),
                    "path match other than prefix or path",
                ))
            }
            None => return Err(invalid(at(&f, "match"), "no path specifier")),
        };
        let mut rest = m.clone();
        rest.path_specifier = None;
        reject_rest(&at(&f, "match"), &rest, ROUTE_MATCH)?;
        let requires = match &r.requirement_type {
            None => None,
            Some(RequirementType::Requires(req)) => {
                Some(requirement(&at(&f, "requires"), req, &providers)?)
            }
            Some(RequirementType::RequirementName(_)) => {
                return Err(unsupported(at(&f, "requirement_name"), "requirement_map"))
            }
        };
        rules.push(Rule { path, requires });
    }
    let mut rest = cfg.clone();
    rest.providers.clear();
    rest.rules.clear();
    rest.bypass_cors_preflight = false;
    // Stats only.
    rest.stat_prefix.clear();
    reject_rest(field, &rest, JWT_AUTHENTICATION)?;
    Ok(JwtAuthn {
        providers,
        rules,
        bypass_cors_preflight: cfg.bypass_cors_preflight,
    })
}

fn header_name(field: &str, name: &str) -> Result<HeaderName> {
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| invalid(field, format!("{name:?} is not a header name")))
}

fn provider(field: &str, p: &JwtProvider) -> Result<Provider> {
    let jwks_text = match &p.jwks_source_specifier {
        Some(JwksSourceSpecifier::LocalJwks(d)) => inline(&at(field, "local_jwks"), d)?,
        Some(JwksSourceSpecifier::RemoteJwks(_)) => {
            return Err(unsupported(
                at(field, "remote_jwks"),
                "fetching JWKS (weftd inlines them in local_jwks)",
            ))
        }
        None => return Err(invalid(field, "no jwks_source_specifier")),
    };
    // As Envoy: a JWKS that cannot be read is accepted and no token verifies against it.
    let jwks = Jwks::parse(&jwks_text).unwrap_or_else(|e| {
        tracing::warn!(provider = field, error = %e, "jwt_authn: unusable JWKS");
        Jwks::default()
    });
    let mut locations = Vec::new();
    for (i, h) in p.from_headers.iter().enumerate() {
        locations.push(Location::Header {
            name: header_name(&at(field, format!("from_headers[{i}].name")), &h.name)?,
            prefix: h.value_prefix.clone(),
        });
    }
    locations.extend(p.from_params.iter().cloned().map(Location::Param));
    locations.extend(p.from_cookies.iter().cloned().map(Location::Cookie));
    if locations.is_empty() {
        locations = default_locations();
    }
    let forward_payload_header = match p.forward_payload_header.as_str() {
        "" => None,
        h => Some(header_name(&at(field, "forward_payload_header"), h)?),
    };
    let mut claim_to_headers = Vec::new();
    for (i, c) in p.claim_to_headers.iter().enumerate() {
        let f = at(field, format!("claim_to_headers[{i}]"));
        // `claim_name` is split on dots; `claim_path` names each key as it is.
        let path: Vec<String> = match (c.claim_name.is_empty(), c.claim_path.is_empty()) {
            (false, true) => c.claim_name.split('.').map(str::to_string).collect(),
            (true, false) => c.claim_path.iter().map(|s| s.key.clone()).collect(),
            _ => {
                return Err(invalid(
                    &f,
                    "exactly one of claim_name and claim_path must be set",
                ))
            }
        };
        let header = header_name(&at(&f, "header_name"), &c.header_name)?;
        claim_to_headers.push((header, path));
    }
    let mut rest = p.clone();
    rest.issuer.clear();
    rest.audiences.clear();
    rest.jwks_source_specifier = None;
    rest.from_headers.clear();
    rest.from_params.clear();
    rest.from_cookies.clear();
    rest.forward = false;
    rest.forward_payload_header.clear();
    rest.pad_forward_payload_header = false;
    rest.payload_in_metadata.clear();
    rest.normalize_payload_in_metadata = None;
    rest.claim_to_headers.clear();
    rest.clock_skew_seconds = 0;
    // A verification cache: weft-proxy verifies every request.
    rest.jwt_cache_config = None;
    rest.clear_route_cache = false;
    reject_rest(field, &rest, JWT_PROVIDER)?;
    Ok(Provider {
        issuer: (!p.issuer.is_empty()).then(|| p.issuer.clone()),
        audiences: p.audiences.clone(),
        jwks,
        locations,
        forward: p.forward,
        forward_payload_header,
        pad_forward_payload_header: p.pad_forward_payload_header,
        payload_in_metadata: (!p.payload_in_metadata.is_empty())
            .then(|| p.payload_in_metadata.clone()),
        space_delimited_claims: p
            .normalize_payload_in_metadata
            .as_ref()
            .map(|n| n.space_delimited_claims.clone())
            .unwrap_or_default(),
        claim_to_headers,
        clear_route_cache: p.clear_route_cache,
        // Envoy's default skew is 60 s; 0 on the wire means the default.
        clock_skew_seconds: match p.clock_skew_seconds {
            0 => 60,
            s => u64::from(s),
        },
    })
}

fn inline(field: &str, d: &DataSource) -> Result<String> {
    match &d.specifier {
        Some(Specifier::InlineString(s)) => Ok(s.clone()),
        Some(Specifier::InlineBytes(b)) => String::from_utf8(b.clone())
            .map_err(|_| invalid(at(field, "inline_bytes"), "not UTF-8")),
        Some(Specifier::Filename(f)) => std::fs::read_to_string(f)
            .map_err(|e| invalid(at(field, "filename"), format!("{f}: {e}"))),
        _ => Err(unsupported(field, "DataSource other than inline or file")),
    }
}

fn requirement(
    field: &str,
    r: &JwtRequirement,
    providers: &BTreeMap<String, Provider>,
) -> Result<Requirement> {
    let known = |f: &str, name: &str| -> Result<()> {
        if providers.contains_key(name) {
            Ok(())
        } else {
            Err(invalid(f, format!("unknown provider {name:?}")))
        }
    };
    let list = |f: &str, reqs: &[JwtRequirement]| -> Result<Vec<Requirement>> {
        if reqs.len() < 2 {
            return Err(invalid(f, "needs at least 2 requirements"));
        }
        reqs.iter()
            .enumerate()
            .map(|(i, r)| requirement(&at(f, format!("requirements[{i}]")), r, providers))
            .collect()
    };
    Ok(match &r.requires_type {
        Some(RequiresType::ProviderName(name)) => {
            known(&at(field, "provider_name"), name)?;
            Requirement::Provider(name.clone(), None)
        }
        Some(RequiresType::ProviderAndAudiences(pa)) => {
            known(
                &at(field, "provider_and_audiences.provider_name"),
                &pa.provider_name,
            )?;
            Requirement::Provider(pa.provider_name.clone(), Some(pa.audiences.clone()))
        }
        Some(RequiresType::RequiresAny(any)) => {
            Requirement::Any(list(&at(field, "requires_any"), &any.requirements)?)
        }
        Some(RequiresType::RequiresAll(all)) => {
            Requirement::All(list(&at(field, "requires_all"), &all.requirements)?)
        }
        Some(RequiresType::AllowMissing(_)) => Requirement::AllowMissing,
        Some(RequiresType::AllowMissingOrFailed(_)) => Requirement::AllowMissingOrFailed,
        Some(RequiresType::ExtractOnlyWithoutValidation(_)) => {
            return Err(unsupported(
                at(field, "extract_only_without_validation"),
                "tokens without validation",
            ))
        }
        None => return Err(invalid(field, "empty requirement")),
    })
}
