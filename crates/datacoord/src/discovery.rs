//! Service discovery: nodes of a role are listed once, then followed through their sessions.

use std::sync::Arc;

use datacoord_cluster::ChannelManager;
use milvus_session::{SessionEvent, SessionEventKind, SessionWatcher};
use milvus_types::{MilvusError, MilvusResult};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::nodes::NodeSet;

/// DataNodes and QueryNodes older than this are not served by a 2.3 DataCoord.
const MIN_NODE_VERSION: semver::Version = semver::Version::new(2, 2, 3);

/// Lists the sessions of `role`, adds them to `nodes`, and returns a watcher that continues from
/// the listed revision, so no change between the two is missed.
pub(crate) async fn list_and_watch(
    etcd: &etcd_client::Client,
    meta_root: &str,
    role: &'static str,
    nodes: &dyn NodeSet,
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
    info!(role, nodes = nodes.len(), "nodes discovered");
    Ok(watcher)
}

/// Applies session events to `nodes` (and, for datanodes, to the channel manager) until
/// cancelled. A watch that cannot continue, or a channel reassignment that cannot be written,
/// means our view of the cluster is stale; as in 2.3.5 the server then stops (`lost` tells the
/// owner).
pub(crate) async fn run(
    mut watcher: SessionWatcher,
    nodes: Arc<dyn NodeSet>,
    channels: Option<Arc<ChannelManager>>,
    token: CancellationToken,
    lost: CancellationToken,
) {
    loop {
        let event = tokio::select! {
            _ = token.cancelled() => return,
            event = watcher.next() => event,
        };
        match event {
            Ok(SessionEvent { kind, session, .. }) => {
                let node_id = session.server_id;
                let result = match kind {
                    SessionEventKind::Add => {
                        nodes.add(session);
                        match &channels {
                            Some(channels) => channels.add_node(node_id).await,
                            None => Ok(()),
                        }
                    }
                    SessionEventKind::Update => {
                        nodes.mark_stopping(node_id);
                        Ok(())
                    }
                    SessionEventKind::Delete => {
                        nodes.remove(node_id);
                        match &channels {
                            Some(channels) => channels.delete_node(node_id).await,
                            None => Ok(()),
                        }
                    }
                };
                if let Err(err) = result {
                    error!(node_id, error = %err, "channel reassignment failed, stopping");
                    lost.cancel();
                    return;
                }
            }
            Err(err) => {
                error!(error = %err, "session watch failed, stopping");
                lost.cancel();
                return;
            }
        }
    }
}
