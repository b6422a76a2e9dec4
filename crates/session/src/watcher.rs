//! Watching the sessions of another role (FACTS §B.6), without ever losing an event.
//!
//! Go re-watches after a compaction without replaying what changed in between. Here, whenever the
//! watch cannot continue exactly where it was (compacted revision, cancelled or broken stream),
//! the role is listed again, the listing is diffed against the sessions already reported, and
//! the difference is emitted as ordinary events before watching resumes after the listing.

use std::collections::{BTreeMap, VecDeque};

use etcd_client::{EventType, GetOptions, WatchOptions, WatchStream};
use futures::Stream;
use tokio_util::sync::CancellationToken;

use crate::error::SessionError;
use crate::info::SessionInfo;
use crate::keys::{last_element, session_key};
use crate::retry::retry;

/// Attempts to re-list after a broken watch before `next()` reports the error.
const DEFAULT_RELIST_ATTEMPTS: u32 = 30;

/// What happened to a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionEventKind {
    /// A session appeared (or was re-written without `Stopping`).
    Add,
    /// A session was re-written with `Stopping=true` (graceful shutdown begins).
    Update,
    /// A session disappeared; the event carries its last known record.
    Delete,
}

/// One change of the watched role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionEvent {
    /// Add, Update or Delete.
    pub kind: SessionEventKind,
    /// Last path element of the key, e.g. "datanode-3".
    pub key: String,
    /// The new record (Add/Update) or the removed one (Delete).
    pub session: SessionInfo,
}

/// Follows `{meta_root}/session/<prefix>*`. Pull events with [`SessionWatcher::next`] or turn it
/// into a [`Stream`]. It owns no background task: dropping it ends the watch.
pub struct SessionWatcher {
    client: etcd_client::Client,
    prefix: String,
    full_prefix: String,
    min_version: Option<semver::Version>,
    /// What the consumer has been told exists, by short key.
    known: BTreeMap<String, SessionInfo>,
    /// The next revision the watch must deliver.
    next_revision: i64,
    stream: Option<WatchStream>,
    needs_relist: bool,
    pending: VecDeque<SessionEvent>,
    relist_attempts: u32,
    cancel: CancellationToken,
}

impl std::fmt::Debug for SessionWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionWatcher")
            .field("prefix", &self.full_prefix)
            .field("known", &self.known.len())
            .field("next_revision", &self.next_revision)
            .finish_non_exhaustive()
    }
}

impl SessionWatcher {
    /// Lists the role (strictly: one undecodable record fails, like Go's `GetSessions`) and
    /// returns the sessions passing the version filter together with a watcher that reports
    /// every change after that listing.
    ///
    /// `min_version`: sessions with a lower (or missing) `Version` are ignored, e.g. datanodes and
    /// querynodes below 2.2.3.
    pub async fn list_and_watch(
        client: &etcd_client::Client,
        meta_root: &str,
        prefix: &str,
        min_version: Option<semver::Version>,
    ) -> Result<(BTreeMap<String, SessionInfo>, Self), SessionError> {
        let (sessions, revision) =
            crate::discovery::get_sessions(client, meta_root, prefix).await?;
        let sessions: BTreeMap<_, _> = sessions
            .into_iter()
            .filter(|(_, info)| version_passes(min_version.as_ref(), info))
            .collect();
        let watcher = Self::from_snapshot(
            client,
            meta_root,
            prefix,
            min_version,
            sessions.clone(),
            revision,
        );
        Ok((sessions, watcher))
    }

    /// A watcher continuing from a listing the caller already holds: `sessions` as returned by
    /// [`get_sessions`](crate::get_sessions) (already filtered by the caller) at `revision`.
    pub fn from_snapshot(
        client: &etcd_client::Client,
        meta_root: &str,
        prefix: &str,
        min_version: Option<semver::Version>,
        sessions: BTreeMap<String, SessionInfo>,
        revision: i64,
    ) -> Self {
        Self {
            client: client.clone(),
            prefix: prefix.to_owned(),
            full_prefix: session_key(meta_root, prefix),
            min_version,
            known: sessions,
            next_revision: revision + 1,
            stream: None,
            needs_relist: false,
            pending: VecDeque::new(),
            relist_attempts: DEFAULT_RELIST_ATTEMPTS,
            cancel: CancellationToken::new(),
        }
    }

