//! The crate's layers (documented in `src/lib.rs` and the README): a module may use only
//! modules of strictly lower layers, so there are no import cycles. Checked on the source: every
//! `crate::MODULE` path outside comments in `src/MODULE{.rs,/}` must name a lower layer.

use std::collections::BTreeMap;
use std::path::Path;

/// (layer, modules): bottom first.
const LAYERS: &[(usize, &[&str])] = &[
    (0, &["control", "dynamics", "seeds", "block_cache"]),
    (1, &["io", "systems", "integrate"]),
    (2, &["particles", "shard"]),
    (3, &["simulate", "score"]),
    (4, &["analysis"]),
    (5, &["catalogue", "forecast", "sweep"]),
    (6, &["cli"]),
];

fn sources(path: &Path, out: &mut Vec<std::path::PathBuf>) {
    if path.is_dir() {
        for e in std::fs::read_dir(path).unwrap() {
            sources(&e.unwrap().path(), out);
        }
    } else if path.is_file() && path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_path_buf());
    }
}

#[test]
fn modules_import_only_lower_layers() {
    let layer: BTreeMap<&str, usize> = LAYERS
        .iter()
        .flat_map(|(l, ms)| ms.iter().map(move |m| (*m, *l)))
        .collect();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    // every top-level module is placed in a layer
    for e in std::fs::read_dir(&src).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_stem().unwrap().to_string_lossy().to_string();
        if matches!(name.as_str(), "lib" | "main") {
            continue;
        }
        assert!(
            layer.contains_key(name.as_str()),
            "src/{name}: add the module to a layer in tests/layers.rs and src/lib.rs"
        );
    }
    let mut violations = Vec::new();
    for (m, &l) in &layer {
        let mut files = Vec::new();
        sources(&src.join(m), &mut files);
        sources(&src.join(format!("{m}.rs")), &mut files);
        assert!(!files.is_empty(), "no source for module {m}");
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for (i, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                let mut rest = code;
                while let Some(k) = rest.find("crate::") {
                    let after = &rest[k + 7..];
                    let name: String = after
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if name != *m {
                        match layer.get(name.as_str()) {
                            Some(&dl) if dl < l => {}
                            _ => violations.push(format!(
                                "{}:{}: {m} (layer {l}) uses crate::{name}",
                                f.strip_prefix(&src).unwrap().display(),
                                i + 1
                            )),
                        }
                    }
                    rest = &after[name.len()..];
                }
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}
