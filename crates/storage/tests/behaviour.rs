//! One behaviour suite, run against the local backend (temp dir), a real S3 server in this process
//! (s3s + s3s-fs), and the S3 server process the test scripts start (`S3_TEST_ENDPOINT`).

use std::time::{Duration, SystemTime};

use futures::TryStreamExt;
use milvus_storage::testing::S3TestServer;
use milvus_storage::{
    BinlogKind, ChunkManager, ObjectInfo, StorageConfig, StorageError, binlog_prefix,
    delta_log_path, index_file_path, index_files_prefix, insert_log_path, join_path,
    stats_log_path,
};
use milvus_types::{ErrorCode, MilvusError};
use tempfile::TempDir;

/// A chunk manager plus what must outlive it.
struct Fixture {
    cm: ChunkManager,
    _server: Option<S3TestServer>,
    _dir: TempDir,
}

async fn local_fixture() -> Option<Fixture> {
    let dir = tempfile::tempdir().unwrap();
    // A trailing slash, like the shipped `/var/lib/milvus/data/`.
    let local_path = format!("{}/data/", dir.path().display());
    let cm = ChunkManager::new(&StorageConfig::local(local_path))
        .await
        .unwrap();
    Some(Fixture {
        cm,
        _server: None,
        _dir: dir,
    })
}

async fn s3_fixture() -> Option<Fixture> {
    let dir = tempfile::tempdir().unwrap();
    let server = S3TestServer::start(dir.path()).await.unwrap();
    let cm = ChunkManager::new(&server.storage_config("a-bucket", "files"))
        .await
        .unwrap();
    Some(Fixture {
        cm,
        _server: Some(server),
        _dir: dir,
    })
}

/// The external S3 server the test scripts start (`S3_TEST_ENDPOINT` = `host:port`, plus
/// `S3_TEST_ACCESS_KEY` / `S3_TEST_SECRET_KEY`); `None` skips, or panics under
/// `MILVUS_TEST_STRICT=1`. Each test gets its own root path in a shared bucket.
async fn external_s3_fixture() -> Option<Fixture> {
    let Ok(endpoint) = std::env::var("S3_TEST_ENDPOINT") else {
        assert!(
            std::env::var("MILVUS_TEST_STRICT").as_deref() != Ok("1"),
            "S3_TEST_ENDPOINT not set but MILVUS_TEST_STRICT=1: external S3 tests must run"
        );
        eprintln!("skipping: S3_TEST_ENDPOINT not set");
        return None;
    };
    let (address, port) = endpoint
        .rsplit_once(':')
        .expect("S3_TEST_ENDPOINT is host:port");
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let config = StorageConfig {
        storage_type: milvus_storage::StorageType::Minio,
        address: address.to_string(),
        port: port.parse().expect("port"),
        bucket_name: "milvus-storage-tests".to_string(),
        root_path: format!("files-{nanos:x}-{:08x}", rand_u32()),
        access_key_id: std::env::var("S3_TEST_ACCESS_KEY").expect("S3_TEST_ACCESS_KEY"),
        secret_access_key: std::env::var("S3_TEST_SECRET_KEY").expect("S3_TEST_SECRET_KEY"),
        ..StorageConfig::default()
    };
    let cm = ChunkManager::new(&config)
        .await
        .expect("external S3 server reachable");
    Some(Fixture {
        cm,
        _server: None,
        _dir: tempfile::tempdir().unwrap(),
    })
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(u64::from(std::process::id()));
    hasher.finish() as u32
}

impl Fixture {
    fn root(&self) -> &str {
        self.cm.root_path()
    }

    async fn list(&self, prefix: &str, recursive: bool) -> Vec<ObjectInfo> {
        let mut entries: Vec<ObjectInfo> = self
            .cm
            .list_with_prefix(prefix, recursive)
            .try_collect()
            .await
            .unwrap();
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        entries
    }

    async fn list_paths(&self, prefix: &str, recursive: bool) -> Vec<String> {
        self.list(prefix, recursive)
            .await
            .into_iter()
            .map(|e| e.path)
            .collect()
    }

    async fn write_all(&self, paths: &[String]) {
        for path in paths {
            self.cm
                .write(path, format!("content of {path}").into_bytes())
                .await
                .unwrap();
        }
    }
}

fn sorted(mut paths: Vec<String>) -> Vec<String> {
    paths.sort();
    paths
}

async fn write_read_size_exists_round_trip(f: Fixture) {
    let path = insert_log_path(f.root(), 1, 2, 3, 100, 4);
    let data = vec![7u8; 3000];
    f.cm.write(&path, data.clone()).await.unwrap();
    assert_eq!(f.cm.read(&path).await.unwrap().as_ref(), &data[..]);
    assert_eq!(f.cm.size(&path).await.unwrap(), 3000);
    assert!(f.cm.exists(&path).await.unwrap());
}

