//! Session key layout under `{meta_root}/session/` (FACTS §B.1).
//!
//! | key | value |
//! |---|---|
//! | `session/id` | decimal text: the next ServerID to hand out |
//! | `session/<role>` | JSON of the active session of an exclusive role (`rootcoord`, `datacoord`, `indexcoord`, ...) |
//! | `session/<role>-<ServerID>` | JSON of a non-exclusive role, or of any exclusive session when active-standby is on |

/// Folder under `meta_root` holding all sessions.
pub const SESSION_ROOT: &str = "session";
/// Name of the ServerID counter key inside [`SESSION_ROOT`].
pub const SERVER_ID_KEY: &str = "id";

/// `{meta_root}/session/{name}` with single slashes, like Go's `path.Join`.
pub fn session_key(meta_root: &str, name: &str) -> String {
    let root = meta_root.trim_end_matches('/');
    if root.is_empty() {
        format!("{SESSION_ROOT}/{name}")
    } else {
        format!("{root}/{SESSION_ROOT}/{name}")
    }
}

/// `{meta_root}/session/id`.
pub fn server_id_key(meta_root: &str) -> String {
    session_key(meta_root, SERVER_ID_KEY)
}

/// Name of a session key for one role: bare for the active exclusive session, `<role>-<id>`
/// otherwise.
pub fn role_key_name(role: &str, server_id: i64, bare: bool) -> String {
    if bare {
        role.to_owned()
    } else {
        format!("{role}-{server_id}")
    }
}

/// The last path element of a key (what `GetSessions` keys its result by).
pub fn last_element(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_join_like_go() {
        assert_eq!(
            session_key("by-dev/meta", "datacoord"),
            "by-dev/meta/session/datacoord"
        );
        assert_eq!(session_key("by-dev/meta/", "id"), "by-dev/meta/session/id");
        assert_eq!(server_id_key("r"), "r/session/id");
        assert_eq!(role_key_name("datanode", 3, false), "datanode-3");
        assert_eq!(role_key_name("datacoord", 3, true), "datacoord");
        assert_eq!(last_element("by-dev/meta/session/datanode-3"), "datanode-3");
    }
}
