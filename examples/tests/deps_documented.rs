//! Every dependency of every crate in the workspace (and the fuzz crate) has a line in that
//! crate's DEPS.md saying why it is there.

use std::path::Path;

/// Dependency names declared in the dependency tables of a Cargo.toml (a line-based reading
/// that is enough for this workspace's manifests: `name = ...` or `name.workspace = true`).
fn dependencies(manifest: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_deps = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = matches!(
                line,
                "[dependencies]" | "[dev-dependencies]" | "[build-dependencies]"
            );
            continue;
        }
        if !in_deps || line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some((key, _)) = line.split_once('=') {
            let name = key.trim().trim_end_matches(".workspace").trim();
            names.push(name.to_owned());
        }
    }
    names
}

#[test]
fn every_dependency_has_a_reason() {
    // Where cargo runs the test, not where it was compiled (a shared build cache).
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned());
    let root = Path::new(&manifest_dir).join("..");
    let mut checked = 0;
    for krate in [
        "mtproto",
        "tl-gen",
        "session",
        "store",
        "api",
        "botapi",
        "examples",
        "examples/compare",
        "fuzz",
    ] {
        let dir = root.join(krate);
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).expect("Cargo.toml");
        let deps = std::fs::read_to_string(dir.join("DEPS.md"))
            .unwrap_or_else(|_| panic!("{krate}/DEPS.md is missing"));
        for name in dependencies(&manifest) {
            assert!(
                deps.contains(&format!("`{name}`")),
                "{krate}/DEPS.md has no line for `{name}`"
            );
            checked += 1;
        }
    }
    assert!(
        checked > 10,
        "only {checked} dependencies found: is the manifest reader broken?"
    );
}