async fn write_replaces_the_content(f: Fixture) {
    let path = delta_log_path(f.root(), 1, 2, 3, 4);
    f.cm.write(&path, b"first version".to_vec()).await.unwrap();
    f.cm.write(&path, b"second".to_vec()).await.unwrap();
    assert_eq!(f.cm.read(&path).await.unwrap().as_ref(), b"second");
    assert_eq!(f.cm.size(&path).await.unwrap(), 6);
}

async fn missing_file_is_key_not_found(f: Fixture) {
    let path = insert_log_path(f.root(), 9, 9, 9, 9, 9);
    let err = f.cm.read(&path).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert_eq!(err.code(), ErrorCode::IO_KEY_NOT_FOUND);
    let milvus: MilvusError = err.into();
    assert_eq!(milvus.code(), ErrorCode::IO_KEY_NOT_FOUND);
    assert!(f.cm.size(&path).await.unwrap_err().is_not_found());
    assert!(!f.cm.exists(&path).await.unwrap());
}

async fn remove_deletes_and_tolerates_missing(f: Fixture) {
    let keep = insert_log_path(f.root(), 1, 2, 3, 100, 5);
    let gone = insert_log_path(f.root(), 1, 2, 3, 100, 6);
    f.write_all(&[keep.clone(), gone.clone()]).await;
    f.cm.remove(&gone).await.unwrap();
    assert!(!f.cm.exists(&gone).await.unwrap());
    assert!(f.cm.exists(&keep).await.unwrap());
    f.cm.remove(&gone).await.unwrap();
}

async fn multi_remove_deletes_exactly_the_given_paths(f: Fixture) {
    let remove: Vec<String> = (0..5)
        .map(|log| stats_log_path(f.root(), 1, 2, 3, 100, log))
        .collect();
    let keep = stats_log_path(f.root(), 1, 2, 3, 100, 99);
    f.write_all(&remove).await;
    f.write_all(std::slice::from_ref(&keep)).await;
    let mut with_missing = remove.clone();
    with_missing.push(stats_log_path(f.root(), 1, 2, 3, 100, 12345));
    f.cm.multi_remove(&with_missing).await.unwrap();
    for path in &remove {
        assert!(!f.cm.exists(path).await.unwrap(), "{path} still exists");
    }
    assert_eq!(
        f.list_paths(&binlog_prefix(f.root(), BinlogKind::Stats), true)
            .await,
        vec![keep]
    );
}

async fn recursive_list_returns_files_with_size_and_time(f: Fixture) {
    let before = SystemTime::now() - Duration::from_secs(2);
    let inserts = vec![
        insert_log_path(f.root(), 1, 2, 3, 100, 4),
        insert_log_path(f.root(), 1, 2, 3, 101, 5),
        insert_log_path(f.root(), 1, 2, 30, 100, 6),
        insert_log_path(f.root(), 7, 8, 9, 100, 10),
    ];
    f.write_all(&inserts).await;
    f.write_all(&[
        stats_log_path(f.root(), 1, 2, 3, 100, 4),
        delta_log_path(f.root(), 1, 2, 3, 4),
    ])
    .await;
    let after = SystemTime::now() + Duration::from_secs(2);

    let listed = f
        .list(&binlog_prefix(f.root(), BinlogKind::Insert), true)
        .await;
    let paths: Vec<String> = listed.iter().map(|e| e.path.clone()).collect();
    assert_eq!(paths, sorted(inserts));
    for entry in &listed {
        assert!(!entry.is_dir);
        assert_eq!(
            entry.size,
            format!("content of {}", entry.path).len() as u64
        );
        let modified = entry.last_modified.expect("files have a modification time");
        assert!(
            modified >= before && modified <= after,
            "{}: {modified:?} not in [{before:?}, {after:?}]",
            entry.path
        );
    }
}

async fn prefix_is_a_string_prefix(f: Fixture) {
    let build_12 = index_file_path(f.root(), 12, 1, 2, 3, "IVF_FLAT");
    let build_123 = index_file_path(f.root(), 123, 1, 2, 3, "IVF_FLAT");
    f.write_all(&[build_12.clone(), build_123.clone()]).await;
    let index_root = index_files_prefix(f.root());
    assert_eq!(
        f.list_paths(&format!("{index_root}/12"), true).await,
        vec![build_12.clone(), build_123.clone()]
    );
    assert_eq!(
        f.list_paths(&format!("{index_root}/12/"), true).await,
        vec![build_12.clone()]
    );
    assert_eq!(
        f.list_paths(&format!("{index_root}/12/1/2/3/IVF"), true)
            .await,
        vec![build_12]
    );
}

