//! CoordinatorBroker and RootCoordAllocator over a real client and server.

use std::sync::Arc;

use milvus_proto::common::MsgType;
use milvus_rootcoord_client::{
    Allocator, Broker, CoordinatorBroker, RootCoordAllocator, RootCoordClient,
};
use milvus_types::ErrorCode;

use crate::support::{Behaviour, TestServer, fast_config};

async fn setup() -> (TestServer, RootCoordClient) {
    let server = TestServer::start(Behaviour::new(3), 1_000).await;
    let client = RootCoordClient::new(fast_config(8), Arc::new(server.resolver())).expect("client");
    (server, client)
}

#[tokio::test]
async fn broker_reads_collections_partitions_and_databases() {
    let (server, client) = setup().await;
    server.add_collection("default", 1, vec![10, 11]);
    server.add_collection("sales", 2, vec![20]);
    server.lock().databases.push("sales".to_string());
    let broker = CoordinatorBroker::new(&client);

    let described = broker
        .describe_collection_internal(2)
        .await
        .expect("describe");
    let partitions = broker
        .show_partitions_internal(1)
        .await
        .expect("partitions");
    let in_sales = broker.show_collections("sales").await.expect("show");
    let databases = broker.list_databases().await.expect("databases");

    assert_eq!(described.collection_id, 2);
    assert_eq!(described.db_name, "sales");
    assert_eq!(partitions, vec![10, 11]);
    assert_eq!(in_sales, vec![2]);
    assert_eq!(databases, vec!["default", "sales"]);
}

#[tokio::test]
async fn broker_has_collection_reads_not_found_as_false() {
    let (server, client) = setup().await;
    server.add_collection("default", 5, vec![]);
    let broker = CoordinatorBroker::new(&client);

    assert!(broker.has_collection(5).await.expect("known"));
    assert!(!broker.has_collection(6).await.expect("unknown"));
    let err = broker
        .describe_collection_internal(6)
        .await
        .expect_err("unknown collection");
    assert_eq!(err.code(), ErrorCode::COLLECTION_NOT_FOUND);
}

#[tokio::test]
async fn allocator_asks_rootcoord_for_ids_and_timestamps() {
    let (server, client) = setup().await;
    let allocator = RootCoordAllocator::new(&client);

    let first = allocator.alloc_id().await.expect("id");
    let range = allocator.alloc_n(4).await.expect("ids");
    let ts = allocator.alloc_timestamp().await.expect("ts");

    assert_eq!(first, 1_000);
    assert_eq!(range, 1_001..1_005);
    assert!(ts > 0);
    let bases = server.lock().alloc_bases.clone();
    assert_eq!(bases.len(), 2);
    assert!(
        bases
            .iter()
            .all(|b| b.msg_type == MsgType::RequestId as i32 && b.source_id == 8)
    );
}
