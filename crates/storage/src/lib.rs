//! Chunk manager of the DataCoord port: reads, writes, lists and deletes segment files
//! (binlogs, index files) on the local filesystem or on S3-compatible object storage, with the
//! path layout of Milvus 2.3.5.
//!
//! Paths given to and returned by [`ChunkManager`] are the full strings Milvus stores and returns
//! in binlog paths: filesystem paths under `localStorage.path` for local storage, object keys
//! under the bucket (starting with `minio.rootPath`) for remote storage. Build them with the
//! functions re-exported from the path module.

mod bucket;
mod chunk_manager;
mod config;
mod error;
mod local;
mod paths;
mod remote;

#[cfg(feature = "testing")]
pub mod testing;

pub use chunk_manager::{ChunkManager, ObjectInfo};
pub use config::{StorageConfig, StorageType};
pub use error::{StorageError, StorageResult};
pub use paths::{
    BinlogKind, COMPOUND_STATS_LOG_ID, DELTA_LOG_DIR, INDEX_FILES_DIR, INSERT_LOG_DIR,
    STATS_LOG_DIR, binlog_path, binlog_prefix, build_id_from_index_path, clean_path,
    delta_log_path, index_file_path, index_files_prefix, insert_log_path, join_path,
    log_id_from_path, normalize_local_root, normalize_remote_root, parse_segment_id_by_binlog,
    segment_id_from_binlog_path, stats_log_path,
};
