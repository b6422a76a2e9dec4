//! Test support (feature `testing`): [`SegmentSet`] (a fake [`SegmentPresence`]),
//! [`StaticSchemas`] (a fake [`CollectionSchemas`]), [`PendingSet`] (a fake
//! [`PendingCompactions`]), [`FaultyStorage`] (fails lists or removes on demand),
//! [`age_local_file`] and [`StorageFixture`] (a chunk manager on a temp dir, on an in-process
//! S3 server, or on the external S3 server of the test scripts).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures::stream::{self, BoxStream};
use futures::{StreamExt, TryStreamExt};
use milvus_proto::schema::{CollectionSchema, DataType, FieldSchema};
use milvus_storage::testing::S3TestServer;
use milvus_storage::{ChunkManager, ObjectInfo, StorageConfig, StorageError, StorageResult};
use milvus_types::{CollectionId, FieldId, MilvusError, MilvusResult, PartitionId, SegmentId};
use tempfile::TempDir;

use crate::clear_etcd::CollectionSchemas;
use crate::scan::PendingCompactions;
use crate::segments::SegmentPresence;
use crate::storage::GcStorage;

/// Segment IDs that "exist in segment meta".
#[derive(Debug, Default)]
pub struct SegmentSet {
    ids: Mutex<BTreeSet<SegmentId>>,
}

impl SegmentSet {
    /// A set holding `ids`.
    pub fn with(ids: &[SegmentId]) -> Self {
        Self {
            ids: Mutex::new(ids.iter().copied().collect()),
        }
    }

    /// Adds a segment.
    pub fn insert(&self, id: SegmentId) {
        self.ids.lock().expect("segment set lock").insert(id);
    }

    /// Forgets a segment (as clearEtcd does).
    pub fn remove(&self, id: SegmentId) {
        self.ids.lock().expect("segment set lock").remove(&id);
    }
}

impl SegmentPresence for SegmentSet {
    fn segment_exists(&self, id: SegmentId) -> bool {
        self.ids.lock().expect("segment set lock").contains(&id)
    }
}

/// Schemas by collection; an unknown collection answers "collection not found" (code 100).
#[derive(Debug, Default)]
pub struct StaticSchemas {
    schemas: Mutex<BTreeMap<CollectionId, CollectionSchema>>,
}

impl StaticSchemas {
    /// Knows no collection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the schema of `coll`: an Int64 primary key (field 100), then `fields` in order.
    pub fn set(&self, coll: CollectionId, fields: &[(FieldId, DataType)]) {
        let mut schema = CollectionSchema {
            name: format!("collection_{coll}"),
            fields: vec![FieldSchema {
                field_id: 100,
                name: "pk".to_string(),
                is_primary_key: true,
                data_type: DataType::Int64 as i32,
                ..FieldSchema::default()
            }],
            ..CollectionSchema::default()
        };
        schema
            .fields
            .extend(fields.iter().map(|(field_id, data_type)| FieldSchema {
                field_id: *field_id,
                name: format!("field_{field_id}"),
                data_type: *data_type as i32,
                ..FieldSchema::default()
            }));
        self.schemas
            .lock()
            .expect("schemas lock")
            .insert(coll, schema);
    }

    /// Forgets `coll` (as RootCoord after a drop).
    pub fn remove(&self, coll: CollectionId) {
        self.schemas.lock().expect("schemas lock").remove(&coll);
    }
}

#[async_trait]
impl CollectionSchemas for StaticSchemas {
    async fn collection_schema(&self, coll: CollectionId) -> MilvusResult<CollectionSchema> {
        self.schemas
            .lock()
            .expect("schemas lock")
            .get(&coll)
            .cloned()
            .ok_or_else(|| MilvusError::collection_not_found(coll))
    }
}

/// Partitions with an unfinished compaction task.
#[derive(Debug, Default)]
pub struct PendingSet {
    partitions: Mutex<BTreeSet<(CollectionId, PartitionId)>>,
}

impl PendingSet {
    /// No task.
    pub fn new() -> Self {
        Self::default()
    }

    /// A task on (collection, partition) is persisted.
    pub fn insert(&self, coll: CollectionId, part: PartitionId) {
        self.partitions
            .lock()
            .expect("pending lock")
            .insert((coll, part));
    }

    /// The task on (collection, partition) finished.
    pub fn remove(&self, coll: CollectionId, part: PartitionId) {
        self.partitions
            .lock()
            .expect("pending lock")
            .remove(&(coll, part));
    }
}

impl PendingCompactions for PendingSet {
    fn unfinished_partitions(&self) -> BTreeSet<(CollectionId, PartitionId)> {
        self.partitions.lock().expect("pending lock").clone()
    }
}

/// Sets the modification time of a local file `age` into the past.
pub fn age_local_file(path: &str, age: Duration) {
    let file = std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap_or_else(|err| panic!("open {path}: {err}"));
    file.set_modified(SystemTime::now() - age)
        .unwrap_or_else(|err| panic!("set mtime of {path}: {err}"));
}

/// Wraps a storage; lists and/or removes fail (with an I/O error) while switched on.
pub struct FaultyStorage {
    inner: Arc<dyn GcStorage>,
    fail_lists: AtomicBool,
    fail_removes: AtomicBool,
    removes: AtomicUsize,
}

impl FaultyStorage {
    /// Passes everything through until told otherwise.
    pub fn new(inner: Arc<dyn GcStorage>) -> Self {
        Self {
            inner,
            fail_lists: AtomicBool::new(false),
            fail_removes: AtomicBool::new(false),
            removes: AtomicUsize::new(0),
        }
    }

