//! Sidecar (networking.istio.io): spec types and validation. TODO(helper): fill in.

use crate::meta::ObjectMeta;
use crate::validate::Report;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Sidecar {}

pub fn validate(_spec: &Sidecar, _meta: &ObjectMeta, _report: &mut Report) {}
