//! Generates the TL schema modules into OUT_DIR (see `src/tl/mod.rs` for why at build time).

use std::{env, error::Error, fs, path::PathBuf};

use columba_tl_gen::{Config, generate_from_str};

/// Service-schema constructors written by hand in `src/tl/service.rs`.
const HAND_WRITTEN: &[&str] = &[
    "rpc_result",
    "message",
    "msg_container",
    "msg_copy",
    "gzip_packed",
];

fn generate(schema: &str, root: &str, skip: &[&str], out: &str) -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed={schema}");
    let text = fs::read_to_string(schema)?;
    let config = Config {
        root: root.to_owned(),
        runtime: "crate::tl".to_owned(),
        skip: skip.iter().map(|s| (*s).to_owned()).collect(),
        testing_feature: "testing".to_owned(),
    };
    let code = generate_from_str(&text, &config).map_err(|e| format!("{schema}: {e}"))?;
    let dir = PathBuf::from(env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?);
    fs::write(dir.join(out), code)?;
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed=build.rs");
    generate(
        "schema/mtproto.tl",
        "crate::tl::mtproto",
        HAND_WRITTEN,
        "mtproto.rs",
    )?;
    generate("schema/secret.tl", "crate::tl::secret", &[], "secret.rs")?;
    if env::var_os("CARGO_FEATURE_API").is_some() {
        generate("schema/api.tl", "crate::tl::api", &[], "api.rs")?;
    }
    Ok(())
}
