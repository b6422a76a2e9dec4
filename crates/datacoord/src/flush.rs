//! The flush loop: a segment whose binlogs were saved with `flushed` goes Flushing → Flushed, and
//! every [`FlushListener`] hears about it (the index builder today, the compaction trigger next).

use std::sync::Arc;
use std::time::Duration;

use datacoord_index_builder::IndexBuilder;
use datacoord_meta::Meta;
use milvus_proto::common::SegmentState;
use milvus_types::{Backoff, CollectionId, MilvusError, PartitionId, SegmentId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Capacity of the flush queue (2.3.5's flushCh).
pub(crate) const FLUSH_QUEUE: usize = 1024;
const POST_FLUSH_BACKOFF: Backoff = Backoff {
    initial: Duration::from_millis(200),
    max: Duration::from_secs(5),
};

/// A segment that just reached Flushed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlushedSegment {
    /// Its collection.
    pub collection_id: CollectionId,
    /// Its partition.
    pub partition_id: PartitionId,
    /// The segment.
    pub segment_id: SegmentId,
    /// Its DML vchannel.
    pub channel: String,
}

/// Told about every segment the flush loop takes to Flushed, one at a time and in flush order.
/// Runs on the flush loop: queue the work and return, since a listener that blocks holds up
/// every later flush (and the listeners after it). A flush is announced after it is persisted;
/// a crash in between loses the announcement (listeners sweep at start), and a segment queued
/// while the start-up scan also found it is announced twice.
pub trait FlushListener: Send + Sync {
    /// `segment` is Flushed in meta.
    fn segment_flushed(&self, segment: &FlushedSegment);
}

impl FlushListener for IndexBuilder {
    fn segment_flushed(&self, segment: &FlushedSegment) {
        self.on_segment_flushed(segment.segment_id);
    }
}

/// What the flush loop needs: the meta it writes, who to tell, and the rows metric.
pub(crate) struct Flusher {
    pub(crate) meta: Arc<Meta>,
    pub(crate) listeners: Vec<Arc<dyn FlushListener>>,
    /// `milvus_datacoord_stored_rows_count`.
    pub(crate) flushed_rows: prometheus::IntCounter,
}

impl Flusher {
    /// Runs until `token` is cancelled or the queue closes. Flushing segments found at start are
    /// handled first, so a crash between the two states never strands a segment.
    pub(crate) async fn run(self, mut rx: mpsc::Receiver<SegmentId>, token: CancellationToken) {
        let pending = self.meta.segment_ids_in_states(&[SegmentState::Flushing]);
        for segment_id in pending {
            self.post_flush(segment_id, &token).await;
        }
        loop {
            let segment_id = tokio::select! {
                _ = token.cancelled() => return,
                next = rx.recv() => match next {
                    Some(id) => id,
                    None => return,
                },
            };
            self.post_flush(segment_id, &token).await;
        }
    }

    async fn post_flush(&self, segment_id: SegmentId, token: &CancellationToken) {
        // The segment stays Flushing (and is re-queued at the next start) until this write
        // lands; keep trying while the store is unavailable. Stopping may drop a write in
        // flight: the store then holds Flushing or Flushed, and the next start handles both.
        let persisted = milvus_types::retry(
            POST_FLUSH_BACKOFF,
            || async {
                let written = self.meta.set_state(segment_id, SegmentState::Flushed).await;
                written.map_err(MilvusError::from)
            },
            |err, _| {
                warn!(segment_id, error = %err, "post flush failed, retrying");
                true
            },
        );
        tokio::select! {
            _ = token.cancelled() => return,
            _ = persisted => {}
        }
        info!(segment_id, "flush segment done");
        let Some(segment) = self.meta.segment(segment_id) else {
            return;
        };
        self.flushed_rows.inc_by(segment.num_of_rows.max(0) as u64);
        let flushed = FlushedSegment {
            collection_id: segment.collection_id,
            partition_id: segment.partition_id,
            segment_id,
            channel: segment.insert_channel.clone(),
        };
        for listener in &self.listeners {
            listener.segment_flushed(&flushed);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use datacoord_meta::Catalog;
    use datacoord_meta::testing::{Fault, FaultyKv, segment};
    use milvus_metastore::{MemoryKv, MetaKv};

    use super::*;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<FlushedSegment>>);

    impl FlushListener for Recorder {
        fn segment_flushed(&self, segment: &FlushedSegment) {
            self.0.lock().unwrap().push(segment.clone());
        }
    }

    impl Recorder {
        fn ids(&self) -> Vec<SegmentId> {
            self.0
                .lock()
                .unwrap()
                .iter()
                .map(|s| s.segment_id)
                .collect()
        }
    }

    async fn meta_with(kv: Arc<dyn MetaKv>, flushing: &[SegmentId]) -> Arc<Meta> {
        let meta = Meta::load(Catalog::new(kv)).await.unwrap();
        for id in flushing {
            let channel = format!("ch_{}", id % 2);
            let seg = segment(*id, 100, 10 + id % 2, &channel, SegmentState::Flushing);
            meta.add_segment(seg).await.unwrap();
        }
        Arc::new(meta)
    }

    fn flusher(meta: Arc<Meta>, listeners: Vec<Arc<dyn FlushListener>>) -> Flusher {
        Flusher {
            meta,
            listeners,
            flushed_rows: prometheus::IntCounter::new("rows", "rows").unwrap(),
        }
    }

    /// Waits until `done` holds, on the paused clock (a minute of it at most).
    async fn until(done: impl Fn() -> bool) {
        for _ in 0..60_000 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("condition never held");
    }

    #[tokio::test(start_paused = true)]
    async fn every_listener_hears_every_flushed_segment_in_order() {
        let meta = meta_with(Arc::new(MemoryKv::new()), &[1, 2, 3, 4, 5]).await;
        let first = Arc::new(Recorder::default());
        let second = Arc::new(Recorder::default());
        let (tx, rx) = mpsc::channel(FLUSH_QUEUE);
        let token = CancellationToken::new();
        let flusher = flusher(meta.clone(), vec![first.clone(), second.clone()]);
        // Queued before the loop runs: the start-up scan handles them first, then the queue
        // repeats them.
        for id in [4, 2] {
            tx.send(id).await.unwrap();
        }
        let task = tokio::spawn(flusher.run(rx, token.clone()));
        until(|| second.ids().len() == 7).await;
        assert_eq!(first.ids(), vec![1, 2, 3, 4, 5, 4, 2]);
        assert_eq!(second.ids(), first.ids());
        let heard = first.0.lock().unwrap()[1].clone();
        assert_eq!(
            heard,
            FlushedSegment {
                collection_id: 100,
                partition_id: 10,
                segment_id: 2,
                channel: "ch_0".to_string(),
            }
        );
        for id in 1..=5 {
            assert_eq!(meta.segment(id).unwrap().state(), SegmentState::Flushed);
        }
        token.cancel();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_write_is_retried_before_anyone_hears_of_it() {
        let faulty = Arc::new(FaultyKv::new(Arc::new(MemoryKv::new())));
        let meta = meta_with(faulty.clone(), &[]).await;
        let (tx, rx) = mpsc::channel(FLUSH_QUEUE);
        let token = CancellationToken::new();
        let recorder = Arc::new(Recorder::default());
        let task =
            tokio::spawn(flusher(meta.clone(), vec![recorder.clone()]).run(rx, token.clone()));
        meta.add_segment(segment(9, 100, 10, "ch_0", SegmentState::Flushing))
            .await
            .unwrap();
        faulty.fail_after(0, Fault::Rejected);
        tx.send(9).await.unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(meta.segment(9).unwrap().state(), SegmentState::Flushing);
        assert!(recorder.ids().is_empty());
        faulty.heal();
        until(|| recorder.ids() == vec![9]).await;
        assert_eq!(meta.segment(9).unwrap().state(), SegmentState::Flushed);
        token.cancel();
        task.await.unwrap();
    }
}
