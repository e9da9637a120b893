//! Expected failures per data plane: scenarios a data plane does not pass yet, each with
//! why. The tables stay the same for every data plane; only this list differs, and it can
//! only shrink: a listed scenario that passes fails the run until it is removed.

use crate::scenario::Scenario;

/// Scenario name -> what weft-proxy lacks for it.
pub const WEFT_PENDING: &[(&str, &str)] = &[];

/// `scenarios` with `list`'s markers set (replacing any from the tables). Errors name list
/// entries that match no scenario, so a renamed scenario cannot hide a stale entry.
pub fn mark(
    mut scenarios: Vec<Scenario>,
    list: &[(&'static str, &'static str)],
) -> Result<Vec<Scenario>, String> {
    let unknown: Vec<&str> = list
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| !scenarios.iter().any(|s| s.name == *name))
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "pending list names scenarios that do not exist: {unknown:?}"
        ));
    }
    for s in &mut scenarios {
        s.pending = list
            .iter()
            .find(|(name, _)| *name == s.name)
            .map(|(_, why)| *why);
    }
    Ok(scenarios)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weft_pending_names_real_scenarios_once_each_with_a_reason() {
        let scenarios = crate::scenarios::all();
        let marked = mark(scenarios, WEFT_PENDING).unwrap();
        let count = marked.iter().filter(|s| s.pending.is_some()).count();
        assert_eq!(count, WEFT_PENDING.len(), "a scenario is listed twice");
        assert!(WEFT_PENDING.iter().all(|(_, why)| !why.trim().is_empty()));
    }

    #[test]
    fn unknown_names_are_errors_and_unlisted_scenarios_are_not_pending() {
        let scenarios = vec![Scenario::new("a").pending("table"), Scenario::new("b")];
        let marked = mark(scenarios.clone(), &[("b", "why")]).unwrap();
        assert_eq!(marked[0].pending, None);
        assert_eq!(marked[1].pending, Some("why"));
        assert!(mark(scenarios, &[("c", "why")])
            .unwrap_err()
            .contains("\"c\""));
    }
}
