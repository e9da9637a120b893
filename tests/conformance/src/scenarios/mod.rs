//! The scenario tables, in the order they run: thin path first, then routing, resilience,
//! load balancing, gRPC, gateways below HTTP, egress, Bookinfo, authorization (on requests,
//! then on the caller's identity) and mesh mutual TLS.

use crate::scenario::Scenario;

mod authz;
mod authz_identity;
mod bookinfo;
mod egress;
mod gateway_l4;
mod grpc;
mod load_balancing;
mod mtls;
mod resilience;
mod routing;

/// Every scenario of the suite.
pub fn all() -> Vec<Scenario> {
    let mut all = routing::scenarios();
    all.extend(resilience::scenarios());
    all.extend(load_balancing::scenarios());
    all.extend(grpc::scenarios());
    all.extend(gateway_l4::scenarios());
    all.extend(egress::scenarios());
    all.extend(bookinfo::scenarios());
    all.extend(authz::scenarios());
    all.extend(authz_identity::scenarios());
    all.extend(mtls::scenarios());
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn names_are_unique_and_every_scenario_checks_something() {
        let all = all();
        let names: BTreeSet<_> = all.iter().map(|s| s.name).collect();
        assert_eq!(names.len(), all.len(), "duplicate scenario names");
        for s in &all {
            assert!(!s.checks.is_empty(), "{} has no checks", s.name);
        }
    }

    /// Every `{{name}}` in `text` set to 1: enough to parse, since placeholders stand for
    /// ports and paths.
    fn dummy_vars(text: &str) -> crate::Vars {
        let values = text
            .split("{{")
            .skip(1)
            .filter_map(|rest| rest.split_once("}}"))
            .map(|(name, _)| (name.trim().to_owned(), "1".to_owned()))
            .collect();
        crate::Vars {
            values,
            fixed_ports: Vec::new(),
        }
    }

    #[test]
    fn every_config_parses() {
        for s in all() {
            for source in &s.config {
                let text = match source {
                    crate::scenario::Source::Yaml(t) => t,
                    crate::scenario::Source::Bookinfo(_) => "",
                };
                let docs = crate::load_source_with(source, 1, &dummy_vars(text))
                    .unwrap_or_else(|e| panic!("{}: {e}", s.name));
                for doc in docs {
                    crate::control::ResourceKey::of(&doc)
                        .unwrap_or_else(|e| panic!("{}: {e}", s.name));
                }
            }
        }
    }
}
