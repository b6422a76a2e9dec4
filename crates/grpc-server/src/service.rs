//! Thin tonic adapters: each RPC calls one core method and builds its response.
//!
//! Only the RPCs the core implements are overridden; every other method of both services keeps the
//! generated default, gRPC `UNIMPLEMENTED` (2.3.5 Go clients turn it into "service unimplemented"
//! and do not retry). README.md lists them.

use std::sync::Arc;

use datacoord::Server;
use milvus_proto::common::Status;
use milvus_proto::data::data_coord_server::DataCoord;
use milvus_proto::data::{
    AlterCollectionRequest, AssignSegmentIdRequest, AssignSegmentIdResponse,
    DropVirtualChannelRequest, DropVirtualChannelResponse, FlushRequest, FlushResponse,
    GcConfirmRequest, GcConfirmResponse, GcControlRequest, GetCollectionStatisticsRequest,
    GetCollectionStatisticsResponse, GetFlushStateRequest, GetFlushedSegmentsRequest,
    GetFlushedSegmentsResponse, GetInsertBinlogPathsRequest, GetInsertBinlogPathsResponse,
    GetPartitionStatisticsRequest, GetPartitionStatisticsResponse, GetRecoveryInfoRequest,
    GetRecoveryInfoRequestV2, GetRecoveryInfoResponse, GetRecoveryInfoResponseV2,
    GetSegmentInfoChannelRequest, GetSegmentInfoRequest, GetSegmentInfoResponse,
    GetSegmentStatesRequest, GetSegmentStatesResponse, GetSegmentsByStatesRequest,
    GetSegmentsByStatesResponse, MarkSegmentsDroppedRequest, ReportDataNodeTtMsgsRequest,
    SaveBinlogPathsRequest, SetSegmentStateRequest, SetSegmentStateResponse,
    UpdateChannelCheckpointRequest, UpdateSegmentStatisticsRequest, WatchChannelsRequest,
    WatchChannelsResponse,
};
use milvus_proto::data::{
    ImportTaskRequest, ImportTaskResponse, SaveImportSegmentRequest, UnsetIsImportingStateRequest,
};
use milvus_proto::index::index_coord_server::IndexCoord;
use milvus_proto::index::{
    CreateIndexRequest, DescribeIndexRequest, DescribeIndexResponse, DropIndexRequest,
    GetIndexBuildProgressRequest, GetIndexBuildProgressResponse, GetIndexInfoRequest,
    GetIndexInfoResponse, GetIndexStateRequest, GetIndexStateResponse, GetIndexStatisticsRequest,
    GetIndexStatisticsResponse, GetSegmentIndexStateRequest, GetSegmentIndexStateResponse,
};
use milvus_proto::internal::{
    GetStatisticsChannelRequest, GetTimeTickChannelRequest, ShowConfigurationsRequest,
    ShowConfigurationsResponse,
};
use milvus_proto::milvus::{
    CheckHealthRequest, CheckHealthResponse, ComponentStates, GetCompactionPlansRequest,
    GetCompactionPlansResponse, GetCompactionStateRequest, GetCompactionStateResponse,
    GetComponentStatesRequest, GetFlushAllStateRequest, GetFlushAllStateResponse,
    GetFlushStateResponse, GetMetricsRequest, GetMetricsResponse, ManualCompactionRequest,
    ManualCompactionResponse, StringResponse,
};
use milvus_types::{Component, MilvusResult};
use tonic::{Request, Response};

type RpcResult<T> = Result<Response<T>, tonic::Status>;

/// A response message that carries a `status`: a failed core call becomes the default message
/// with that status, as 2.3.5 answers errors (never a gRPC error).
trait WithStatus: Default {
    fn set_status(&mut self, status: Status);
}

macro_rules! with_status {
    ($($ty:ty),* $(,)?) => {
        $(impl WithStatus for $ty {
            fn set_status(&mut self, status: Status) {
                self.status = Some(status);
            }
        })*
    };
}

