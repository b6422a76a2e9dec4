//! The RootCoord RPCs coordinators use, with requests filled as 2.3.5's Go callers fill them.

use milvus_proto::common::MsgType;
use milvus_proto::milvus::{
    ComponentStates, DescribeCollectionRequest, DescribeCollectionResponse,
    GetComponentStatesRequest, ListDatabasesRequest, ListDatabasesResponse, ShowCollectionsRequest,
    ShowCollectionsResponse, ShowPartitionsRequest, ShowPartitionsResponse,
};
use milvus_proto::rootcoord::{AllocIdRequest, AllocTimestampRequest};
use milvus_types::{CollectionId, ErrorCode, Timestamp, UniqueId};
use tokio::time::Instant;

use crate::{RootCoordClient, RootCoordError};

impl RootCoordClient {
    /// `AllocID`: `count` consecutive IDs; returns `(first ID, count)`.
    pub async fn alloc_id(&self, count: u32) -> Result<(UniqueId, u32), RootCoordError> {
        let response = self
            .call(
                "AllocID",
                self.deadline(),
                |target| AllocIdRequest {
                    base: Some(self.msg_base(MsgType::RequestId, target)),
                    count,
                },
                |mut grpc, request| async move { grpc.alloc_id(request).await },
            )
            .await?;
        Ok((response.id, response.count))
    }

    /// `AllocTimestamp`: `count` consecutive TSOs; returns `(first timestamp, count)`.
    pub async fn alloc_timestamp(&self, count: u32) -> Result<(Timestamp, u32), RootCoordError> {
        let response = self
            .call(
                "AllocTimestamp",
                self.deadline(),
                |target| AllocTimestampRequest {
                    base: Some(self.msg_base(MsgType::RequestTso, target)),
                    count,
                },
                |mut grpc, request| async move { grpc.alloc_timestamp(request).await },
            )
            .await?;
        Ok((response.timestamp, response.count))
    }

    /// `DescribeCollectionInternal` by ID (no name, as Go asks since databases exist); `ts = 0` for
    /// the latest. Falls back to `DescribeCollection` when RootCoord lacks the internal RPC, as Go.
    pub async fn describe_collection_internal(
        &self,
        db_name: &str,
        collection_id: CollectionId,
        ts: Timestamp,
    ) -> Result<DescribeCollectionResponse, RootCoordError> {
        let deadline = self.deadline();
        let internal = self
            .call(
                "DescribeCollectionInternal",
                deadline,
                |target| self.describe_request(target, db_name, collection_id, ts),
                |mut grpc, request| async move { grpc.describe_collection_internal(request).await },
            )
            .await;
        match internal {
            Err(RootCoordError::Unimplemented(_)) => {
                self.describe_collection_until(deadline, db_name, collection_id, ts)
                    .await
            }
            other => other,
        }
    }

    /// `DescribeCollection` by ID (the user-facing view: hides collections being dropped).
    pub async fn describe_collection(
        &self,
        db_name: &str,
        collection_id: CollectionId,
        ts: Timestamp,
    ) -> Result<DescribeCollectionResponse, RootCoordError> {
        self.describe_collection_until(self.deadline(), db_name, collection_id, ts)
            .await
    }

    /// Whether the collection exists from the user's point of view: `DescribeCollection` by ID,
    /// where `collection not found` means `false` (2.3.5 DataCoord's broker does the same).
    pub async fn has_collection(
        &self,
        collection_id: CollectionId,
    ) -> Result<bool, RootCoordError> {
        match self.describe_collection("", collection_id, 0).await {
            Ok(_) => Ok(true),
            Err(RootCoordError::Status(err)) if err.code() == ErrorCode::COLLECTION_NOT_FOUND => {
                Ok(false)
            }
            Err(err) => Err(err),
        }
    }

    /// `ShowPartitionsInternal` by collection ID; falls back to `ShowPartitions` on
    /// `UNIMPLEMENTED`, as Go.
    pub async fn show_partitions_internal(
        &self,
        collection_id: CollectionId,
    ) -> Result<ShowPartitionsResponse, RootCoordError> {
        let deadline = self.deadline();
        let internal = self
            .call(
                "ShowPartitionsInternal",
                deadline,
                |target| self.show_partitions_request(target, collection_id),
                |mut grpc, request| async move { grpc.show_partitions_internal(request).await },
            )
            .await;
        match internal {
            Err(RootCoordError::Unimplemented(_)) => {
                self.call(
                    "ShowPartitions",
                    deadline,
                    |target| self.show_partitions_request(target, collection_id),
                    |mut grpc, request| async move { grpc.show_partitions(request).await },
                )
                .await
            }
            other => other,
        }
    }

    /// `ShowCollections` of one database (`""` = RootCoord's default database).
    pub async fn show_collections(
        &self,
        db_name: &str,
    ) -> Result<ShowCollectionsResponse, RootCoordError> {
        self.call(
            "ShowCollections",
            self.deadline(),
            |target| ShowCollectionsRequest {
                base: Some(self.msg_base(MsgType::ShowCollections, target)),
                db_name: db_name.to_string(),
                ..Default::default()
            },
            |mut grpc, request| async move { grpc.show_collections(request).await },
        )
        .await
    }

    /// `ListDatabases`.
    pub async fn list_databases(&self) -> Result<ListDatabasesResponse, RootCoordError> {
        self.call(
            "ListDatabases",
            self.deadline(),
            |target| ListDatabasesRequest {
                base: Some(self.msg_base(MsgType::ListDatabases, target)),
            },
            |mut grpc, request| async move { grpc.list_databases(request).await },
        )
        .await
    }

    /// `GetComponentStates` (RootCoord's health as it reports it).
    pub async fn get_component_states(&self) -> Result<ComponentStates, RootCoordError> {
        self.call(
            "GetComponentStates",
            self.deadline(),
            |_target| GetComponentStatesRequest {},
            |mut grpc, request| async move { grpc.get_component_states(request).await },
        )
        .await
    }

    async fn describe_collection_until(
        &self,
        deadline: Option<Instant>,
        db_name: &str,
        collection_id: CollectionId,
        ts: Timestamp,
    ) -> Result<DescribeCollectionResponse, RootCoordError> {
        self.call(
            "DescribeCollection",
            deadline,
            |target| self.describe_request(target, db_name, collection_id, ts),
            |mut grpc, request| async move { grpc.describe_collection(request).await },
        )
        .await
    }

    fn describe_request(
        &self,
        target: &crate::RootCoordTarget,
        db_name: &str,
        collection_id: CollectionId,
        ts: Timestamp,
    ) -> DescribeCollectionRequest {
        DescribeCollectionRequest {
            base: Some(self.msg_base(MsgType::DescribeCollection, target)),
            db_name: db_name.to_string(),
            collection_id,
            time_stamp: ts,
            ..Default::default()
        }
    }

    fn show_partitions_request(
        &self,
        target: &crate::RootCoordTarget,
        collection_id: CollectionId,
    ) -> ShowPartitionsRequest {
        ShowPartitionsRequest {
            base: Some(self.msg_base(MsgType::ShowPartitions, target)),
            collection_id,
            ..Default::default()
        }
    }
}
