//! Milvus 2.3.5 sessions in etcd: the session record, ServerID allocation, registration with a
//! lease and keep-alive, liveness, active-standby for coordinators, and discovery of other roles.
//!
//! Sessions always live in etcd (even when the catalog is on TiKV). Any coordinator port can use
//! this crate as it is; nothing here knows about DataCoord. See README.md for the key layout and
//! the differences from Go.

mod active_standby;
mod config;
mod discovery;
mod error;
mod info;
mod keepalive;
mod keys;
mod liveness;
mod retry;
mod server_id;
mod server_info;
mod session;
mod watcher;

#[cfg(feature = "testing")]
pub mod testing;

pub use config::{MILVUS_VERSION, SessionConfig, SessionRole};
pub use discovery::get_sessions;
pub use error::SessionError;
pub use info::{IndexEngineVersion, SessionInfo};
pub use keys::{SERVER_ID_KEY, SESSION_ROOT, server_id_key, session_key};
pub use liveness::Liveness;
pub use server_id::allocate_server_id;
pub use server_info::{save_server_info, server_info_file_path};
pub use session::Session;
pub use watcher::{SessionEvent, SessionEventKind, SessionWatcher};
