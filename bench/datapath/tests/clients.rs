//! assign-bench and recovery-bench logic against an in-process fake DataCoord: the metadata Go
//! clients send, round-robin channels, and failures counted rather than hidden.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use datacoord_bench::{
    AssignConfig, RecoveryConfig, RoutingMetadata, connect_datacoord, run_assign_level,
    run_recovery,
};
use milvus_proto::common::Status;
use milvus_proto::data::data_coord_server::{DataCoord, DataCoordServer};
use milvus_proto::data::{
    AssignSegmentIdRequest, AssignSegmentIdResponse, GetRecoveryInfoRequestV2,
    GetRecoveryInfoResponseV2, SegmentIdAssignment, SegmentInfo, VchannelInfo,
};
use tonic::{Request, Response};

/// Requests to this channel get a failed status.
const FAILING_CHANNEL: &str = "broken";

#[derive(Default)]
struct Seen {
    assign_calls: u64,
    per_channel: BTreeMap<String, u64>,
    metadata: Vec<(Option<String>, Option<String>)>,
}

#[derive(Clone, Default)]
struct FakeDataCoord {
    seen: Arc<Mutex<Seen>>,
    recovery_segments: usize,
}

fn header(request: &Request<impl Sized>, key: &str) -> Option<String> {
    request
        .metadata()
        .get(key)
        .map(|v| v.to_str().expect("ascii").to_string())
}

#[tonic::async_trait]
impl DataCoord for FakeDataCoord {
    async fn assign_segment_id(
        &self,
        request: Request<AssignSegmentIdRequest>,
    ) -> Result<Response<AssignSegmentIdResponse>, tonic::Status> {
        let metadata = (header(&request, "cluster"), header(&request, "serverid"));
        let inner = request.into_inner();
        assert_eq!(inner.peer_role, "proxy");
        assert_eq!(inner.segment_id_requests.len(), 1);
        let wanted = inner.segment_id_requests[0].clone();
        {
            let mut seen = self.seen.lock().unwrap();
            seen.assign_calls += 1;
            *seen
                .per_channel
                .entry(wanted.channel_name.clone())
                .or_default() += 1;
            seen.metadata.push(metadata);
        }
        if wanted.channel_name == FAILING_CHANNEL {
            return Ok(Response::new(AssignSegmentIdResponse {
                status: Some(Status {
                    code: 500,
                    error_code: 1,
                    reason: "channel not found".into(),
                    ..Status::default()
                }),
                ..AssignSegmentIdResponse::default()
            }));
        }
        Ok(Response::new(AssignSegmentIdResponse {
            status: Some(Status::default()),
            seg_id_assignments: vec![SegmentIdAssignment {
                seg_id: 1,
                channel_name: wanted.channel_name,
                count: wanted.count,
                collection_id: wanted.collection_id,
                partition_id: wanted.partition_id,
                expire_time: 1,
                status: Some(Status::default()),
            }],
        }))
    }

    async fn get_recovery_info_v2(
        &self,
        request: Request<GetRecoveryInfoRequestV2>,
    ) -> Result<Response<GetRecoveryInfoResponseV2>, tonic::Status> {
        let collection_id = request.into_inner().collection_id;
        Ok(Response::new(GetRecoveryInfoResponseV2 {
            status: Some(Status::default()),
            channels: vec![VchannelInfo::default(), VchannelInfo::default()],
            segments: (0..self.recovery_segments)
                .map(|i| SegmentInfo {
                    id: i as i64,
                    collection_id,
                    ..SegmentInfo::default()
                })
                .collect(),
        }))
    }
}

async fn serve(fake: FakeDataCoord) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(DataCoordServer::new(fake))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .expect("fake server");
    });
    address
}

