//! CreateIndex and DropIndex (FACTS 1.3, 1.12) on the memory store and on a real etcd
//! (`ETCD_ENDPOINTS`): validation, idempotency, conflicts with their statuses, ID allocation,
//! drop then re-create, and a reload equal to memory after every case.

use std::sync::Arc;

use datacoord_index::testing::{assert_matches_store, create_request, pairs};
use datacoord_index::{IndexCatalog, IndexError, IndexMeta, StaticEnv, field_index_key};
use milvus_metastore::MetaKv;
use milvus_proto::common::Status;
use milvus_proto::index::{DropIndexRequest, FieldIndex};
use milvus_proto::schema::{CollectionSchema, DataType, FieldSchema};
use milvus_rootcoord_client::FakeAllocator;
use milvus_types::MilvusError;
use prost::Message;

const COLL: i64 = 10;
const VEC: i64 = 101;
const TAG: i64 = 102;

/// Two float-vector fields of dim 8 (the requests of `create_request` fit both).
fn env() -> StaticEnv {
    let vector = |field_id, name: &str| FieldSchema {
        field_id,
        name: name.into(),
        data_type: DataType::FloatVector as i32,
        type_params: pairs(&[("dim", "8")]),
        ..FieldSchema::default()
    };
    StaticEnv {
        schema: CollectionSchema {
            name: "c".into(),
            fields: vec![vector(VEC, "embeddings"), vector(TAG, "tag")],
            ..CollectionSchema::default()
        },
        disk_index_supported: false,
    }
}

async fn open(kv: &Arc<dyn MetaKv>) -> IndexMeta {
    IndexMeta::load(IndexCatalog::new(kv.clone()))
        .await
        .expect("load")
}

async fn stored(kv: &Arc<dyn MetaKv>, index_id: i64) -> FieldIndex {
    let value = kv
        .load(&field_index_key(COLL, index_id))
        .await
        .expect("load")
        .expect("stored");
    FieldIndex::decode(value).expect("decode")
}

fn status(err: IndexError) -> Status {
    MilvusError::from(err).to_status()
}

async fn create_stores_the_request_and_is_idempotent(kv: Arc<dyn MetaKv>) {
    let meta = open(&kv).await;
    let alloc = FakeAllocator::new(1000);
    let id = meta
        .create_index(
            create_request(COLL, VEC, "vec_idx", "16", 77),
            &alloc,
            &env(),
        )
        .await
        .expect("create");
    assert_eq!(id, 1000);
    let record = stored(&kv, id).await;
    let info = record.index_info.clone().expect("info");
    assert_eq!(
        (info.collection_id, info.field_id, info.index_id),
        (COLL, VEC, id)
    );
    assert_eq!(info.index_name, "vec_idx");
    assert_eq!(record.create_time, 77);
    assert!(!record.deleted);
    assert_eq!((info.indexed_rows, info.total_rows, info.state), (0, 0, 0));

    // Same name, field, type and user params; other index params, params in another order:
    // the ID is reused, the record rewritten with the new timestamp and index params.
    let mut again = create_request(COLL, VEC, "vec_idx", "16", 99);
    again.user_index_params.reverse();
    again.index_params = pairs(&[("index_type", "IVF_FLAT"), ("nlist", "1024")]);
    let calls = alloc.call_count();
    let reused = meta
        .create_index(again, &alloc, &env())
        .await
        .expect("idempotent");
    assert_eq!(reused, id);
    assert_eq!(
        alloc.call_count(),
        calls,
        "no ID allocated for a reused index"
    );
    let record = stored(&kv, id).await;
    assert_eq!(record.create_time, 99);
    assert_eq!(
        record.index_info.expect("info").index_params,
        pairs(&[("index_type", "IVF_FLAT"), ("nlist", "1024")])
    );
    assert_eq!(meta.live_indexes(COLL, "").len(), 1);
    assert_matches_store(&meta).await;
}