    /// How many times a re-list is attempted (backoff 200 ms → 3 s) before `next()` fails.
    pub fn with_relist_attempts(mut self, attempts: u32) -> Self {
        self.relist_attempts = attempts;
        self
    }

    /// Makes `next()` return `Cancelled` once `token` fires.
    pub fn with_cancel(mut self, token: CancellationToken) -> Self {
        self.cancel = token;
        self
    }

    /// The sessions reported so far and not deleted.
    pub fn known(&self) -> &BTreeMap<String, SessionInfo> {
        &self.known
    }

    /// The role prefix this watcher follows.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Test hook: drop the watch stream as if the connection broke; the next `next()` re-lists.
    #[cfg(feature = "testing")]
    pub fn break_stream(&mut self) {
        self.stream = None;
        self.needs_relist = true;
    }

    /// The next event. An error means etcd stayed unreachable through all re-list attempts (or
    /// the watcher was cancelled); calling `next()` again resumes trying, and still loses nothing.
    pub async fn next(&mut self) -> Result<SessionEvent, SessionError> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(event);
            }
            if self.needs_relist {
                self.relist().await?;
                continue;
            }
            let Some(stream) = self.stream.as_mut() else {
                self.open_stream().await?;
                continue;
            };
            let message = tokio::select! {
                () = self.cancel.cancelled() => return Err(SessionError::Cancelled),
                message = stream.message() => message,
            };
            match message {
                Ok(Some(response)) if response.canceled() || response.compact_revision() > 0 => {
                    tracing::warn!(prefix = %self.full_prefix, compact_revision = response.compact_revision(),
                        reason = response.cancel_reason(), "session watch cancelled, re-listing");
                    self.restart();
                }
                Ok(Some(response)) => {
                    for event in response.events() {
                        self.apply(event);
                    }
                }
                Ok(None) => {
                    tracing::warn!(prefix = %self.full_prefix, "session watch closed, re-listing");
                    self.restart();
                }
                Err(err) => {
                    tracing::warn!(prefix = %self.full_prefix, error = %err, "session watch failed, re-listing");
                    self.restart();
                }
            }
        }
    }

    /// Turns the watcher into a stream of events; it never ends by itself (errors are items).
    pub fn into_stream(self) -> impl Stream<Item = Result<SessionEvent, SessionError>> + Send {
        futures::stream::unfold(self, |mut watcher| async move {
            let item = watcher.next().await;
            Some((item, watcher))
        })
    }

    fn restart(&mut self) {
        self.stream = None;
        self.needs_relist = true;
    }

    async fn open_stream(&mut self) -> Result<(), SessionError> {
        let options = WatchOptions::new()
            .with_prefix()
            .with_prev_key()
            .with_start_revision(self.next_revision);
        let mut watch_client = self.client.watch_client();
        let opened = tokio::select! {
            () = self.cancel.cancelled() => return Err(SessionError::Cancelled),
            opened = watch_client.watch(self.full_prefix.as_str(), Some(options)) => opened,
        };
        match opened {
            Ok(stream) => self.stream = Some(stream),
            Err(err) => {
                tracing::warn!(prefix = %self.full_prefix, error = %err, "cannot open session watch, re-listing");
                self.needs_relist = true;
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: &etcd_client::Event) {
        match event.event_type() {
            EventType::Put => {
                let Some(kv) = event.kv() else { return };
                self.next_revision = self.next_revision.max(kv.mod_revision() + 1);
                let full_key = String::from_utf8_lossy(kv.key()).into_owned();
                let info = match SessionInfo::from_json(&full_key, kv.value()) {
                    Ok(info) => info,
                    Err(err) => {
                        tracing::error!(key = %full_key, error = %err, "skipping undecodable session");
                        return;
                    }
                };
                if !version_passes(self.min_version.as_ref(), &info) {
                    return;
                }
                let key = last_element(&full_key).to_owned();
                let kind = if info.stopping {
                    SessionEventKind::Update
                } else {
                    SessionEventKind::Add
                };
                self.known.insert(key.clone(), info.clone());
                self.pending.push_back(SessionEvent {
                    kind,
                    key,
                    session: info,
                });
            }
            EventType::Delete => {
                let Some(kv) = event.kv() else { return };
                self.next_revision = self.next_revision.max(kv.mod_revision() + 1);
                let full_key = String::from_utf8_lossy(kv.key()).into_owned();
                let key = last_element(&full_key).to_owned();
                let known = self.known.remove(&key);
                let previous = event
                    .prev_kv()
                    .and_then(|prev| SessionInfo::from_json(&full_key, prev.value()).ok())
                    .or(known);
                let Some(info) = previous else {
                    tracing::debug!(key = %full_key, "delete of a session never reported, skipped");
                    return;
                };
                if !version_passes(self.min_version.as_ref(), &info) {
                    return;
                }
                self.pending.push_back(SessionEvent {
                    kind: SessionEventKind::Delete,
                    key,
                    session: info,
                });
            }
        }
    }

    /// Lists the role again and queues the events that turn `known` into the listing.
    async fn relist(&mut self) -> Result<(), SessionError> {
        let (listed, revision) = retry(
            self.relist_attempts,
            &self.cancel,
            "re-list sessions",
            || list_lenient(&self.client, &self.full_prefix),
        )
        .await?;
        let listed: BTreeMap<String, SessionInfo> = listed
            .into_iter()
            .filter(|(_, info)| version_passes(self.min_version.as_ref(), info))
            .collect();
        let events = diff(&self.known, &listed);
        tracing::info!(prefix = %self.full_prefix, revision, synthetic_events = events.len(),
            "session watch re-synchronised");
        self.pending.extend(events);
        self.known = listed;
        self.next_revision = revision + 1;
        self.needs_relist = false;
        Ok(())
    }
}

/// Lists a prefix, skipping records that do not decode: the watch skips such records too, so
/// the diff stays consistent with the events and one bad record cannot stall re-synchronisation.
async fn list_lenient(
    client: &etcd_client::Client,
    full_prefix: &str,
) -> Result<(BTreeMap<String, SessionInfo>, i64), SessionError> {
    let response = client
        .kv_client()
        .get(full_prefix, Some(GetOptions::new().with_prefix()))
        .await
        .map_err(SessionError::etcd("re-list sessions"))?;
    let revision = response.header().map_or(0, |header| header.revision());
    let mut sessions = BTreeMap::new();
    for entry in response.kvs() {
        let full_key = String::from_utf8_lossy(entry.key()).into_owned();
        match SessionInfo::from_json(&full_key, entry.value()) {
            Ok(info) => {
                sessions.insert(last_element(&full_key).to_owned(), info);
            }
            Err(err) => {
                tracing::error!(key = %full_key, error = %err, "skipping undecodable session")
            }
        }
    }
    Ok((sessions, revision))
}

/// Events that would have turned `before` into `after`: deletions first (a node that left and
/// came back under the same key must be removed before it is added again), then additions and
/// stopping updates, each in key order.
pub(crate) fn diff(
    before: &BTreeMap<String, SessionInfo>,
    after: &BTreeMap<String, SessionInfo>,
) -> Vec<SessionEvent> {
    let mut deletes = Vec::new();
    let mut upserts = Vec::new();
    for (key, old) in before {
        match after.get(key) {
            None => deletes.push(event(SessionEventKind::Delete, key, old)),
            Some(new) if new.lease_id != old.lease_id || new.server_id != old.server_id => {
                // Same key, another incarnation: the old one is gone.
                deletes.push(event(SessionEventKind::Delete, key, old));
                upserts.extend(appeared(key, new));
            }
            Some(new) if new.stopping && !old.stopping => {
                upserts.push(event(SessionEventKind::Update, key, new));
            }
            Some(_) => {}
        }
    }
    for (key, new) in after {
        if !before.contains_key(key) {
            upserts.extend(appeared(key, new));
        }
    }
    upserts.sort_by(|a, b| a.key.cmp(&b.key));
    deletes.extend(upserts);
    deletes
}

/// A session first seen already stopping is reported as added, then as stopping, which is what
/// the live watch would have shown.
fn appeared(key: &str, info: &SessionInfo) -> Vec<SessionEvent> {
    let mut events = vec![event(SessionEventKind::Add, key, info)];
    if info.stopping {
        events.push(event(SessionEventKind::Update, key, info));
    }
    events
}

fn event(kind: SessionEventKind, key: &str, info: &SessionInfo) -> SessionEvent {
    SessionEvent {
        kind,
        key: key.to_owned(),
        session: info.clone(),
    }
}

/// Go filters on the parsed version; a missing version parses as 0.0.0 and fails any minimum.
fn version_passes(min_version: Option<&semver::Version>, info: &SessionInfo) -> bool {
    let Some(min_version) = min_version else {
        return true;
    };
    let version = info
        .semver()
        .unwrap_or_else(|_| semver::Version::new(0, 0, 0));
    version.cmp_precedence(min_version) != std::cmp::Ordering::Less
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: i64, lease: i64, stopping: bool) -> SessionInfo {
        SessionInfo {
            server_id: id,
            server_name: "datanode".into(),
            address: format!("127.0.0.1:{}", 20000 + id),
            stopping,
            trigger_kill: true,
            version: "2.3.5".into(),
            lease_id: Some(lease),
            ..SessionInfo::default()
        }
    }

    fn map(entries: &[(&str, SessionInfo)]) -> BTreeMap<String, SessionInfo> {
        entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    fn kinds(events: &[SessionEvent]) -> Vec<(SessionEventKind, String)> {
        events.iter().map(|e| (e.kind, e.key.clone())).collect()
    }

    #[test]
    fn diff_reports_deletes_then_adds_and_updates() {
        use SessionEventKind::*;
        let before = map(&[
            ("datanode-1", node(1, 10, false)),
            ("datanode-2", node(2, 20, false)),
            ("datanode-3", node(3, 30, false)),
            ("datanode-4", node(4, 40, false)),
        ]);
        let after = map(&[
            ("datanode-2", node(2, 20, true)),
            ("datanode-3", node(3, 31, false)),
            ("datanode-4", node(4, 40, false)),
            ("datanode-5", node(5, 50, true)),
        ]);
        let events = diff(&before, &after);
        assert_eq!(
            kinds(&events),
            vec![
                (Delete, "datanode-1".into()),
                (Delete, "datanode-3".into()),
                (Update, "datanode-2".into()),
                (Add, "datanode-3".into()),
                (Add, "datanode-5".into()),
                (Update, "datanode-5".into()),
            ]
        );
        assert_eq!(
            events[0].session,
            node(1, 10, false),
            "delete carries the old record"
        );
        assert_eq!(events[1].session.lease_id, Some(30));
        assert_eq!(events[3].session.lease_id, Some(31));
        assert!(diff(&after, &after).is_empty());
    }

    #[test]
    fn version_filter_compares_like_go() {
        let min = semver::Version::new(2, 2, 3);
        let mut info = node(1, 1, false);
        assert!(version_passes(Some(&min), &info));
        info.version = "2.2.2".into();
        assert!(!version_passes(Some(&min), &info));
        info.version = "2.2.3".into();
        assert!(version_passes(Some(&min), &info));
        info.version = String::new();
        assert!(!version_passes(Some(&min), &info));
        assert!(version_passes(None, &info));
    }
}
