//! Process-wide session settings and the per-role description of one session.

use std::time::Duration;

use crate::info::IndexEngineVersion;

/// The build version every session advertises.
pub const MILVUS_VERSION: &str = "2.3.5";

/// Settings shared by all sessions of a process (`common.session.*`, `etcd.rootPath`/`metaSubPath`).
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// `etcd.rootPath + "/" + etcd.metaSubPath`, e.g. "by-dev/meta"; sessions live under
    /// `{meta_root}/session/`.
    pub meta_root: String,
    /// Lease TTL (`common.session.ttl`, 30 s in milvus.yaml). etcd leases count whole seconds.
    pub ttl: Duration,
    /// Attempts for registration and re-reads (`common.session.retryTimes`, 30).
    pub retry_times: u32,
    /// Semver text written into `Version`.
    pub version: String,
    /// Written into `HostName`.
    pub host_name: String,
}

impl SessionConfig {
    /// Defaults of milvus.yaml 2.3.5 under the given meta root, with this machine's host name.
    pub fn new(meta_root: impl Into<String>) -> Self {
        Self {
            meta_root: meta_root.into(),
            ttl: Duration::from_secs(30),
            retry_times: 30,
            version: MILVUS_VERSION.to_owned(),
            host_name: local_host_name(),
        }
    }

    /// Lease TTL in whole seconds (at least 1), rounding up.
    pub fn ttl_seconds(&self) -> i64 {
        let secs = self.ttl.as_secs() + u64::from(self.ttl.subsec_nanos() > 0);
        i64::try_from(secs.max(1)).unwrap_or(i64::MAX)
    }
}

/// What one session announces: Go's `Session.Init(serverName, address, exclusive, triggerKill)`
/// plus the options a role may set.
#[derive(Clone, Debug)]
pub struct SessionRole {
    /// Role name and key stem: "datacoord", "indexcoord", "datanode", ...
    pub server_name: String,
    /// gRPC address peers dial.
    pub address: String,
    /// Only one active session of this role (bare key).
    pub exclusive: bool,
    /// Advertise that the owner exits when the session is lost.
    pub trigger_kill: bool,
    /// Register as `<role>-<id>` and compete for the bare key with
    /// [`Session::process_active_standby`](crate::Session::process_active_standby).
    pub enable_active_standby: bool,
    /// Reuse this ServerID instead of allocating one (sessions of one process share the NodeID,
    /// e.g. the datacoord session reuses the ID the indexcoord alias allocated).
    pub server_id: Option<i64>,
    /// `EnableDisk` (index nodes).
    pub enable_disk: bool,
    /// `IndexEngineVersion` (query nodes).
    pub index_engine_version: IndexEngineVersion,
}

impl SessionRole {
    /// An exclusive coordinator role with `TriggerKill=true`, as every 2.3.5 coordinator.
    pub fn coordinator(server_name: impl Into<String>, address: impl Into<String>) -> Self {
        Self {
            server_name: server_name.into(),
            address: address.into(),
            exclusive: true,
            trigger_kill: true,
            enable_active_standby: false,
            server_id: None,
            enable_disk: false,
            index_engine_version: IndexEngineVersion::default(),
        }
    }

    /// A non-exclusive worker role (`<role>-<id>` key) with `TriggerKill=true`.
    pub fn node(server_name: impl Into<String>, address: impl Into<String>) -> Self {
        Self {
            exclusive: false,
            ..Self::coordinator(server_name, address)
        }
    }

    /// Sets [`SessionRole::enable_active_standby`].
    pub fn with_active_standby(mut self, enable: bool) -> Self {
        self.enable_active_standby = enable;
        self
    }

    /// Sets [`SessionRole::server_id`] to reuse an already allocated ServerID.
    pub fn with_server_id(mut self, server_id: i64) -> Self {
        self.server_id = Some(server_id);
        self
    }
}

/// Go uses `os.Hostname()`; on Linux that is the kernel's node name.
fn local_host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_rounds_up_to_whole_seconds() {
        let mut config = SessionConfig::new("r");
        assert_eq!(config.ttl_seconds(), 30);
        config.ttl = Duration::from_millis(2500);
        assert_eq!(config.ttl_seconds(), 3);
        config.ttl = Duration::ZERO;
        assert_eq!(config.ttl_seconds(), 1);
    }
}
