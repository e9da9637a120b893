//! security.istio.io kinds: peer and request authentication, authorization.

pub mod authorization_policy;
pub mod authz_attributes;
pub mod peer_authentication;
pub mod request_authentication;

/// For `skip_serializing_if` on enums and scalars: proto3 leaves zero values unwritten.
pub(crate) fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}
