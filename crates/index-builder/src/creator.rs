//! Creating segment-index records (FACTS 1.4): one Unissued record per (segment, live index)
//! the segment lacks, each with a build ID from RootCoord, then enqueued.

use datacoord_index::{BuildId, is_indexable};
use milvus_proto::data::SegmentInfo;
use milvus_types::{CollectionId, SegmentId};

use crate::builder::IndexBuilder;
use crate::error::{BuilderError, BuilderResult};

impl IndexBuilder {
    /// Creates the missing records of one segment if it is Flushed or Flushing (others are
    /// not indexed; an unknown segment is skipped). Returns the new build IDs.
    pub async fn create_tasks_for_segment(
        &self,
        segment_id: SegmentId,
    ) -> BuilderResult<Vec<BuildId>> {
        let Some(segment) = self.segments.segment(segment_id) else {
            tracing::warn!(segment_id, "segment is not exist, no need to build index");
            return Ok(Vec::new());
        };
        if !is_indexable(&segment) {
            tracing::debug!(segment_id, state = ?segment.state(), "segment not indexed in this state");
            return Ok(Vec::new());
        }
        self.create_tasks(&segment).await
    }

    /// Creates the missing records of every Flushed/Flushing segment of the collection. A
    /// segment that fails is logged and left to the periodic sweep.
    pub async fn create_tasks_for_collection(&self, collection_id: CollectionId) -> Vec<BuildId> {
        let segments = self.segments.flushed_segments_of(collection_id);
        self.create_for_all(&segments).await
    }

    /// The periodic sweep: every Flushed/Flushing segment missing a record for a live index.
    pub async fn sweep(&self) -> Vec<BuildId> {
        let lacking: Vec<_> = self
            .segments
            .all_flushed_segments()
            .into_iter()
            .filter(|segment| !self.meta.missing_indexes(segment).is_empty())
            .collect();
        if !lacking.is_empty() {
            tracing::info!(segments = lacking.len(), "segments lack index tasks");
        }
        self.create_for_all(&lacking).await
    }

    async fn create_for_all(&self, segments: &[std::sync::Arc<SegmentInfo>]) -> Vec<BuildId> {
        let mut created = Vec::new();
        for segment in segments {
            match self.create_tasks(segment).await {
                Ok(built) => created.extend(built),
                Err(err) => tracing::warn!(
                    segment_id = segment.id, error = %err,
                    "create index for segment fail, wait for retry"
                ),
            }
        }
        created
    }

    async fn create_tasks(&self, segment: &SegmentInfo) -> BuilderResult<Vec<BuildId>> {
        let _creating = self.creating.lock().await;
        let mut created = Vec::new();
        for index in self.meta.missing_indexes(segment) {
            let build_id = self
                .allocator
                .alloc_id()
                .await
                .map_err(BuilderError::Allocator)?;
            let record = self
                .meta
                .add_segment_index(segment, index.index_id, build_id)
                .await?;
            // Another writer got there first: its record is already a task (or done).
            if record.build_id != build_id {
                continue;
            }
            tracing::info!(
                segment_id = segment.id,
                collection_id = segment.collection_id,
                index_id = index.index_id,
                build_id,
                "create index for segment"
            );
            self.enqueue(build_id);
            created.push(build_id);
        }
        Ok(created)
    }
}
