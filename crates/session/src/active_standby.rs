//! Active-standby for exclusive coordinators (FACTS §B.5).
//!
//! Every instance registers `<role>-<id>`; the active one also holds the bare `<role>` key with
//! its own lease. A standby watches the bare key and competes again when it is deleted (the
//! active instance stopped or its lease expired).

use std::future::Future;
use std::time::Duration;

use etcd_client::{Compare, CompareOp, EventType, PutOptions, Txn, TxnOp, WatchOptions};

use crate::discovery::get_sessions;
use crate::error::SessionError;
use crate::keys::session_key;
use crate::retry::retry;
use crate::session::Session;

/// Pause after an etcd error while competing, as Go does.
const COMPETE_RETRY_PAUSE: Duration = Duration::from_millis(100);
/// How often a waiting standby says so in the log.
const STANDBY_LOG_PERIOD: Duration = Duration::from_secs(10);

impl Session {
    /// Writes the bare key with our lease if nobody holds it. Returns whether we got it and the
    /// revision of the attempt.
    async fn try_take_active_key(&self, lease_id: i64) -> Result<(bool, i64), SessionError> {
        let key = self.active_key();
        let json = self.record(Some(lease_id), self.is_stopping()).to_json();
        let put = TxnOp::put(
            key.as_str(),
            json,
            Some(PutOptions::new().with_lease(lease_id)),
        );
        let txn = Txn::new()
            .when([Compare::version(key.as_str(), CompareOp::Equal, 0)])
            .and_then([put]);
        let response = self
            .client
            .kv_client()
            .txn(txn)
            .await
            .map_err(SessionError::etcd("register active key"))?;
        let revision = response.header().map_or(0, |header| header.revision());
        Ok((response.succeeded(), revision))
    }

    /// Waits (cancellably) until the bare key is deleted or the watch ends; then the caller
    /// competes again.
    async fn wait_for_active_key_release(&self, revision: i64) -> Result<(), SessionError> {
        let key = self.active_key();
        tracing::info!(server_name = %self.role.server_name, key = %key, "start to watch ACTIVE key");
        let options = WatchOptions::new()
            .with_start_revision(revision)
            .with_prev_key();
        let mut stream = match self
            .client
            .watch_client()
            .watch(key.as_str(), Some(options))
            .await
        {
            Ok(stream) => stream,
            Err(err) => {
                tracing::warn!(key = %key, error = %err, "cannot watch ACTIVE key");
                self.pause(COMPETE_RETRY_PAUSE).await?;
                return Ok(());
            }
        };
        let mut reminder = tokio::time::interval(STANDBY_LOG_PERIOD);
        loop {
            let message = tokio::select! {
                () = self.shutdown.cancelled() => return Err(SessionError::Cancelled),
                () = self.liveness.lost() => return Err(self.lost_error()),
                _ = reminder.tick() => {
                    tracing::debug!(server_name = %self.role.server_name, "in STANDBY");
                    continue;
                }
                message = stream.message() => message,
            };
            match message {
                Ok(Some(response)) if response.canceled() => break,
                Ok(Some(response)) => {
                    let released = response
                        .events()
                        .iter()
                        .any(|event| event.event_type() == EventType::Delete);
                    if released {
                        break;
                    }
                }
                Ok(None) | Err(_) => {
                    // A broken watch only means "look again"; pause so a dead etcd is not hammered.
                    self.pause(COMPETE_RETRY_PAUSE).await?;
                    break;
                }
            }
        }
        tracing::info!(key = %key, "stop watching ACTIVE key");
        Ok(())
    }

    async fn pause(&self, duration: Duration) -> Result<(), SessionError> {
        tokio::select! {
            () = self.shutdown.cancelled() => Err(SessionError::Cancelled),
            () = self.liveness.lost() => Err(self.lost_error()),
            () = tokio::time::sleep(duration) => Ok(()),
        }
    }

    fn lost_error(&self) -> SessionError {
        SessionError::Lost {
            key: self.key(),
            reason: self.liveness.reason().unwrap_or_default(),
        }
    }