with_status!(
    ImportTaskResponse,
    ManualCompactionResponse,
    GetCompactionStateResponse,
    GetCompactionPlansResponse,
    WatchChannelsResponse,
    AssignSegmentIdResponse,
    FlushResponse,
    DropVirtualChannelResponse,
    GetSegmentInfoResponse,
    GetSegmentStatesResponse,
    GetInsertBinlogPathsResponse,
    GetCollectionStatisticsResponse,
    GetPartitionStatisticsResponse,
    GetFlushedSegmentsResponse,
    GetSegmentsByStatesResponse,
    GetFlushStateResponse,
    GetFlushAllStateResponse,
    GetRecoveryInfoResponse,
    GetRecoveryInfoResponseV2,
    SetSegmentStateResponse,
    GcConfirmResponse,
    DescribeIndexResponse,
    GetIndexStatisticsResponse,
    GetIndexStateResponse,
    GetSegmentIndexStateResponse,
    GetIndexBuildProgressResponse,
    GetIndexInfoResponse,
);

/// Adds the RPCs the DataCoord and the IndexCoord service share (the index RPCs and the
/// component ones) to a service impl block: tonic wants one impl per service trait, and this
/// keeps the two from drifting apart. The block is taken whole so the methods exist before
/// `async_trait` rewrites it.
macro_rules! with_shared_rpcs {
    ($(#[$attr:meta])* impl $service:ident for $ty:ty { $($body:tt)* }) => {
        $(#[$attr])*
        impl $service for $ty {
        $($body)*
        async fn get_component_states(
            &self,
            _request: Request<GetComponentStatesRequest>,
        ) -> RpcResult<ComponentStates> {
            self.component_states()
        }

        async fn get_statistics_channel(
            &self,
            _request: Request<GetStatisticsChannelRequest>,
        ) -> RpcResult<StringResponse> {
            self.statistics_channel()
        }

        async fn show_configurations(
            &self,
            request: Request<ShowConfigurationsRequest>,
        ) -> RpcResult<ShowConfigurationsResponse> {
            Self::show_configurations(self, request.into_inner())
        }

        async fn get_metrics(
            &self,
            request: Request<GetMetricsRequest>,
        ) -> RpcResult<GetMetricsResponse> {
            self.metrics(request.into_inner()).await
        }

        async fn check_health(
            &self,
            _request: Request<CheckHealthRequest>,
        ) -> RpcResult<CheckHealthResponse> {
            Self::check_health(self).await
        }

        async fn create_index(&self, request: Request<CreateIndexRequest>) -> RpcResult<Status> {
            let result = async { self.core.indexes()?.create_index(request.into_inner()).await };
            status_only(result.await)
        }

        async fn describe_index(
            &self,
            request: Request<DescribeIndexRequest>,
        ) -> RpcResult<DescribeIndexResponse> {
            respond(
                self.core
                    .indexes()
                    .and_then(|indexes| indexes.describe_index(request.get_ref()))
                    .map(|index_infos| DescribeIndexResponse {
                        status: success(),
                        index_infos,
                    }),
            )
        }

        async fn get_index_statistics(
            &self,
            request: Request<GetIndexStatisticsRequest>,
        ) -> RpcResult<GetIndexStatisticsResponse> {
            respond(
                self.core
                    .indexes()
                    .and_then(|indexes| indexes.get_index_statistics(request.get_ref()))
                    .map(|index_infos| GetIndexStatisticsResponse {
                        status: success(),
                        index_infos,
                    }),
            )
        }

        async fn get_index_state(
            &self,
            request: Request<GetIndexStateRequest>,
        ) -> RpcResult<GetIndexStateResponse> {
            respond(
                self.core
                    .indexes()
                    .and_then(|indexes| indexes.get_index_state(request.get_ref())),
            )
        }

        async fn get_segment_index_state(
            &self,
            request: Request<GetSegmentIndexStateRequest>,
        ) -> RpcResult<GetSegmentIndexStateResponse> {
            respond(
                self.core
                    .indexes()
                    .and_then(|indexes| indexes.get_segment_index_state(request.get_ref())),
            )
        }

        async fn get_index_build_progress(
            &self,
            request: Request<GetIndexBuildProgressRequest>,
        ) -> RpcResult<GetIndexBuildProgressResponse> {
            respond(
                self.core
                    .indexes()
                    .and_then(|indexes| indexes.get_index_build_progress(request.get_ref())),
            )
        }

        async fn get_index_infos(
            &self,
            request: Request<GetIndexInfoRequest>,
        ) -> RpcResult<GetIndexInfoResponse> {
            respond(
                self.core
                    .indexes()
                    .and_then(|indexes| indexes.get_index_infos(request.get_ref())),
            )
        }

        async fn drop_index(&self, request: Request<DropIndexRequest>) -> RpcResult<Status> {
            let result = async { self.core.indexes()?.drop_index(request.get_ref()).await };
            status_only(result.await)
        }
        }
    };
}

fn respond<T: WithStatus>(result: MilvusResult<T>) -> RpcResult<T> {
    Ok(Response::new(result.unwrap_or_else(|err| {
        let mut response = T::default();
        response.set_status(err.to_status());
        response
    })))
}

fn status_only(result: MilvusResult<()>) -> RpcResult<Status> {
    Ok(Response::new(match result {
        Ok(()) => Status::default(),
        Err(err) => err.to_status(),
    }))
}

/// Serves `milvus.proto.data.DataCoord` and `milvus.proto.index.IndexCoord` over one core.
#[derive(Clone)]
pub struct DataCoordService {
    core: Arc<Server>,
}

impl DataCoordService {
    /// Wraps the core server.
    pub fn new(core: Arc<Server>) -> Self {
        Self { core }
    }

    fn component_states(&self) -> RpcResult<ComponentStates> {
        Ok(Response::new(self.core.component_states()))
    }

    fn statistics_channel(&self) -> RpcResult<StringResponse> {
        Ok(Response::new(string_response(
            self.core.statistics_channel(),
        )))
    }

    fn show_configurations(
        &self,
        request: ShowConfigurationsRequest,
    ) -> RpcResult<ShowConfigurationsResponse> {
        let response = match self.core.show_configurations(&request.pattern) {
            Ok(configuations) => ShowConfigurationsResponse {
                status: success(),
                configuations,
            },
            Err(err) => ShowConfigurationsResponse {
                status: Some(err.to_status()),
                configuations: Vec::new(),
            },
        };
        Ok(Response::new(response))
    }

    async fn metrics(&self, request: GetMetricsRequest) -> RpcResult<GetMetricsResponse> {
        let answer = self.core.get_metrics(&request.request).await;
        let response = GetMetricsResponse {
            status: match &answer.result {
                Ok(_) => success(),
                Err(err) => Some(err.to_status()),
            },
            response: answer.result.unwrap_or_default(),
            component_name: answer.component_name,
        };
        Ok(Response::new(response))
    }

    async fn check_health(&self) -> RpcResult<CheckHealthResponse> {
        let response = match self.core.check_health().await {
            Ok(reasons) => CheckHealthResponse {
                status: success(),
                is_healthy: reasons.is_empty(),
                reasons,
                quota_states: Vec::new(),
            },
            Err(err) => CheckHealthResponse {
                status: Some(err.to_status()),
                is_healthy: false,
                reasons: vec![err.to_string()],
                quota_states: Vec::new(),
            },
        };
        Ok(Response::new(response))
    }
}

fn success() -> Option<Status> {
    Some(Status::default())
}

fn string_response(result: MilvusResult<String>) -> StringResponse {
    match result {
        Ok(value) => StringResponse {
            status: success(),
            value,
        },
        Err(err) => StringResponse {
            status: Some(err.to_status()),
            value: String::new(),
        },
    }
}

with_shared_rpcs! {
    #[tonic::async_trait]
    impl DataCoord for DataCoordService {
        async fn get_time_tick_channel(
            &self,
            _request: Request<GetTimeTickChannelRequest>,
        ) -> RpcResult<StringResponse> {
            Ok(Response::new(string_response(Ok(self
                .core
                .time_tick_channel()))))
        }

        async fn get_segment_info_channel(
            &self,
            _request: Request<GetSegmentInfoChannelRequest>,
        ) -> RpcResult<StringResponse> {
            Ok(Response::new(string_response(Ok(self
                .core
                .segment_info_channel()))))
        }

        async fn watch_channels(
            &self,
            request: Request<WatchChannelsRequest>,
        ) -> RpcResult<WatchChannelsResponse> {
            let result = async {
                self.core
                    .data_path()?
                    .watch_channels(request.into_inner())
                    .await
            };
            let result = result.await;
            respond(result.map(|()| WatchChannelsResponse { status: success() }))
        }

        async fn assign_segment_id(
            &self,
            request: Request<AssignSegmentIdRequest>,
        ) -> RpcResult<AssignSegmentIdResponse> {
            let result = async {
                self.core
                    .data_path()?
                    .assign_segment_id(request.into_inner())
                    .await
            };
            let result = result.await;
            respond(result.map(|seg_id_assignments| AssignSegmentIdResponse {
                seg_id_assignments,
                status: success(),
            }))
        }

        async fn flush(&self, request: Request<FlushRequest>) -> RpcResult<FlushResponse> {
            let result = async { self.core.data_path()?.flush(request.into_inner()).await };
            respond(result.await)
        }

        async fn report_data_node_tt_msgs(
            &self,
            request: Request<ReportDataNodeTtMsgsRequest>,
        ) -> RpcResult<Status> {
            let result = async {
                self.core
                    .data_path()?
                    .report_datanode_tt_msgs(request.into_inner())
                    .await
            };
            status_only(result.await)
        }

        async fn update_segment_statistics(
            &self,
            request: Request<UpdateSegmentStatisticsRequest>,
        ) -> RpcResult<Status> {
            let request = request.into_inner();
            status_only(
                self.core
                    .data_path()
                    .and_then(|data_path| data_path.update_segment_statistics(request)),
            )
        }

        async fn update_channel_checkpoint(
            &self,
            request: Request<UpdateChannelCheckpointRequest>,
        ) -> RpcResult<Status> {
            let result = async {
                self.core
                    .data_path()?
                    .update_channel_checkpoint(request.into_inner())
                    .await
            };
            status_only(result.await)
        }

        async fn save_binlog_paths(
            &self,
            request: Request<SaveBinlogPathsRequest>,
        ) -> RpcResult<Status> {
            let result = async {
                self.core
                    .data_path()?
                    .save_binlog_paths(request.into_inner())
                    .await
            };
            status_only(result.await)
        }

        async fn drop_virtual_channel(
            &self,
            request: Request<DropVirtualChannelRequest>,
        ) -> RpcResult<DropVirtualChannelResponse> {
            let result = async {
                self.core
                    .data_path()?
                    .drop_virtual_channel(request.into_inner())
                    .await
            };
            let result = result.await;
            respond(result.map(|()| DropVirtualChannelResponse { status: success() }))
        }

        async fn get_segment_info(
            &self,
            request: Request<GetSegmentInfoRequest>,
        ) -> RpcResult<GetSegmentInfoResponse> {
            respond(
                self.core
                    .queries()
                    .and_then(|queries| queries.get_segment_info(request.into_inner())),
            )
        }

        async fn get_segment_states(
            &self,
            request: Request<GetSegmentStatesRequest>,
        ) -> RpcResult<GetSegmentStatesResponse> {
            let request = request.into_inner();
            let result = self
                .core
                .queries()
                .and_then(|queries| queries.get_segment_states(&request.segment_i_ds));
            respond(result.map(|states| GetSegmentStatesResponse {
                status: success(),
                states,
            }))
        }

        async fn get_insert_binlog_paths(
            &self,
            request: Request<GetInsertBinlogPathsRequest>,
        ) -> RpcResult<GetInsertBinlogPathsResponse> {
            let segment_id = request.into_inner().segment_id;
            let result = self
                .core
                .queries()
                .and_then(|queries| queries.get_insert_binlog_paths(segment_id));
            respond(
                result.map(|(field_i_ds, paths)| GetInsertBinlogPathsResponse {
                    field_i_ds,
                    paths,
                    status: success(),
                }),
            )
        }

        async fn get_collection_statistics(
            &self,
            request: Request<GetCollectionStatisticsRequest>,
        ) -> RpcResult<GetCollectionStatisticsResponse> {
            let collection_id = request.into_inner().collection_id;
            let result = self
                .core
                .queries()
                .and_then(|queries| queries.get_collection_statistics(collection_id));
            respond(result.map(|stats| GetCollectionStatisticsResponse {
                stats,
                status: success(),
            }))
        }

        async fn get_partition_statistics(
            &self,
            request: Request<GetPartitionStatisticsRequest>,
        ) -> RpcResult<GetPartitionStatisticsResponse> {
            let request = request.into_inner();
            let result = self.core.queries().and_then(|queries| {
                queries.get_partition_statistics(request.collection_id, &request.partition_i_ds)
            });
            respond(result.map(|stats| GetPartitionStatisticsResponse {
                stats,
                status: success(),
            }))
        }

        async fn get_flushed_segments(
            &self,
            request: Request<GetFlushedSegmentsRequest>,
        ) -> RpcResult<GetFlushedSegmentsResponse> {
            let request = request.into_inner();
            let result = self.core.queries().and_then(|queries| {
                queries.get_flushed_segments(
                    request.collection_id,
                    request.partition_id,
                    request.include_unhealthy,
                )
            });
            respond(result.map(|segments| GetFlushedSegmentsResponse {
                status: success(),
                segments,
            }))
        }

        async fn get_segments_by_states(
            &self,
            request: Request<GetSegmentsByStatesRequest>,
        ) -> RpcResult<GetSegmentsByStatesResponse> {
            let request = request.into_inner();
            let result = self.core.queries().and_then(|queries| {
                queries.get_segments_by_states(
                    request.collection_id,
                    request.partition_id,
                    &request.states,
                )
            });
            respond(result.map(|segments| GetSegmentsByStatesResponse {
                status: success(),
                segments,
            }))
        }

        async fn get_flush_state(
            &self,
            request: Request<GetFlushStateRequest>,
        ) -> RpcResult<GetFlushStateResponse> {
            let request = request.into_inner();
            let result = self
                .core
                .queries()
                .and_then(|queries| queries.get_flush_state(&request));
            respond(result.map(|flushed| GetFlushStateResponse {
                status: success(),
                flushed,
            }))
        }

        async fn get_flush_all_state(
            &self,
            request: Request<GetFlushAllStateRequest>,
        ) -> RpcResult<GetFlushAllStateResponse> {
            let request = request.into_inner();
            let result = async {
                self.core
                    .queries()?
                    .get_flush_all_state(&request.db_name, request.flush_all_ts)
                    .await
            };
            let result = result.await;
            respond(result.map(|flushed| GetFlushAllStateResponse {
                status: success(),
                flushed,
            }))
        }

        async fn get_recovery_info(
            &self,
            request: Request<GetRecoveryInfoRequest>,
        ) -> RpcResult<GetRecoveryInfoResponse> {
            let result = async {
                self.core
                    .queries()?
                    .get_recovery_info(request.into_inner())
                    .await
            };
            respond(result.await)
        }

        async fn get_recovery_info_v2(
            &self,
            request: Request<GetRecoveryInfoRequestV2>,
        ) -> RpcResult<GetRecoveryInfoResponseV2> {
            let result = async {
                self.core
                    .queries()?
                    .get_recovery_info_v2(request.into_inner())
                    .await
            };
            respond(result.await)
        }

        async fn set_segment_state(
            &self,
            request: Request<SetSegmentStateRequest>,
        ) -> RpcResult<SetSegmentStateResponse> {
            let request = request.into_inner();
            let result = async {
                self.core
                    .data_path()?
                    .set_segment_state(request.segment_id, request.new_state)
                    .await
            };
            let result = result.await;
            respond(result.map(|()| SetSegmentStateResponse { status: success() }))
        }

        async fn manual_compaction(
            &self,
            request: Request<ManualCompactionRequest>,
        ) -> RpcResult<ManualCompactionResponse> {
            let request = request.into_inner();
            let result = async {
                self.core
                    .compaction()?
                    .manual_compaction(request.collection_id)
                    .await
            };
            respond(result.await)
        }

        async fn get_compaction_state(
            &self,
            request: Request<GetCompactionStateRequest>,
        ) -> RpcResult<GetCompactionStateResponse> {
            let id = request.get_ref().compaction_id;
            respond(
                self.core
                    .compaction()
                    .and_then(|compaction| compaction.compaction_state(id)),
            )
        }

        async fn get_compaction_state_with_plans(
            &self,
            request: Request<GetCompactionPlansRequest>,
        ) -> RpcResult<GetCompactionPlansResponse> {
            let id = request.get_ref().compaction_id;
            respond(
                self.core
                    .compaction()
                    .and_then(|compaction| compaction.compaction_state_with_plans(id)),
            )
        }

        async fn import(
            &self,
            request: Request<ImportTaskRequest>,
        ) -> RpcResult<ImportTaskResponse> {
            let request = request.into_inner();
            respond(self.core.import().and_then(|import| import.import(request)))
        }

        async fn save_import_segment(
            &self,
            request: Request<SaveImportSegmentRequest>,
        ) -> RpcResult<Status> {
            let result = async {
                self.core
                    .import()?
                    .save_import_segment(request.into_inner())
                    .await
            };
            status_only(result.await)
        }

        async fn unset_is_importing_state(
            &self,
            request: Request<UnsetIsImportingStateRequest>,
        ) -> RpcResult<Status> {
            let request = request.into_inner();
            status_only(
                self.core
                    .unset_is_importing_state(&request.segment_ids)
                    .await,
            )
        }

        async fn mark_segments_dropped(
            &self,
            request: Request<MarkSegmentsDroppedRequest>,
        ) -> RpcResult<Status> {
            let request = request.into_inner();
            status_only(self.core.mark_segments_dropped(&request.segment_ids).await)
        }

        async fn broadcast_altered_collection(
            &self,
            request: Request<AlterCollectionRequest>,
        ) -> RpcResult<Status> {
            status_only(
                self.core
                    .queries()
                    .and_then(|queries| queries.broadcast_altered_collection(request.into_inner())),
            )
        }

        async fn gc_control(&self, request: Request<GcControlRequest>) -> RpcResult<Status> {
            let status = match self.core.gc() {
                Ok(gc) => gc.gc_control(request.get_ref()).await,
                Err(err) => err.to_status(),
            };
            Ok(Response::new(status))
        }

        async fn gc_confirm(&self, request: Request<GcConfirmRequest>) -> RpcResult<GcConfirmResponse> {
            let request = request.into_inner();
            let result = async {
                self.core
                    .queries()?
                    .gc_confirm(request.collection_id, request.partition_id)
                    .await
            };
            let result = result.await;
            respond(result.map(|gc_finished| GcConfirmResponse {
                status: success(),
                gc_finished,
            }))
        }
    }
}

with_shared_rpcs! {
    #[tonic::async_trait]
    impl IndexCoord for DataCoordService {}
}
