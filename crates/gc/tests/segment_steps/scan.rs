//! scan (FACTS §3.5, §3.7): which objects under the three binlog prefixes go.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use datacoord_gc::GcConfig;
use datacoord_gc::testing::{StorageFixture, age_local_file};
use milvus_metastore::MetaKv;
use milvus_proto::common::SegmentState;
use milvus_proto::data::{Binlog, FieldBinlog};
use milvus_storage::{delta_log_path, insert_log_path, stats_log_path};
use prost::Message;

use crate::support::{CHANNEL, COLL, Env, HOUR, MINUTE, PART, config, dropped, unix_ns_ago};

/// Writes `paths` and sets their modification time `age` ago.
async fn plant(env: &Env, paths: &[String], age: Duration) {
    env.fx.write_all(paths).await;
    for path in paths {
        age_local_file(path, age);
    }
}

/// Insert, stats and delta objects of segment `seg` in `part` with log ID `log`.
fn three_kinds(env: &Env, part: i64, seg: i64, log: i64) -> Vec<String> {
    vec![
        insert_log_path(&env.root, COLL, part, seg, 100, log),
        stats_log_path(&env.root, COLL, part, seg, 100, log),
        delta_log_path(&env.root, COLL, part, seg, log),
    ]
}

pub async fn referenced_objects_are_kept_in_every_state(kv: Arc<dyn MetaKv>) {
    let env = Env::local(kv).await;
    let flushed = env.store(env.segment(1)).await;
    // Dropped but within the drop tolerance: clearEtcd has not collected it, so it references.
    let not_yet_collected = env
        .store(dropped(env.segment(2), unix_ns_ago(MINUTE)))
        .await;
    let mut growing = env.segment(3);
    growing.set_state(SegmentState::Growing);
    let growing = env.store(growing).await;
    let all: Vec<String> = [flushed, not_yet_collected, growing].concat();
    for path in &all {
        age_local_file(path, 10 * HOUR);
    }

    let report = env.run_scan().await;

    assert!(env.all_exist(&all).await);
    assert_eq!(report.files_removed, 0);
    assert_eq!(report.failures, 0);
}

pub async fn live_segment_keeps_unreferenced_insert_logs_only(kv: Arc<dyn MetaKv>) {
    let env = Env::local(kv).await;
    let referenced = env.store(env.segment(1)).await;
    // A log ID the segment does not list, and one it lists but under another field.
    let unlisted = three_kinds(&env, PART, 1, 4242);
    let wrong_field = insert_log_path(&env.root, COLL, PART, 1, 555, 4242);
    let wrong_field_stats = stats_log_path(&env.root, COLL, PART, 1, 555, 4242);
    plant(&env, &unlisted, 2 * HOUR).await;
    plant(
        &env,
        &[wrong_field.clone(), wrong_field_stats.clone()],
        2 * HOUR,
    )
    .await;

    let report = env.run_scan().await;

    assert!(env.all_exist(&referenced).await);
    assert!(
        env.exists(&unlisted[0]).await,
        "insert log of a live segment"
    );
    assert!(
        env.exists(&wrong_field).await,
        "insert log of a live segment"
    );
    assert!(!env.exists(&unlisted[1]).await, "unreferenced stats log");
    assert!(!env.exists(&unlisted[2]).await, "unreferenced delta log");
    assert!(
        !env.exists(&wrong_field_stats).await,
        "unreferenced stats log"
    );
    assert_eq!(report.files_removed, 3);
}

pub async fn orphans_go_only_after_missing_tolerance(kv: Arc<dyn MetaKv>) {
    let env = Env::local(kv).await;
    let tolerance = env.config.missing_tolerance;
    let young = three_kinds(&env, PART, 777, 1);
    let old = three_kinds(&env, PART, 778, 1);
    plant(&env, &young, tolerance - MINUTE).await;
    plant(&env, &old, tolerance + MINUTE).await;

    let report = env.run_scan().await;

    assert!(env.all_exist(&young).await);
    assert!(env.none_exist(&old).await);
    assert_eq!(report.files_removed, 3);
    assert_eq!(report.failures, 0);
}

