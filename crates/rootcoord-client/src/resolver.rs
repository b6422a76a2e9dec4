//! Where RootCoord is: its address and the ServerID the client must send as `serverid`.

use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use milvus_types::NodeId;

use crate::RootCoordError;

/// The session key (relative to `metaRoot/session/`) of the active RootCoord.
pub const ROOTCOORD_ROLE: &str = "rootcoord";

/// One resolved RootCoord instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootCoordTarget {
    /// `host:port` from the session's `Address`.
    pub address: String,
    /// The session's `ServerID`.
    pub server_id: NodeId,
}

/// Finds the current RootCoord. Called before every (re)connect, so it must re-read its source
/// each time rather than cache.
#[async_trait]
pub trait RootCoordResolver: Send + Sync {
    /// The RootCoord to talk to now; [`RootCoordError::Resolve`] when there is none.
    async fn resolve(&self) -> Result<RootCoordTarget, RootCoordError>;
}

/// A resolver whose answer is set by hand (tests, or a fixed address without discovery).
#[derive(Clone, Debug)]
pub struct StaticResolver {
    target: Arc<RwLock<Option<RootCoordTarget>>>,
}

impl StaticResolver {
    /// A resolver that answers `address` / `server_id`.
    pub fn new(address: impl Into<String>, server_id: NodeId) -> Self {
        Self {
            target: Arc::new(RwLock::new(Some(RootCoordTarget {
                address: address.into(),
                server_id,
            }))),
        }
    }

    /// A resolver that knows no RootCoord yet.
    pub fn empty() -> Self {
        Self {
            target: Arc::new(RwLock::new(None)),
        }
    }

    /// Points every clone of this resolver at another RootCoord.
    pub fn set(&self, address: impl Into<String>, server_id: NodeId) {
        *self.target.write().unwrap_or_else(|e| e.into_inner()) = Some(RootCoordTarget {
            address: address.into(),
            server_id,
        });
    }

    /// Forgets the RootCoord, as if its session expired.
    pub fn clear(&self) {
        *self.target.write().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

#[async_trait]
impl RootCoordResolver for StaticResolver {
    async fn resolve(&self) -> Result<RootCoordTarget, RootCoordError> {
        self.target
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| RootCoordError::Resolve("no rootcoord address set".to_string()))
    }
}

/// Reads `metaRoot/session/rootcoord` from etcd, as Go's RootCoord client does on every connect.
#[derive(Clone)]
pub struct EtcdResolver {
    client: etcd_client::Client,
    meta_root: String,
}

impl EtcdResolver {
    /// `meta_root` is `etcd.rootPath/etcd.metaSubPath`, e.g. `by-dev/meta`.
    pub fn new(client: etcd_client::Client, meta_root: impl Into<String>) -> Self {
        Self {
            client,
            meta_root: meta_root.into(),
        }
    }
}

#[async_trait]
impl RootCoordResolver for EtcdResolver {
    async fn resolve(&self) -> Result<RootCoordTarget, RootCoordError> {
        let (sessions, _revision) =
            milvus_session::get_sessions(&self.client, &self.meta_root, ROOTCOORD_ROLE)
                .await
                .map_err(|err| RootCoordError::Resolve(err.to_string()))?;
        // The prefix also matches standby `rootcoord-<id>` entries; only the bare key is active.
        let session = sessions.get(ROOTCOORD_ROLE).ok_or_else(|| {
            RootCoordError::Resolve(
                "find no available rootcoord, check rootcoord state".to_string(),
            )
        })?;
        tracing::debug!(
            address = %session.address,
            server_id = session.server_id,
            "resolved rootcoord session"
        );
        Ok(RootCoordTarget {
            address: session.address.clone(),
            server_id: session.server_id,
        })
    }
}
