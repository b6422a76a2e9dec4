//! One-shot listing of sessions (Go's `GetSessions`).

use std::collections::BTreeMap;

use etcd_client::GetOptions;

use crate::error::SessionError;
use crate::info::SessionInfo;
use crate::keys::{last_element, session_key};

/// Lists the sessions whose key starts with `{meta_root}/session/{prefix}` (prefix semantics, no
/// trailing slash: "datanode" matches "datanode-3"), keyed by the last path element ("rootcoord",
/// "datanode-3"). Also returns the etcd revision of the read; a watch from `revision + 1` misses
/// nothing. One undecodable record fails the whole call, as in Go.
pub async fn get_sessions(
    client: &etcd_client::Client,
    meta_root: &str,
    prefix: &str,
) -> Result<(BTreeMap<String, SessionInfo>, i64), SessionError> {
    let key = session_key(meta_root, prefix);
    let mut kv = client.kv_client();
    let response = kv
        .get(key.as_str(), Some(GetOptions::new().with_prefix()))
        .await
        .map_err(SessionError::etcd("get sessions"))?;
    let revision = response.header().map_or(0, |header| header.revision());
    let mut sessions = BTreeMap::new();
    for entry in response.kvs() {
        let full_key = String::from_utf8_lossy(entry.key());
        let info = SessionInfo::from_json(&full_key, entry.value())?;
        sessions.insert(last_element(&full_key).to_owned(), info);
    }
    Ok((sessions, revision))
}
