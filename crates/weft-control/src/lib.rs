//! weftd, Weft's control plane: the resource store, the HTTP API and the config folder.

pub mod api;
pub mod auth;
pub mod config_dir;
pub mod selector;
pub mod server;
pub mod store;
