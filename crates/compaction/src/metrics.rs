//! The metric compaction feeds: `milvus_datacoord_compacted_segment_size`.

use milvus_proto::data::CompactionResult;
use prometheus::HistogramOpts;

/// Options of `milvus_datacoord_compacted_segment_size` as 2.3.5 registers it (buckets 1, 2,
/// 4, …, 131072); the server creates and registers the histogram and hands it to the engine.
pub fn compacted_segment_size_opts() -> HistogramOpts {
    HistogramOpts::new(
        "compacted_segment_size",
        "the segment size of compacted segment",
    )
    .namespace("milvus")
    .subsystem("datacoord")
    .buckets(prometheus::exponential_buckets(1.0, 2.0, 18).unwrap_or_default())
}

/// What a completed compaction observes: Σ `log_size` of the result's insert and delete logs,
/// in bytes, as 2.3.5 (which adds the delete logs a second time where it meant the stats logs;
/// we count them once).
pub(crate) fn compacted_segment_size(result: &CompactionResult) -> i64 {
    [&result.insert_logs, &result.deltalogs]
        .into_iter()
        .flatten()
        .flat_map(|field| &field.binlogs)
        .fold(0i64, |size, binlog| size.saturating_add(binlog.log_size))
}

#[cfg(test)]
mod tests {
    use milvus_proto::data::{Binlog, FieldBinlog};

    use super::*;

    #[test]
    fn size_counts_insert_and_delete_logs_once() {
        let logs = |sizes: &[i64]| {
            vec![FieldBinlog {
                field_id: 0,
                binlogs: sizes
                    .iter()
                    .map(|size| Binlog {
                        log_size: *size,
                        ..Binlog::default()
                    })
                    .collect(),
            }]
        };
        let result = CompactionResult {
            insert_logs: logs(&[100, 20]),
            deltalogs: logs(&[3]),
            field2_statslog_paths: logs(&[4000]),
            ..CompactionResult::default()
        };
        assert_eq!(compacted_segment_size(&result), 123);
        let buckets = compacted_segment_size_opts().buckets;
        assert_eq!(buckets.first(), Some(&1.0));
        assert_eq!(buckets.last(), Some(&131072.0));
        assert_eq!(buckets.len(), 18);
    }
}
