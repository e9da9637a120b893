//! Copies the Envoy descriptor set that `envoy-types` ships (but does not expose) into
//! OUT_DIR, so `/debug/config_dump` can print xDS resources as Envoy's JSON.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let target = out.join("envoy_types.bin");
    match find_descriptors() {
        Ok(source) => {
            println!("cargo:rerun-if-changed={}", source.display());
            std::fs::copy(&source, &target).expect("descriptor set copies to OUT_DIR");
        }
        Err(why) => {
            // An empty set makes the config dump fall back to names and versions only.
            println!("cargo:warning=no Envoy descriptor set ({why}); config_dump shows names only");
            std::fs::write(&target, []).expect("OUT_DIR is writable");
        }
    }
}

/// `<envoy-types package dir>/src/generated/types.bin`, located through `cargo metadata`.
fn find_descriptors() -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").ok_or("no CARGO_MANIFEST_DIR")?;
    // Filtered to the target: other platforms' crates are not downloaded, and offline
    // metadata would fail on them.
    let target = std::env::var("TARGET").map_err(|_| "no TARGET")?;
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline"])
        .args(["--filter-platform", &target])
        .current_dir(&manifest_dir)
        .output()
        .map_err(|e| format!("cargo metadata did not run: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).map_err(|e| format!("cargo metadata: {e}"))?;
    let manifest = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "envoy-types")
        .and_then(|p| p["manifest_path"].as_str())
        .ok_or("envoy-types is not in the dependency graph")?;
    let path = Path::new(manifest)
        .parent()
        .ok_or("envoy-types manifest has no folder")?
        .join("src/generated/types.bin");
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!("{} does not exist", path.display()))
    }
}
