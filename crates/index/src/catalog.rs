//! [`IndexCatalog`]: reads and writes the `field-index/` and `segment-index/` records
//! (layout in `model.rs`) through a [`MetaKv`] rooted at the meta root.

use std::sync::Arc;

use bytes::Bytes;
use milvus_metastore::{MetaKv, MetastoreResult};
use milvus_types::{CollectionId, IndexId};
use prost::Message;

use crate::error::{IndexError, IndexResult};
use crate::model::{
    FIELD_INDEX_PREFIX, Index, SEGMENT_INDEX_PREFIX, SegmentIndex, field_index_key,
};

/// Indexes marked deleted per transaction in 2.3.5 (`AlterIndexes`).
pub const ALTER_INDEXES_CHUNK: usize = 64;

/// The index records of one metadata store.
#[derive(Clone)]
pub struct IndexCatalog {
    kv: Arc<dyn MetaKv>,
}

impl std::fmt::Debug for IndexCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexCatalog").finish_non_exhaustive()
    }
}

impl IndexCatalog {
    /// Over `kv`, already rooted at `{rootPath}/{metaSubPath}`.
    pub fn new(kv: Arc<dyn MetaKv>) -> Self {
        Self { kv }
    }

    /// The store underneath.
    pub fn kv(&self) -> &Arc<dyn MetaKv> {
        &self.kv
    }

    /// Every field-index and segment-index record (paged prefix walks).
    pub async fn load(&self) -> IndexResult<(Vec<Index>, Vec<SegmentIndex>)> {
        let mut indexes = Vec::new();
        for (key, value) in self.kv.load_all_with_prefix(FIELD_INDEX_PREFIX).await? {
            indexes.push(decode_index(&key, &value)?);
        }
        let mut segment_indexes = Vec::new();
        for (key, value) in self.kv.load_all_with_prefix(SEGMENT_INDEX_PREFIX).await? {
            segment_indexes.push(decode_segment_index(&key, &value)?);
        }
        Ok((indexes, segment_indexes))
    }

    /// One field-index record, `None` if absent.
    pub async fn load_index(
        &self,
        coll: CollectionId,
        index_id: IndexId,
    ) -> IndexResult<Option<Index>> {
        let key = field_index_key(coll, index_id);
        match self.kv.load(&key).await? {
            Some(value) => Ok(Some(decode_index(&key, &value)?)),
            None => Ok(None),
        }
    }

    /// One segment-index record by key, `None` if absent.
    pub async fn load_segment_index(&self, key: &str) -> IndexResult<Option<SegmentIndex>> {
        match self.kv.load(key).await? {
            Some(value) => Ok(Some(decode_segment_index(key, &value)?)),
            None => Ok(None),
        }
    }

    /// Saves one index (CreateIndex: a single put, also when the ID is reused).
    pub async fn save_index(&self, index: &Index) -> MetastoreResult<()> {
        self.kv.save(&index.key(), encode_index(index)).await
    }

    /// Rewrites `indexes`: in one transaction when they fit the store's limit, else in chunks
    /// of [`ALTER_INDEXES_CHUNK`] as 2.3.5 (each chunk atomic, the whole not).
    pub async fn alter_indexes(&self, indexes: &[Index]) -> MetastoreResult<()> {
        let kvs: Vec<(String, Bytes)> = indexes
            .iter()
            .map(|index| (index.key(), encode_index(index)))
            .collect();
        let chunk = if kvs.len() <= self.kv.max_txn_ops() {
            kvs.len().max(1)
        } else {
            ALTER_INDEXES_CHUNK.min(self.kv.max_txn_ops()).max(1)
        };
        for part in kvs.chunks(chunk) {
            self.kv.multi_save(part.to_vec()).await?;
        }
        Ok(())
    }

    /// Removes one field-index record (GC of a deleted index).
    pub async fn drop_index(&self, coll: CollectionId, index_id: IndexId) -> MetastoreResult<()> {
        self.kv.remove(&field_index_key(coll, index_id)).await
    }

    /// Saves one segment-index record (the whole record, as every 2.3.5 update does).
    pub async fn save_segment_index(&self, seg_index: &SegmentIndex) -> MetastoreResult<()> {
        self.kv
            .save(&seg_index.key(), encode_segment_index(seg_index))
            .await
    }

    /// Removes one segment-index record.
    pub async fn drop_segment_index(&self, seg_index: &SegmentIndex) -> MetastoreResult<()> {
        self.kv.remove(&seg_index.key()).await
    }
}

/// The stored bytes of an index.
pub fn encode_index(index: &Index) -> Bytes {
    Bytes::from(index.to_record().encode_to_vec())
}

/// The stored bytes of a segment index.
pub fn encode_segment_index(seg_index: &SegmentIndex) -> Bytes {
    Bytes::from(seg_index.to_record().encode_to_vec())
}

fn decode_index(key: &str, value: &[u8]) -> IndexResult<Index> {
    let record =
        milvus_proto::index::FieldIndex::decode(value).map_err(|err| IndexError::Corrupt {
            key: key.to_string(),
            reason: err.to_string(),
        })?;
    Ok(Index::from_record(record))
}

fn decode_segment_index(key: &str, value: &[u8]) -> IndexResult<SegmentIndex> {
    let record =
        milvus_proto::index::SegmentIndex::decode(value).map_err(|err| IndexError::Corrupt {
            key: key.to_string(),
            reason: err.to_string(),
        })?;
    Ok(SegmentIndex::from_record(record))
}
