//! Finding milvus.yaml and loading it together with the process environment.
//!
//! 2.3.5 looks only at `$MILVUSCONF/milvus.yaml`, else `<cwd>/configs/milvus.yaml`, and runs on
//! code defaults when the file is missing. We add an explicit path (the binary's `--config`) in
//! front and the directories around the executable behind, and fall through missing candidates.

use std::path::{Path, PathBuf};

use crate::error::ConfigError;
use crate::map::{ConfigMap, Source};
use crate::sections::DataCoordConfig;

/// The file name 2.3.5 reads inside a config directory.
pub const CONFIG_FILE_NAME: &str = "milvus.yaml";

/// Where to look for milvus.yaml, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigSearch {
    /// A file (or a directory holding milvus.yaml) that must exist when given.
    pub explicit: Option<PathBuf>,
    /// The directory in env `MILVUSCONF`.
    pub milvusconf_dir: Option<PathBuf>,
    /// The working directory; `configs/milvus.yaml` below it is a candidate.
    pub working_dir: Option<PathBuf>,
    /// The running executable; `configs/` beside it and beside its parent directory are
    /// candidates (`/milvus/bin/milvus` → `/milvus/configs/milvus.yaml`).
    pub executable: Option<PathBuf>,
}

impl ConfigSearch {
    /// The search a process does: `explicit`, env `MILVUSCONF`, the working directory and the
    /// current executable.
    pub fn from_process(explicit: Option<&Path>) -> Self {
        Self {
            explicit: explicit.map(Path::to_path_buf),
            milvusconf_dir: std::env::var_os("MILVUSCONF")
                .filter(|dir| !dir.is_empty())
                .map(PathBuf::from),
            working_dir: std::env::current_dir().ok(),
            executable: std::env::current_exe().ok(),
        }
    }

    /// The implicit candidates, in the order they are tried.
    pub fn candidates(&self) -> Vec<PathBuf> {
        let mut candidates = Vec::new();
        if let Some(dir) = &self.milvusconf_dir {
            candidates.push(dir.join(CONFIG_FILE_NAME));
        }
        if let Some(dir) = &self.working_dir {
            candidates.push(dir.join("configs").join(CONFIG_FILE_NAME));
        }
        if let Some(exe_dir) = self.executable.as_deref().and_then(Path::parent) {
            candidates.push(exe_dir.join("configs").join(CONFIG_FILE_NAME));
            if let Some(install_dir) = exe_dir.parent() {
                candidates.push(install_dir.join("configs").join(CONFIG_FILE_NAME));
            }
        }
        candidates
    }

    /// The file to read, or `None` (code defaults) when no candidate exists. An explicit path
    /// that does not exist is an error.
    pub fn locate(&self) -> Result<Option<PathBuf>, ConfigError> {
        if let Some(explicit) = &self.explicit {
            let file = if explicit.is_dir() {
                explicit.join(CONFIG_FILE_NAME)
            } else {
                explicit.clone()
            };
            if !file.is_file() {
                return Err(ConfigError::NotFound { path: file });
            }
            return Ok(Some(file));
        }
        Ok(self
            .candidates()
            .into_iter()
            .find(|candidate| candidate.is_file()))
    }
}

/// A loaded configuration: where it came from, the raw keys (for `ShowConfigurations`) and the
/// typed view.
#[derive(Clone, Debug)]
pub struct LoadedConfig {
    /// The milvus.yaml read, if any.
    pub file: Option<PathBuf>,
    /// File and environment, untyped.
    pub map: ConfigMap,
    /// What DataCoord runs with.
    pub datacoord: DataCoordConfig,
}

impl LoadedConfig {
    /// Builds from an optional milvus.yaml and environment variables.
    pub fn from_parts<I, K, V>(file: Option<&Path>, env: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let file_map = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
                    path: path.to_path_buf(),
                    source,
                })?;
                ConfigMap::from_yaml(&text, &path.display().to_string())?
            }
            None => ConfigMap::new(),
        };
        let map = file_map.with_env(env);
        let datacoord = DataCoordConfig::from_map(&map)?;
        Ok(Self {
            file: file.map(Path::to_path_buf),
            map,
            datacoord,
        })
    }

    /// A raw value by key in any spelling; see [`ConfigMap::get`].
    pub fn get(&self, key: &str) -> Option<&str> {
        self.map.get(key)
    }

    /// Where a key's value comes from.
    pub fn source_of(&self, key: &str) -> Option<Source> {
        self.map.source_of(key)
    }

    /// DataCoord's `ShowConfigurations` answer; see [`ConfigMap::entries_matching`].
    pub fn entries_matching(&self, pattern: &str) -> Vec<(String, String)> {
        self.map.entries_matching(pattern)
    }
}

/// Loads the configuration a DataCoord process runs with: milvus.yaml found by
/// [`ConfigSearch::from_process`], overlaid with the process environment.
pub fn load(explicit: Option<&Path>) -> Result<LoadedConfig, ConfigError> {
    let file = ConfigSearch::from_process(explicit).locate()?;
    match &file {
        Some(path) => tracing::info!(path = %path.display(), "loading config file"),
        None => tracing::warn!("no milvus.yaml found, using code defaults"),
    }
    // Non-UTF-8 variables cannot name a Milvus key; skip them rather than fail.
    let env = std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)));
    LoadedConfig::from_parts(file.as_deref(), env)
}
