//! The `cluster` / `serverid` request checks 2.3.5 runs before every handler.
//!
//! Go clients always send both; a client that gets "node not match" re-reads the
//! `session/datacoord` key and reconnects, which is how a takeover is noticed.

use std::sync::Arc;

use milvus_types::MilvusError;
use tonic::{Request, Status};

/// Metadata key of the cluster prefix (Go sends "Cluster"; gRPC lowercases it).
pub const CLUSTER_KEY: &str = "cluster";
/// Metadata key of the target's ServerID (Go sends "ServerID").
pub const SERVER_ID_KEY: &str = "serverid";

/// Rejects requests routed to another cluster or to another incarnation of this server.
#[derive(Clone)]
pub struct RequestValidator {
    cluster: Arc<str>,
    server_id: Arc<dyn Fn() -> i64 + Send + Sync>,
}

impl RequestValidator {
    /// `cluster` is `msgChannel.chanNamePrefix.cluster`; `server_id` reads the current session ID.
    pub fn new(cluster: &str, server_id: Arc<dyn Fn() -> i64 + Send + Sync>) -> Self {
        Self {
            cluster: cluster.into(),
            server_id,
        }
    }

    /// Checks one request; the error text is what Go peers match on.
    pub fn check<T>(&self, request: Request<T>) -> Result<Request<T>, Status> {
        let metadata = request.metadata();
        let cluster = metadata
            .get(CLUSTER_KEY)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !cluster.is_empty() && cluster != &*self.cluster {
            let err = MilvusError::cross_cluster_routing(&self.cluster, cluster);
            return Err(Status::unknown(err.to_string()));
        }
        let requested = metadata
            .get(SERVER_ID_KEY)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<i64>().ok());
        if let Some(requested) = requested {
            let actual = (self.server_id)();
            if requested != actual {
                let err = MilvusError::node_not_match(requested, actual);
                return Err(Status::unknown(err.to_string()));
            }
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validator(id: i64) -> RequestValidator {
        RequestValidator::new("by-dev", Arc::new(move || id))
    }

    fn request(pairs: &[(&'static str, &str)]) -> Request<()> {
        let mut request = Request::new(());
        for (k, v) in pairs {
            request.metadata_mut().insert(*k, v.parse().expect("ascii"));
        }
        request
    }

    #[test]
    fn accepts_matching_or_absent_metadata() {
        let v = validator(7);
        assert!(v.check(request(&[])).is_ok());
        assert!(
            v.check(request(&[("cluster", "by-dev"), ("serverid", "7")]))
                .is_ok()
        );
        assert!(
            v.check(request(&[("cluster", ""), ("serverid", "not-a-number")]))
                .is_ok()
        );
    }

    #[test]
    fn rejects_other_cluster_and_other_server() {
        let v = validator(7);
        let err = v
            .check(request(&[("cluster", "other")]))
            .expect_err("cross cluster");
        assert_eq!(err.code(), tonic::Code::Unknown);
        assert!(
            err.message().starts_with("cross cluster routing"),
            "{}",
            err.message()
        );
        let err = v
            .check(request(&[("serverid", "8")]))
            .expect_err("node not match");
        assert_eq!(
            err.message(),
            "node not match[expectedNodeID=8][actualNodeID=7]"
        );
    }
}
