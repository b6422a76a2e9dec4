//! Key normalisation, as Milvus 2.3.5 matches configuration keys across sources.
//!
//! `dataCoord.gc.interval` (yaml), `DATACOORD_GC_INTERVAL` (environment) and
//! `dataCoord/gc/interval` (etcd) all address one key because each is lower-cased and stripped
//! of `/`, `_` and `.` before lookup.

/// The normalised form of a yaml or API key: lower case without `/`, `_` and `.`.
pub fn normalize_key(key: &str) -> String {
    key.chars()
        .filter(|c| !matches!(c, '/' | '_' | '.'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The normalised form of an environment variable name.
///
/// Like [`normalize_key`], after dropping a leading `milvus.` (with the dot, as 2.3.5 does; an
/// environment name rarely contains one, so `MILVUS_FOO` is *not* shortened).
pub fn normalize_env_key(name: &str) -> String {
    let lower = name.to_lowercase();
    let without_prefix = lower.strip_prefix("milvus.").unwrap_or(&lower);
    normalize_key(without_prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_env_and_etcd_spellings_meet() {
        let yaml = normalize_key("dataCoord.gc.interval");
        assert_eq!(yaml, "datacoordgcinterval");
        assert_eq!(normalize_env_key("DATACOORD_GC_INTERVAL"), yaml);
        assert_eq!(normalize_key("dataCoord/gc/interval"), yaml);
    }

    #[test]
    fn env_names_lose_only_a_dotted_milvus_prefix() {
        assert_eq!(normalize_env_key("milvus.etcd.endpoints"), "etcdendpoints");
        assert_eq!(
            normalize_env_key("MILVUS_ETCD_ENDPOINTS"),
            "milvusetcdendpoints"
        );
    }
}
