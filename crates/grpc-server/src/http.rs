//! The HTTP endpoints a Milvus process serves on its metrics port: `/metrics` and `/healthz`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use datacoord::Server;
use milvus_types::StateCode;
use prometheus::{Encoder, TextEncoder};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const COMPONENT_NAME: &str = "datacoord";

/// Binds the metrics port; serving starts with [`serve_http`].
pub async fn bind_http(port: u16) -> std::io::Result<TcpListener> {
    TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], port))).await
}

/// Serves `/metrics` and `/healthz` until `shutdown` is cancelled.
pub async fn serve_http(
    listener: TcpListener,
    core: Arc<Server>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(core))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

/// The router, exposed for in-process tests.
pub fn router(core: Arc<Server>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(core)
}

async fn metrics(State(core): State<Arc<Server>>) -> Response {
    let families = core.gather_metrics();
    let mut body = Vec::new();
    if let Err(err) = TextEncoder::new().encode(&families, &mut body) {
        return (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response();
    }
    ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], body).into_response()
}

#[derive(Serialize)]
struct HealthResponse {
    state: String,
    detail: Vec<IndicatorState>,
}

#[derive(Serialize)]
struct IndicatorState {
    name: &'static str,
    code: i32,
}

/// As 2.3.5: "OK" (200) when the component is Healthy or StandBy, else
/// `component datacoord state is <State>` (500); JSON only when the request asks for it.
async fn healthz(State(core): State<Arc<Server>>, headers: HeaderMap) -> Response {
    let code = core.state_code();
    let state = if matches!(code, StateCode::Healthy | StateCode::StandBy) {
        "OK".to_string()
    } else {
        format!("component {COMPONENT_NAME} state is {}", code.as_str_name())
    };
    let status = if state == "OK" {
        StatusCode::OK
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    let wants_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "application/json");
    if !wants_json {
        return (status, [(header::CONTENT_TYPE, "text/plain")], state).into_response();
    }
    let body = HealthResponse {
        state,
        detail: vec![IndicatorState {
            name: COMPONENT_NAME,
            code: code as i32,
        }],
    };
    let json = serde_json::to_vec(&body).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, "application/json")], json).into_response()
}
