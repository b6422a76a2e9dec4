//! Milvus errors ("merr" codes) and their one conversion to `commonpb.Status`.
//!
//! The text, `code`, legacy `error_code`, `retriable` and `reason` follow Milvus 2.3.5 so that Go
//! peers (which match on codes and sometimes on substrings) treat our failures like theirs.

use std::fmt;

use milvus_proto::common::{ErrorCode as Legacy, Status};

/// A Milvus error code (`commonpb.Status.code`). Unknown codes from peers are kept as they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub i32);

impl ErrorCode {
    pub const SERVICE_NOT_READY: Self = Self(1);
    pub const SERVICE_UNAVAILABLE: Self = Self(2);
    pub const SERVICE_INTERNAL: Self = Self(5);
    pub const CROSS_CLUSTER_ROUTING: Self = Self(6);
    pub const SERVICE_UNIMPLEMENTED: Self = Self(10);
    pub const COLLECTION_NOT_FOUND: Self = Self(100);
    pub const PARTITION_NOT_FOUND: Self = Self(200);
    pub const CHANNEL_NOT_FOUND: Self = Self(500);
    pub const SEGMENT_NOT_FOUND: Self = Self(600);
    pub const INDEX_NOT_FOUND: Self = Self(700);
    pub const DATABASE_NOT_FOUND: Self = Self(800);
    pub const INDEX_NOT_SUPPORTED: Self = Self(701);
    pub const INDEX_DUPLICATE: Self = Self(702);
    pub const NODE_NOT_FOUND: Self = Self(901);
    pub const NODE_LACK: Self = Self(903);
    pub const NODE_NOT_MATCH: Self = Self(904);
    pub const IO_KEY_NOT_FOUND: Self = Self(1000);
    pub const IO_FAILED: Self = Self(1001);
    pub const PARAMETER_INVALID: Self = Self(1100);
    pub const PARAMETER_MISSING: Self = Self(1101);
    pub const METRIC_NOT_FOUND: Self = Self(1200);
    pub const CANCELED: Self = Self(10000);
    pub const TIMEOUT: Self = Self(10001);
    pub const UNEXPECTED: Self = Self(65535);

    /// The base message Milvus prints for this code, and whether it is retriable.
    fn base(self) -> (&'static str, bool) {
        match self.0 {
            1 => ("service not ready", true),
            2 => ("service unavailable", true),
            3 => ("memory limit exceeded", false),
            4 => ("request limit exceeded", true),
            5 => ("service internal error", false),
            6 => ("cross cluster routing", false),
            7 => ("disk limit exceeded", false),
            8 => ("rate limit exceeded", true),
            9 => ("quota exceeded", false),
            10 => ("service unimplemented", false),
            11 => ("time tick long delay", false),
            100 => ("collection not found", false),
            103 => ("collection not fully loaded", true),
            200 => ("partition not found", false),
            202 => ("partition not fully loaded", true),
            500 => ("channel not found", false),
            501 => ("channel lacks", false),
            600 => ("segment not found", false),
            700 => ("index not found", false),
            701 => ("index type not supported", false),
            702 => ("index duplicates", false),
            800 => ("database not found", false),
            901 => ("node not found", false),
            902 => ("node offline", false),
            903 => ("node lacks", false),
            904 => ("node not match", false),
            905 => ("node not available", false),
            1000 => ("key not found", false),
            1001 => ("IO failed", false),
            1100 => ("invalid parameter", false),
            1101 => ("missing parameter", false),
            1200 => ("metric not found", false),
            10000 => ("context canceled", false),
            10001 => ("context deadline exceeded", false),
            _ => ("unexpected error", false),
        }
    }
}

/// The legacy `commonpb.ErrorCode` 2.3.5 sets beside a merr code.
pub fn legacy_error_code(code: ErrorCode) -> Legacy {
    match code.0 {
        1 => Legacy::NotReadyServe,
        100 => Legacy::CollectionNotExists,
        1100 => Legacy::IllegalArgument,
        904 => Legacy::NodeIdNotMatch,
        200 | 400 | 501 => Legacy::MetaFailed,
        401 | 503 | 905 => Legacy::NoReplicaAvailable,
        3 => Legacy::InsufficientMemoryToLoad,
        7 => Legacy::DiskQuotaExhausted,
        11 => Legacy::TimeTickLongDelay,
        8 => Legacy::RateLimit,
        9 => Legacy::ForceDeny,
        700 => Legacy::IndexNotExist,
        600 => Legacy::SegmentNotFound,
        _ => Legacy::UnexpectedError,
    }
}

