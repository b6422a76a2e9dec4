//! Where Milvus 2.3.5 keeps segment files, as pure string functions.
//!
//! Layout under the chunk-manager root (`minio.rootPath`, e.g. `files`, or `localStorage.path`):
//!
//! | kind  | path |
//! |-------|------|
//! | insert| `{root}/insert_log/{collection}/{partition}/{segment}/{field}/{logID}` |
//! | stats | `{root}/stats_log/{collection}/{partition}/{segment}/{field}/{logID}` (merged stats: logID `1`) |
//! | delta | `{root}/delta_log/{collection}/{partition}/{segment}/{logID}` |
//! | index | `{root}/index_files/{buildID}/{indexVersion}/{partition}/{segment}/{fileKey}` |
//!
//! Joining follows Go's `path.Join`: empty elements are skipped and the result is cleaned, so a
//! trailing slash on the root disappears and an empty root yields `insert_log/...`. The etcd catalog
//! stores only the logID and rebuilds these paths on load, so they must match byte for byte.

use milvus_types::{CollectionId, FieldId, PartitionId, SegmentId, UniqueId};

use crate::error::{StorageError, StorageResult};

/// Directory of insert binlogs under the root.
pub const INSERT_LOG_DIR: &str = "insert_log";
/// Directory of stats logs under the root.
pub const STATS_LOG_DIR: &str = "stats_log";
/// Directory of delta logs under the root.
pub const DELTA_LOG_DIR: &str = "delta_log";
/// Directory of index files under the root.
pub const INDEX_FILES_DIR: &str = "index_files";
/// File name (logID) of the merged ("compound") stats log of a flushed segment.
pub const COMPOUND_STATS_LOG_ID: UniqueId = 1;

/// The three kinds of segment binlog.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinlogKind {
    /// Row data, one file per field per flush.
    Insert,
    /// Primary-key statistics (bloom filters), per field.
    Stats,
    /// Deletions; no field component.
    Delta,
}

impl BinlogKind {
    /// The directory under the root (`insert_log`, `stats_log`, `delta_log`).
    pub fn dir(self) -> &'static str {
        match self {
            Self::Insert => INSERT_LOG_DIR,
            Self::Stats => STATS_LOG_DIR,
            Self::Delta => DELTA_LOG_DIR,
        }
    }

    /// Position of the segment ID counted from the end of a path (1 = last component).
    fn segment_position_from_end(self) -> usize {
        match self {
            Self::Insert | Self::Stats => 3,
            Self::Delta => 2,
        }
    }
}

/// Go's `path.Clean`: collapses `//`, `.` and `..`, drops a trailing slash; `""` becomes `"."`.
pub fn clean_path(path: &str) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                // `..` above the root of an absolute path is dropped, as in Go.
                _ if rooted => {}
                _ => parts.push(".."),
            },
            other => parts.push(other),
        }
    }
    let body = parts.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".to_string(),
        (false, false) => body,
    }
}

/// Go's `path.Join`: joins the non-empty elements with `/` and cleans; all empty gives `""`.
pub fn join_path<S: AsRef<str>>(elements: &[S]) -> String {
    let non_empty: Vec<&str> = elements
        .iter()
        .map(AsRef::as_ref)
        .filter(|e| !e.is_empty())
        .collect();
    if non_empty.is_empty() {
        return String::new();
    }
    clean_path(&non_empty.join("/"))
}

/// The root of remote storage from `minio.rootPath`: no leading slash, cleaned, `""` if unset.
pub fn normalize_remote_root(root_path: &str) -> String {
    let trimmed = root_path.trim_start_matches('/');
    if trimmed.is_empty() {
        return String::new();
    }
    clean_path(trimmed)
}

/// The root of local storage from `localStorage.path`: cleaned (no trailing slash), `""` if unset.
pub fn normalize_local_root(local_path: &str) -> String {
    if local_path.is_empty() {
        return String::new();
    }
    clean_path(local_path)
}

/// Path of one binlog file of the given kind; `field` is ignored for delta logs.
pub fn binlog_path(
    root: &str,
    kind: BinlogKind,
    collection: CollectionId,
    partition: PartitionId,
    segment: SegmentId,
    field: FieldId,
    log_id: UniqueId,
) -> String {
    match kind {
        BinlogKind::Insert | BinlogKind::Stats => join_path(&[
            root.to_string(),
            kind.dir().to_string(),
            collection.to_string(),
            partition.to_string(),
            segment.to_string(),
            field.to_string(),
            log_id.to_string(),
        ]),
        BinlogKind::Delta => join_path(&[
            root.to_string(),
            kind.dir().to_string(),
            collection.to_string(),
            partition.to_string(),
            segment.to_string(),
            log_id.to_string(),
        ]),
    }
}

