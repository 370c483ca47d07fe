//! Compiles the repository's `models/*.toml` catalog into the library, so the binary carries the
//! catalog it was built with.

use std::path::PathBuf;

fn main() {
    let manifest =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let models = manifest.join("../../models");
    println!("cargo:rerun-if-changed={}", models.display());
    let mut files: Vec<PathBuf> = std::fs::read_dir(&models)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().and_then(|e| e.to_str()) == Some("toml"));
    files.sort();
    let mut out = String::from("/// `(file name, TOML text)` of every catalog file.\npub const FILES: &[(&str, &str)] = &[\n");
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let abs = f.canonicalize().unwrap_or_else(|_| f.clone());
        out.push_str(&format!(
            "    ({name:?}, include_str!({:?})),\n",
            abs.display().to_string()
        ));
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("builtin_catalog.rs");
    std::fs::write(dest, out).expect("OUT_DIR is writable");
}
