//! FakeBroker and FakeAllocator behave like the real ones, including injected failures.

use milvus_proto::schema::CollectionSchema;
use milvus_rootcoord_client::{Allocator, Broker, FakeAllocator, FakeBroker};
use milvus_types::{ErrorCode, MilvusError};

fn schema(name: &str) -> CollectionSchema {
    CollectionSchema {
        name: name.to_string(),
        ..Default::default()
    }
}

#[tokio::test]
async fn fake_broker_serves_registered_collections() {
    let broker = FakeBroker::new();
    broker.add_collection("db1", 7, schema("c7"), vec![70, 71]);

    let described = broker
        .describe_collection_internal(7)
        .await
        .expect("describe");
    assert_eq!(described.schema.expect("schema").name, "c7");
    assert_eq!(
        broker.show_partitions_internal(7).await.expect("parts"),
        vec![70, 71]
    );
    assert_eq!(broker.show_collections("db1").await.expect("show"), vec![7]);
    assert_eq!(
        broker.list_databases().await.expect("dbs"),
        vec!["default", "db1"]
    );
    assert!(broker.has_collection(7).await.expect("has"));

    broker.drop_collection(7);
    assert!(!broker.has_collection(7).await.expect("has"));
    let err = broker
        .describe_collection_internal(7)
        .await
        .expect_err("dropped");
    assert_eq!(err.code(), ErrorCode::COLLECTION_NOT_FOUND);
}

#[tokio::test]
async fn fake_broker_fails_exactly_the_next_n_calls() {
    let broker = FakeBroker::new();
    broker.add_collection("default", 1, schema("c"), vec![]);
    let status = MilvusError::service_not_ready("rootcoord", 1, "Initializing").to_status();
    broker.fail_next(2, status);

    let first = broker.list_databases().await.expect_err("injected");
    let second = broker
        .describe_collection_internal(1)
        .await
        .expect_err("injected");
    let third = broker.describe_collection_internal(1).await;

    assert_eq!(first.code(), ErrorCode::SERVICE_NOT_READY);
    assert!(first.is_retriable());
    assert_eq!(second.code(), ErrorCode::SERVICE_NOT_READY);
    assert!(third.is_ok());
    assert_eq!(broker.call_count(), 3);
}

#[tokio::test]
async fn fake_broker_reads_injected_not_found_as_absent() {
    let broker = FakeBroker::new();
    broker.add_collection("default", 1, schema("c"), vec![]);
    broker.fail_next(1, MilvusError::collection_not_found(1).to_status());

    assert!(!broker.has_collection(1).await.expect("not found is false"));
    assert!(broker.has_collection(1).await.expect("injection used up"));
}

#[tokio::test]
async fn fake_allocator_hands_out_increasing_values_and_injects_failures() {
    let allocator = FakeAllocator::new(100);
    assert_eq!(allocator.alloc_id().await.expect("id"), 100);
    assert_eq!(allocator.alloc_n(3).await.expect("ids"), 101..104);
    let t1 = allocator.alloc_timestamp().await.expect("ts");
    let t2 = allocator.alloc_timestamp().await.expect("ts");
    assert!(t2 > t1);
    allocator.advance_timestamp_to(t2 + 1_000_000);
    assert!(allocator.alloc_timestamp().await.expect("ts") >= t2 + 1_000_000);

    allocator.fail_next(1, MilvusError::internal("boom").to_status());
    let err = allocator.alloc_id().await.expect_err("injected");
    assert_eq!(err.code(), ErrorCode::SERVICE_INTERNAL);
    assert_eq!(allocator.alloc_id().await.expect("id"), 104);
    assert_eq!(allocator.call_count(), 7);
}