async fn non_recursive_list_returns_one_level_with_directories(f: Fixture) {
    let index_root = index_files_prefix(f.root());
    f.write_all(&[
        index_file_path(f.root(), 1, 1, 2, 3, "a"),
        index_file_path(f.root(), 1, 2, 2, 3, "a"),
        index_file_path(f.root(), 2, 1, 2, 3, "b"),
        format!("{index_root}/loose"),
    ])
    .await;
    let listed = f.list(&format!("{index_root}/"), false).await;
    let summary: Vec<(String, bool)> = listed.iter().map(|e| (e.path.clone(), e.is_dir)).collect();
    assert_eq!(
        summary,
        vec![
            (format!("{index_root}/1/"), true),
            (format!("{index_root}/2/"), true),
            (format!("{index_root}/loose"), false),
        ]
    );
    let loose = &listed[2];
    assert_eq!(
        loose.size,
        format!("content of {index_root}/loose").len() as u64
    );
    assert!(loose.last_modified.is_some());
    // Without the trailing slash the prefix directory itself is the one entry.
    assert_eq!(
        f.list_paths(&index_root, false).await,
        vec![format!("{index_root}/")]
    );
}

async fn listing_a_missing_prefix_is_empty(f: Fixture) {
    let prefix = join_path(&[f.root(), "nothing_here"]);
    assert!(f.list(&prefix, true).await.is_empty());
    assert!(f.list(&format!("{prefix}/"), false).await.is_empty());
}

async fn remove_with_prefix_removes_only_matching_files(f: Fixture) {
    let doomed = vec![
        index_file_path(f.root(), 12, 1, 2, 3, "a"),
        index_file_path(f.root(), 12, 2, 2, 3, "b"),
    ];
    let kept = vec![
        index_file_path(f.root(), 123, 1, 2, 3, "a"),
        insert_log_path(f.root(), 12, 2, 3, 100, 4),
    ];
    f.write_all(&doomed).await;
    f.write_all(&kept).await;
    let prefix = format!("{}/12/", index_files_prefix(f.root()));
    f.cm.remove_with_prefix(&prefix).await.unwrap();
    for path in &doomed {
        assert!(!f.cm.exists(path).await.unwrap(), "{path} survived");
    }
    for path in &kept {
        assert!(f.cm.exists(path).await.unwrap(), "{path} was removed");
    }
    let err = f.cm.remove_with_prefix("").await.unwrap_err();
    assert!(matches!(err, StorageError::InvalidPath { .. }), "{err}");
    for path in &kept {
        assert!(f.cm.exists(path).await.unwrap());
    }
}

async fn remove_with_prefix_handles_more_than_one_batch(f: Fixture) {
    let paths: Vec<String> = (0..1005)
        .map(|log| delta_log_path(f.root(), 5, 6, 7, log))
        .collect();
    // Empty files keep this quick on both backends.
    for path in &paths {
        f.cm.write(path, Vec::new()).await.unwrap();
    }
    let prefix = binlog_prefix(f.root(), BinlogKind::Delta);
    assert_eq!(f.list(&prefix, true).await.len(), 1005);
    f.cm.remove_with_prefix(&prefix).await.unwrap();
    assert!(f.list(&prefix, true).await.is_empty());
}

async fn clones_share_the_storage(f: Fixture) {
    let other = f.cm.clone();
    let path = insert_log_path(f.root(), 1, 1, 1, 1, 1);
    other.write(&path, b"x".to_vec()).await.unwrap();
    assert!(f.cm.exists(&path).await.unwrap());
}

/// Instantiates every behaviour for one backend.
macro_rules! behaviour_suite {
    ($backend:ident, $fixture:ident) => {
        mod $backend {
            use super::*;

            behaviour_suite!(@tests $fixture;
                write_read_size_exists_round_trip,
                write_replaces_the_content,
                missing_file_is_key_not_found,
                remove_deletes_and_tolerates_missing,
                multi_remove_deletes_exactly_the_given_paths,
                recursive_list_returns_files_with_size_and_time,
                prefix_is_a_string_prefix,
                non_recursive_list_returns_one_level_with_directories,
                listing_a_missing_prefix_is_empty,
                remove_with_prefix_removes_only_matching_files,
                remove_with_prefix_handles_more_than_one_batch,
                clones_share_the_storage,
            );
        }
    };
    (@tests $fixture:ident; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                if let Some(fixture) = $fixture().await {
                    super::$name(fixture).await;
                }
            }
        )*
    };
}

behaviour_suite!(local, local_fixture);
behaviour_suite!(s3, s3_fixture);
behaviour_suite!(external_s3, external_s3_fixture);
