//! What translation reads: the proxy asking, and the mesh as one immutable snapshot.

pub mod proxy;
pub mod snapshot;

pub use proxy::{CaptureMode, Proxy, ProxyKind};
pub use snapshot::MeshSnapshot;
