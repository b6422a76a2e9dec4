//! Shared vocabulary of milvus-datacoord: the [`Component`] lifecycle, the [`DataCoordComponent`]
//! setters, ID and timestamp types, and [`MilvusError`], the one error type that becomes a
//! `commonpb.Status` exactly as Milvus 2.3.5 fills it; and [`retry`] with its [`Backoff`], the
//! one retry loop of the port.

mod component;
mod error;
mod ids;
mod retry;

pub use component::{Component, DataCoordComponent, NodeClientCreator};
pub use error::{ErrorCode, MilvusError, MilvusResult, legacy_error_code, status_is_success};
pub use ids::{
    CollectionId, FieldId, IndexId, NodeId, PartitionId, SegmentId, Timestamp, UniqueId,
    compose_ts, parse_ts,
};
pub use milvus_proto::common::{ErrorCode as LegacyErrorCode, StateCode, Status};
pub use retry::{Backoff, retry};
