//! Embeds the catalogue (`../systems/**/*.toml`) in the native module, so that an installed
//! wheel needs no repository and no network: `$OUT_DIR/catalogue.rs` lists every file's path
//! relative to `systems/` and its text (`include_str!`).
use std::path::{Path, PathBuf};

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            println!("cargo:rerun-if-changed={}", p.display());
            walk(&p, out);
        } else if p.extension().is_some_and(|x| x == "toml") {
            out.push(p);
        }
    }
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let systems = manifest.join("..").join("systems");
    let systems = systems
        .canonicalize()
        .unwrap_or_else(|e| panic!("the catalogue {} is missing: {e}", systems.display()));
    println!("cargo:rerun-if-changed={}", systems.display());
    let mut files = Vec::new();
    walk(&systems, &mut files);
    let mut code = String::from("/// (path relative to `systems/`, text) of every catalogue file, sorted by path.\npub static FILES: &[(&str, &str)] = &[\n");
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
        let rel = f
            .strip_prefix(&systems)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        code.push_str(&format!(
            "    ({rel:?}, include_str!({:?})),\n",
            f.display().to_string()
        ));
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("catalogue.rs");
    std::fs::write(out, code).expect("write catalogue.rs");
}
