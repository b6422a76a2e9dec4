//! What a coordinator core asks RootCoord for, behind traits so the core never sees gRPC.

use std::ops::Range;
use std::time::Duration;

use async_trait::async_trait;
use milvus_proto::milvus::DescribeCollectionResponse;
use milvus_types::{CollectionId, MilvusResult, PartitionId, Timestamp, UniqueId};

use crate::RootCoordClient;

/// Per-call timeout of every broker RPC (2.3.5 `brokerRPCTimeout`).
pub const BROKER_RPC_TIMEOUT: Duration = Duration::from_secs(5);

/// Collection and database metadata owned by RootCoord, as DataCoord's core reads it.
#[async_trait]
pub trait Broker: Send + Sync {
    /// Schema, channels, start positions and properties of a collection, by ID.
    async fn describe_collection_internal(
        &self,
        collection_id: CollectionId,
    ) -> MilvusResult<DescribeCollectionResponse>;
    /// The IDs of the collection's partitions.
    async fn show_partitions_internal(
        &self,
        collection_id: CollectionId,
    ) -> MilvusResult<Vec<PartitionId>>;
    /// The IDs of the collections in a database.
    async fn show_collections(&self, db_name: &str) -> MilvusResult<Vec<CollectionId>>;
    /// The names of all databases.
    async fn list_databases(&self) -> MilvusResult<Vec<String>>;
    /// Whether the collection exists for users (`false` on `collection not found`).
    async fn has_collection(&self, collection_id: CollectionId) -> MilvusResult<bool>;
}

/// IDs and timestamps from RootCoord's allocators.
#[async_trait]
pub trait Allocator: Send + Sync {
    /// One unique ID (`AllocID` with count 1).
    async fn alloc_id(&self) -> MilvusResult<UniqueId>;
    /// `count` consecutive unique IDs.
    async fn alloc_n(&self, count: u32) -> MilvusResult<Range<UniqueId>>;
    /// One timestamp (`AllocTimestamp` with count 1).
    async fn alloc_timestamp(&self) -> MilvusResult<Timestamp>;
}

/// [`Broker`] over a [`RootCoordClient`], each call bounded by [`BROKER_RPC_TIMEOUT`].
#[derive(Clone)]
pub struct CoordinatorBroker {
    client: RootCoordClient,
}

impl CoordinatorBroker {
    /// Wraps `client`; the 5 s timeout is applied on top of its own settings.
    pub fn new(client: &RootCoordClient) -> Self {
        Self {
            client: client.with_timeout(BROKER_RPC_TIMEOUT),
        }
    }
}

#[async_trait]
impl Broker for CoordinatorBroker {
    async fn describe_collection_internal(
        &self,
        collection_id: CollectionId,
    ) -> MilvusResult<DescribeCollectionResponse> {
        self.client
            .describe_collection_internal("", collection_id, 0)
            .await
            .inspect_err(|err| {
                tracing::warn!(collection_id, error = %err, "describe collection internal failed");
            })
            .map_err(Into::into)
    }

    async fn show_partitions_internal(
        &self,
        collection_id: CollectionId,
    ) -> MilvusResult<Vec<PartitionId>> {
        match self.client.show_partitions_internal(collection_id).await {
            Ok(response) => Ok(response.partition_i_ds),
            Err(err) => {
                tracing::warn!(collection_id, error = %err, "show partitions internal failed");
                Err(err.into())
            }
        }
    }

    async fn show_collections(&self, db_name: &str) -> MilvusResult<Vec<CollectionId>> {
        match self.client.show_collections(db_name).await {
            Ok(response) => Ok(response.collection_ids),
            Err(err) => {
                tracing::warn!(db_name, error = %err, "show collections failed");
                Err(err.into())
            }
        }
    }

    async fn list_databases(&self) -> MilvusResult<Vec<String>> {
        match self.client.list_databases().await {
            Ok(response) => Ok(response.db_names),
            Err(err) => {
                tracing::warn!(error = %err, "list databases failed");
                Err(err.into())
            }
        }
    }

    async fn has_collection(&self, collection_id: CollectionId) -> MilvusResult<bool> {
        self.client
            .has_collection(collection_id)
            .await
            .map_err(Into::into)
    }
}

/// [`Allocator`] over a [`RootCoordClient`] (no timeout of its own, as in Go; give the client a
/// `call_timeout` or drop the future to bound it).
#[derive(Clone)]
pub struct RootCoordAllocator {
    client: RootCoordClient,
}

impl RootCoordAllocator {
    /// Wraps `client`.
    pub fn new(client: &RootCoordClient) -> Self {
        Self {
            client: client.clone(),
        }
    }
}

#[async_trait]
impl Allocator for RootCoordAllocator {
    async fn alloc_id(&self) -> MilvusResult<UniqueId> {
        let (begin, _count) = self.client.alloc_id(1).await?;
        Ok(begin)
    }

    async fn alloc_n(&self, count: u32) -> MilvusResult<Range<UniqueId>> {
        let (begin, granted) = self.client.alloc_id(count).await?;
        Ok(begin..begin + i64::from(granted))
    }

    async fn alloc_timestamp(&self) -> MilvusResult<Timestamp> {
        let (ts, _count) = self.client.alloc_timestamp(1).await?;
        Ok(ts)
    }
}
