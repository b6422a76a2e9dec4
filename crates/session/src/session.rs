//! One registered session of one role (Go's `sessionutil.Session`): ServerID, registration with
//! a lease, keep-alive, liveness, graceful "stopping" mark and shutdown. Active-standby lives in
//! `active_standby.rs`.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{SessionConfig, SessionRole};
use crate::discovery::get_sessions;
use crate::error::SessionError;
use crate::info::SessionInfo;
use crate::keepalive::KeepAlive;
use crate::keys::{role_key_name, session_key};
use crate::liveness::{Liveness, OwnKeyWatch};
use crate::retry::retry;
use crate::server_id::{allocate_server_id, ensure_server_id_counter};

/// How long `stop()` waits for etcd to revoke the lease.
const REVOKE_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
struct State {
    lease_id: Option<i64>,
    /// Registered as `<role>-<id>` and not (yet) holding the bare key.
    standby: bool,
    stopping: bool,
    liveness_check_started: bool,
    stopped: bool,
}

/// A session of one role in etcd. Share it behind an `Arc`; all methods take `&self`.
///
/// Lifecycle: [`Session::new`] (ServerID) → [`Session::register`] (key + lease + keep-alive) →
/// optionally [`Session::process_active_standby`] → [`Session::start_liveness_check`] →
/// [`Session::stop`]. Background tasks end and are awaited in `stop()`; dropping the session
/// without `stop()` only cancels them.
pub struct Session {
    pub(crate) client: etcd_client::Client,
    pub(crate) config: SessionConfig,
    pub(crate) role: SessionRole,
    pub(crate) server_id: i64,
    state: Mutex<State>,
    pub(crate) liveness: Liveness,
    pub(crate) shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("server_name", &self.role.server_name)
            .field("server_id", &self.server_id)
            .field("state", &*self.state())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Prepares a session: makes sure the ServerID counter exists, then reuses
    /// `role.server_id` or allocates a new ServerID. Nothing is registered yet.
    pub async fn new(
        client: etcd_client::Client,
        config: SessionConfig,
        role: SessionRole,
    ) -> Result<Self, SessionError> {
        ensure_server_id_counter(&client, &config.meta_root).await?;
        let server_id = match role.server_id {
            Some(id) => id,
            None => allocate_server_id(&client, &config.meta_root).await?,
        };
        tracing::info!(name = %role.server_name, address = %role.address, id = server_id, "start server");
        Ok(Self {
            client,
            config,
            role,
            server_id,
            state: Mutex::new(State::default()),
            liveness: Liveness::new(),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is a few plain fields; a panic while holding the lock cannot corrupt it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// This process's ServerID (NodeID).
    pub fn server_id(&self) -> i64 {
        self.server_id
    }

    /// Role name ("datacoord", ...).
    pub fn server_name(&self) -> &str {
        &self.role.server_name
    }

    /// Advertised gRPC address.
    pub fn address(&self) -> &str {
        &self.role.address
    }

    /// The etcd client the session uses.
    pub fn client(&self) -> &etcd_client::Client {
        &self.client
    }

    /// The settings the session was created with.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The lease of the registered session.
    pub fn lease_id(&self) -> Option<i64> {
        self.state().lease_id
    }

    /// True while an active-standby session waits for the bare key.
    pub fn is_standby(&self) -> bool {
        self.state().standby
    }

    /// True once [`Session::going_stop`] marked the session stopping.
    pub fn is_stopping(&self) -> bool {
        self.state().stopping
    }

    /// The "session lost" signal (lease lost, or own key deleted once the liveness check runs).
    pub fn liveness(&self) -> Liveness {
        self.liveness.clone()
    }

    /// The record this session writes.
    pub fn info(&self) -> SessionInfo {
        let state = self.state();
        self.record(state.lease_id, state.stopping)
    }

    pub(crate) fn record(&self, lease_id: Option<i64>, stopping: bool) -> SessionInfo {
        SessionInfo {
            server_id: self.server_id,
            server_name: self.role.server_name.clone(),
            address: self.role.address.clone(),
            exclusive: self.role.exclusive,
            stopping,
            trigger_kill: self.role.trigger_kill,
            version: self.config.version.clone(),
            index_engine_version: self.role.index_engine_version.clone(),
            lease_id,
            host_name: self.config.host_name.clone(),
            enable_disk: self.role.enable_disk,
        }
    }

    /// The key this session owns now: the bare role name for an active exclusive session,
    /// `<role>-<id>` otherwise (Go's `getCompleteKey`).
    pub fn key(&self) -> String {
        let standby = self.role.enable_active_standby && self.state().standby;
        self.key_for(self.role.exclusive && !standby)
    }

    /// The bare key `{meta_root}/session/<role>` exclusive roles compete for.
    pub fn active_key(&self) -> String {
        self.key_for(true)
    }

    fn key_for(&self, bare: bool) -> String {
        let name = role_key_name(&self.role.server_name, self.server_id, bare);
        session_key(&self.config.meta_root, &name)
    }

    pub(crate) fn set_standby(&self, standby: bool) {
        self.state().standby = standby;
    }

    pub(crate) fn require_lease(&self) -> Result<i64, SessionError> {
        self.lease_id().ok_or_else(|| SessionError::NotRegistered {
            role: self.role.server_name.clone(),
        })
    }

    /// Same as the free [`get_sessions`] under this session's meta root.
    pub async fn get_sessions(
        &self,
        prefix: &str,
    ) -> Result<(BTreeMap<String, SessionInfo>, i64), SessionError> {
        get_sessions(&self.client, &self.config.meta_root, prefix).await
    }

    /// Writes the session key with a fresh lease (put-if-absent) and starts keeping the lease
    /// alive. An occupied key whose holder has the same Address and a smaller ServerID is an
    /// earlier run of this process and is deleted; the attempt is retried with backoff up to
    /// `retry_times` times. Registering twice is a no-op; after `stop()` it is `Cancelled`.
    pub async fn register(&self) -> Result<(), SessionError> {
        if self.lease_id().is_some() {
            return Ok(());
        }
        if self.shutdown.is_cancelled() {
            return Err(SessionError::Cancelled);
        }
        if self.role.enable_active_standby {
            self.set_standby(true);
        }
        let key = self.key();
        tracing::debug!(server_name = %self.role.server_name, server_id = self.server_id, key = %key,
            "registering session");
        let (lease_id, keeper, stream) = retry(
            self.config.retry_times,
            &self.shutdown,
            "register session",
            || self.try_register(&key),
        )
        .await?;
        self.state().lease_id = Some(lease_id);
        let keepalive = KeepAlive {
            client: self.client.clone(),
            lease_id,
            ttl: self.config.ttl,
            server_name: self.role.server_name.clone(),
            shutdown: self.shutdown.clone(),
            liveness: self.liveness.clone(),
        };
        self.tasks.spawn(keepalive.run(keeper, stream));
        tracing::info!(server_name = %self.role.server_name, server_id = self.server_id, key = %key,
            lease_id, "session registered");
        Ok(())
    }

    async fn try_register(
        &self,
        key: &str,
    ) -> Result<
        (
            i64,
            etcd_client::LeaseKeeper,
            etcd_client::LeaseKeepAliveStream,
        ),
        SessionError,
    > {
        let mut client = self.client.clone();
        let lease_id = client
            .lease_grant(self.config.ttl_seconds(), None)
            .await
            .map_err(SessionError::etcd("grant lease"))?
            .id();
        let json = self.record(Some(lease_id), false).to_json();
        let put = TxnOp::put(key, json, Some(PutOptions::new().with_lease(lease_id)));
        let txn = Txn::new()
            .when([Compare::version(key, CompareOp::Equal, 0)])
            .and_then([put]);
        let created = match client.txn(txn).await {
            Ok(response) => response.succeeded(),
            Err(source) => {
                self.revoke_quietly(lease_id).await;
                return Err(SessionError::Etcd {
                    op: "register session",
                    source,
                });
            }
        };
        if !created {
            // The unused lease would expire by itself; revoking just tidies up sooner.
            self.revoke_quietly(lease_id).await;
            self.remove_previous_incarnation(key).await;
            return Err(SessionError::KeyTaken {
                key: key.to_owned(),
                attempts: self.config.retry_times,
            });
        }
        match KeepAlive::open(&self.client, lease_id).await {
            Ok((keeper, stream)) => Ok((lease_id, keeper, stream)),
            Err(err) => {
                // Without a keep-alive the key would block our own retry until the lease expires.
                self.revoke_quietly(lease_id).await;
                Err(err)
            }
        }
    }

    /// Fast restart: the key still holds this address under an older ServerID, so the previous
    /// process died without cleaning up. Errors are only logged; the caller retries anyway.
    async fn remove_previous_incarnation(&self, key: &str) {
        let mut kv = self.client.kv_client();
        let response = match kv.get(key, None).await {
            Ok(response) => response,
            Err(err) => {
                tracing::warn!(key, error = %err, "cannot read the session occupying our key");
                return;
            }
        };
        for entry in response.kvs() {
            let old = match SessionInfo::from_json(key, entry.value()) {
                Ok(old) => old,
                Err(err) => {
                    tracing::warn!(key, error = %err, "cannot decode the session occupying our key");
                    return;
                }
            };
            if old.address == self.role.address && old.server_id < self.server_id {
                tracing::warn!(key, address = %old.address, old_server_id = old.server_id,
                    "found session of a previous run at our address, removing it");
                if let Err(err) = kv.delete(key, None).await {
                    tracing::warn!(key, error = %err, "cannot delete previous session");
                }
            }
        }
    }

    /// Starts watching this session's own key: its deletion fires [`Session::liveness`].
    /// Call after `register` (and, with active-standby, after becoming active, since a standby
    /// session only owns `<role>-<id>`). Calling it again is a no-op.
    pub fn start_liveness_check(&self) -> Result<(), SessionError> {
        let lease_id = self.require_lease()?;
        {
            let mut state = self.state();
            if state.liveness_check_started {
                return Ok(());
            }
            state.liveness_check_started = true;
        }
        let watch = OwnKeyWatch {
            client: self.client.clone(),
            key: self.key(),
            lease_id,
            retry_times: self.config.retry_times,
            shutdown: self.shutdown.clone(),
            liveness: self.liveness.clone(),
        };
        self.tasks.spawn(watch.run());
        Ok(())
    }

    /// Marks the session `Stopping=true` (graceful shutdown); watchers of this role see an update
    /// event. Does nothing if the key is already gone.
    pub async fn going_stop(&self) -> Result<(), SessionError> {
        let lease_id = self.require_lease()?;
        if self.liveness.is_lost() {
            return Err(SessionError::Lost {
                key: self.key(),
                reason: self.liveness.reason().unwrap_or_default(),
            });
        }
        let key = self.key();
        let mut kv = self.client.kv_client();
        let count = kv
            .get(
                key.as_str(),
                Some(etcd_client::GetOptions::new().with_count_only()),
            )
            .await
            .map_err(SessionError::etcd("read session for stopping"))?
            .count();
        if count == 0 {
            return Ok(());
        }
        self.state().stopping = true;
        let json = self.record(Some(lease_id), true).to_json();
        kv.put(
            key.as_str(),
            json,
            Some(PutOptions::new().with_lease(lease_id)),
        )
        .await
        .map_err(SessionError::etcd("mark session stopping"))?;
        Ok(())
    }

    /// Stops keep-alive and liveness tasks, waits for them, then revokes the lease (best effort,
    /// 1 s), which removes every key of this session. Idempotent. Loss is not signalled by a
    /// deliberate stop.
    pub async fn stop(&self) {
        let lease_id = {
            let mut state = self.state();
            if state.stopped {
                return;
            }
            state.stopped = true;
            state.lease_id
        };
        // Tasks first: otherwise our own revoke would look like a lost session to the watch.
        self.shutdown.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        // Also after a loss: the lease may still carry our `<role>-<id>` key.
        if let Some(lease_id) = lease_id {
            let mut lease = self.client.lease_client();
            match tokio::time::timeout(REVOKE_TIMEOUT, lease.revoke(lease_id)).await {
                Ok(Ok(_)) => {
                    tracing::info!(server_name = %self.role.server_name, lease_id, "session revoked")
                }
                Ok(Err(err)) => {
                    tracing::warn!(lease_id, error = %err, "cannot revoke session lease")
                }
                Err(_) => tracing::warn!(lease_id, "revoking session lease timed out"),
            }
        }
    }

    pub(crate) async fn revoke_quietly(&self, lease_id: i64) {
        let mut lease = self.client.lease_client();
        if let Ok(Err(err)) = tokio::time::timeout(REVOKE_TIMEOUT, lease.revoke(lease_id)).await {
            tracing::debug!(lease_id, error = %err, "revoking lease failed");
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Without `stop()` the tasks cannot be awaited, but they must not outlive the session.
        self.shutdown.cancel();
    }
}