    /// Makes every list fail (`true`) or pass (`false`).
    pub fn fail_lists(&self, fail: bool) {
        self.fail_lists.store(fail, Ordering::SeqCst);
    }

    /// Makes every remove fail (`true`) or pass (`false`).
    pub fn fail_removes(&self, fail: bool) {
        self.fail_removes.store(fail, Ordering::SeqCst);
    }

    /// How many remove calls were attempted (failed ones included).
    pub fn remove_calls(&self) -> usize {
        self.removes.load(Ordering::SeqCst)
    }

    fn injected(op: &'static str, path: &str) -> StorageError {
        StorageError::Io {
            op,
            path: path.to_string(),
            source: std::io::Error::other("injected failure"),
        }
    }
}

#[async_trait]
impl GcStorage for FaultyStorage {
    fn root_path(&self) -> &str {
        self.inner.root_path()
    }

    fn list(&self, prefix: &str, recursive: bool) -> BoxStream<'static, StorageResult<ObjectInfo>> {
        if self.fail_lists.load(Ordering::SeqCst) {
            return stream::once(futures::future::ready(Err(Self::injected("list", prefix))))
                .boxed();
        }
        self.inner.list(prefix, recursive)
    }

    async fn remove_files(&self, paths: &[String]) -> StorageResult<()> {
        self.removes.fetch_add(1, Ordering::SeqCst);
        if self.fail_removes.load(Ordering::SeqCst) {
            return Err(Self::injected(
                "remove",
                paths.first().map_or("", String::as_str),
            ));
        }
        self.inner.remove_files(paths).await
    }
}

/// A chunk manager plus what must outlive it. Call [`StorageFixture::cleanup`] at the end
/// (it empties the test's root on a shared external server).
pub struct StorageFixture {
    /// The chunk manager under test.
    pub chunk_manager: ChunkManager,
    external: bool,
    _server: Option<S3TestServer>,
    _dir: TempDir,
}

impl StorageFixture {
    /// Local storage on a fresh temp dir (`localStorage.path` given with a trailing slash,
    /// as the shipped `/var/lib/milvus/data/`).
    pub async fn local() -> Option<Self> {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = StorageConfig::local(format!("{}/data/", dir.path().display()));
        let chunk_manager = ChunkManager::new(&config).await.expect("local storage");
        Some(Self {
            chunk_manager,
            external: false,
            _server: None,
            _dir: dir,
        })
    }

    /// An S3 server inside this process (s3s-fs on a temp dir), root path `files`.
    pub async fn in_process_s3() -> Option<Self> {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = S3TestServer::start(dir.path())
            .await
            .expect("in-process S3 server");
        let chunk_manager = ChunkManager::new(&server.storage_config("gc-bucket", "files"))
            .await
            .expect("S3 storage");
        Some(Self {
            chunk_manager,
            external: false,
            _server: Some(server),
            _dir: dir,
        })
    }

    /// The S3 server the test scripts start (`S3_TEST_ENDPOINT` = `host:port`,
    /// `S3_TEST_ACCESS_KEY`, `S3_TEST_SECRET_KEY`), under a root of its own. `None` (skip)
    /// when unset; panics when unset under `MILVUS_TEST_STRICT=1`.
    pub async fn external_s3() -> Option<Self> {
        let Ok(endpoint) = std::env::var("S3_TEST_ENDPOINT") else {
            assert!(
                std::env::var("MILVUS_TEST_STRICT").as_deref() != Ok("1"),
                "S3_TEST_ENDPOINT is not set but MILVUS_TEST_STRICT=1 requires the S3 server"
            );
            println!("skipping: S3_TEST_ENDPOINT not set");
            return None;
        };
        let (address, port) = endpoint
            .rsplit_once(':')
            .expect("S3_TEST_ENDPOINT is host:port");
        let config = StorageConfig {
            storage_type: milvus_storage::StorageType::Minio,
            address: address.to_string(),
            port: port.parse().expect("S3_TEST_ENDPOINT port"),
            bucket_name: "milvus-gc-tests".to_string(),
            root_path: unique_root(),
            access_key_id: std::env::var("S3_TEST_ACCESS_KEY").expect("S3_TEST_ACCESS_KEY"),
            secret_access_key: std::env::var("S3_TEST_SECRET_KEY").expect("S3_TEST_SECRET_KEY"),
            ..StorageConfig::default()
        };
        let chunk_manager = ChunkManager::new(&config)
            .await
            .unwrap_or_else(|err| panic!("cannot reach the S3 server at {endpoint}: {err}"));
        Some(Self {
            chunk_manager,
            external: true,
            _server: None,
            _dir: tempfile::tempdir().expect("temp dir"),
        })
    }

    /// The storage root.
    pub fn root(&self) -> &str {
        self.chunk_manager.root_path()
    }

    /// Writes a small file at each path.
    pub async fn write_all(&self, paths: &[String]) {
        for path in paths {
            self.chunk_manager
                .write(path, format!("content of {path}").into_bytes())
                .await
                .expect("write");
        }
    }

    /// Every file under the root, sorted.
    pub async fn all_files(&self) -> Vec<String> {
        let mut paths: Vec<String> = self
            .chunk_manager
            .list_with_prefix(&format!("{}/", self.root()), true)
            .map_ok(|info| info.path)
            .try_collect()
            .await
            .expect("list");
        paths.sort();
        paths
    }

    /// Empties this test's root on a shared server; temp dirs go on drop.
    pub async fn cleanup(self) {
        if self.external {
            self.chunk_manager
                .remove_with_prefix(&format!("{}/", self.root()))
                .await
                .expect("cleanup of the test root");
        }
    }
}

fn unique_root() -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("gc-test-{}-{nanos:x}-{n}", std::process::id())
}
