//! Helpers for tests against a real etcd (feature `testing`).
//!
//! The endpoint comes from `ETCD_ENDPOINTS` (comma-separated). Without it a test is skipped,
//! unless `MILVUS_TEST_STRICT=1`, in which case it fails.

use std::time::{SystemTime, UNIX_EPOCH};

use etcd_client::{Client, DeleteOptions};

/// Endpoints from `ETCD_ENDPOINTS`; `None` means "skip this test" (already reported).
///
/// # Panics
/// When the variable is unset and `MILVUS_TEST_STRICT=1`.
pub fn etcd_endpoints() -> Option<Vec<String>> {
    let endpoints: Vec<String> = std::env::var("ETCD_ENDPOINTS")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|endpoint| !endpoint.is_empty())
        .map(str::to_owned)
        .collect();
    if !endpoints.is_empty() {
        return Some(endpoints);
    }
    if std::env::var("MILVUS_TEST_STRICT").as_deref() == Ok("1") {
        panic!("ETCD_ENDPOINTS not set but MILVUS_TEST_STRICT=1: etcd tests must run");
    }
    eprintln!("skipping: ETCD_ENDPOINTS not set");
    None
}

/// A connected client, or `None` when the test should be skipped.
///
/// # Panics
/// When etcd is configured but unreachable, or see [`etcd_endpoints`].
pub async fn connect() -> Option<Client> {
    let endpoints = etcd_endpoints()?;
    let client = Client::connect(&endpoints, None)
        .await
        .unwrap_or_else(|err| panic!("cannot connect to etcd at {endpoints:?}: {err}"));
    Some(client)
}

/// A fresh meta root like `test-session-<nanos>-<random>/meta`, unique per call.
pub fn unique_meta_root(tag: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let random: u32 = rand::random();
    format!("test-{tag}-{nanos:x}-{random:08x}/meta")
}

/// Deletes everything under the first path element of `meta_root` (the test's own prefix).
pub async fn cleanup(client: &Client, meta_root: &str) {
    let top = meta_root.split('/').next().unwrap_or(meta_root);
    debug_assert!(
        top.starts_with("test-"),
        "refusing to clean a non-test prefix {top}"
    );
    if !top.starts_with("test-") {
        return;
    }
    let prefix = format!("{top}/");
    if let Err(err) = client
        .kv_client()
        .delete(prefix.as_str(), Some(DeleteOptions::new().with_prefix()))
        .await
    {
        eprintln!("cleanup of {prefix} failed: {err}");
    }
}

/// Sends `tracing` output to the test harness (captured unless `--nocapture`); `RUST_LOG`
/// filters it. Safe to call from every test.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}
