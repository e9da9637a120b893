//! A parsed resource: kind, metadata and a typed spec, plus the spec as written.

use crate::error::FieldError;
use crate::kind::Kind;
use crate::meta::ObjectMeta;
use crate::validate::Report;
use crate::{extensions, kubernetes, networking, security, telemetry};
use serde_json::{Map, Value};

/// One Istio resource, structurally valid (known fields, right types).
#[derive(Clone, Debug)]
pub struct Resource {
    pub api_version: String,
    pub metadata: ObjectMeta,
    pub spec: Spec,
    /// The spec exactly as written (as JSON), so that storing and printing lose nothing
    /// and the output keeps the user's field order.
    pub spec_json: Value,
    /// Status written by a controller, kept but never interpreted.
    pub status: Option<Value>,
}

impl Resource {
    pub fn kind(&self) -> Kind {
        self.spec.kind()
    }

    /// `Kind namespace/name`, the origin format istioctl uses in messages.
    pub fn origin(&self) -> String {
        format!(
            "{} {}/{}",
            self.kind(),
            self.metadata.namespace,
            self.metadata.name
        )
    }

    /// The resource as a Kubernetes-shaped JSON object.
    pub fn to_json(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("apiVersion".into(), Value::String(self.api_version.clone()));
        obj.insert("kind".into(), Value::String(self.kind().name().into()));
        obj.insert(
            "metadata".into(),
            serde_json::to_value(&self.metadata).expect("metadata serializes"),
        );
        match (self.kind().top_level_fields(), &self.spec_json) {
            // A Secret's `type`, `data`... sit beside `metadata`, as Kubernetes writes them.
            (Some(_), Value::Object(fields)) => {
                obj.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            _ => {
                obj.insert("spec".into(), self.spec_json.clone());
            }
        }
        if let Some(status) = &self.status {
            obj.insert("status".into(), status.clone());
        }
        Value::Object(obj)
    }

    /// Semantic validation of metadata and spec.
    pub fn validate(&self) -> Report {
        let mut report = Report::default();
        crate::validate::common::validate_metadata(&self.metadata, &mut report);
        self.spec.validate(&self.metadata, &mut report);
        report
    }
}

/// Declares the typed spec of every kind and dispatches parsing and validation to the
/// module that owns each kind.
macro_rules! specs {
    ($($kind:ident => $($m:ident)::+;)*) => {
        /// The typed spec of a resource, one variant per kind.
        #[derive(Clone, Debug)]
        pub enum Spec {
            $($kind(Box<$($m)::+::$kind>),)*
        }

        impl Spec {
            pub fn kind(&self) -> Kind {
                match self {
                    $(Spec::$kind(_) => Kind::$kind,)*
                }
            }

            pub(crate) fn from_json(kind: Kind, value: Value) -> Result<Spec, FieldError> {
                match kind {
                    $(Kind::$kind => crate::parse::strict(value, spec_path(kind)).map(|s| Spec::$kind(Box::new(s))),)*
                }
            }

            fn validate(&self, meta: &ObjectMeta, report: &mut Report) {
                match self {
                    $(Spec::$kind(s) => $($m)::+::validate(s, meta, report),)*
                }
            }
        }
    };
}

specs! {
    VirtualService => networking::virtual_service;
    DestinationRule => networking::destination_rule;
    Gateway => networking::gateway;
    ServiceEntry => networking::service_entry;
    WorkloadEntry => networking::workload_entry;
    WorkloadGroup => networking::workload_group;
    Sidecar => networking::sidecar;
    EnvoyFilter => networking::envoy_filter;
    ProxyConfig => networking::proxy_config;
    PeerAuthentication => security::peer_authentication;
    AuthorizationPolicy => security::authorization_policy;
    RequestAuthentication => security::request_authentication;
    Telemetry => telemetry;
    WasmPlugin => extensions::wasm_plugin;
    Secret => kubernetes::secret;
}

/// Where a kind's spec sits, for error paths: `spec`, or the top level for a Secret.
fn spec_path(kind: Kind) -> &'static str {
    if kind.top_level_fields().is_some() {
        ""
    } else {
        "spec"
    }
}
