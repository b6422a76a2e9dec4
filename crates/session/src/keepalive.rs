//! Keeping the session lease alive (FACTS §B.4).
//!
//! etcd-client leaves the sending of keep-alive requests to us: one every TTL/3. When the stream
//! breaks, or no answer came for a whole TTL, the stream is re-opened (the first answer proves the
//! lease still exists, like Go's `KeepAliveOnce`) up to 3 times with 10 s timeouts; after that, or
//! when etcd says the lease is gone, the session is lost.

use std::time::Duration;

use etcd_client::{LeaseKeepAliveStream, LeaseKeeper};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::SessionError;
use crate::liveness::Liveness;
use crate::retry::retry;

const RECOVERY_ATTEMPTS: u32 = 3;
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything the keep-alive loop needs, owned so it can run as a task.
pub(crate) struct KeepAlive {
    pub client: etcd_client::Client,
    pub lease_id: i64,
    pub ttl: Duration,
    pub server_name: String,
    pub shutdown: CancellationToken,
    pub liveness: Liveness,
}

enum StreamEnd {
    /// Shutdown or loss already signalled: stop quietly.
    Stop,
    /// etcd answered that the lease no longer exists.
    Expired,
    /// The stream broke or went silent; try to recover.
    Broken(String),
}

impl KeepAlive {
    /// Opens a keep-alive stream; succeeds only if etcd confirms the lease is alive.
    pub(crate) async fn open(
        client: &etcd_client::Client,
        lease_id: i64,
    ) -> Result<(LeaseKeeper, LeaseKeepAliveStream), SessionError> {
        client
            .lease_client()
            .keep_alive(lease_id)
            .await
            .map_err(SessionError::etcd("keep lease alive"))
    }

    /// Runs until shutdown or loss, starting with an already opened stream.
    pub async fn run(self, mut keeper: LeaseKeeper, mut stream: LeaseKeepAliveStream) {
        loop {
            let reason = match self.drive(&mut keeper, &mut stream).await {
                StreamEnd::Stop => return,
                StreamEnd::Expired => return self.liveness.fire("session lease expired"),
                StreamEnd::Broken(reason) => reason,
            };
            tracing::warn!(server_name = %self.server_name, lease_id = self.lease_id, reason = %reason,
                "keepalive stream ended, re-opening");
            let reopened = retry(
                RECOVERY_ATTEMPTS,
                &self.shutdown,
                "re-open keepalive",
                || async {
                    tokio::time::timeout(RECOVERY_TIMEOUT, Self::open(&self.client, self.lease_id))
                        .await
                        .unwrap_or_else(|_| {
                            Err(SessionError::Lost {
                                key: self.server_name.clone(),
                                reason: "keepalive re-open timed out".to_owned(),
                            })
                        })
                },
            )
            .await;
            match reopened {
                Ok((new_keeper, new_stream)) => {
                    tracing::info!(server_name = %self.server_name, lease_id = self.lease_id, "keepalive re-opened");
                    keeper = new_keeper;
                    stream = new_stream;
                }
                Err(SessionError::Cancelled) => return,
                Err(err) => return self.liveness.fire(format!("keepalive failed: {err}")),
            }
        }
    }

    async fn drive(
        &self,
        keeper: &mut LeaseKeeper,
        stream: &mut LeaseKeepAliveStream,
    ) -> StreamEnd {
        let period = (self.ttl / 3).max(Duration::from_millis(300));
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_answer = Instant::now();
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => return StreamEnd::Stop,
                () = self.liveness.lost() => return StreamEnd::Stop,
                _ = ticker.tick() => {
                    if last_answer.elapsed() > self.ttl {
                        return StreamEnd::Broken("no keepalive answer within ttl".to_owned());
                    }
                    if let Err(err) = keeper.keep_alive().await {
                        return StreamEnd::Broken(err.to_string());
                    }
                }
                message = stream.message() => match message {
                    Ok(Some(answer)) if answer.ttl() > 0 => last_answer = Instant::now(),
                    Ok(Some(_)) => return StreamEnd::Expired,
                    Ok(None) => return StreamEnd::Broken("stream closed".to_owned()),
                    Err(err) => return StreamEnd::Broken(err.to_string()),
                },
            }
        }
    }
}
