//! Puts Envoy's protobuf descriptor set (shipped inside the `envoy-types` package, not
//! exported by it) into OUT_DIR: the admin `/config_dump` renders the accepted xDS
//! resources to Envoy's JSON with it, on request. Only the files the dump can need are
//! kept (the admin dumps, the bootstrap, and every type weft-proxy accepts inside an xDS
//! resource, with their imports), so decoding it per request stays small.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let target = out_dir.join("envoy_descriptors.bin");
    match locate() {
        Ok(found) => {
            println!("cargo:rerun-if-changed={}", found.display());
            let all = std::fs::read(&found).expect("the descriptor set is readable");
            std::fs::write(&target, subset(&all)).expect("OUT_DIR takes the descriptor set");
        }
        Err(why) => {
            // Empty: /config_dump then lists names and versions without the resources.
            println!("cargo:warning=Envoy descriptor set not found ({why}); /config_dump lists names only");
            std::fs::write(&target, []).expect("OUT_DIR is writable");
        }
    }
}

/// Messages a dump holds: the admin dumps and the bootstrap, the xDS resources, and what
/// weft-proxy accepts in their `Any` fields (anything else is NACKed, so never dumped).
const ROOTS: &[&str] = &[
    "envoy.admin.v3.ConfigDump",
    "envoy.admin.v3.BootstrapConfigDump",
    "envoy.admin.v3.ClustersConfigDump",
    "envoy.admin.v3.EndpointsConfigDump",
    "envoy.admin.v3.ListenersConfigDump",
    "envoy.admin.v3.RoutesConfigDump",
    "envoy.admin.v3.SecretsConfigDump",
    "envoy.config.bootstrap.v3.Bootstrap",
    "envoy.config.cluster.v3.Cluster",
    "envoy.config.endpoint.v3.ClusterLoadAssignment",
    "envoy.config.listener.v3.Listener",
    "envoy.config.route.v3.RouteConfiguration",
    "envoy.config.route.v3.FilterConfig",
    "envoy.extensions.transport_sockets.tls.v3.Secret",
    "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
    "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
    "envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer",
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
    "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
    "envoy.extensions.filters.network.rbac.v3.RBAC",
    "envoy.extensions.filters.http.router.v3.Router",
    "envoy.extensions.filters.http.rbac.v3.RBAC",
    "envoy.extensions.filters.http.rbac.v3.RBACPerRoute",
    "envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
    "envoy.extensions.filters.http.fault.v3.HTTPFault",
    "envoy.extensions.filters.http.cors.v3.Cors",
    "envoy.extensions.filters.http.cors.v3.CorsPolicy",
    "envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
    "envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute",
    "envoy.extensions.filters.listener.http_inspector.v3.HttpInspector",
    "envoy.extensions.filters.listener.original_dst.v3.OriginalDst",
    "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector",
    "envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol",
    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
    "envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig",
    "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate",
    "envoy.extensions.clusters.original_dst.v3.OriginalDstCluster",
];

/// The files defining [`ROOTS`] and everything they import, in the set's order. Each
/// kept file is copied as its original bytes: decoding and re-encoding would drop the
/// options prost does not model, such as `udpa.annotations.sensitive`, which the dump's
/// redaction of private keys relies on.
fn subset(all: &[u8]) -> Vec<u8> {
    use prost::Message;
    let files: Vec<(&[u8], prost_types::FileDescriptorProto)> = raw_files(all)
        .into_iter()
        .map(|raw| {
            let file = prost_types::FileDescriptorProto::decode(raw).expect("a file descriptor");
            (raw, file)
        })
        .collect();
    let defines = |f: &prost_types::FileDescriptorProto, full: &str| {
        let package = f.package();
        f.message_type.iter().any(|m| {
            let name = if package.is_empty() {
                m.name().to_string()
            } else {
                format!("{package}.{}", m.name())
            };
            name == full
        })
    };
    let mut wanted: Vec<String> = Vec::new();
    for root in ROOTS {
        match files.iter().find(|(_, f)| defines(f, root)) {
            Some((_, f)) => wanted.push(f.name().to_string()),
            None => {
                println!("cargo:warning=descriptor set lacks {root}; /config_dump cannot print it")
            }
        }
    }
    let mut keep = std::collections::BTreeSet::new();
    while let Some(name) = wanted.pop() {
        if !keep.insert(name.clone()) {
            continue;
        }
        if let Some((_, f)) = files.iter().find(|(_, f)| f.name() == name) {
            wanted.extend(f.dependency.iter().cloned());
        }
    }
    let mut out = Vec::new();
    for (raw, f) in &files {
        if keep.contains(f.name()) {
            // Field 1 (`file`), length-delimited.
            out.push(0x0a);
            put_varint(&mut out, raw.len() as u64);
            out.extend_from_slice(raw);
        }
    }
    out
}

/// The encoded `file` entries of a FileDescriptorSet (its only field), as they are.
fn raw_files(mut set: &[u8]) -> Vec<&[u8]> {
    let mut files = Vec::new();
    while !set.is_empty() {
        let tag = take_varint(&mut set);
        assert_eq!(tag, 0x0a, "a FileDescriptorSet holds only `file` entries");
        let len = take_varint(&mut set) as usize;
        let (file, rest) = set.split_at(len);
        files.push(file);
        set = rest;
    }
    files
}

fn take_varint(bytes: &mut &[u8]) -> u64 {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes.split_first().expect("a complete varint");
        *bytes = rest;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
    }
    value
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// `src/generated/types.bin` next to the `envoy-types` manifest `cargo metadata` reports.
fn locate() -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let dir = std::env::var_os("CARGO_MANIFEST_DIR").ok_or("CARGO_MANIFEST_DIR unset")?;
    let platform = std::env::var("TARGET").map_err(|_| "TARGET unset")?;
    // --offline and one platform: metadata must not try to download other targets' crates.
    let run = Command::new(cargo)
        .current_dir(&dir)
        .args(["metadata", "--offline", "--format-version=1"])
        .args(["--filter-platform", &platform])
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !run.status.success() {
        let stderr = String::from_utf8_lossy(&run.stderr);
        return Err(format!("cargo metadata: {}", stderr.trim()));
    }
    let meta: serde_json::Value =
        serde_json::from_slice(&run.stdout).map_err(|e| format!("cargo metadata output: {e}"))?;
    let packages = meta["packages"]
        .as_array()
        .ok_or("no packages in metadata")?;
    let manifest = packages
        .iter()
        .filter(|p| p["name"] == "envoy-types")
        .find_map(|p| p["manifest_path"].as_str())
        .ok_or("envoy-types is not a dependency")?;
    let bin = PathBuf::from(manifest)
        .with_file_name("src")
        .join("generated")
        .join("types.bin");
    bin.is_file()
        .then_some(bin.clone())
        .ok_or_else(|| format!("{} is missing", bin.display()))
}
