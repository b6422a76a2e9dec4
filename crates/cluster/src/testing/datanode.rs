//! A fake 2.3.5 datanode: follows `{metaRoot}/{subpath}/{id}/` and answers as the real one does.
//!
//! Like `datanode/event_manager.go`: PUTs whose state is not ToWatch/ToRelease/Uncomplete, or
//! whose progress is not 0, are ignored; an answer is a compare-and-swap on the key **version**
//! observed with the PUT, carrying a "lite" ChannelWatchInfo (vchan reduced to collection, name
//! and seek position); progress rewrites keep the original state and bump the version they
//! swap on. Unlike the real one, the records present at start are answered with their real
//! version (2.3.5 uses version 0 there, which always fails the swap).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, EventType, GetOptions, Txn, TxnOp, WatchOptions};
use milvus_proto::data::{ChannelWatchInfo, ChannelWatchState, VchannelInfo};
use milvus_types::NodeId;
use prost::Message;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How the node answers a ToWatch (or Uncomplete).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchReply {
    /// WatchSuccess at once.
    Success,
    /// WatchFailure at once.
    Failure,
    /// No answer (a hung node): DataCoord's timer decides.
    Silent,
    /// `rewrites` progress rewrites `interval` apart (each delays DataCoord's timer), then
    /// WatchSuccess.
    ProgressThenSuccess {
        /// Number of progress rewrites.
        rewrites: u32,
        /// Time before each rewrite.
        interval: Duration,
    },
}

/// How the node answers a ToRelease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReleaseReply {
    /// ReleaseSuccess at once.
    Success,
    /// No answer.
    Silent,
}

/// The node's answers; changeable while it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Behaviour {
    /// Answer to ToWatch.
    pub on_watch: WatchReply,
    /// Answer to ToRelease.
    pub on_release: ReleaseReply,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            on_watch: WatchReply::Success,
            on_release: ReleaseReply::Success,
        }
    }
}

struct Shared {
    id: NodeId,
    client: Client,
    prefix: String,
    behaviour: Mutex<Behaviour>,
    watched: Mutex<BTreeSet<String>>,
    seen: Mutex<Vec<(String, ChannelWatchState)>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running fake datanode; [`FakeDataNode::stop`] ends it.
pub struct FakeDataNode {
    shared: Arc<Shared>,
    token: CancellationToken,
    tasks: TaskTracker,
}

impl FakeDataNode {
    /// Lists the node's records, answers them, and follows its prefix from there.
    pub async fn start(
        client: &Client,
        meta_root: &str,
        subpath: &str,
        id: NodeId,
        behaviour: Behaviour,
    ) -> Self {
        let root = meta_root.trim_end_matches('/');
        let shared = Arc::new(Shared {
            id,
            client: client.clone(),
            prefix: format!("{root}/{subpath}/{id}/"),
            behaviour: Mutex::new(behaviour),
            watched: Mutex::new(BTreeSet::new()),
            seen: Mutex::new(Vec::new()),
        });
        let listing = client
            .kv_client()
            .get(
                shared.prefix.as_str(),
                Some(GetOptions::new().with_prefix()),
            )
            .await
            .expect("fake datanode: list");
        let revision = listing.header().map_or(0, |header| header.revision());
        let mut stream = client
            .watch_client()
            .watch(
                shared.prefix.as_str(),
                Some(
                    WatchOptions::new()
                        .with_prefix()
                        .with_start_revision(revision + 1),
                ),
            )
            .await
            .expect("fake datanode: watch");
        let token = CancellationToken::new();
        let tasks = TaskTracker::new();
        for kv in listing.kvs() {
            Shared::on_put(&shared, &tasks, &token, kv.key(), kv.value(), kv.version());
        }
        let (loop_shared, loop_tasks, loop_token) = (shared.clone(), tasks.clone(), token.clone());
        tasks.spawn(async move {
            loop {
                let message = tokio::select! {
                    () = loop_token.cancelled() => return,
                    message = stream.message() => message,
                };
                let Ok(Some(message)) = message else { return };
                for event in message.events() {
                    let Some(kv) = event.kv() else { continue };
                    match event.event_type() {
                        EventType::Put => Shared::on_put(
                            &loop_shared,
                            &loop_tasks,
                            &loop_token,
                            kv.key(),
                            kv.value(),
                            kv.version(),
                        ),
                        EventType::Delete => {
                            let key = String::from_utf8_lossy(kv.key()).into_owned();
                            let channel = key.rsplit('/').next().unwrap_or_default();
                            lock(&loop_shared.watched).remove(channel);
                        }
                    }
                }
            }
        });
        Self {
            shared,
            token,
            tasks,
        }
    }

    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.shared.id
    }

