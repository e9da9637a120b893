//! The scenario tables, in the order they run: thin path first, then routing, resilience,
//! gateway and Bookinfo.

use crate::scenario::Scenario;

mod bookinfo;
mod resilience;
mod routing;

/// Every scenario of the suite.
pub fn all() -> Vec<Scenario> {
    let mut all = routing::scenarios();
    all.extend(resilience::scenarios());
    all.extend(bookinfo::scenarios());
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

    #[test]
    fn every_config_parses() {
        for s in all() {
            for source in &s.config {
                let docs =
                    crate::load_source(source, 1).unwrap_or_else(|e| panic!("{}: {e}", s.name));
                for doc in docs {
                    crate::control::ResourceKey::of(&doc)
                        .unwrap_or_else(|e| panic!("{}: {e}", s.name));
                }
            }
        }
    }
}
