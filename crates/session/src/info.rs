//! The session record stored as JSON under `{meta_root}/session/...`, encoded exactly as Go's
//! `encoding/json` encodes `sessionutil.SessionRaw` in Milvus 2.3.5, so Go peers read our records
//! and we read theirs.

use serde::{Deserialize, Serialize};

use crate::error::SessionError;

/// Index engine versions a querynode advertises; coordinators leave both at 0 (`{}` on the wire).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEngineVersion {
    /// Oldest index engine version the node can load (omitted when 0).
    #[serde(
        rename = "MinimalIndexVersion",
        default,
        skip_serializing_if = "is_zero_i32"
    )]
    pub minimal_index_version: i32,
    /// Index engine version the node builds (omitted when 0).
    #[serde(
        rename = "CurrentIndexVersion",
        default,
        skip_serializing_if = "is_zero_i32"
    )]
    pub current_index_version: i32,
}

/// One session value. Field order and omission rules are part of the wire format (FACTS §B.2):
/// do not reorder the fields.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// Process ServerID (NodeID); omitted when 0.
    #[serde(rename = "ServerID", default, skip_serializing_if = "is_zero_i64")]
    pub server_id: i64,
    /// Role name, e.g. "datacoord", "indexcoord", "datanode".
    #[serde(
        rename = "ServerName",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub server_name: String,
    /// gRPC address `host:port` peers dial.
    #[serde(rename = "Address", default, skip_serializing_if = "String::is_empty")]
    pub address: String,
    /// Only one session of this role may be active (coordinators).
    #[serde(rename = "Exclusive", default, skip_serializing_if = "is_false")]
    pub exclusive: bool,
    /// Set by a node that is shutting down gracefully (watchers report an update event).
    #[serde(rename = "Stopping", default, skip_serializing_if = "is_false")]
    pub stopping: bool,
    /// The owner kills its own process when the session is lost. Always present on the wire.
    #[serde(rename = "TriggerKill", default)]
    pub trigger_kill: bool,
    /// Semver text of the build ("2.3.5"). Always present on the wire.
    #[serde(rename = "Version", default)]
    pub version: String,
    /// Always present on the wire (Go's `omitempty` has no effect on structs).
    #[serde(rename = "IndexEngineVersion", default)]
    pub index_engine_version: IndexEngineVersion,
    /// Lease the key is attached to; omitted when unknown.
    #[serde(rename = "LeaseID", default, skip_serializing_if = "Option::is_none")]
    pub lease_id: Option<i64>,
    /// Host name of the machine (omitted when empty).
    #[serde(rename = "HostName", default, skip_serializing_if = "String::is_empty")]
    pub host_name: String,
    /// Index nodes with disk-based index support (omitted when false).
    #[serde(rename = "EnableDisk", default, skip_serializing_if = "is_false")]
    pub enable_disk: bool,
}

impl SessionInfo {
    /// Decodes a stored session. Like Go, a non-empty `Version` that is not valid semver is an
    /// error (Go's `GetSessions` fails as a whole on such a record).
    pub fn from_json(key: &str, bytes: &[u8]) -> Result<Self, SessionError> {
        let info: SessionInfo =
            serde_json::from_slice(bytes).map_err(|source| SessionError::Decode {
                key: key.to_owned(),
                source,
            })?;
        if !info.version.is_empty() {
            info.semver().map_err(|source| SessionError::Version {
                key: key.to_owned(),
                version: info.version.clone(),
                source,
            })?;
        }
        Ok(info)
    }

    /// Encodes the record byte-for-byte as Go's `json.Marshal` would, including its HTML-safe
    /// escaping of `<`, `>`, `&`, U+2028 and U+2029.
    pub fn to_json(&self) -> String {
        let mut out = Vec::with_capacity(256);
        let mut serializer = serde_json::Serializer::with_formatter(&mut out, GoFormatter);
        // Serializing plain strings, integers and booleans into a Vec cannot fail.
        self.serialize(&mut serializer)
            .expect("session JSON serialization is infallible");
        String::from_utf8(out).expect("serde_json writes UTF-8")
    }

    /// The parsed `Version`.
    pub fn semver(&self) -> Result<semver::Version, semver::Error> {
        semver::Version::parse(&self.version)
    }
}

fn is_zero_i64(value: &i64) -> bool {
    *value == 0
}

