//! Service discovery: nodes of a role are listed once, then followed through their sessions.

use std::sync::Arc;

use milvus_session::{SessionEvent, SessionEventKind, SessionWatcher};
use milvus_types::{MilvusError, MilvusResult};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::nodes::NodeManager;

/// DataNodes and QueryNodes older than this are not served by a 2.3 DataCoord.
const MIN_NODE_VERSION: semver::Version = semver::Version::new(2, 2, 3);

/// Lists the sessions of `role`, adds them to `nodes`, and returns a watcher that continues from
/// the listed revision, so no change between the two is missed.
pub(crate) async fn list_and_watch<C: Clone + Send + Sync + 'static>(
    etcd: &etcd_client::Client,
    meta_root: &str,
    role: &'static str,
    nodes: &NodeManager<C>,
) -> MilvusResult<SessionWatcher> {
    let min_version = match role {
        "datanode" | "querynode" => Some(MIN_NODE_VERSION),
        _ => None,
    };
    let (sessions, watcher) = SessionWatcher::list_and_watch(etcd, meta_root, role, min_version)
        .await
        .map_err(MilvusError::from)?;
    for session in sessions.into_values() {
        nodes.add(session);
    }
    info!(role, nodes = nodes.node_ids().len(), "nodes discovered");
    Ok(watcher)
}

/// Applies session events to `nodes` until cancelled. A watch that cannot continue means our view
/// of the cluster is stale; as in 2.3.5 the server then stops (`lost` tells the owner).
pub(crate) async fn run<C: Clone + Send + Sync + 'static>(
    mut watcher: SessionWatcher,
    nodes: Arc<NodeManager<C>>,
    token: CancellationToken,
    lost: CancellationToken,
) {
    loop {
        let event = tokio::select! {
            _ = token.cancelled() => return,
            event = watcher.next() => event,
        };
        match event {
            Ok(SessionEvent { kind, session, .. }) => match kind {
                SessionEventKind::Add => nodes.add(session),
                SessionEventKind::Update => nodes.mark_stopping(session.server_id),
                SessionEventKind::Delete => nodes.remove(session.server_id),
            },
            Err(err) => {
                error!(error = %err, "session watch failed, stopping");
                lost.cancel();
                return;
            }
        }
    }
}