/// What a Go peer reads from a Status that carries only a legacy code.
fn code_from_legacy(legacy: i32) -> ErrorCode {
    match Legacy::try_from(legacy) {
        Ok(Legacy::NotReadyServe) => ErrorCode::SERVICE_NOT_READY,
        Ok(Legacy::CollectionNotExists) => ErrorCode::COLLECTION_NOT_FOUND,
        Ok(Legacy::IllegalArgument) => ErrorCode::PARAMETER_INVALID,
        Ok(Legacy::NodeIdNotMatch) => ErrorCode::NODE_NOT_MATCH,
        Ok(Legacy::InsufficientMemoryToLoad | Legacy::MemoryQuotaExhausted) => ErrorCode(3),
        Ok(Legacy::DiskQuotaExhausted) => ErrorCode(7),
        Ok(Legacy::TimeTickLongDelay) => ErrorCode(11),
        Ok(Legacy::RateLimit) => ErrorCode(8),
        Ok(Legacy::ForceDeny) => ErrorCode(9),
        Ok(Legacy::IndexNotExist) => ErrorCode::INDEX_NOT_FOUND,
        Ok(Legacy::SegmentNotFound) => ErrorCode::SEGMENT_NOT_FOUND,
        Ok(Legacy::MetaFailed) => ErrorCode::CHANNEL_NOT_FOUND,
        _ => ErrorCode::UNEXPECTED,
    }
}

/// True when a peer's Status reports success (both codes zero), as Go's `merr.Ok`.
pub fn status_is_success(status: &Status) -> bool {
    status.error_code == 0 && status.code == 0
}

/// A Milvus error: a code with its message (`base[k=v]...: desc`) and the messages it was wrapped in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MilvusError {
    code: ErrorCode,
    message: String,
    retriable: bool,
    /// Wrapping messages, innermost first.
    context: Vec<String>,
}

/// Result with a [`MilvusError`].
pub type MilvusResult<T> = Result<T, MilvusError>;

impl MilvusError {
    /// The bare error of a code, e.g. `segment not found`.
    pub fn new(code: ErrorCode) -> Self {
        let (base, retriable) = code.base();
        Self {
            code,
            message: base.to_string(),
            retriable,
            context: Vec::new(),
        }
    }

    /// Appends `[name=value]` to the message, as merr's fields.
    pub fn with_field(mut self, name: &str, value: impl fmt::Display) -> Self {
        debug_assert!(
            self.context.is_empty(),
            "fields belong to the innermost error"
        );
        self.message.push_str(&format!("[{name}={value}]"));
        self
    }

    /// Appends `: desc` to the message, as merr's description.
    pub fn with_desc(mut self, desc: impl fmt::Display) -> Self {
        debug_assert!(
            self.context.is_empty(),
            "descriptions belong to the innermost error"
        );
        self.message.push_str(&format!(": {desc}"));
        self
    }

    /// Wraps the error in a message (`msg: inner`); a wrapped error is no longer retriable.
    pub fn wrap(mut self, msg: impl Into<String>) -> Self {
        self.context.push(msg.into());
        self
    }

    /// The Milvus code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// Whether Go clients would retry it (only unwrapped retriable errors are).
    pub fn is_retriable(&self) -> bool {
        self.retriable && self.context.is_empty()
    }

    /// Converts to the Status 2.3.5 puts in a response.
    pub fn to_status(&self) -> Status {
        let reason = match self.context.first() {
            None => self.message.clone(),
            Some(innermost_wrap) => format!("{innermost_wrap}: {}", self.message),
        };
        Status {
            error_code: legacy_error_code(self.code) as i32,
            reason,
            code: self.code.0,
            retriable: self.is_retriable(),
            detail: self.to_string(),
        }
    }

    /// Rebuilds the error a peer reported; `None` when the Status is a success.
    pub fn from_status(status: &Status) -> Option<Self> {
        if status_is_success(status) {
            return None;
        }
        let (code, retriable) = if status.code == 0 {
            (code_from_legacy(status.error_code), false)
        } else {
            (ErrorCode(status.code), status.retriable)
        };
        Some(Self {
            code,
            message: status.reason.clone(),
            retriable,
            context: Vec::new(),
        })
    }

    /// `service not ready[datacoord=5]: StandBy`
    pub fn service_not_ready(role: &str, node_id: i64, state: &str) -> Self {
        Self::new(ErrorCode::SERVICE_NOT_READY)
            .with_field(role, node_id)
            .with_desc(state)
    }

    /// `service unavailable: <reason>`
    pub fn service_unavailable(reason: &str) -> Self {
        Self::new(ErrorCode::SERVICE_UNAVAILABLE).with_desc(reason)
    }

    /// `service internal error: <reason>`
    pub fn internal(reason: impl fmt::Display) -> Self {
        Self::new(ErrorCode::SERVICE_INTERNAL).with_desc(reason)
    }

