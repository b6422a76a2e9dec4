//! 2.3.5's plan arithmetic (FACTS-index-compaction-gc.md §2.4–§2.6), one test per rule and per
//! boundary, both sides. Expected values are derived by hand from the 2.3.5 Go source
//! (`compaction_trigger.go`); each test says how in one line.

use std::sync::Arc;
use std::time::Duration;

use datacoord_compaction::policy::{
    GroupContext, PolicyConfig, collection_ttl, expire_ts, max_rows, plan_buckets,
    should_compact_alone,
};
use milvus_config::DataCoordConfig;
use milvus_proto::common::{KeyValuePair, SegmentState};
use milvus_proto::data::{Binlog, FieldBinlog, SegmentInfo};
use milvus_proto::schema::{CollectionSchema, DataType, FieldSchema};
use milvus_types::{ErrorCode, compose_ts};

// ---------------------------------------------------------------------------------------------
// Fixtures

fn config() -> PolicyConfig {
    PolicyConfig::from_config(&DataCoordConfig::default())
}

fn config_with(change: impl FnOnce(&mut DataCoordConfig)) -> PolicyConfig {
    let mut config = DataCoordConfig::default();
    change(&mut config);
    PolicyConfig::from_config(&config)
}

fn never_upgrade(_: &SegmentInfo) -> bool {
    false
}

fn always_upgrade(_: &SegmentInfo) -> bool {
    true
}

fn ctx(max_rows: i64) -> GroupContext<'static> {
    GroupContext {
        max_rows,
        force: false,
        expire_ts: None,
        has_diskann: false,
        needs_index_upgrade: &never_upgrade,
    }
}

fn forced(max_rows: i64) -> GroupContext<'static> {
    GroupContext {
        force: true,
        ..ctx(max_rows)
    }
}

/// A flushed segment of `rows` rows with no logs. `max_row_num` is deliberately unrelated to the
/// group's max rows: plan generation must use the context's value.
fn segment(id: i64, rows: i64) -> SegmentInfo {
    SegmentInfo {
        id,
        collection_id: 1,
        partition_id: 2,
        insert_channel: "by-dev-rootcoord-dml_0_1v0".into(),
        num_of_rows: rows,
        state: SegmentState::Flushed as i32,
        max_row_num: 7,
        ..Default::default()
    }
}

/// One field's `count` logs (logID form, no paths), each with `entries` rows and `size` bytes.
fn logs(count: usize, entries: i64, size: i64, timestamp_to: u64) -> Vec<FieldBinlog> {
    vec![FieldBinlog {
        field_id: 100,
        binlogs: (0..count)
            .map(|index| Binlog {
                entries_num: entries,
                timestamp_from: 1,
                timestamp_to,
                log_path: String::new(),
                log_size: size,
                log_id: index as i64 + 1,
            })
            .collect(),
    }]
}

/// A segment that rule 2 prioritizes (201 empty delta logs) and nothing else marks.
fn prioritized(id: i64, rows: i64) -> SegmentInfo {
    SegmentInfo {
        deltalogs: logs(201, 0, 0, 1),
        ..segment(id, rows)
    }
}

fn group(segments: Vec<SegmentInfo>) -> Vec<Arc<SegmentInfo>> {
    segments.into_iter().map(Arc::new).collect()
}

fn plan_ids(plans: &[Vec<Arc<SegmentInfo>>]) -> Vec<Vec<i64>> {
    plans
        .iter()
        .map(|plan| plan.iter().map(|segment| segment.id).collect())
        .collect()
}

fn plans_of(
    segments: Vec<SegmentInfo>,
    ctx: &GroupContext<'_>,
    config: &PolicyConfig,
) -> Vec<Vec<i64>> {
    plan_ids(&plan_buckets(group(segments), ctx, config))
}

fn alone(segment: &SegmentInfo) -> bool {
    should_compact_alone(segment, &ctx(1000), &config())
}

fn property(key: &str, value: &str) -> KeyValuePair {
    KeyValuePair {
        key: key.into(),
        value: value.into(),
    }
}

fn ttl_property(value: &str) -> Vec<KeyValuePair> {
    vec![property("collection.ttl.seconds", value)]
}

