//! Encoding of segments and channel state into the key layout of [`crate::keys`], and the
//! write and read primitives the meta layer composes.

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use milvus_metastore::{DEFAULT_PAGE_SIZE, MetaKv, MetastoreError};
use milvus_proto::data::{FieldBinlog, SegmentInfo};
use milvus_proto::msg::MsgPosition;
use milvus_types::{CollectionId, PartitionId, SegmentId};
use prost::Message;

use crate::error::{MetaError, MetaResult};
use crate::keys::{LogKind, log_key, segment_key, segment_log_prefix, segments_prefix};
use crate::logs::{logs_of, logs_of_mut};

/// The catalog: DataCoord's segment records in Milvus 2.3.5's etcd layout over a [`MetaKv`]
/// already rooted at `metaRoot` (keys are relative: `datacoord-meta/...`).
#[derive(Clone)]
pub struct Catalog {
    kv: Arc<dyn MetaKv>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog").finish_non_exhaustive()
    }
}

/// The keys one change writes. Log keys go first when the change needs several transactions.
#[derive(Debug, Default)]
pub(crate) struct WritePlan {
    pub(crate) log_saves: Vec<(String, Bytes)>,
    pub(crate) segment_saves: Vec<(String, Bytes)>,
}

/// A failed write; `store_may_differ` when part of it (or all of it, after a timeout) may
/// have been applied, so memory must be re-read from the store.
#[derive(Debug)]
pub(crate) struct WriteFailure {
    pub(crate) error: MetaError,
    pub(crate) store_may_differ: bool,
}

impl Catalog {
    /// A catalog over `kv`, which must be rooted at `metaRoot`.
    pub fn new(kv: Arc<dyn MetaKv>) -> Self {
        Self { kv }
    }

    /// The store.
    pub fn kv(&self) -> &Arc<dyn MetaKv> {
        &self.kv
    }

    /// The segment record: key `datacoord-meta/s/{coll}/{part}/{seg}` and the `SegmentInfo`
    /// without its logs, `num_of_rows` as given.
    pub fn segment_record(seg: &SegmentInfo) -> (String, Bytes) {
        let key = segment_key(seg.collection_id, seg.partition_id, seg.id);
        (key, Bytes::from(without_logs(seg).encode_to_vec()))
    }

    /// One record per field and log kind: `datacoord-meta/{binlog|deltalog|statslog}/…/{field}`
    /// with the field's whole list as held (the meta layer holds it in logID form).
    pub fn log_records(seg: &SegmentInfo) -> Vec<(String, Bytes)> {
        let mut records = Vec::new();
        for kind in LogKind::ALL {
            for field in logs_of(seg, kind) {
                let key = log_key(
                    kind,
                    seg.collection_id,
                    seg.partition_id,
                    seg.id,
                    field.field_id,
                );
                records.push((key, Bytes::from(field.encode_to_vec())));
            }
        }
        records
    }

    /// Applies a plan: one transaction when it fits [`MetaKv::max_txn_ops`], otherwise log
    /// keys first and segment keys last, each in chunks of the limit. A crash in between
    /// leaves log lists that no segment record claims yet.
    pub(crate) async fn write(&self, plan: WritePlan) -> Result<(), WriteFailure> {
        let limit = self.kv.max_txn_ops().max(1);
        let total = plan.log_saves.len() + plan.segment_saves.len();
        if total == 0 {
            return Ok(());
        }
        if total <= limit {
            let mut saves = plan.log_saves;
            saves.extend(plan.segment_saves);
            return self.kv.multi_save(saves).await.map_err(|err| WriteFailure {
                store_may_differ: err.maybe_applied(),
                error: err.into(),
            });
        }
        tracing::info!(
            log_keys = plan.log_saves.len(),
            segment_keys = plan.segment_saves.len(),
            limit,
            "segment change split over several transactions"
        );
        let mut committed_any = false;
        for part in [plan.log_saves, plan.segment_saves] {
            let mut rest = part.into_iter();
            loop {
                let chunk: Vec<_> = rest.by_ref().take(limit).collect();
                if chunk.is_empty() {
                    break;
                }
                if let Err(err) = self.kv.multi_save(chunk).await {
                    return Err(WriteFailure {
                        store_may_differ: committed_any || err.maybe_applied(),
                        error: err.into(),
                    });
                }
                committed_any = true;
            }
        }
        Ok(())
    }

