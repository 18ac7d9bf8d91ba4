//! The catalogue index: every definition file under a directory, scanned once (each file read
//! and its TOML parsed once), classified, and looked up by normalised name.
//!
//! ```
//! use phaseflow::systems::{Catalogue, FileClass};
//! let cat = Catalogue::shipped();
//! let lorenz = cat.find("Lorenz").unwrap();
//! assert_eq!(lorenz.class, FileClass::Equations);
//! assert!(cat.find("abp-mips").is_some_and(|e| e.class == FileClass::Particles));
//! assert!(cat.equation_files().len() > 100);
//! ```

use super::LoadError;
use std::path::{Path, PathBuf};

/// What a definition file defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileClass {
    /// Deterministic equations: a flow, a map or a delay equation (also files that do not parse:
    /// loading them gives their located error).
    Equations,
    /// A stochastic differential equation (a non-empty `[diffusion]` table).
    Sde,
    /// A particle model (`kind = "particles"`).
    Particles,
}

/// One file of the catalogue.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub path: PathBuf,
    /// The file's `name` field, if any.
    pub name: Option<String>,
    pub class: FileClass,
}

/// The definition files under one directory, sorted by path.
#[derive(Debug, Clone)]
pub struct Catalogue {
    dir: PathBuf,
    entries: Vec<Entry>,
}

/// Lowercase without `_` and `-`: `Mackey_Glass`, `mackey-glass` and `mackeyglass` are one name.
pub fn normalise(name: &str) -> String {
    name.to_lowercase().replace(['_', '-'], "")
}

/// Classifies a definition file's text.
pub fn classify(text: &str) -> (Option<String>, FileClass) {
    let Ok(t) = text.parse::<toml::Table>() else {
        return (None, FileClass::Equations);
    };
    let name = t.get("name").and_then(|n| n.as_str()).map(str::to_string);
    let class = if t.get("kind").and_then(|k| k.as_str()) == Some("particles") {
        FileClass::Particles
    } else if t
        .get("diffusion")
        .and_then(|d| d.as_table())
        .is_some_and(|d| !d.is_empty())
    {
        FileClass::Sde
    } else {
        FileClass::Equations
    };
    (name, class)
}

impl Catalogue {
    /// Scans `dir` recursively for `*.toml` files (an unreadable directory gives an empty
    /// catalogue; an unreadable file is listed as equations and fails when loaded).
    pub fn open(dir: &Path) -> Catalogue {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            if let Ok(rd) = std::fs::read_dir(dir) {
                for e in rd.flatten() {
                    let p = e.path();
                    if p.is_dir() {
                        walk(&p, out);
                    } else if p.extension().is_some_and(|x| x == "toml") {
                        out.push(p);
                    }
                }
            }
        }
        let mut paths = Vec::new();
        walk(dir, &mut paths);
        paths.sort();
        let entries = paths
            .into_iter()
            .map(|path| {
                let (name, class) = std::fs::read_to_string(&path)
                    .map(|t| classify(&t))
                    .unwrap_or((None, FileClass::Equations));
                Entry { path, name, class }
            })
            .collect();
        Catalogue {
            dir: dir.to_path_buf(),
            entries,
        }
    }

    /// The catalogue phaseflow ships ([`super::catalogue_dir`]: `$PHASEFLOW_SYSTEMS`, or
    /// `systems/`).
    pub fn shipped() -> Catalogue {
        Catalogue::open(&super::catalogue_dir())
    }

    /// The scanned directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every file, sorted by path.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    fn files(&self, class: FileClass) -> Vec<PathBuf> {
        self.entries
            .iter()
            .filter(|e| e.class == class)
            .map(|e| e.path.clone())
            .collect()
    }

    /// The chaos catalogue: deterministic equation files (particle models and SDEs excluded:
    /// its checks and invariants do not apply to them).
    pub fn equation_files(&self) -> Vec<PathBuf> {
        self.files(FileClass::Equations)
    }

    /// The SDE files (`[diffusion]` tables).
    pub fn sde_files(&self) -> Vec<PathBuf> {
        self.files(FileClass::Sde)
    }

    /// The particle models.
    pub fn particle_files(&self) -> Vec<PathBuf> {
        self.files(FileClass::Particles)
    }

    /// The equation or particle file named `name` (normalised: case, `_` and `-` ignored): a file
    /// stem first, then a `name` field, each in path order (so `systems/` comes before `maps/`).
    /// SDE files are found by path only.
    pub fn find(&self, name: &str) -> Option<&Entry> {
        let want = normalise(name);
        let named = || self.entries.iter().filter(|e| e.class != FileClass::Sde);
        named()
            .find(|e| {
                e.path
                    .file_stem()
                    .is_some_and(|s| normalise(&s.to_string_lossy()) == want)
            })
            .or_else(|| named().find(|e| e.name.as_deref().is_some_and(|n| normalise(n) == want)))
    }

    /// Resolves SYSTEM: an existing path, a path inside the catalogue (`maps/duffing` or
    /// `maps/duffing.toml`), or a name ([`Catalogue::find`]).
    pub fn resolve(&self, system: &str) -> Result<PathBuf, LoadError> {
        let p = Path::new(system);
        if p.is_file() {
            return Ok(p.to_path_buf());
        }
        let inside = self.dir.join(system);
        for candidate in [inside.clone(), inside.with_extension("toml")] {
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
        let path_like = system.ends_with(".toml") || system.contains('/');
        if !path_like {
            if let Some(e) = self.find(system) {
                return Ok(e.path.clone());
            }
        }
        // a directory (here or in the catalogue) is named as one, not as a missing file
        if let Some(dir) = [p, inside.as_path()].into_iter().find(|d| d.is_dir()) {
            return Err(LoadError::NotFound(format!(
                "{system}: is a directory, not a definition file{}",
                if dir == inside.as_path() && dir != p {
                    format!(" ({})", dir.display())
                } else {
                    String::new()
                }
            )));
        }
        Err(LoadError::NotFound(if path_like {
            format!("{system}: no such definition file")
        } else {
            format!(
                "{system}: not a file and not a system of the catalogue in {} (see `phaseflow list`)",
                self.dir.display()
            )
        }))
    }
}