    /// Competes for the bare key until this session holds it, then runs `activate` and returns
    /// its output. While waiting the session is STANDBY. Ends early with `Cancelled` on
    /// [`Session::stop`] and with `Lost` when the session is lost. Needs `register` first.
    pub async fn process_active_standby<F, Fut>(
        &self,
        activate: F,
    ) -> Result<Fut::Output, SessionError>
    where
        F: FnOnce() -> Fut,
        Fut: Future,
    {
        let lease_id = self.require_lease()?;
        if self.shutdown.is_cancelled() {
            return Err(SessionError::Cancelled);
        }
        self.set_standby(true);
        tracing::info!(server_name = %self.role.server_name, "enter STANDBY mode");
        loop {
            tracing::info!(server_name = %self.role.server_name, "try to register as ACTIVE service");
            match self.try_take_active_key(lease_id).await {
                Ok((true, _)) => break,
                Ok((false, revision)) => {
                    tracing::info!(server_name = %self.role.server_name, "ACTIVE service already registered");
                    self.wait_for_active_key_release(revision).await?;
                }
                Err(err) => {
                    tracing::warn!(server_name = %self.role.server_name, error = %err,
                        "register active key failed");
                    self.pause(COMPETE_RETRY_PAUSE).await?;
                }
            }
        }
        self.set_standby(false);
        tracing::info!(server_name = %self.role.server_name, server_id = self.server_id,
            "quit STANDBY mode, this node becomes ACTIVE");
        Ok(activate().await)
    }

    /// Takes the bare key by force (what the indexcoord alias of an active datacoord does): if
    /// the current holder's record names its lease, that lease is revoked (removing all its
    /// keys); otherwise the bare key and the `<role>-<id>` keys of other ServerIDs are deleted.
    /// Then the bare key is written with our lease. Retried `retry_times` times.
    ///
    /// Differs from Go in one corner: when the bare key already carries our own lease we keep
    /// it instead of revoking our own lease.
    pub async fn force_active_standby(&self) -> Result<(), SessionError> {
        let lease_id = self.require_lease()?;
        retry(
            self.config.retry_times,
            &self.shutdown,
            "force register active key",
            || self.try_force_active(lease_id),
        )
        .await
        .inspect_err(|err| {
            tracing::warn!(server_name = %self.role.server_name, error = %err,
                "failed to force register ACTIVE");
        })?;
        self.set_standby(false);
        tracing::info!(server_name = %self.role.server_name, server_id = self.server_id,
            "quit STANDBY mode, this node becomes ACTIVE");
        Ok(())
    }

    async fn try_force_active(&self, lease_id: i64) -> Result<(), SessionError> {
        let name = self.role.server_name.as_str();
        let meta_root = self.config.meta_root.as_str();
        let (sessions, _) = get_sessions(&self.client, meta_root, name).await?;
        let mut kv = self.client.kv_client();
        match sessions.get(name).map(|active| active.lease_id) {
            Some(Some(active_lease)) if active_lease == lease_id => return Ok(()),
            Some(Some(active_lease)) => {
                tracing::info!(
                    server_name = name,
                    lease_id = active_lease,
                    "revoking lease of old ACTIVE"
                );
                // Best effort, as in Go: the put below tells whether the key is free.
                let _ = self.client.lease_client().revoke(active_lease).await;
            }
            _ if !sessions.is_empty() => {
                let _ = kv.delete(self.active_key().as_str(), None).await;
                for other in sessions
                    .values()
                    .filter(|other| other.server_id != self.server_id)
                {
                    let stale = session_key(
                        meta_root,
                        &format!("{}-{}", other.server_name, other.server_id),
                    );
                    let _ = kv.delete(stale.as_str(), None).await;
                }
            }
            _ => {}
        }
        let (taken, _) = self.try_take_active_key(lease_id).await?;
        if !taken {
            return Err(SessionError::KeyTaken {
                key: self.active_key(),
                attempts: 1,
            });
        }
        tracing::info!(server_name = name, "force register ACTIVE");
        Ok(())
    }
}
