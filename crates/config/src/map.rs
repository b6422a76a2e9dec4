//! The untyped configuration: milvus.yaml flattened to strings, with the environment on top.
//!
//! Mirrors what 2.3.5 keeps per source. The file contributes each leaf twice, under its
//! lower-cased dotted path (`datacoord.gc.interval`) and under the normalised key
//! (`datacoordgcinterval`); the environment contributes each variable under its own name and its
//! normalised name. Lookups normalise the requested key and ask the environment first. Both key
//! forms matter for `ShowConfigurations`, which lists whatever keys pass its filters.

use std::collections::{BTreeMap, BTreeSet};

use serde_yaml_ng::Value;

use crate::error::ConfigError;
use crate::keys::{normalize_env_key, normalize_key};

/// Key prefixes every component shows in `ShowConfigurations`, besides its own `<role>.`.
const GLOBAL_PREFIXES: &[&str] = &[
    "metastore",
    "localstorage",
    "etcd",
    "tikv",
    "minio",
    "pulsar",
    "kafka",
    "rocksmq",
    "log",
    "grpc",
    "common",
    "quotaandlimits",
];

/// Where a value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// An environment variable (wins over the file).
    Env,
    /// milvus.yaml.
    File,
}

/// Flat key → string configuration from milvus.yaml and the environment.
#[derive(Clone, Debug, Default)]
pub struct ConfigMap {
    file: BTreeMap<String, String>,
    env: BTreeMap<String, String>,
    env_vars: BTreeMap<String, String>,
}

impl ConfigMap {
    /// An empty map: every typed value takes its code default.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses milvus.yaml text. Nested mappings join with `.`, lists join with `,`, an empty or
    /// `null` value is the empty string. `origin` names the text in errors (usually its path).
    pub fn from_yaml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let root: Value = if is_blank_yaml(text) {
            Value::Null
        } else {
            serde_yaml_ng::from_str(text).map_err(|source| ConfigError::Yaml {
                origin: origin.to_string(),
                source,
            })?
        };
        let mut leaves = Vec::new();
        match root {
            Value::Mapping(mapping) => flatten(&mapping, "", &mut leaves),
            Value::Null => {}
            _ => {
                return Err(ConfigError::NotAMapping {
                    origin: origin.to_string(),
                });
            }
        }
        let mut file = BTreeMap::new();
        for (dotted, value) in leaves {
            file.insert(normalize_key(&dotted), value.clone());
            file.insert(dotted, value);
        }
        Ok(Self {
            file,
            ..Self::default()
        })
    }

    /// Adds environment variables (name, value), which take precedence over the file.
    pub fn with_env<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        for (name, value) in vars {
            let name = name.into();
            let value = value.into();
            self.env.insert(normalize_env_key(&name), value.clone());
            self.env.insert(name.clone(), value.clone());
            self.env_vars.insert(name, value);
        }
        self
    }

    /// The value of `key` in any spelling (`dataCoord.gc.interval`, `DATACOORD_GC_INTERVAL`), or
    /// `None` when no source sets it. An empty yaml value is `Some("")`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.lookup(key).map(|(value, _)| value)
    }

    /// Which source `key` resolves from.
    pub fn source_of(&self, key: &str) -> Option<Source> {
        self.lookup(key).map(|(_, source)| source)
    }

    /// An environment variable by its exact name (for the few settings, like `METRICS_PORT`, that
    /// 2.3.5 reads from the environment only).
    pub fn env_var(&self, name: &str) -> Option<&str> {
        self.env_vars.get(name).map(String::as_str)
    }

    /// What DataCoord's `ShowConfigurations` returns for `pattern`: see [`Self::component_entries`].
    pub fn entries_matching(&self, pattern: &str) -> Vec<(String, String)> {
        self.component_entries("datacoord", pattern)
    }

    /// The key/value pairs 2.3.5 shows for a component: every known key (both forms, see the
    /// module doc) that contains `pattern` case-insensitively and starts with a global prefix
    /// (`etcd`, `common`, `minio`, ...) or `<component>.`; values resolved as by [`Self::get`].
    /// Sorted by key (2.3.5 returns them in map order).
    pub fn component_entries(&self, component: &str, pattern: &str) -> Vec<(String, String)> {
        let pattern = pattern.to_lowercase();
        let own_prefix = format!("{}.", component.to_lowercase());
        let matches = |key: &str| {
            key.contains(&pattern)
                && (key.starts_with(&own_prefix)
                    || GLOBAL_PREFIXES.iter().any(|prefix| key.starts_with(prefix)))
        };
        let keys: BTreeSet<&String> = self.file.keys().chain(self.env.keys()).collect();
        keys.into_iter()
            .filter(|key| matches(key))
            .filter_map(|key| Some((key.clone(), self.get(key)?.to_string())))
            .collect()
    }

    fn lookup(&self, key: &str) -> Option<(&str, Source)> {
        let normalized = normalize_key(key);
        if let Some(value) = self.env.get(&normalized) {
            return Some((value, Source::Env));
        }
        self.file
            .get(&normalized)
            .map(|value| (value.as_str(), Source::File))
    }
}

/// A file with nothing but comments and blank lines is an empty configuration.
fn is_blank_yaml(text: &str) -> bool {
    text.lines().all(|line| {
        let line = line.trim();
        line.is_empty() || line.starts_with('#') || line == "---"
    })
}