pub async fn only_binlog_shaped_objects_under_the_three_prefixes_are_judged(kv: Arc<dyn MetaKv>) {
    let env = Env::local(kv).await;
    let root = env.root.clone();
    let unparsable = vec![
        format!("{root}/insert_log/{COLL}/{PART}/x/100/1"),
        format!("{root}/insert_log/{COLL}/{PART}/9/100"),
        format!("{root}/insert_log/{COLL}/{PART}/09/100/1"),
        format!("{root}/stats_log/{COLL}/{PART}/9/100/.1.tmp.7.0"),
        format!("{root}/delta_log/{COLL}/{PART}/9/100/1"),
    ];
    let outside = vec![
        format!("{root}/insert_log_backup/{COLL}/{PART}/9/100/1"),
        format!("{root}/import/{COLL}/{PART}/9/100/1"),
        format!("{root}/other/insert_log/{COLL}/{PART}/9/100/1"),
    ];
    plant(&env, &unparsable, 10 * HOUR).await;
    plant(&env, &outside, 10 * HOUR).await;

    let report = env.run_scan().await;

    assert!(env.all_exist(&unparsable).await);
    assert!(env.all_exist(&outside).await);
    assert_eq!(report.skipped, unparsable.len());
    assert_eq!(report.files_removed, 0);
}

pub async fn pending_compaction_keeps_its_partition(kv: Arc<dyn MetaKv>) {
    let env = Env::local(kv).await;
    let in_pending = three_kinds(&env, PART, 777, 1);
    let elsewhere = three_kinds(&env, PART + 1, 778, 1);
    plant(&env, &in_pending, 2 * HOUR).await;
    plant(&env, &elsewhere, 2 * HOUR).await;
    env.pending.insert(COLL, PART);

    env.run_scan().await;
    assert!(env.all_exist(&in_pending).await);
    assert!(env.none_exist(&elsewhere).await);

    env.pending.remove(COLL, PART);
    env.run_scan().await;
    assert!(env.none_exist(&in_pending).await);
}

pub async fn legacy_full_paths_are_compared_as_paths(kv: Arc<dyn MetaKv>) {
    let fx = StorageFixture::local().await.expect("temp dir");
    let root = fx.root().to_string();
    // A record from before the logID form: its stats log listed inline, with its path.
    let listed = stats_log_path(&root, COLL, PART, 5, 100, 77);
    let mut legacy = dropped(
        datacoord_meta::testing::segment(5, COLL, PART, CHANNEL, SegmentState::Dropped),
        unix_ns_ago(MINUTE),
    );
    legacy.statslogs = vec![FieldBinlog {
        field_id: 100,
        binlogs: vec![Binlog {
            log_path: listed.clone(),
            entries_num: 1,
            ..Binlog::default()
        }],
    }];
    kv.save(
        &datacoord_meta::segment_key(COLL, PART, 5),
        Bytes::from(legacy.encode_to_vec()),
    )
    .await
    .expect("legacy record");
    let env = Env::new(kv, fx, config()).await;
    let held = env.meta.segment(5).expect("legacy segment loaded");
    assert_eq!(
        held.statslogs[0].binlogs[0].log_path, listed,
        "kept as a path"
    );
    let unlisted = stats_log_path(&root, COLL, PART, 5, 100, 78);
    plant(&env, &[listed.clone(), unlisted.clone()], 2 * HOUR).await;

    env.run_scan().await;

    assert!(env.exists(&listed).await);
    assert!(!env.exists(&unlisted).await);
}

