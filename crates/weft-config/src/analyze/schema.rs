//! schema.ValidationAnalyzer: validation errors of each resource, as IST0106 messages, so
//! that `weft analyze` over files reports what `weft validate` would refuse.

use super::context::{origin, Context};
use super::messages::SCHEMA_VALIDATION_ERROR;
use super::Message;

pub(super) fn validation_errors(ctx: &Context<'_>, out: &mut Vec<Message>) {
    for kind in crate::KINDS.iter().map(|k| k.kind) {
        for r in ctx.of_kind(kind) {
            for e in r.validate().errors {
                out.push(SCHEMA_VALIDATION_ERROR.message(origin(r), &[e.to_string().into()]));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::analyze::{analyze_only, Options};

    #[test]
    fn invalid_resource_is_reported_with_its_field() {
        let text = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: default}\nspec:\n  selector: {istio: ingressgateway}\n  servers:\n  - hosts: [\"*\"]\n";
        let resources: Vec<_> = crate::parse_documents_lenient(text)
            .into_iter()
            .map(|r| r.unwrap().0)
            .collect();
        let messages =
            analyze_only(&resources, &Options::default(), "schema.ValidationAnalyzer").unwrap();
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert_eq!(
            messages[0].to_string(),
            "Error [IST0106] (Gateway default/gw) Schema validation error: spec.servers[0].port: Required value"
        );
    }
}
