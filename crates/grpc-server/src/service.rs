//! Thin tonic adapters: each RPC calls one core method and builds its response.
//!
//! Only the RPCs the core implements are overridden; every other method of both services keeps the
//! generated default, gRPC `UNIMPLEMENTED` (2.3.5 Go clients turn it into "service unimplemented"
//! and do not retry). README.md lists them.

use std::sync::Arc;

use datacoord::Server;
use milvus_proto::common::Status;
use milvus_proto::data::GetSegmentInfoChannelRequest;
use milvus_proto::data::data_coord_server::DataCoord;
use milvus_proto::index::index_coord_server::IndexCoord;
use milvus_proto::internal::{
    GetStatisticsChannelRequest, GetTimeTickChannelRequest, ShowConfigurationsRequest,
    ShowConfigurationsResponse,
};
use milvus_proto::milvus::{
    CheckHealthRequest, CheckHealthResponse, ComponentStates, GetComponentStatesRequest,
    GetMetricsRequest, GetMetricsResponse, StringResponse,
};
use milvus_types::{Component, MilvusResult};
use tonic::{Request, Response};

type RpcResult<T> = Result<Response<T>, tonic::Status>;

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

#[tonic::async_trait]
impl DataCoord for DataCoordService {
    async fn get_component_states(
        &self,
        _request: Request<GetComponentStatesRequest>,
    ) -> RpcResult<ComponentStates> {
        self.component_states()
    }

    async fn get_time_tick_channel(
        &self,
        _request: Request<GetTimeTickChannelRequest>,
    ) -> RpcResult<StringResponse> {
        Ok(Response::new(string_response(Ok(self
            .core
            .time_tick_channel()))))
    }

    async fn get_statistics_channel(
        &self,
        _request: Request<GetStatisticsChannelRequest>,
    ) -> RpcResult<StringResponse> {
        self.statistics_channel()
    }

    async fn get_segment_info_channel(
        &self,
        _request: Request<GetSegmentInfoChannelRequest>,
    ) -> RpcResult<StringResponse> {
        Ok(Response::new(string_response(Ok(self
            .core
            .segment_info_channel()))))
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
}

#[tonic::async_trait]
impl IndexCoord for DataCoordService {
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
}