async fn conflicts_carry_2_3_5_statuses(kv: Arc<dyn MetaKv>) {
    let meta = open(&kv).await;
    let alloc = FakeAllocator::new(1);
    meta.create_index(
        create_request(COLL, VEC, "vec_idx", "16", 1),
        &alloc,
        &env(),
    )
    .await
    .expect("create");
    // Same name, other user params.
    let err = meta
        .create_index(
            create_request(COLL, VEC, "vec_idx", "32", 2),
            &alloc,
            &env(),
        )
        .await
        .expect_err("other params");
    let st = status(err);
    assert_eq!((st.code, st.error_code), (65535, 1));
    assert_eq!(
        st.reason,
        "CreateIndex failed: at most one distinct index is allowed per field"
    );
    // Same name, other field.
    let err = meta
        .create_index(
            create_request(COLL, TAG, "vec_idx", "16", 2),
            &alloc,
            &env(),
        )
        .await
        .expect_err("other field");
    assert_eq!(
        status(err).reason,
        "CreateIndex failed: at most one distinct index is allowed per field"
    );
    // Same name, other type params (length differs).
    let mut typed = create_request(COLL, VEC, "vec_idx", "16", 2);
    typed
        .type_params
        .push(pairs(&[("max_length", "8")]).remove(0));
    assert!(matches!(
        meta.create_index(typed, &alloc, &env()).await,
        Err(IndexError::DistinctIndexExists)
    ));
    // Other name, same field.
    let err = meta
        .create_index(create_request(COLL, VEC, "second", "16", 2), &alloc, &env())
        .await
        .expect_err("second index on field");
    let st = status(err);
    assert_eq!((st.code, st.error_code), (65535, 1));
    assert_eq!(
        st.reason,
        "CreateIndex failed: creating multiple indexes on same field is not supported"
    );
    // Other name, other field: fine.
    meta.create_index(
        create_request(COLL, TAG, "tag_idx", "16", 3),
        &alloc,
        &env(),
    )
    .await
    .expect("second field");
    assert_eq!(meta.live_indexes(COLL, "").len(), 2);
    assert_matches_store(&meta).await;
}

async fn empty_name_resolves_from_schema_or_existing_index(kv: Arc<dyn MetaKv>) {
    let meta = open(&kv).await;
    let alloc = FakeAllocator::new(1);
    let id = meta
        .create_index(create_request(COLL, VEC, "", "16", 1), &alloc, &env())
        .await
        .expect("create");
    assert_eq!(
        meta.index(COLL, id).expect("index").index_name,
        "embeddings"
    );
    // Now the one index on the field lends its name: idempotent.
    let again = meta
        .create_index(create_request(COLL, VEC, "", "16", 2), &alloc, &env())
        .await
        .expect("again");
    assert_eq!(again, id);
    // Unknown field: refused (2.3.5 stores an index with an empty name that never builds).
    let err = meta
        .create_index(create_request(COLL, 999, "", "16", 3), &alloc, &env())
        .await
        .expect_err("unknown field");
    assert_eq!(status(err).code, 1100);
    // Parameters the IndexNode cannot build with are refused before anything is stored.
    let live = meta.live_indexes(COLL, "").len();
    for nlist in ["abc", "-1", "1000000000"] {
        let err = meta
            .create_index(create_request(COLL, TAG, "bad", nlist, 4), &alloc, &env())
            .await
            .expect_err(nlist);
        assert_eq!(status(err).code, 1100, "nlist {nlist}");
    }
    assert_eq!(meta.live_indexes(COLL, "").len(), live);
    assert_matches_store(&meta).await;
}

async fn diskann_and_allocation_failures(kv: Arc<dyn MetaKv>) {
    let meta = open(&kv).await;
    let alloc = FakeAllocator::new(1);
    let mut disk = create_request(COLL, VEC, "disk", "16", 1);
    disk.index_params = pairs(&[("index_type", "DISKANN"), ("metric_type", "L2")]);
    let err = meta
        .create_index(disk.clone(), &alloc, &env())
        .await
        .expect_err("no disk");
    let st = status(err);
    assert_eq!((st.code, st.error_code), (701, 1));
    assert_eq!(st.reason, "index type not supported[indexType=DISKANN]");
    assert!(meta.live_indexes(COLL, "").is_empty());
    let with_disk = StaticEnv {
        disk_index_supported: true,
        ..env()
    };
    meta.create_index(disk, &alloc, &with_disk)
        .await
        .expect("disk supported");

    let failing = Status {
        error_code: 1,
        code: 65535,
        reason: "rootcoord down".into(),
        ..Status::default()
    };
    alloc.fail_next(1, failing);
    let err = meta
        .create_index(create_request(COLL, TAG, "tag", "16", 2), &alloc, &env())
        .await
        .expect_err("allocation fails");
    assert_eq!(status(err).reason, "rootcoord down");
    assert_eq!(meta.live_indexes(COLL, "").len(), 1);
    assert_matches_store(&meta).await;
}

