//! extensions.istio.io kinds.

pub mod wasm_plugin;