fn is_zero_i32(value: &i32) -> bool {
    *value == 0
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// serde_json's compact formatter plus the extra escapes Go applies by default.
struct GoFormatter;

impl serde_json::ser::Formatter for GoFormatter {
    fn write_string_fragment<W>(&mut self, writer: &mut W, fragment: &str) -> std::io::Result<()>
    where
        W: ?Sized + std::io::Write,
    {
        let mut start = 0;
        for (index, ch) in fragment.char_indices() {
            let escaped = match ch {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            writer.write_all(&fragment.as_bytes()[start..index])?;
            writer.write_all(escaped.as_bytes())?;
            start = index + ch.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from a live 2.3.5 cluster (FACTS §B.2).
    const DATACOORD_GOLDEN: &str = r#"{"ServerID":1,"ServerName":"datacoord","Address":"127.0.0.1:13333","Exclusive":true,"TriggerKill":true,"Version":"2.3.5","IndexEngineVersion":{},"LeaseID":7587899170304089144,"HostName":"vm"}"#;

    #[test]
    fn golden_datacoord_round_trips_byte_identical() {
        let info = SessionInfo::from_json("datacoord", DATACOORD_GOLDEN.as_bytes()).unwrap();
        assert_eq!(info.server_id, 1);
        assert_eq!(info.server_name, "datacoord");
        assert_eq!(info.address, "127.0.0.1:13333");
        assert!(info.exclusive);
        assert!(!info.stopping);
        assert!(info.trigger_kill);
        assert_eq!(info.version, "2.3.5");
        assert_eq!(info.lease_id, Some(7587899170304089144));
        assert_eq!(info.host_name, "vm");
        assert_eq!(info.to_json(), DATACOORD_GOLDEN);
    }

    #[test]
    fn built_record_matches_golden() {
        let info = SessionInfo {
            server_id: 1,
            server_name: "datacoord".into(),
            address: "127.0.0.1:13333".into(),
            exclusive: true,
            trigger_kill: true,
            version: "2.3.5".into(),
            lease_id: Some(7587899170304089144),
            host_name: "vm".into(),
            ..SessionInfo::default()
        };
        assert_eq!(info.to_json(), DATACOORD_GOLDEN);
    }

    #[test]
    fn datanode_shape_and_always_present_fields() {
        let info = SessionInfo {
            server_id: 2,
            server_name: "datanode".into(),
            address: "127.0.0.1:21124".into(),
            trigger_kill: true,
            version: "2.3.5".into(),
            host_name: "vm".into(),
            ..SessionInfo::default()
        };
        assert_eq!(
            info.to_json(),
            r#"{"ServerID":2,"ServerName":"datanode","Address":"127.0.0.1:21124","TriggerKill":true,"Version":"2.3.5","IndexEngineVersion":{},"HostName":"vm"}"#
        );
        assert_eq!(
            SessionInfo::default().to_json(),
            r#"{"TriggerKill":false,"Version":"","IndexEngineVersion":{}}"#
        );
    }

    #[test]
    fn optional_fields_appear_in_go_order() {
        let info = SessionInfo {
            server_id: 7,
            stopping: true,
            version: "2.3.5".into(),
            index_engine_version: IndexEngineVersion {
                minimal_index_version: 1,
                current_index_version: 2,
            },
            lease_id: Some(-5),
            enable_disk: true,
            ..SessionInfo::default()
        };
        assert_eq!(
            info.to_json(),
            r#"{"ServerID":7,"Stopping":true,"TriggerKill":false,"Version":"2.3.5","IndexEngineVersion":{"MinimalIndexVersion":1,"CurrentIndexVersion":2},"LeaseID":-5,"EnableDisk":true}"#
        );
    }

    #[test]
    fn html_characters_escaped_like_go() {
        let info = SessionInfo {
            host_name: "a<b>&c\u{2028}".into(),
            ..SessionInfo::default()
        };
        let json = info.to_json();
        assert!(
            json.contains(r#""HostName":"a\u003cb\u003e\u0026c\u2028""#),
            "{json}"
        );
        let back = SessionInfo::from_json("k", json.as_bytes()).unwrap();
        assert_eq!(back.host_name, "a<b>&c\u{2028}");
    }

    #[test]
    fn bad_version_is_rejected_and_empty_accepted() {
        let err = SessionInfo::from_json("k", br#"{"ServerID":3,"Version":"two"}"#).unwrap_err();
        assert!(matches!(err, SessionError::Version { .. }), "{err}");
        let info = SessionInfo::from_json("k", br#"{"ServerID":3}"#).unwrap();
        assert_eq!(info.server_id, 3);
        assert!(matches!(
            SessionInfo::from_json("k", b"not json"),
            Err(SessionError::Decode { .. })
        ));
    }
}
