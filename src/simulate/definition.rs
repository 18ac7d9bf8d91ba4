//! One loader for every definition file: equations (flows, maps, delay equations, SDEs —
//! compiled to native code) or a particle model.
//!
//! ```
//! use phaseflow::simulate::Definition;
//! use phaseflow::systems::Overrides;
//! match Definition::load("lorenz", &Overrides::default()).unwrap() {
//!     Definition::Equations(sys) => assert_eq!(sys.name(), "Lorenz"),
//!     Definition::Particles(_) => unreachable!(),
//! }
//! let text = r#"
//! name = "decay"
//! kind = "flow"
//! variables = ["x"]
//! initial_conditions = [1.0]
//! dt = 0.01
//! period = 1.0
//! [parameters]
//! k = 2.0
//! [equations]
//! x = "-k * x"
//! "#;
//! let d = Definition::from_toml(text, &Overrides::default()).unwrap();
//! assert_eq!(d.name(), "decay");
//! ```

use crate::particles::ParticleModel;
use crate::systems::{
    is_particle_file, Catalogue, CompiledSystem, LoadError, Overrides, SpecError, SystemSpec,
};
use std::path::Path;

/// A loaded definition file.
#[derive(Debug, Clone)]
pub enum Definition {
    /// Equations compiled to native code.
    Equations(CompiledSystem),
    /// A particle model.
    Particles(ParticleModel),
}

/// Why a definition could not be loaded (file, line, column and token where the file is at
/// fault).
#[derive(Debug, thiserror::Error)]
pub enum DefinitionError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Spec(#[from] SpecError),
}

impl Definition {
    /// Loads SYSTEM — a path, a path inside the shipped catalogue or a catalogue name — with
    /// `--set` overrides (parameters, `dimension` of indexed families, `dt`).
    pub fn load(system: &str, overrides: &Overrides) -> Result<Definition, DefinitionError> {
        let path = Catalogue::shipped().resolve(system)?;
        Self::load_path(&path, overrides)
    }

    /// Loads the definition file at `path`.
    pub fn load_path(path: &Path, overrides: &Overrides) -> Result<Definition, DefinitionError> {
        let text = crate::systems::spec::read_definition(path)?;
        Self::from_text_at(&text, path, overrides)
    }

    /// Loads a definition from its text (named `<string>` in errors), e.g. a cell of a notebook.
    pub fn from_toml(text: &str, overrides: &Overrides) -> Result<Definition, DefinitionError> {
        Self::from_text_at(text, Path::new("<string>"), overrides)
    }

    fn from_text_at(
        text: &str,
        path: &Path,
        overrides: &Overrides,
    ) -> Result<Definition, DefinitionError> {
        if is_particle_file(text) {
            return Ok(Definition::Particles(ParticleModel::from_str_at(
                text,
                path,
                &overrides.values,
            )?));
        }
        let spec = SystemSpec::from_str_at(text, path)?;
        Ok(Definition::Equations(CompiledSystem::new(spec, overrides)?))
    }

    /// The system's name.
    pub fn name(&self) -> &str {
        match self {
            Definition::Equations(s) => s.name(),
            Definition::Particles(m) => &m.name,
        }
    }
}