pub async fn storage_failures_are_counted_and_retried(kv: Arc<dyn MetaKv>) {
    let env = Env::local(kv).await;
    let orphans = three_kinds(&env, PART, 777, 1);
    plant(&env, &orphans, 2 * HOUR).await;

    env.storage.fail_lists(true);
    let report = env.run_scan().await;
    assert_eq!(report.failures, 3, "one per prefix");
    assert!(env.all_exist(&orphans).await);

    env.storage.fail_lists(false);
    env.storage.fail_removes(true);
    let report = env.run_scan().await;
    assert_eq!(report.failures, 3, "one per object");
    assert_eq!(report.files_removed, 0);
    assert!(env.all_exist(&orphans).await);

    env.storage.fail_removes(false);
    let report = env.run_scan().await;
    assert_eq!(report.failures, 0);
    assert!(env.none_exist(&orphans).await);
}

/// The rules on S3 keys (no leading slash, a bucket root), where ages cannot be planted:
/// the tolerance is zero and the objects are made at least a second before the scan.
pub async fn rules_hold_on_s3_keys(kv: Arc<dyn MetaKv>) {
    let fx = StorageFixture::in_process_s3().await.expect("S3 server");
    let env = Env::new(
        kv,
        fx,
        GcConfig {
            missing_tolerance: Duration::ZERO,
            ..config()
        },
    )
    .await;
    let referenced = env.store(env.segment(1)).await;
    let live_insert = insert_log_path(&env.root, COLL, PART, 1, 100, 4242);
    let orphans = three_kinds(&env, PART, 777, 1);
    let unparsable = format!("{}/insert_log/{COLL}/{PART}/x/100/1", env.root);
    env.fx.write_all(&orphans).await;
    env.fx
        .write_all(&[live_insert.clone(), unparsable.clone()])
        .await;
    // S3 listings carry second-precision times: make every object strictly older than now.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let report = env.run_scan().await;

    assert!(env.all_exist(&referenced).await);
    assert!(env.exists(&live_insert).await);
    assert!(env.exists(&unparsable).await);
    assert!(env.none_exist(&orphans).await);
    assert_eq!(report.files_removed, 3);
}

/// Defence in depth: a Dropped record whose inline log paths leave GC's directories (a legacy
/// record, or one a hostile SaveBinlogPaths got past an older DataCoord) has its own files
/// deleted and its record removed, but nothing outside `insert_log/`, `stats_log/`,
/// `delta_log/` and `index_files/` is touched.
pub async fn paths_outside_gc_directories_are_never_deleted(kv: Arc<dyn MetaKv>) {
    let fx = StorageFixture::local().await.expect("temp dir");
    let root = fx.root().to_string();
    let own = stats_log_path(&root, COLL, PART, 6, 100, 77);
    let hostile = [
        format!("{root}/insert_log/../keep/1"),
        format!("{root}/keep/insert_log/{COLL}/{PART}/6/100/2"),
        format!("{root}/stats_log/{COLL}/./{PART}/6/100/3"),
    ];
    let mut legacy = dropped(
        datacoord_meta::testing::segment(6, COLL, PART, CHANNEL, SegmentState::Dropped),
        0,
    );
    legacy.statslogs = vec![FieldBinlog {
        field_id: 100,
        binlogs: [own.clone()]
            .iter()
            .chain(&hostile)
            .map(|path| Binlog {
                log_path: path.clone(),
                entries_num: 1,
                ..Binlog::default()
            })
            .collect(),
    }];
    kv.save(
        &datacoord_meta::segment_key(COLL, PART, 6),
        Bytes::from(legacy.encode_to_vec()),
    )
    .await
    .expect("legacy record");
    let env = Env::new(kv, fx, config()).await;
    let files: Vec<String> = [own.clone()].into_iter().chain(hostile.clone()).collect();
    env.fx.write_all(&files).await;

    let report = env.run_clear_etcd().await;

    assert!(
        !env.exists(&own).await,
        "the segment's own file is collected"
    );
    for path in &hostile {
        assert!(env.exists(path).await, "{path} deleted by GC");
    }
    assert_eq!(report.skipped, hostile.len(), "{report:?}");
    assert!(env.meta.segment(6).is_none(), "record removed");
}