/// RowID + Timestamp (2 × 8 bytes) + a FloatVector of `dim`.
fn schema(dim: i64) -> CollectionSchema {
    let int64 = |id: i64, name: &str| FieldSchema {
        field_id: id,
        name: name.into(),
        data_type: DataType::Int64 as i32,
        ..Default::default()
    };
    CollectionSchema {
        name: "c".into(),
        fields: vec![
            int64(0, "RowID"),
            int64(1, "Timestamp"),
            FieldSchema {
                field_id: 100,
                name: "vec".into(),
                data_type: DataType::FloatVector as i32,
                type_params: vec![property("dim", &dim.to_string())],
                ..Default::default()
            },
        ],
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------------------------
// §2.4 max rows

#[test]
fn max_rows_matches_persisted_2_3_5_values() {
    // FACTS §2.4: 8388608 for a 64-byte row, 9586980 for a 56-byte row (512 MiB, truncated).
    assert_eq!(max_rows(&schema(12), false, &config()).unwrap(), 8_388_608);
    assert_eq!(max_rows(&schema(10), false, &config()).unwrap(), 9_586_980);
}

#[test]
fn max_rows_with_diskann_uses_disk_segment_max_size() {
    let disk = config_with(|c| c.datacoord.segment.disk_segment_max_size_mb = 2048.0);
    // 2048 MiB / 64 bytes.
    assert_eq!(max_rows(&schema(12), true, &disk).unwrap(), 33_554_432);
    assert_eq!(max_rows(&schema(12), false, &disk).unwrap(), 8_388_608);
}

#[test]
fn max_rows_of_unsizable_schema_is_an_error() {
    let empty = CollectionSchema::default();
    let err = max_rows(&empty, false, &config()).unwrap_err();
    assert_eq!(err.code(), ErrorCode::PARAMETER_INVALID);
    let mut no_max_length = schema(4);
    no_max_length.fields.push(FieldSchema {
        name: "s".into(),
        data_type: DataType::VarChar as i32,
        ..Default::default()
    });
    assert!(max_rows(&no_max_length, false, &config()).is_err());
}

// ---------------------------------------------------------------------------------------------
// §2.5 rule 3 inputs: TTL and expireTs

#[test]
fn collection_ttl_property_overrides_entity_expiration() {
    let hundred = config_with(|c| c.common.entity_expiration = Some(Duration::from_secs(100)));
    let ttl = collection_ttl(&ttl_property("10"), &hundred).unwrap();
    assert_eq!(ttl, Some(Duration::from_secs(10)));
}

#[test]
fn collection_ttl_falls_back_to_entity_expiration() {
    let hour = config_with(|c| c.common.entity_expiration = Some(Duration::from_secs(3600)));
    let unrelated = vec![property("collection.autocompaction.enabled", "false")];
    assert_eq!(
        collection_ttl(&unrelated, &hour).unwrap(),
        Some(Duration::from_secs(3600))
    );
    // Default common.entityExpiration is -1: no TTL.
    assert_eq!(collection_ttl(&[], &config()).unwrap(), None);
}

#[test]
fn collection_ttl_not_positive_is_none() {
    assert_eq!(collection_ttl(&ttl_property("0"), &config()).unwrap(), None);
    assert_eq!(
        collection_ttl(&ttl_property("-5"), &config()).unwrap(),
        None
    );
    assert_eq!(
        collection_ttl(&ttl_property("1"), &config()).unwrap(),
        Some(Duration::from_secs(1))
    );
    let zero = config_with(|c| c.common.entity_expiration = Some(Duration::ZERO));
    assert_eq!(collection_ttl(&[], &zero).unwrap(), None);
}

#[test]
fn collection_ttl_parses_like_go_atoi() {
    assert_eq!(
        collection_ttl(&ttl_property("+10"), &config()).unwrap(),
        Some(Duration::from_secs(10))
    );
    for bad in ["error", "1.5", " 10", "", "10s", "99999999999999999999"] {
        let err = collection_ttl(&ttl_property(bad), &config()).unwrap_err();
        assert_eq!(err.code(), ErrorCode::PARAMETER_INVALID, "{bad:?}");
    }
}

#[test]
fn collection_ttl_last_property_wins() {
    // 2.3.5 turns the property list into a map.
    let properties = vec![
        property("collection.ttl.seconds", "10"),
        property("collection.ttl.seconds", "20"),
    ];
    assert_eq!(
        collection_ttl(&properties, &config()).unwrap(),
        Some(Duration::from_secs(20))
    );
}

#[test]
fn collection_ttl_beyond_i64_nanoseconds_is_none() {
    // Deviation: 2.3.5's Duration(ttl)*Second wraps past i64::MAX ns (9223372036.85 s).
    assert_eq!(
        collection_ttl(&ttl_property("9223372036"), &config()).unwrap(),
        Some(Duration::from_secs(9_223_372_036))
    );
    assert_eq!(
        collection_ttl(&ttl_property("9223372037"), &config()).unwrap(),
        None
    );
}

#[test]
fn expire_ts_subtracts_ttl_from_physical_time() {
    // compose(physical − ttl, 0): the logical part of "now" is dropped.
    let now = compose_ts(1_700_000_000_123, 77);
    assert_eq!(
        expire_ts(now, Duration::from_secs(10)),
        compose_ts(1_699_999_990_123, 0)
    );
}

#[test]
fn expire_ts_truncates_sub_millisecond_ttl() {
    // UnixNano()/1e6 truncates: 1000 ms − 1.5 ms = 998.5 ms → 998.
    let now = compose_ts(1000, 0);
    assert_eq!(
        expire_ts(now, Duration::from_micros(1500)),
        compose_ts(998, 0)
    );
}

#[test]
fn expire_ts_before_epoch_is_zero() {
    // Deviation: 2.3.5 composes a negative physical time into a huge TSO (everything expired).
    let now = compose_ts(1000, 5);
    assert_eq!(expire_ts(now, Duration::from_secs(1)), 0);
    assert_eq!(expire_ts(now, Duration::from_secs(2)), 0);
    assert_eq!(expire_ts(now, Duration::from_secs(u64::MAX)), 0);
}

// ---------------------------------------------------------------------------------------------
// §2.5 rules

#[test]
fn plain_segment_is_not_compacted_alone() {
    assert!(!alone(&segment(1, 1000)));
}

#[test]
fn stats_logs_over_twice_binlogs_per_segment_prioritize() {
    // 512 MiB / 64 MiB = 8; statsLog > 8*2.
    let at_limit = SegmentInfo {
        statslogs: logs(16, 1, 1, 1),
        ..segment(1, 1000)
    };
    let over = SegmentInfo {
        statslogs: logs(17, 1, 1, 1),
        ..segment(1, 1000)
    };
    assert!(!alone(&at_limit));
    assert!(alone(&over));
}

#[test]
fn stats_logs_counted_across_fields() {
    let mut statslogs = logs(9, 1, 1, 1);
    statslogs.extend(logs(8, 1, 1, 1));
    assert!(alone(&SegmentInfo {
        statslogs,
        ..segment(1, 1000)
    }));
}

#[test]
fn stats_logs_of_compacted_segments_are_not_counted() {
    let compacted = SegmentInfo {
        statslogs: logs(1000, 1, 1, 1),
        compaction_from: vec![3, 4],
        ..segment(1, 1000)
    };
    assert!(!alone(&compacted));
}

#[test]
fn stats_logs_with_diskann_use_disk_segment_max_size() {
    // 2048 MiB / 64 MiB = 32; statsLog > 64.
    let disk_config = config_with(|c| c.datacoord.segment.disk_segment_max_size_mb = 2048.0);
    let disk = GroupContext {
        has_diskann: true,
        ..ctx(1000)
    };
    let at_limit = SegmentInfo {
        statslogs: logs(64, 1, 1, 1),
        ..segment(1, 1000)
    };
    let over = SegmentInfo {
        statslogs: logs(65, 1, 1, 1),
        ..segment(1, 1000)
    };
    assert!(!should_compact_alone(&at_limit, &disk, &disk_config));
    assert!(should_compact_alone(&over, &disk, &disk_config));
    assert!(should_compact_alone(&at_limit, &ctx(1000), &disk_config));
}

#[test]
fn stats_log_rule_is_off_when_binlog_max_size_is_zero() {
    // Deviation: 2.3.5 divides by zero here (panic).
    let no_binlog_size = config_with(|c| c.datanode.binlog_max_size = 0);
    let many = SegmentInfo {
        statslogs: logs(1000, 1, 1, 1),
        ..segment(1, 1000)
    };
    assert!(!should_compact_alone(&many, &ctx(1000), &no_binlog_size));
}

#[test]
fn fractional_segment_max_size_keeps_stats_log_limit() {
    // Deviation: 2.3.5 reads "512.5" as int 0 here (limit 0); 512.5 MiB / 64 MiB = 8 → 16.
    let fractional = config_with(|c| c.datacoord.segment.max_size_mb = 512.5);
    let one = SegmentInfo {
        statslogs: logs(1, 1, 1, 1),
        ..segment(1, 1000)
    };
    let over = SegmentInfo {
        statslogs: logs(17, 1, 1, 1),
        ..segment(1, 1000)
    };
    assert!(!should_compact_alone(&one, &ctx(1000), &fractional));
    assert!(should_compact_alone(&over, &ctx(1000), &fractional));
}

#[test]
fn delta_log_count_over_maxnum_prioritizes() {
    // deltaLog > single.deltalog.maxnum (200); empty logs so rule 4 stays silent.
    let at_limit = SegmentInfo {
        deltalogs: logs(200, 0, 0, 1),
        ..segment(1, 1000)
    };
    let over = SegmentInfo {
        deltalogs: logs(201, 0, 0, 1),
        ..segment(1, 1000)
    };
    assert!(!alone(&at_limit));
    assert!(alone(&over));
}

#[test]
fn delta_log_count_applies_to_compacted_segments() {
    let compacted = SegmentInfo {
        deltalogs: logs(201, 0, 0, 1),
        compaction_from: vec![3],
        ..segment(1, 1000)
    };
    assert!(alone(&compacted));
}

fn with_ttl(expire: u64) -> GroupContext<'static> {
    GroupContext {
        expire_ts: Some(expire),
        ..ctx(1000)
    }
}

#[test]
fn expired_ratio_at_threshold_prioritizes() {
    // expiredRows/num_of_rows >= 0.2: 200/1000 yes, 199/1000 no.
    let at = SegmentInfo {
        binlogs: logs(1, 200, 1, 99),
        ..segment(1, 1000)
    };
    let below = SegmentInfo {
        binlogs: logs(1, 199, 1, 99),
        ..segment(1, 1000)
    };
    assert!(should_compact_alone(&at, &with_ttl(100), &config()));
    assert!(!should_compact_alone(&below, &with_ttl(100), &config()));
}

#[test]
fn binlog_expires_only_strictly_below_expire_ts() {
    // timestamp_to < expireTs.
    let all_rows = SegmentInfo {
        binlogs: logs(1, 1000, 1, 100),
        ..segment(1, 1000)
    };
    assert!(!should_compact_alone(&all_rows, &with_ttl(100), &config()));
    assert!(should_compact_alone(&all_rows, &with_ttl(101), &config()));
}

#[test]
fn expired_size_over_limit_prioritizes() {
    // expiredSize > 10485760, with a 1/1000 ratio.
    let at_limit = SegmentInfo {
        binlogs: logs(1, 1, 10_485_760, 99),
        ..segment(1, 1000)
    };
    let over = SegmentInfo {
        binlogs: logs(1, 1, 10_485_761, 99),
        ..segment(1, 1000)
    };
    assert!(!should_compact_alone(&at_limit, &with_ttl(100), &config()));
    assert!(should_compact_alone(&over, &with_ttl(100), &config()));
}

#[test]
fn expired_logs_summed_across_binlogs() {
    // Two logs of 100 rows: 200/1000.
    let two = SegmentInfo {
        binlogs: logs(2, 100, 1, 99),
        ..segment(1, 1000)
    };
    assert!(should_compact_alone(&two, &with_ttl(100), &config()));
}

#[test]
fn nothing_expires_without_ttl() {
    let old = SegmentInfo {
        binlogs: logs(3, 1000, 100_000_000, 0),
        ..segment(1, 1000)
    };
    assert!(!alone(&old));
}

#[test]
fn deleted_ratio_at_threshold_prioritizes() {
    // deletedRows/num_of_rows >= 0.2.
    let at = SegmentInfo {
        deltalogs: logs(2, 100, 1, 1),
        ..segment(1, 1000)
    };
    let below = SegmentInfo {
        deltalogs: logs(1, 199, 1, 1),
        ..segment(1, 1000)
    };
    assert!(alone(&at));
    assert!(!alone(&below));
}

#[test]
fn delete_log_size_over_limit_prioritizes() {
    // deleteLogSize > 2097152.
    let at_limit = SegmentInfo {
        deltalogs: logs(1, 1, 2_097_152, 1),
        ..segment(1, 1000)
    };
    let over = SegmentInfo {
        deltalogs: logs(1, 1, 2_097_153, 1),
        ..segment(1, 1000)
    };
    assert!(!alone(&at_limit));
    assert!(alone(&over));
}

#[test]
fn zero_rows_without_deletes_is_not_prioritized() {
    // 0/0 is NaN, and NaN >= threshold is false even for a threshold of 0.
    let zero_threshold = config_with(|c| c.datacoord.compaction.single_ratio_threshold = 0.0);
    assert!(!alone(&segment(1, 0)));
    assert!(!should_compact_alone(
        &segment(1, 0),
        &ctx(1000),
        &zero_threshold
    ));
}

#[test]
fn zero_rows_with_deletes_is_prioritized() {
    // 1/0 is +Inf >= 0.2.
    let deleted = SegmentInfo {
        deltalogs: logs(1, 1, 1, 1),
        ..segment(1, 0)
    };
    assert!(alone(&deleted));
    let expired = SegmentInfo {
        binlogs: logs(1, 1, 1, 5),
        ..segment(1, 0)
    };
    assert!(should_compact_alone(&expired, &with_ttl(6), &config()));
}

#[test]
fn zero_ratio_threshold_prioritizes_every_segment_with_rows() {
    // Rule 3 runs even without a TTL: 0/1000 >= 0.
    let zero_threshold = config_with(|c| c.datacoord.compaction.single_ratio_threshold = 0.0);
    assert!(should_compact_alone(
        &segment(1, 1000),
        &ctx(1000),
        &zero_threshold
    ));
}

#[test]
fn index_upgrade_only_with_auto_upgrade_segment_index() {
    let upgrade = GroupContext {
        needs_index_upgrade: &always_upgrade,
        ..ctx(1000)
    };
    let enabled = config_with(|c| c.datacoord.auto_upgrade_segment_index = true);
    assert!(!should_compact_alone(
        &segment(1, 1000),
        &upgrade,
        &config()
    ));
    assert!(should_compact_alone(&segment(1, 1000), &upgrade, &enabled));
    assert!(!should_compact_alone(
        &segment(1, 1000),
        &ctx(1000),
        &enabled
    ));
}

#[test]
fn forced_group_prioritizes_every_segment() {
    assert!(should_compact_alone(
        &segment(1, 1000),
        &forced(1000),
        &config()
    ));
}

// ---------------------------------------------------------------------------------------------
// §2.6 plan generation

#[test]
fn empty_group_has_no_plan() {
    assert!(plan_buckets(Vec::new(), &ctx(1000), &config()).is_empty());
}

#[test]
fn lone_small_segment_makes_no_plan() {
    assert!(plans_of(vec![segment(1, 10)], &ctx(1000), &config()).is_empty());
}

#[test]
fn forced_single_segment_gets_a_plan() {
    assert_eq!(
        plans_of(vec![segment(1, 10)], &forced(1000), &config()),
        vec![vec![1]]
    );
}

#[test]
fn prioritized_segment_at_max_rows_stays_alone() {
    // Only rows < max rows look for company: 999 takes the 0-row segment, 1000 does not. At
    // exactly max rows only a (corrupt) negative count would fit the zero free space, so that
    // is what shows the comparison is strict.
    let below = vec![segment(1, 999), segment(2, 0)];
    let at = vec![segment(1, 1000), segment(2, 0)];
    let at_with_negative = vec![segment(1, 1000), segment(2, -5)];
    assert_eq!(plans_of(below, &forced(1000), &config()), vec![vec![1, 2]]);
    assert_eq!(
        plans_of(at, &forced(1000), &config()),
        vec![vec![1], vec![2]]
    );
    assert_eq!(
        plans_of(at_with_negative, &forced(1000), &config()),
        vec![vec![1], vec![2]]
    );
}

#[test]
fn prioritized_greedy_needs_rows_strictly_below_free() {
    // free = 1000 − 500 = 500: 499 fits, 500 does not.
    let fits = vec![segment(1, 500), segment(2, 499)];
    let does_not = vec![segment(1, 500), segment(2, 500)];
    assert_eq!(plans_of(fits, &forced(1000), &config()), vec![vec![1, 2]]);
    assert_eq!(
        plans_of(does_not, &forced(1000), &config()),
        vec![vec![1], vec![2]]
    );
}

#[test]
fn prioritized_sorted_by_rows_desc_then_id_asc() {
    // Each 600+ segment fills more than half: one plan each, in sort order.
    let segments = vec![segment(5, 600), segment(3, 600), segment(9, 700)];
    assert_eq!(
        plans_of(segments, &forced(1000), &config()),
        vec![vec![9], vec![3], vec![5]]
    );
}

#[test]
fn prioritized_bucket_capped_at_max_segment() {
    // 31 one-row forced segments: [1..=30] then [31].
    let segments = (1..=31).map(|id| segment(id, 1)).collect();
    let plans = plans_of(segments, &forced(1000), &config());
    assert_eq!(plans, vec![(1..=30).collect::<Vec<_>>(), vec![31]]);
}

#[test]
fn prioritized_bucket_fills_with_small_segments_front_to_back() {
    // P 500 takes P2 300 (free 200), then smalls largest first: 150 (free 50); 100 is left
    // alone and then expands into the plan (950 + 100 <= 1250, 100 < 250).
    let segments = vec![
        prioritized(1, 500),
        prioritized(2, 300),
        segment(3, 100),
        segment(4, 150),
    ];
    assert_eq!(
        plans_of(segments, &ctx(1000), &config()),
        vec![vec![1, 2, 4, 3]]
    );
}

#[test]
fn small_segment_is_strictly_below_half_max_rows() {
    // A 499 is small: [A, C] (799, 2 segments) fails, then B alone; all left over, no plan.
    // A 500 is non-planned: smalls [B, C] fail, then A pulls C and B (1100 <= 1250).
    let small = vec![segment(1, 499), segment(2, 300), segment(3, 300)];
    let non_planned = vec![segment(1, 500), segment(2, 300), segment(3, 300)];
    assert!(plans_of(small, &ctx(1000), &config()).is_empty());
    assert_eq!(
        plans_of(non_planned, &ctx(1000), &config()),
        vec![vec![1, 3, 2]]
    );
}

#[test]
fn small_threshold_truncates_to_an_integer() {
    // int64(1001 × 0.5) = 500, so 500 rows is not small (500 < 500.5 would say it is).
    let segments = vec![segment(1, 500), segment(2, 300), segment(3, 300)];
    assert_eq!(
        plans_of(segments, &ctx(1001), &config()),
        vec![vec![1, 3, 2]]
    );
}

#[test]
fn small_sorted_by_rows_desc_then_id_asc() {
    // Pop 4 (300, lower ID), then from the end: 2, 1 (100s, ID ascending), 7.
    let segments = vec![
        segment(7, 300),
        segment(1, 100),
        segment(4, 300),
        segment(2, 100),
    ];
    assert_eq!(
        plans_of(segments, &ctx(1000), &config()),
        vec![vec![4, 2, 1, 7]]
    );
}

#[test]
fn twelve_small_segments_make_one_plan() {
    // Pop 1 (free 950), then 12..2 from the end: 550 rows in all.
    let segments = (1..=12).map(|id| segment(id, 50)).collect();
    let mut expected = vec![1];
    expected.extend((2..=12).rev());
    assert_eq!(plans_of(segments, &ctx(1000), &config()), vec![expected]);
}

#[test]
fn thirty_one_small_segments_cap_a_bucket_at_max_segment() {
    // Pop 2 (2600, free 7400); from the end 31..3 (29 × 100) fit and hit the cap, so 1 (2500,
    // it would still fit in 4500) stays out; 2500 is not < int64(10000 × 0.25): no expansion.
    let mut segments = vec![segment(1, 2500), segment(2, 2600)];
    segments.extend((3..=31).map(|id| segment(id, 100)));
    let mut expected = vec![2];
    expected.extend((3..=31).rev());
    assert_eq!(
        plans_of(segments.clone(), &ctx(10_000), &config()),
        vec![expected]
    );

    let wider = config_with(|c| c.datacoord.compaction.max_segment = 31);
    assert_eq!(plans_of(segments, &ctx(10_000), &wider)[0].len(), 31);
}

#[test]
fn two_segment_bucket_needs_more_than_compactable_proportion() {
    // len >= min.segment (3) or (len > 1 and rows > int64(1000 × 0.85) = 850).
    let over = vec![segment(1, 450), segment(2, 401)];
    let at = vec![segment(1, 450), segment(2, 400)];
    assert_eq!(plans_of(over, &ctx(1000), &config()), vec![vec![1, 2]]);
    assert!(plans_of(at.clone(), &ctx(1000), &config()).is_empty());

    let min_two = config_with(|c| c.datacoord.compaction.min_segment = 2);
    assert_eq!(plans_of(at, &ctx(1000), &min_two), vec![vec![1, 2]]);
}

#[test]
fn compactable_proportion_below_small_proportion_uses_small() {
    // max(0.3, 0.5) × 1000 = 500: 260 + 240 = 500 is not above it, 260 + 241 is.
    let low_compactable = config_with(|c| c.datacoord.segment.compactable_proportion = 0.3);
    let at = vec![segment(1, 260), segment(2, 240)];
    let over = vec![segment(1, 260), segment(2, 241)];
    assert!(plans_of(at, &ctx(1000), &low_compactable).is_empty());
    assert_eq!(
        plans_of(over, &ctx(1000), &low_compactable),
        vec![vec![1, 2]]
    );
}

#[test]
fn expansion_appends_leftover_small_segment_to_emitted_plan() {
    // Pop 1 (480, free 520), take 4, 3 (249 each, free 22); 2 is left and 249 < 250: appended
    // (978 + 249 = 1227 <= 1250).
    let segments = vec![
        segment(1, 480),
        segment(2, 249),
        segment(3, 249),
        segment(4, 249),
    ];
    assert_eq!(
        plans_of(segments, &ctx(1000), &config()),
        vec![vec![1, 4, 3, 2]]
    );
}

#[test]
fn expansion_needs_rows_strictly_below_expansion_rate_minus_one() {
    // As above with 250s: 250 is not < int64(1000 × 0.25), so 2 stays out.
    let segments = vec![
        segment(1, 480),
        segment(2, 250),
        segment(3, 250),
        segment(4, 250),
    ];
    assert_eq!(
        plans_of(segments, &ctx(1000), &config()),
        vec![vec![1, 4, 3]]
    );
}

#[test]
fn expansion_limit_is_inclusive() {
    // Prioritized 1010 alone; leftover 240: 1010 + 240 = 1250 <= 1250, 1011 + 240 is not.
    let at = vec![prioritized(1, 1010), segment(2, 240)];
    let over = vec![prioritized(1, 1011), segment(2, 240)];
    assert_eq!(plans_of(at, &ctx(1000), &config()), vec![vec![1, 2]]);
    assert_eq!(plans_of(over, &ctx(1000), &config()), vec![vec![1]]);
}

#[test]
fn expansion_goes_to_the_first_plan_with_room() {
    // Plans [1] (1200) and [2] (1010): 240 overfills the first, fits the second.
    let segments = vec![prioritized(1, 1200), prioritized(2, 1010), segment(3, 240)];
    assert_eq!(
        plans_of(segments, &ctx(1000), &config()),
        vec![vec![1], vec![2, 3]]
    );
}

#[test]
fn expansion_visits_leftovers_from_last_to_first() {
    // Leftovers [10 (240), 11 (230)]: 11 goes first (1010 + 230 = 1240), then 10 no longer fits.
    let segments = vec![prioritized(1, 1010), segment(10, 240), segment(11, 230)];
    assert_eq!(plans_of(segments, &ctx(1000), &config()), vec![vec![1, 11]]);
}

#[test]
fn non_planned_segment_pulls_remaining_small_ones() {
    // Smalls [2 (300), 3 (200)] fail (500 <= 850); 1 pulls 3 then 2 from the end up to 1250:
    // 750 + 200 + 300 = 1250 fits, 751 + 200 + 300 does not (3 only).
    let at = vec![segment(1, 750), segment(2, 300), segment(3, 200)];
    let over = vec![segment(1, 751), segment(2, 300), segment(3, 200)];
    assert_eq!(plans_of(at, &ctx(1000), &config()), vec![vec![1, 3, 2]]);
    assert_eq!(plans_of(over, &ctx(1000), &config()), vec![vec![1, 3]]);
}

#[test]
fn non_planned_segment_alone_makes_no_plan() {
    assert!(plans_of(vec![segment(1, 900)], &ctx(1000), &config()).is_empty());
}

#[test]
fn non_planned_sorted_by_rows_asc_then_id_desc() {
    // Non-planned 1 (700), 2 (600), 3 (600): 3 comes first and takes the leftover 4.
    let segments = vec![
        segment(1, 700),
        segment(2, 600),
        segment(3, 600),
        segment(4, 100),
    ];
    assert_eq!(plans_of(segments, &ctx(1000), &config()), vec![vec![3, 4]]);
}

#[test]
fn plans_follow_prioritized_then_small_then_non_planned() {
    // 1 (1000) prioritized, alone. Smalls 2 (400), 3 (300), 8 (260), 4, 5 (100): pop 2 (free
    // 600), take 5, 4, 8 (free 140) → [2, 5, 4, 8]; 3 is left (300, not expandable).
    // Non-planned 6 (900) pulls 3 (1200 <= 1250).
    let segments = vec![
        segment(6, 900),
        segment(5, 100),
        segment(4, 100),
        segment(8, 260),
        segment(3, 300),
        segment(2, 400),
        prioritized(1, 1000),
    ];
    assert_eq!(
        plans_of(segments, &ctx(1000), &config()),
        vec![vec![1], vec![2, 5, 4, 8], vec![6, 3]]
    );
}

#[test]
fn stored_max_row_num_is_ignored() {
    // Every fixture segment stores max_row_num 7; with it 10 and 20 rows would not be small.
    let segments = vec![segment(1, 10), segment(2, 20), segment(3, 30)];
    assert_eq!(
        plans_of(segments, &ctx(1000), &config()),
        vec![vec![3, 1, 2]]
    );
}

#[test]
fn ttl_expired_segment_gets_its_own_plan() {
    // Rule 3 prioritizes it; a prioritized plan is emitted even with one segment.
    let expired = SegmentInfo {
        binlogs: logs(1, 500, 1, 10),
        ..segment(1, 1000)
    };
    let ctx = GroupContext {
        expire_ts: Some(11),
        ..ctx(1000)
    };
    assert_eq!(plans_of(vec![expired], &ctx, &config()), vec![vec![1]]);
}

#[test]
fn go_random_size_scenario_gives_four_plans() {
    // 2.3.5's Test_compactionTrigger_noplan_random_size: 50 segments, max 512 → plans of
    // 24, 12, 8 and 3 segments; IDs derived by hand from generatePlans.
    let sizes: [i64; 50] = [
        510, 500, 480, 300, 250, 200, 128, 128, 128, 127, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40,
        20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10,
        10, 10, 10, 10, 10, 10, 10,
    ];
    let segments = sizes
        .iter()
        .enumerate()
        .map(|(id, rows)| segment(id as i64, *rows))
        .collect();
    let plans = plans_of(segments, &ctx(512), &config());
    let lengths: Vec<usize> = plans.iter().map(Vec::len).collect();
    assert_eq!(lengths, vec![24, 12, 8, 3]);

    let mut first = vec![4];
    first.extend((30..=49).rev());
    first.extend([29, 28, 27]);
    let mut second = vec![5];
    second.extend((20..=26).rev());
    second.extend([19, 18, 17, 16]);
    let mut third = vec![6];
    third.extend((10..=15).rev());
    third.push(9);
    assert_eq!(plans, vec![first, second, third, vec![3, 8, 7]]);
}

#[test]
fn corrupt_counts_do_not_panic() {
    // Go's int64 arithmetic wraps; ours must not overflow-panic either.
    let extreme = || {
        vec![
            SegmentInfo {
                binlogs: logs(2, i64::MAX, i64::MAX, 1),
                deltalogs: logs(2, i64::MAX, i64::MAX, 1),
                ..segment(1, i64::MAX)
            },
            segment(2, i64::MIN),
            segment(3, i64::MAX),
            segment(4, -1),
            segment(5, 0),
        ]
    };
    for max_rows in [i64::MIN, -1, 0, 1, i64::MAX] {
        for force in [false, true] {
            let ctx = GroupContext {
                force,
                expire_ts: Some(u64::MAX),
                ..ctx(max_rows)
            };
            let planned: usize = plan_buckets(group(extreme()), &ctx, &config())
                .iter()
                .map(Vec::len)
                .sum();
            assert!(planned <= 5, "max_rows {max_rows}");
        }
    }
}