    /// An error of a non-Milvus cause (I/O, transport): code 65535 with the cause's text.
    pub fn unexpected(text: impl fmt::Display) -> Self {
        Self {
            code: ErrorCode::UNEXPECTED,
            message: text.to_string(),
            retriable: false,
            context: Vec::new(),
        }
    }

    /// `cross cluster routing[expectedCluster=a][actualCluster=b]`
    pub fn cross_cluster_routing(expected: &str, actual: &str) -> Self {
        Self::new(ErrorCode::CROSS_CLUSTER_ROUTING)
            .with_field("expectedCluster", expected)
            .with_field("actualCluster", actual)
    }

    /// `node not match[expectedNodeID=a][actualNodeID=b]`
    pub fn node_not_match(expected: i64, actual: i64) -> Self {
        Self::new(ErrorCode::NODE_NOT_MATCH)
            .with_field("expectedNodeID", expected)
            .with_field("actualNodeID", actual)
    }

    /// `collection not found[collection=ID]`
    pub fn collection_not_found(collection_id: i64) -> Self {
        Self::new(ErrorCode::COLLECTION_NOT_FOUND).with_field("collection", collection_id)
    }

    /// `segment not found[segment=ID]`
    pub fn segment_not_found(segment_id: i64) -> Self {
        Self::new(ErrorCode::SEGMENT_NOT_FOUND).with_field("segment", segment_id)
    }

    /// `channel not found[channel=NAME]`
    pub fn channel_not_found(channel: &str) -> Self {
        Self::new(ErrorCode::CHANNEL_NOT_FOUND).with_field("channel", channel)
    }

    /// `invalid parameter[expected=X][actual=Y]`
    pub fn parameter_invalid(expected: impl fmt::Display, actual: impl fmt::Display) -> Self {
        Self::new(ErrorCode::PARAMETER_INVALID)
            .with_field("expected", expected)
            .with_field("actual", actual)
    }

    /// `metric not found[metric=NAME]`
    pub fn metric_not_found(name: &str) -> Self {
        Self::new(ErrorCode::METRIC_NOT_FOUND).with_field("metric", name)
    }

    /// `IO failed: <reason>`
    pub fn io_failed(reason: impl fmt::Display) -> Self {
        Self::new(ErrorCode::IO_FAILED).with_desc(reason)
    }
}

impl fmt::Display for MilvusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for wrap in self.context.iter().rev() {
            write!(f, "{wrap}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for MilvusError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_error_fills_status_like_go() {
        let status = MilvusError::service_not_ready("datacoord", 5, "StandBy").to_status();
        assert_eq!(status.code, 1);
        assert_eq!(status.error_code, Legacy::NotReadyServe as i32);
        assert_eq!(status.error_code, 56);
        assert!(status.retriable);
        assert_eq!(status.reason, "service not ready[datacoord=5]: StandBy");
        assert_eq!(status.detail, status.reason);
    }

    #[test]
    fn wrapped_error_is_not_retriable_and_reason_keeps_the_innermost_wrap() {
        let err = MilvusError::new(ErrorCode::SERVICE_NOT_READY)
            .wrap("inner")
            .wrap("outer");
        let status = err.to_status();
        assert!(!status.retriable);
        assert_eq!(status.reason, "inner: service not ready");
        assert_eq!(status.detail, "outer: inner: service not ready");
    }

    #[test]
    fn legacy_codes_match_2_3_5() {
        let cases = [
            (600, 47),
            (700, 25),
            (100, 4),
            (1100, 5),
            (904, 50),
            (500, 1),
            (65535, 1),
        ];
        for (code, legacy) in cases {
            assert_eq!(
                legacy_error_code(ErrorCode(code)) as i32,
                legacy,
                "code {code}"
            );
        }
        let status = MilvusError::segment_not_found(7).to_status();
        assert_eq!((status.code, status.error_code), (600, 47));
        assert_eq!(status.reason, "segment not found[segment=7]");
        assert!(!status.retriable);
    }

    #[test]
    fn success_status_is_no_error_and_legacy_only_status_maps_back() {
        assert!(MilvusError::from_status(&Status::default()).is_none());
        let legacy_only = Status {
            error_code: Legacy::CollectionNotExists as i32,
            reason: "gone".into(),
            ..Default::default()
        };
        let err = MilvusError::from_status(&legacy_only).expect("error");
        assert_eq!(err.code(), ErrorCode::COLLECTION_NOT_FOUND);
        let retriable = Status {
            code: 1,
            error_code: 56,
            retriable: true,
            ..Default::default()
        };
        assert!(
            MilvusError::from_status(&retriable)
                .expect("error")
                .is_retriable()
        );
    }
}