fn assign_config(channels: &[&str]) -> AssignConfig {
    AssignConfig {
        collection_id: 1,
        partition_id: 2,
        channels: channels.iter().map(|c| c.to_string()).collect(),
        rows: 100,
        node_id: 0,
        duration: Duration::from_millis(300),
        call_timeout: Duration::from_secs(5),
    }
}

#[tokio::test]
async fn assign_counts_failed_statuses_and_sends_routing_metadata() {
    let fake = FakeDataCoord::default();
    let address = serve(fake.clone()).await;
    let metadata = RoutingMetadata::new("by-dev", Some(7)).expect("metadata");
    let client = connect_datacoord(&address, metadata)
        .await
        .expect("connect");

    let report = run_assign_level(&client, &assign_config(&["good", FAILING_CHANNEL]), 4).await;

    let seen = fake.seen.lock().unwrap();
    assert_eq!(
        report.calls, seen.assign_calls,
        "every call is accounted for"
    );
    assert_eq!(report.ok + report.errors + report.empty, report.calls);
    assert_eq!(report.ok, seen.per_channel["good"]);
    assert_eq!(report.errors, seen.per_channel[FAILING_CHANNEL]);
    assert_eq!(report.empty, 0);
    assert!(report.ok > 0 && report.errors > 0, "{report:?}");
    // Round-robin: both channels get the same share, up to the calls in flight at the end.
    assert!(report.ok.abs_diff(report.errors) <= 4, "{report:?}");
    assert!(
        report
            .error_messages
            .by_message
            .keys()
            .all(|m| m.contains("channel not found"))
    );
    assert_eq!(
        report.latency.as_ref().map(|l| l.count as u64),
        Some(report.ok)
    );
    assert!(
        seen.metadata
            .iter()
            .all(|m| m == &(Some("by-dev".into()), Some("7".into())))
    );
}

#[tokio::test]
async fn unimplemented_rpcs_are_errors_not_successes() {
    struct Empty;
    #[tonic::async_trait]
    impl DataCoord for Empty {}

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(DataCoordServer::new(Empty))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .expect("fake server");
    });
    let client = connect_datacoord(
        &address,
        RoutingMetadata::new("by-dev", None).expect("metadata"),
    )
    .await
    .expect("connect");

    let assign = run_assign_level(&client, &assign_config(&["a"]), 2).await;
    assert!(assign.calls > 0);
    assert_eq!(assign.errors, assign.calls);
    assert_eq!((assign.ok, assign.latency), (0, None));

    let recovery = run_recovery(
        &client,
        &RecoveryConfig {
            collection_id: 1,
            partition_ids: vec![],
            calls: 5,
            node_id: 0,
            call_timeout: Duration::from_secs(5),
        },
    )
    .await;
    assert_eq!((recovery.ok, recovery.errors), (0, 5));
    assert_eq!(recovery.segments_max, None);
    assert!(
        recovery
            .error_messages
            .by_message
            .keys()
            .all(|m| m.contains("Unimplemented")),
        "{recovery:?}"
    );
}

#[tokio::test]
async fn recovery_reports_the_answer_size() {
    let fake = FakeDataCoord {
        recovery_segments: 37,
        ..FakeDataCoord::default()
    };
    let address = serve(fake).await;
    let client = connect_datacoord(
        &address,
        RoutingMetadata::new("by-dev", Some(1)).expect("metadata"),
    )
    .await
    .expect("connect");
    let report = run_recovery(
        &client,
        &RecoveryConfig {
            collection_id: 9,
            partition_ids: vec![],
            calls: 6,
            node_id: 3,
            call_timeout: Duration::from_secs(5),
        },
    )
    .await;
    assert_eq!((report.calls, report.ok, report.errors), (6, 6, 0));
    assert_eq!(
        (report.segments_min, report.segments_max),
        (Some(37), Some(37))
    );
    assert_eq!(
        (report.channels_min, report.channels_max),
        (Some(2), Some(2))
    );
    assert_eq!(report.latency.map(|l| l.count), Some(6));
}