    /// Whether any log key of the segment exists (2.3.5's check before writing a dropped
    /// segment's logs for GC).
    pub(crate) async fn has_log_keys(&self, seg: &SegmentInfo) -> MetaResult<bool> {
        for kind in LogKind::ALL {
            let prefix = segment_log_prefix(kind, seg.collection_id, seg.partition_id, seg.id);
            if !self
                .kv
                .load_prefix_page(&prefix, None, 1)
                .await?
                .kvs
                .is_empty()
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Reads one segment as the loader would; `None` when its record is absent. The flag
    /// tells whether it kept legacy inline logs.
    pub(crate) async fn read_segment(
        &self,
        coll: CollectionId,
        part: PartitionId,
        id: SegmentId,
    ) -> MetaResult<Option<(SegmentInfo, bool)>> {
        let key = segment_key(coll, part, id);
        let Some(value) = self.kv.load(&key).await? else {
            return Ok(None);
        };
        let mut seg = decode_segment(&key, &value)?;
        let mut inline = false;
        for kind in LogKind::ALL {
            let prefix = segment_log_prefix(kind, coll, part, id);
            let mut stored = Vec::new();
            for (log_key, value) in self.kv.load_all_with_prefix(&prefix).await? {
                stored.push(decode_field_binlog(&log_key, &value)?);
            }
            inline |= attach_logs(&mut seg, kind, stored);
        }
        Ok(Some((seg, inline)))
    }

    /// Whether no segment record of the collection (`part == -1`) or partition remains: the
    /// answer of GcConfirm (FACTS C.9). An error means "not confirmed" to 2.3.5.
    pub async fn gc_confirm(&self, coll: CollectionId, part: PartitionId) -> MetaResult<bool> {
        let prefix = segments_prefix(coll, (part != -1).then_some(part));
        let page = self.kv.load_prefix_page(&prefix, None, 1).await?;
        Ok(page.kvs.is_empty())
    }

    /// Every key and value under `prefix`, page by page.
    pub(crate) async fn load_small_prefix(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, Bytes)>, MetastoreError> {
        let pages: Vec<_> = self
            .kv
            .load_prefix(prefix, DEFAULT_PAGE_SIZE)
            .try_collect()
            .await?;
        Ok(pages.into_iter().flatten().collect())
    }
}

/// Attaches logs read from their own keys unless the record carries that kind inline
/// (FACTS C.8 step 2); returns whether it kept inline logs.
pub(crate) fn attach_logs(seg: &mut SegmentInfo, kind: LogKind, stored: Vec<FieldBinlog>) -> bool {
    let list = logs_of_mut(seg, kind);
    if list.is_empty() {
        *list = stored;
        return false;
    }
    if !stored.is_empty() {
        tracing::warn!(
            segment_id = seg.id,
            kind = ?kind,
            "segment record lists logs inline; its separate log keys are ignored"
        );
    }
    true
}

/// The segment as its record stores it: every field but the three log lists.
fn without_logs(seg: &SegmentInfo) -> SegmentInfo {
    // Listing each field (no `..`) makes a new proto field a compile error here, so it is
    // never silently dropped from the record.
    SegmentInfo {
        id: seg.id,
        collection_id: seg.collection_id,
        partition_id: seg.partition_id,
        insert_channel: seg.insert_channel.clone(),
        num_of_rows: seg.num_of_rows,
        state: seg.state,
        max_row_num: seg.max_row_num,
        last_expire_time: seg.last_expire_time,
        start_position: seg.start_position.clone(),
        dml_position: seg.dml_position.clone(),
        binlogs: Vec::new(),
        statslogs: Vec::new(),
        deltalogs: Vec::new(),
        created_by_compaction: seg.created_by_compaction,
        compaction_from: seg.compaction_from.clone(),
        dropped_at: seg.dropped_at,
        is_importing: seg.is_importing,
        is_fake: seg.is_fake,
        compacted: seg.compacted,
        level: seg.level,
    }
}

fn corrupt(key: &str, err: impl std::fmt::Display) -> MetaError {
    MetaError::Corrupt {
        key: key.to_string(),
        reason: err.to_string(),
    }
}

pub(crate) fn decode_segment(key: &str, value: &[u8]) -> MetaResult<SegmentInfo> {
    SegmentInfo::decode(value).map_err(|err| corrupt(key, err))
}

pub(crate) fn decode_field_binlog(key: &str, value: &[u8]) -> MetaResult<FieldBinlog> {
    FieldBinlog::decode(value).map_err(|err| corrupt(key, err))
}

pub(crate) fn decode_position(key: &str, value: &[u8]) -> MetaResult<MsgPosition> {
    MsgPosition::decode(value).map_err(|err| corrupt(key, err))
}

#[cfg(test)]
mod tests {
    use super::*;
    use milvus_metastore::MemoryKv;
    use milvus_proto::data::Binlog;

    fn seg_with_logs() -> SegmentInfo {
        let field = |field_id, log_id| FieldBinlog {
            field_id,
            binlogs: vec![Binlog {
                entries_num: 5,
                log_id,
                ..Binlog::default()
            }],
        };
        SegmentInfo {
            id: 3,
            collection_id: 1,
            partition_id: 2,
            insert_channel: "ch".into(),
            num_of_rows: 5,
            binlogs: vec![field(0, 10), field(100, 11)],
            statslogs: vec![field(100, 12)],
            deltalogs: vec![field(0, 13)],
            ..SegmentInfo::default()
        }
    }

    #[test]
    fn records_split_the_segment() {
        let seg = seg_with_logs();
        let (key, value) = Catalog::segment_record(&seg);
        assert_eq!(key, "datacoord-meta/s/1/2/3");
        let stored = SegmentInfo::decode(value).expect("decodes");
        assert!(
            stored.binlogs.is_empty() && stored.statslogs.is_empty() && stored.deltalogs.is_empty()
        );
        assert_eq!(stored.num_of_rows, 5);
        assert_eq!(stored.insert_channel, "ch");

        let keys: Vec<String> = Catalog::log_records(&seg)
            .into_iter()
            .map(|(key, _)| key)
            .collect();
        assert_eq!(
            keys,
            vec![
                "datacoord-meta/binlog/1/2/3/0",
                "datacoord-meta/binlog/1/2/3/100",
                "datacoord-meta/deltalog/1/2/3/0",
                "datacoord-meta/statslog/1/2/3/100",
            ]
        );
    }

    #[tokio::test]
    async fn read_back_and_gc_confirm() {
        let kv: Arc<dyn MetaKv> = Arc::new(MemoryKv::new());
        let catalog = Catalog::new(kv.clone());
        let seg = seg_with_logs();
        assert!(catalog.gc_confirm(1, -1).await.expect("confirm"));
        let mut saves = Catalog::log_records(&seg);
        saves.push(Catalog::segment_record(&seg));
        catalog
            .write(WritePlan {
                log_saves: saves,
                segment_saves: Vec::new(),
            })
            .await
            .map_err(|failure| failure.error)
            .expect("write");
        let (read, inline) = catalog
            .read_segment(1, 2, 3)
            .await
            .expect("read")
            .expect("present");
        assert!(!inline);
        assert_eq!(read, seg);
        assert!(catalog.has_log_keys(&seg).await.expect("has"));
        assert!(!catalog.gc_confirm(1, -1).await.expect("confirm"));
        assert!(!catalog.gc_confirm(1, 2).await.expect("confirm"));
        assert!(catalog.gc_confirm(1, 20).await.expect("confirm"));
        // Collection 1 must not be confused with collection 10.
        assert!(catalog.gc_confirm(10, -1).await.expect("confirm"));
        assert!(catalog.read_segment(1, 2, 4).await.expect("read").is_none());
    }
}
