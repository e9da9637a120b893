//! Kubernetes core (`v1`) kinds Weft reads: only `Secret`, where gateways keep certificates.

pub mod secret;