fn flatten(mapping: &serde_yaml_ng::Mapping, prefix: &str, out: &mut Vec<(String, String)>) {
    for (key, value) in mapping {
        let Some(key) = scalar_to_string(key) else {
            continue;
        };
        let path = if prefix.is_empty() {
            key.to_lowercase()
        } else {
            format!("{prefix}.{}", key.to_lowercase())
        };
        match untag(value) {
            Value::Mapping(nested) => flatten(nested, &path, out),
            Value::Sequence(items) => {
                // Items that are not scalars contribute an empty element, as in 2.3.5.
                let joined: Vec<String> = items
                    .iter()
                    .map(|item| scalar_to_string(item).unwrap_or_default())
                    .collect();
                out.push((path, joined.join(",")));
            }
            scalar => out.push((path, scalar_to_string(scalar).unwrap_or_default())),
        }
    }
}

fn untag(value: &Value) -> &Value {
    match value {
        Value::Tagged(tagged) => untag(&tagged.value),
        other => other,
    }
}

/// A scalar as Go's `cast.ToString` renders it; `None` for mappings and sequences.
fn scalar_to_string(value: &Value) -> Option<String> {
    match untag(value) {
        Value::Null => Some(String::new()),
        Value::Bool(flag) => Some(flag.to_string()),
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(if let Some(int) = number.as_i64() {
            int.to_string()
        } else if let Some(uint) = number.as_u64() {
            uint.to_string()
        } else {
            go_float_string(number.as_f64().unwrap_or(f64::NAN))
        }),
        Value::Sequence(_) | Value::Mapping(_) | Value::Tagged(_) => None,
    }
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)`: shortest exact digits, no exponent, `2.0` → `2`.
/// Rust's `Display` for `f64` has the same contract except for the non-finite spellings.
fn go_float_string(float: f64) -> String {
    if float.is_nan() {
        "NaN".to_string()
    } else if float.is_infinite() {
        if float > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        float.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "
etcd:
  endpoints: [a:1, b:2]
  rootPath: by-dev
dataCoord:
  segment:
    sealProportion: 0.23
    maxSize: 512
  ip:
common:
  DiskIndex:
    PQCodeBudgetGBRatio: 2.0
  security:
    enabled: true
";

    #[test]
    fn yaml_leaves_are_stored_under_both_key_forms() {
        let map = ConfigMap::from_yaml(YAML, "test").unwrap();
        assert_eq!(
            map.file
                .get("datacoord.segment.maxsize")
                .map(String::as_str),
            Some("512")
        );
        assert_eq!(
            map.file.get("datacoordsegmentmaxsize").map(String::as_str),
            Some("512")
        );
        assert_eq!(map.get("dataCoord.segment.maxSize"), Some("512"));
        assert_eq!(map.get("DATACOORD_SEGMENT_MAXSIZE"), Some("512"));
    }

    #[test]
    fn scalars_render_like_go() {
        let map = ConfigMap::from_yaml(YAML, "test").unwrap();
        assert_eq!(map.get("etcd.endpoints"), Some("a:1,b:2"));
        assert_eq!(map.get("dataCoord.segment.sealProportion"), Some("0.23"));
        assert_eq!(map.get("common.DiskIndex.PQCodeBudgetGBRatio"), Some("2"));
        assert_eq!(map.get("common.security.enabled"), Some("true"));
        assert_eq!(map.get("dataCoord.ip"), Some(""));
        assert_eq!(map.get("dataCoord.port"), None);
    }

    #[test]
    fn environment_wins_over_the_file() {
        let map = ConfigMap::from_yaml(YAML, "test")
            .unwrap()
            .with_env([("ETCD_ROOTPATH", "from-env")]);
        assert_eq!(map.get("etcd.rootPath"), Some("from-env"));
        assert_eq!(map.source_of("etcd.rootPath"), Some(Source::Env));
        assert_eq!(map.source_of("etcd.endpoints"), Some(Source::File));
        assert_eq!(map.env_var("ETCD_ROOTPATH"), Some("from-env"));
        assert_eq!(map.env_var("etcdrootpath"), None);
    }

    #[test]
    fn show_configurations_filter_keeps_global_and_own_keys() {
        let map = ConfigMap::from_yaml(YAML, "test")
            .unwrap()
            .with_env([("LOGNAME", "someone"), ("DATACOORD_GC_INTERVAL", "7")]);
        let keys: Vec<String> = map
            .entries_matching("")
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        // Own keys only in dotted form; global keys in both forms; env names normalised.
        assert!(keys.contains(&"datacoord.segment.maxsize".to_string()));
        assert!(!keys.contains(&"datacoordsegmentmaxsize".to_string()));
        assert!(keys.contains(&"etcd.endpoints".to_string()));
        assert!(keys.contains(&"etcdendpoints".to_string()));
        assert!(keys.contains(&"logname".to_string()));
        assert!(!keys.contains(&"DATACOORD_GC_INTERVAL".to_string()));

        let matched = map.entries_matching("ROOTPATH");
        assert_eq!(
            matched,
            vec![
                ("etcd.rootpath".to_string(), "by-dev".to_string()),
                ("etcdrootpath".to_string(), "by-dev".to_string()),
            ]
        );
    }

    #[test]
    fn blank_and_non_mapping_documents() {
        assert!(
            ConfigMap::from_yaml("# only a comment\n\n", "test")
                .unwrap()
                .file
                .is_empty()
        );
        assert!(matches!(
            ConfigMap::from_yaml("- a\n- b\n", "test"),
            Err(ConfigError::NotAMapping { .. })
        ));
        assert!(matches!(
            ConfigMap::from_yaml("a: [unclosed\n", "test"),
            Err(ConfigError::Yaml { .. })
        ));
    }
}
