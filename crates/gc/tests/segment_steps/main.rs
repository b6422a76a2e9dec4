//! The segment steps (FACTS §3.3, §3.5, §3.6, §3.7) on real segment and index meta and a
//! chunk manager on a temp dir (one case on an in-process S3 server): clearEtcd's rules,
//! scan's rules, GcConfirm, a run under concurrent writers, and the scan's memory bound.
//! Every case runs on the memory store and, with `ETCD_ENDPOINTS`, on etcd.

mod bounded;
mod clear_etcd;
mod concurrent;
mod scan;
mod support;

macro_rules! segment_cases {
    ($factory:path) => {
        datacoord_meta::meta_store_cases!($factory;
            drop_tolerance_is_kept_on_both_sides,
            compaction_sources_wait_for_their_child_index,
            sources_stay_without_an_index_on_the_first_vector_field,
            compacted_source_without_child_waits_for_drop_tolerance,
            active_channel_keeps_segments_past_its_checkpoint,
            channel_checkpoint_goes_with_the_channel,
            storage_failure_keeps_meta_until_files_are_gone,
            missing_files_do_not_block_collection,
            failed_meta_drop_is_retried_next_run,
            gc_confirm_turns_true_once_segments_are_collected,
            referenced_objects_are_kept_in_every_state,
            live_segment_keeps_unreferenced_insert_logs_only,
            orphans_go_only_after_missing_tolerance,
            only_binlog_shaped_objects_under_the_three_prefixes_are_judged,
            pending_compaction_keeps_its_partition,
            legacy_full_paths_are_compared_as_paths,
            paths_outside_gc_directories_are_never_deleted,
            storage_failures_are_counted_and_retried,
            rules_hold_on_s3_keys,
            gc_under_concurrent_writes_never_loses_a_referenced_file,
        );
    };
}

use clear_etcd::*;
use concurrent::*;
use scan::*;

mod memory {
    segment_cases!(milvus_metastore::testing::memory_test_kv);
}

mod etcd {
    segment_cases!(milvus_metastore::testing::etcd_test_kv);
}