async fn drop_marks_deleted_and_name_is_reusable(kv: Arc<dyn MetaKv>) {
    let meta = open(&kv).await;
    let alloc = FakeAllocator::new(1);
    let vec_id = meta
        .create_index(
            create_request(COLL, VEC, "vec_idx", "16", 1),
            &alloc,
            &env(),
        )
        .await
        .expect("create");
    let tag_id = meta
        .create_index(
            create_request(COLL, TAG, "tag_idx", "16", 2),
            &alloc,
            &env(),
        )
        .await
        .expect("create");
    // Unknown name: success, nothing changes.
    let none = DropIndexRequest {
        collection_id: COLL,
        index_name: "nope".into(),
        ..DropIndexRequest::default()
    };
    assert!(meta.drop_index(&none).await.expect("idempotent").is_empty());
    // Two matches without drop_all: duplicate.
    let all = DropIndexRequest {
        collection_id: COLL,
        ..DropIndexRequest::default()
    };
    let st = status(meta.drop_index(&all).await.expect_err("ambiguous"));
    assert_eq!((st.code, st.error_code), (702, 1));
    assert_eq!(st.reason, "index duplicates[indexName=]");
    // With partitions: success, nothing marked.
    let parts = DropIndexRequest {
        partition_i_ds: vec![2],
        drop_all: true,
        ..all.clone()
    };
    assert!(meta.drop_index(&parts).await.expect("no-op").is_empty());
    assert_eq!(meta.live_indexes(COLL, "").len(), 2);
    // By name.
    let by_name = DropIndexRequest {
        index_name: "vec_idx".into(),
        ..all.clone()
    };
    assert_eq!(meta.drop_index(&by_name).await.expect("drop"), vec![vec_id]);
    assert!(stored(&kv, vec_id).await.deleted);
    assert!(!stored(&kv, tag_id).await.deleted);
    assert_eq!(meta.deleted_indexes().len(), 1);
    // Re-create under the dropped name with other params: a new ID.
    let new_id = meta
        .create_index(
            create_request(COLL, VEC, "vec_idx", "64", 3),
            &alloc,
            &env(),
        )
        .await
        .expect("re-create");
    assert_ne!(new_id, vec_id);
    assert!(meta.index(COLL, vec_id).expect("kept until GC").deleted);
    // drop_all, as RootCoord's drop collection.
    let drop_all = DropIndexRequest {
        drop_all: true,
        ..all
    };
    let mut dropped = meta.drop_index(&drop_all).await.expect("drop all");
    dropped.sort();
    assert_eq!(dropped, vec![tag_id, new_id]);
    assert!(meta.live_indexes(COLL, "").is_empty());
    // GC removes the records.
    meta.remove_index(COLL, vec_id).await.expect("gc");
    assert!(meta.index(COLL, vec_id).is_none());
    assert!(
        kv.load(&field_index_key(COLL, vec_id))
            .await
            .expect("load")
            .is_none()
    );
    assert_matches_store(&meta).await;
}

mod memory {
    datacoord_meta::meta_store_cases!(milvus_metastore::testing::memory_test_kv;
        create_stores_the_request_and_is_idempotent, conflicts_carry_2_3_5_statuses,
        empty_name_resolves_from_schema_or_existing_index, diskann_and_allocation_failures,
        drop_marks_deleted_and_name_is_reusable);
}

mod etcd {
    datacoord_meta::meta_store_cases!(milvus_metastore::testing::etcd_test_kv;
        create_stores_the_request_and_is_idempotent, conflicts_carry_2_3_5_statuses,
        empty_name_resolves_from_schema_or_existing_index, diskann_and_allocation_failures,
        drop_marks_deleted_and_name_is_reusable);
}