    /// Changes how later requests are answered.
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *lock(&self.shared.behaviour) = behaviour;
    }

    /// Channels this node watches (WatchSuccess swapped, not released or deleted since).
    pub fn watched(&self) -> BTreeSet<String> {
        lock(&self.shared.watched).clone()
    }

    /// Every request acted on, in order: (vchannel, requested state).
    pub fn seen(&self) -> Vec<(String, ChannelWatchState)> {
        lock(&self.shared.seen).clone()
    }

    /// Stops following etcd and answering.
    pub async fn stop(self) {
        self.token.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

impl Shared {
    fn on_put(
        shared: &Arc<Self>,
        tasks: &TaskTracker,
        token: &CancellationToken,
        key: &[u8],
        value: &[u8],
        version: i64,
    ) {
        let Ok(info) = ChannelWatchInfo::decode(value) else {
            return;
        };
        let Some(vchan) = info.vchan.as_ref() else {
            return;
        };
        let Ok(state) = ChannelWatchState::try_from(info.state) else {
            return;
        };
        let requested = matches!(
            state,
            ChannelWatchState::ToWatch
                | ChannelWatchState::ToRelease
                | ChannelWatchState::Uncomplete
        );
        if !requested || info.progress != 0 {
            return;
        }
        lock(&shared.seen).push((vchan.channel_name.clone(), state));
        let (shared, token) = (shared.clone(), token.clone());
        let key = String::from_utf8_lossy(key).into_owned();
        tasks.spawn(async move {
            tokio::select! {
                () = token.cancelled() => {}
                () = shared.answer(key, info, state, version) => {}
            }
        });
    }

    async fn answer(
        &self,
        key: String,
        info: ChannelWatchInfo,
        state: ChannelWatchState,
        version: i64,
    ) {
        let channel = info
            .vchan
            .as_ref()
            .map(|vchan| vchan.channel_name.clone())
            .unwrap_or_default();
        let behaviour = lock(&self.behaviour).clone();
        if state == ChannelWatchState::ToRelease {
            if behaviour.on_release == ReleaseReply::Success {
                lock(&self.watched).remove(&channel);
                self.swap(&key, version, &info, ChannelWatchState::ReleaseSuccess, 0)
                    .await;
            }
            return;
        }
        let mut version = version;
        match behaviour.on_watch {
            WatchReply::Silent => return,
            WatchReply::Failure => {
                self.swap(&key, version, &info, ChannelWatchState::WatchFailure, 0)
                    .await;
                return;
            }
            WatchReply::Success => {}
            WatchReply::ProgressThenSuccess { rewrites, interval } => {
                for progress in 1..=rewrites {
                    tokio::time::sleep(interval).await;
                    let progress = i32::try_from(progress).unwrap_or(i32::MAX);
                    if !self.swap(&key, version, &info, state, progress).await {
                        return;
                    }
                    version += 1;
                }
            }
        }
        // Like a real datanode, the channel is watched before success is reported, so a test
        // that sees WatchSuccess in etcd also sees the channel here.
        lock(&self.watched).insert(channel.clone());
        if !self
            .swap(&key, version, &info, ChannelWatchState::WatchSuccess, 0)
            .await
        {
            lock(&self.watched).remove(&channel);
        }
    }

    /// Swaps the lite record in if the key is still at `version`.
    async fn swap(
        &self,
        key: &str,
        version: i64,
        info: &ChannelWatchInfo,
        state: ChannelWatchState,
        progress: i32,
    ) -> bool {
        let vchan = info.vchan.as_ref().map(|vchan| VchannelInfo {
            collection_id: vchan.collection_id,
            channel_name: vchan.channel_name.clone(),
            seek_position: vchan.seek_position.clone(),
            ..VchannelInfo::default()
        });
        let lite = ChannelWatchInfo {
            vchan,
            start_ts: info.start_ts,
            state: state as i32,
            timeout_ts: info.timeout_ts,
            schema: info.schema.clone(),
            progress,
            op_id: 0,
        };
        let txn = Txn::new()
            .when(vec![Compare::version(key, CompareOp::Equal, version)])
            .and_then(vec![TxnOp::put(key, lite.encode_to_vec(), None)]);
        match self.client.kv_client().txn(txn).await {
            Ok(response) => response.succeeded(),
            Err(_) => false,
        }
    }
}
