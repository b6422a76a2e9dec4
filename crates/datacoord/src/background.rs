//! [`Background`]: where the server's tasks run, so `stop` can cancel and await every one.

use std::future::Future;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::error;

/// A task tracker and the token that stops its tasks. Clones share both.
#[derive(Clone, Debug, Default)]
pub(crate) struct Background {
    tracker: TaskTracker,
    token: CancellationToken,
}

impl Background {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// A token cancelled by [`Self::shutdown`], for a task that watches it itself.
    pub(crate) fn token(&self) -> CancellationToken {
        self.token.child_token()
    }

    /// The tracker [`Self::shutdown`] awaits, for a component that spawns its own tasks (and
    /// stops them through a [`Self::token`]).
    pub(crate) fn tracker(&self) -> TaskTracker {
        self.tracker.clone()
    }

    /// Runs `task` until it ends or the shutdown cancels it.
    pub(crate) fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let token = self.token.child_token();
        self.tracker.spawn(async move {
            tokio::select! {
                _ = token.cancelled() => {}
                _ = task => {}
            }
        });
    }

    /// Runs a task that stops on its own token; the caller passes it [`Self::token`].
    pub(crate) fn spawn_watching<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn(task);
    }

    /// Awaits a loop a component spawned itself (and stops through a [`Self::token`]).
    pub(crate) fn track(&self, what: &'static str, handle: JoinHandle<()>) {
        self.tracker.spawn(async move {
            if let Err(err) = handle.await {
                error!(error = %err, task = what, "background task ended abnormally");
            }
        });
    }

    /// Cancels every task and waits until all have ended.
    pub(crate) async fn shutdown(&self) {
        self.token.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}
