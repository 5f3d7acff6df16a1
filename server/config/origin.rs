//! Where a configuration's values come from: the file (or the built-in defaults), the
//! directory its relative paths are resolved against, and how errors name them.

use std::path::{Path, PathBuf};

use super::ConfigError;
use super::raw::RawConfig;

/// Where the values come from: the file (or the built-in defaults) and the directory relative
/// paths are resolved against; it names both in errors.
pub(crate) struct Origin {
    /// The file, when there is one.
    pub(super) file: Option<PathBuf>,
    /// The file's directory, absolute (the current directory without a file).
    pub(super) base: PathBuf,
    /// How errors name it: the file's path, or `built-in defaults`.
    pub(super) name: String,
}

impl Origin {
    /// An error about `key` of this origin.
    pub(super) fn err(&self, key: &str, problem: impl Into<String>) -> ConfigError {
        ConfigError {
            source: self.name.clone(),
            key: Some(key.to_string()),
            problem: problem.into(),
        }
    }

    /// `path` resolved against the file's directory.
    pub(super) fn resolve(&self, path: &Path) -> PathBuf {
        self.base.join(path)
    }

    /// Refuses 0 for `key`.
    pub(super) fn positive(&self, key: &str, value: u64) -> Result<(), ConfigError> {
        if value == 0 {
            Err(self.err(key, "must be greater than 0"))
        } else {
            Ok(())
        }
    }
}

/// Reads and parses `file` (the built-in defaults without one).
pub(super) fn read(file: Option<PathBuf>) -> Result<(RawConfig, Origin), ConfigError> {
    let name = file.as_ref().map_or_else(
        || "built-in defaults".to_string(),
        |p| p.display().to_string(),
    );
    let whole = |problem: String| ConfigError {
        source: name.clone(),
        key: None,
        problem,
    };
    let cwd = std::env::current_dir()
        .map_err(|e| whole(format!("cannot read the current directory: {e}")))?;
    let raw = match &file {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| whole(format!("cannot read it: {e}")))?;
            toml::from_str(&text).map_err(|e| whole(e.to_string().trim_end().to_string()))?
        }
        None => RawConfig::default(),
    };
    let base = match file.as_deref().and_then(Path::parent) {
        Some(dir) => cwd.join(dir),
        None => cwd,
    };
    Ok((raw, Origin { file, base, name }))
}