/// `{root}/insert_log/{collection}/{partition}/{segment}/{field}/{logID}`
pub fn insert_log_path(
    root: &str,
    collection: CollectionId,
    partition: PartitionId,
    segment: SegmentId,
    field: FieldId,
    log_id: UniqueId,
) -> String {
    binlog_path(
        root,
        BinlogKind::Insert,
        collection,
        partition,
        segment,
        field,
        log_id,
    )
}

/// `{root}/stats_log/{collection}/{partition}/{segment}/{field}/{logID}`
pub fn stats_log_path(
    root: &str,
    collection: CollectionId,
    partition: PartitionId,
    segment: SegmentId,
    field: FieldId,
    log_id: UniqueId,
) -> String {
    binlog_path(
        root,
        BinlogKind::Stats,
        collection,
        partition,
        segment,
        field,
        log_id,
    )
}

/// `{root}/delta_log/{collection}/{partition}/{segment}/{logID}`
pub fn delta_log_path(
    root: &str,
    collection: CollectionId,
    partition: PartitionId,
    segment: SegmentId,
    log_id: UniqueId,
) -> String {
    binlog_path(
        root,
        BinlogKind::Delta,
        collection,
        partition,
        segment,
        0,
        log_id,
    )
}

/// The prefix GC scans for one binlog kind: `{root}/insert_log` (no trailing slash, as in Go).
pub fn binlog_prefix(root: &str, kind: BinlogKind) -> String {
    join_path(&[root, kind.dir()])
}

/// `{root}/index_files`, the `index_file_prefix` sent to IndexNodes.
pub fn index_files_prefix(root: &str) -> String {
    join_path(&[root, INDEX_FILES_DIR])
}

/// `{root}/index_files/{buildID}/{indexVersion}/{partition}/{segment}/{fileKey}`
pub fn index_file_path(
    root: &str,
    build_id: UniqueId,
    index_version: i64,
    partition: PartitionId,
    segment: SegmentId,
    file_key: &str,
) -> String {
    join_path(&[
        root,
        INDEX_FILES_DIR,
        &build_id.to_string(),
        &index_version.to_string(),
        &partition.to_string(),
        &segment.to_string(),
        file_key,
    ])
}

/// The logID of a binlog path: its last component, which must follow a `/` and parse as int64.
pub fn log_id_from_path(path: &str) -> StorageResult<UniqueId> {
    let Some((_, last)) = path.rsplit_once('/') else {
        return Err(invalid(path, "no '/' before the log ID"));
    };
    last.parse::<UniqueId>()
        .map_err(|e| invalid(path, format!("log ID {last:?} is not an int64: {e}")))
}

/// The segment ID of a binlog path, counted from the end (3rd for insert/stats, 2nd for delta).
/// `None` when the path is too short or that component is not an int64; Go reads that as
/// segment 0, which never matches a real segment.
pub fn segment_id_from_binlog_path(kind: BinlogKind, path: &str) -> Option<SegmentId> {
    let components: Vec<&str> = path.split('/').collect();
    let position = kind.segment_position_from_end();
    if components.len() < position {
        return None;
    }
    components[components.len() - position].parse().ok()
}

/// The segment ID of an object found under `root` during GC: the path must start with `root`
/// and then be `delta_log/c/p/s/log` (5 parts) or `{insert,stats}_log/c/p/s/f/log` (6 parts).
pub fn parse_segment_id_by_binlog(root: &str, path: &str) -> StorageResult<SegmentId> {
    let Some(rest) = path.strip_prefix(root) else {
        return Err(invalid(path, format!("does not start with root {root:?}")));
    };
    let parts: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    let expected = if parts[0] == DELTA_LOG_DIR { 5 } else { 6 };
    if parts.len() != expected {
        return Err(invalid(
            path,
            format!("expected {expected} components after the root"),
        ));
    }
    let segment = parts[3];
    segment
        .parse()
        .map_err(|e| invalid(path, format!("segment ID {segment:?} is not an int64: {e}")))
}

/// The buildID of an entry listed under `{root}/index_files/`: its last component, a trailing
/// `/` (directory marker) tolerated.
pub fn build_id_from_index_path(path: &str) -> StorageResult<UniqueId> {
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    let last = trimmed.rsplit('/').next().unwrap_or(trimmed);
    last.parse()
        .map_err(|e| invalid(path, format!("build ID {last:?} is not an int64: {e}")))
}

