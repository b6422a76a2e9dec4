//! Many proxies allocating at once: no row lost, no segment over capacity.

use std::collections::HashMap;
use std::sync::Arc;

use milvus_proto::common::SegmentState;
use milvus_types::SegmentId;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_allocations_conserve_rows_and_respect_capacity() {
    let h = Arc::new(harness().await);
    let tasks = 32;
    let per_task = 20;
    let mut handles = Vec::new();
    for task in 0..tasks {
        let h = h.clone();
        handles.push(tokio::spawn(async move {
            let mut requested = 0;
            let mut got = Vec::new();
            for i in 0..per_task {
                // Sizes from 1 to 1500: some span several segments, most share them.
                let rows = ((task * 7919 + i * 104_729) % 1500 + 1) as i64;
                requested += rows;
                got.extend(
                    h.manager
                        .alloc_segment(COLL, PART, CH, rows, &schema())
                        .await
                        .unwrap(),
                );
                if i % 5 == 0 {
                    // Ticks and stats interleave; ts 0 expires nothing and seals nothing.
                    h.manager.update_segment_stats(&[(got[0].segment_id, 1)]);
                    h.manager.flushable_on_tick(CH, 0).await.unwrap();
                }
            }
            (requested, got)
        }));
    }
    let mut requested = 0;
    let mut per_segment: HashMap<SegmentId, i64> = HashMap::new();
    for handle in handles {
        let (task_requested, allocations) = handle.await.unwrap();
        requested += task_requested;
        for a in allocations {
            *per_segment.entry(a.segment_id).or_default() += a.num_of_rows;
        }
    }
    assert_eq!(per_segment.values().sum::<i64>(), requested);
    for (id, rows) in &per_segment {
        assert!(*rows <= MAX_ROWS, "segment {id} got {rows} rows");
        assert_eq!(h.state(*id), SegmentState::Growing);
        assert_eq!(h.manager.runtime(*id).unwrap().allocated_rows, *rows);
    }
    let mut managed = h.manager.managed_segments();
    managed.sort_unstable();
    let mut allocated: Vec<SegmentId> = per_segment.keys().copied().collect();
    allocated.sort_unstable();
    assert_eq!(managed, allocated);
    assert_eq!(h.store.all().len(), managed.len());
}
