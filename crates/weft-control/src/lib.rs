//! weftd, Weft's control plane: the resource store, the HTTP API, the config folder, and
//! the translation of Istio config into Envoy xDS served over ADS.

pub mod api;
pub mod auth;
pub mod ca;
pub mod config_dir;
pub mod mesh;
pub mod model;
pub mod registry;
pub mod selector;
pub mod server;
pub mod store;
pub mod translate;
pub mod xds;