fn invalid(path: &str, reason: impl Into<String>) -> StorageError {
    StorageError::InvalidPath {
        path: path.to_string(),
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_path_matches_go() {
        let cases = [
            ("", "."),
            ("/", "/"),
            ("abc/", "abc"),
            ("/var/lib/milvus/data/", "/var/lib/milvus/data"),
            ("a//b/./c/..", "a/b"),
            ("../a/../..", "../.."),
            ("/../a", "/a"),
            ("./", "."),
        ];
        for (input, want) in cases {
            assert_eq!(clean_path(input), want, "clean({input:?})");
        }
    }

    #[test]
    fn join_path_skips_empty_elements() {
        assert_eq!(join_path(&["", "insert_log", "1"]), "insert_log/1");
        assert_eq!(join_path::<&str>(&["", ""]), "");
        assert_eq!(join_path(&["/data/", "x"]), "/data/x");
    }

    #[test]
    fn remote_paths_have_no_leading_slash_and_no_bucket() {
        let root = normalize_remote_root("/files/");
        assert_eq!(root, "files");
        assert_eq!(
            insert_log_path(&root, 444, 555, 666, 100, 470730857520500371),
            "files/insert_log/444/555/666/100/470730857520500371"
        );
        assert_eq!(
            stats_log_path(&root, 444, 555, 666, 100, COMPOUND_STATS_LOG_ID),
            "files/stats_log/444/555/666/100/1"
        );
        assert_eq!(
            delta_log_path(&root, 444, 555, 666, 777),
            "files/delta_log/444/555/666/777"
        );
        assert_eq!(normalize_remote_root(""), "");
        assert_eq!(insert_log_path("", 1, 2, 3, 4, 5), "insert_log/1/2/3/4/5");
    }

    #[test]
    fn local_paths_drop_the_trailing_slash_of_the_root() {
        let root = normalize_local_root("/var/lib/milvus/data/");
        assert_eq!(root, "/var/lib/milvus/data");
        assert_eq!(
            insert_log_path("/var/lib/milvus/data/", 1, 2, 3, 100, 4),
            "/var/lib/milvus/data/insert_log/1/2/3/100/4"
        );
        assert_eq!(
            binlog_prefix("/var/lib/milvus/data/", BinlogKind::Delta),
            "/var/lib/milvus/data/delta_log"
        );
    }

    #[test]
    fn index_file_path_matches_the_real_layout() {
        assert_eq!(
            index_file_path(
                "files",
                470730857520700384,
                1,
                470730857520300358,
                470730857520500365,
                "IVF_FLAT"
            ),
            "files/index_files/470730857520700384/1/470730857520300358/470730857520500365/IVF_FLAT"
        );
        assert_eq!(index_files_prefix("files/"), "files/index_files");
    }

    #[test]
    fn log_id_is_the_last_component() {
        assert_eq!(
            log_id_from_path("files/insert_log/1/2/3/100/987").unwrap(),
            987
        );
        assert!(log_id_from_path("987").is_err(), "Go requires a '/'");
        assert!(log_id_from_path("files/insert_log/1/2/3/100/x").is_err());
        assert!(log_id_from_path("files/insert_log/1/2/3/100/").is_err());
    }

    #[test]
    fn segment_id_position_depends_on_the_kind() {
        let insert = insert_log_path("files", 1, 2, 3, 100, 4);
        let delta = delta_log_path("files", 1, 2, 3, 4);
        assert_eq!(
            segment_id_from_binlog_path(BinlogKind::Insert, &insert),
            Some(3)
        );
        assert_eq!(
            segment_id_from_binlog_path(BinlogKind::Stats, &insert),
            Some(3)
        );
        assert_eq!(
            segment_id_from_binlog_path(BinlogKind::Delta, &delta),
            Some(3)
        );
        // The insert rule applied to a delta path reads the partition.
        assert_eq!(
            segment_id_from_binlog_path(BinlogKind::Insert, &delta),
            Some(2)
        );
        assert_eq!(segment_id_from_binlog_path(BinlogKind::Insert, ""), None);
        assert_eq!(segment_id_from_binlog_path(BinlogKind::Insert, "a/b"), None);
        assert_eq!(
            segment_id_from_binlog_path(BinlogKind::Delta, "a/x/1"),
            None
        );
    }

    #[test]
    fn gc_parser_checks_root_and_component_count() {
        let root = "/var/lib/milvus/data";
        let insert = insert_log_path(root, 1, 2, 33, 100, 4);
        let delta = delta_log_path(root, 1, 2, 44, 4);
        assert_eq!(parse_segment_id_by_binlog(root, &insert).unwrap(), 33);
        assert_eq!(parse_segment_id_by_binlog(root, &delta).unwrap(), 44);
        assert!(parse_segment_id_by_binlog("files", &insert).is_err());
        assert!(
            parse_segment_id_by_binlog(root, &format!("{root}/delta_log/1/2/3/100/4")).is_err()
        );
        assert!(parse_segment_id_by_binlog(root, &format!("{root}/insert_log/1/2/3/4")).is_err());
        assert!(
            parse_segment_id_by_binlog(root, &format!("{root}/stats_log/1/2/x/100/4")).is_err()
        );
    }

    #[test]
    fn build_id_tolerates_a_trailing_slash() {
        assert_eq!(
            build_id_from_index_path("files/index_files/123/").unwrap(),
            123
        );
        assert_eq!(
            build_id_from_index_path("/data/index_files/456").unwrap(),
            456
        );
        assert!(build_id_from_index_path("files/index_files/abc/").is_err());
    }
}
