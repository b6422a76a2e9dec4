//! Start-up behaviour of remote storage against a real S3 server: bucket creation, credential
//! checks, key layout in the bucket. Plus the local root rules.

use milvus_storage::testing::S3TestServer;
use milvus_storage::{ChunkManager, StorageConfig, StorageError, delta_log_path, insert_log_path};
use milvus_types::{ErrorCode, MilvusError};

#[tokio::test]
async fn missing_bucket_is_created_and_an_existing_one_reused() {
    let dir = tempfile::tempdir().unwrap();
    let server = S3TestServer::start(dir.path()).await.unwrap();
    let bucket_dir = dir.path().join("fresh-bucket");
    assert!(!bucket_dir.exists());

    let config = server.storage_config("fresh-bucket", "files");
    let cm = ChunkManager::new(&config).await.unwrap();
    assert!(bucket_dir.is_dir(), "the bucket was not created");
    let path = insert_log_path(cm.root_path(), 1, 2, 3, 100, 4);
    cm.write(&path, b"binlog".to_vec()).await.unwrap();

    // A second start finds the bucket and its content.
    let again = ChunkManager::new(&config).await.unwrap();
    assert_eq!(again.read(&path).await.unwrap().as_ref(), b"binlog");
}

#[tokio::test]
async fn wrong_secret_fails_with_a_clear_access_error() {
    let dir = tempfile::tempdir().unwrap();
    let server = S3TestServer::start(dir.path()).await.unwrap();
    let config = StorageConfig {
        secret_access_key: "not-the-secret".into(),
        ..server.storage_config("a-bucket", "files")
    };
    let err = ChunkManager::new(&config).await.unwrap_err();
    assert!(matches!(err, StorageError::AccessDenied { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("minio.secretAccessKey"), "{text}");
    assert!(text.contains("SignatureDoesNotMatch"), "{text}");
    assert_eq!(MilvusError::from(err).code(), ErrorCode::IO_FAILED);
    assert!(
        !dir.path().join("a-bucket").exists(),
        "no bucket may be created with bad credentials"
    );
}

#[tokio::test]
async fn unknown_access_key_fails_with_a_clear_access_error() {
    let dir = tempfile::tempdir().unwrap();
    let server = S3TestServer::start(dir.path()).await.unwrap();
    let config = StorageConfig {
        access_key_id: "nobody".into(),
        ..server.storage_config("a-bucket", "files")
    };
    let err = ChunkManager::new(&config).await.unwrap_err();
    assert!(matches!(err, StorageError::AccessDenied { .. }), "{err}");
    assert!(err.to_string().contains("minio.accessKeyID"), "{err}");
}

#[tokio::test]
async fn remote_keys_start_at_the_root_path_inside_the_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let server = S3TestServer::start(dir.path()).await.unwrap();
    let cm = ChunkManager::new(&server.storage_config("a-bucket", "/files/"))
        .await
        .unwrap();
    assert_eq!(cm.root_path(), "files");
    let path = delta_log_path(cm.root_path(), 1, 2, 3, 4);
    assert_eq!(path, "files/delta_log/1/2/3/4");
    cm.write(&path, b"delta".to_vec()).await.unwrap();
    let on_disk = dir.path().join("a-bucket/files/delta_log/1/2/3/4");
    assert_eq!(std::fs::read(on_disk).unwrap(), b"delta");
}

#[tokio::test]
async fn remote_rejects_keys_it_cannot_store_verbatim() {
    let dir = tempfile::tempdir().unwrap();
    let server = S3TestServer::start(dir.path()).await.unwrap();
    let cm = ChunkManager::new(&server.storage_config("a-bucket", "files"))
        .await
        .unwrap();
    let err = cm
        .write("/files/insert_log/1", b"x".to_vec())
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::InvalidPath { .. }), "{err}");
}

#[tokio::test]
async fn local_root_is_cleaned_and_paths_are_filesystem_paths() {
    let dir = tempfile::tempdir().unwrap();
    let raw_root = format!("{}/milvus//data/", dir.path().display());
    let cm = ChunkManager::new(&StorageConfig::local(raw_root))
        .await
        .unwrap();
    let expected_root = format!("{}/milvus/data", dir.path().display());
    assert_eq!(cm.root_path(), expected_root);
    let path = insert_log_path(cm.root_path(), 1, 2, 3, 100, 4);
    assert_eq!(path, format!("{expected_root}/insert_log/1/2/3/100/4"));
    cm.write(&path, b"insert".to_vec()).await.unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"insert");
    // The atomic write leaves no temporary file behind.
    let siblings: Vec<_> = std::fs::read_dir(format!("{expected_root}/insert_log/1/2/3/100"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(siblings, vec![std::ffi::OsString::from("4")]);
}

#[tokio::test]
async fn local_remove_refuses_directories() {
    let dir = tempfile::tempdir().unwrap();
    let cm = ChunkManager::new(&StorageConfig::local(dir.path().display().to_string()))
        .await
        .unwrap();
    let path = insert_log_path(cm.root_path(), 1, 2, 3, 100, 4);
    cm.write(&path, b"x".to_vec()).await.unwrap();
    let segment_dir = format!("{}/insert_log/1/2/3", cm.root_path());
    assert!(cm.remove(&segment_dir).await.is_err());
    assert!(cm.exists(&path).await.unwrap());
}
