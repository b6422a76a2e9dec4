//! The `/tmp/milvus/server_id_<pid>` file Milvus processes append `<role>-<ServerID>` lines to,
//! read by `milvus run stop` to clean up the sessions of a stopped process.

use std::io::Write;
use std::path::PathBuf;

/// Path of the server-info file of process `pid`.
pub fn server_info_file_path(pid: u32) -> PathBuf {
    PathBuf::from("/tmp/milvus").join(format!("server_id_{pid}"))
}

/// Appends `<role>-<server_id>` to this process's server-info file. Failures are only logged,
/// as in Go: the file is a convenience for operators.
pub fn save_server_info(role: &str, server_id: i64) {
    let path = server_info_file_path(std::process::id());
    let written = std::fs::create_dir_all("/tmp/milvus").and_then(|()| {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        writeln!(file, "{role}-{server_id}")
    });
    match written {
        Ok(()) => tracing::info!(role, server_id, path = %path.display(), "saved server info"),
        Err(err) => {
            tracing::warn!(path = %path.display(), error = %err, "cannot write server info")
        }
    }
}
