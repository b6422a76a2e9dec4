//! Test support shared by every backend crate: an isolated store per test, environment rules
//! for external servers, and the conformance suite ([`crate::metakv_conformance_tests!`]).
//!
//! A backend joins the suite with a factory `async fn() -> Option<TestKv>` (`None` = skip) and
//! one line in an integration test, e.g.
//! `mod memory { milvus_metastore::metakv_conformance_tests!(milvus_metastore::testing::memory_test_kv); }`.
//! The test crate needs `tokio` (macros, multi-thread runtime) as a dev-dependency.

pub mod cases;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::{EtcdKv, MemoryKv, MetaKv, RootedKv};

/// Environment variable naming the etcd endpoints of integration tests (comma-separated).
pub const ETCD_ENDPOINTS_ENV: &str = "ETCD_ENDPOINTS";

/// Environment variable that turns a missing required endpoint into a test failure.
pub const STRICT_ENV: &str = "MILVUS_TEST_STRICT";

/// One test's store: `kv` is rooted at a fresh random `root` of the shared `base` store, so
/// tests can run in parallel against one server.
pub struct TestKv {
    /// The backend itself, unrooted.
    pub base: Arc<dyn MetaKv>,
    /// This test's root in `base`, without trailing `/`.
    pub root: String,
    /// `base` rooted at `root`; what the cases use.
    pub kv: Arc<dyn MetaKv>,
}

impl TestKv {
    /// Roots `base` at a new unique root.
    pub fn new(base: Arc<dyn MetaKv>) -> Self {
        let root = unique_root();
        let kv: Arc<dyn MetaKv> = Arc::new(RootedKv::new(base.clone(), &root));
        Self { base, root, kv }
    }

    /// Deletes everything under this test's root.
    pub async fn cleanup(self) {
        self.base
            .remove_with_prefix(&format!("{}/", self.root))
            .await
            .expect("cleanup of the test root failed");
    }
}

/// A root no other test (in this or a concurrent process) uses: `test-<pid>-<nanos>-<n>`.
pub fn unique_root() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("test-{}-{nanos:x}-{n}", std::process::id())
}

/// Whether `MILVUS_TEST_STRICT=1`.
pub fn strict() -> bool {
    std::env::var(STRICT_ENV).is_ok_and(|value| value == "1")
}

/// Endpoints listed in `var` (comma-separated). When unset: panics if `required_in_strict`
/// and strict mode is on, else prints a skip notice and returns `None`.
pub fn endpoints_from_env(var: &str, required_in_strict: bool) -> Option<Vec<String>> {
    let endpoints: Vec<String> = std::env::var(var)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|endpoint| !endpoint.is_empty())
        .map(str::to_string)
        .collect();
    if !endpoints.is_empty() {
        return Some(endpoints);
    }
    if required_in_strict && strict() {
        panic!("{var} is not set but {STRICT_ENV}=1 requires the external server");
    }
    println!("skipping: {var} not set");
    None
}

/// The etcd endpoints of integration tests, under the strict rule.
pub fn etcd_endpoints() -> Option<Vec<String>> {
    endpoints_from_env(ETCD_ENDPOINTS_ENV, true)
}

/// Factory of the memory backend (never skips).
pub async fn memory_test_kv() -> Option<TestKv> {
    Some(TestKv::new(Arc::new(MemoryKv::new())))
}

/// Factory of the etcd backend: `None` (skip) without `ETCD_ENDPOINTS`; panics when the
/// endpoints are set but unreachable.
pub async fn etcd_test_kv() -> Option<TestKv> {
    let endpoints = etcd_endpoints()?;
    let client = etcd_client::Client::connect(&endpoints, None)
        .await
        .unwrap_or_else(|err| panic!("cannot connect to etcd at {endpoints:?}: {err}"));
    Some(TestKv::new(Arc::new(EtcdKv::new(client))))
}

/// Instantiates every conformance case as a `#[tokio::test]` in the current module, each on a
/// store from `$factory` (an `async fn() -> Option<TestKv>`; `None` skips the test).
#[macro_export]
macro_rules! metakv_conformance_tests {
    ($factory:path) => {
        $crate::__metakv_conformance_cases!(
            $factory;
            load_missing,
            save_and_load,
            binary_and_empty_values,
            overwrite,
            multi_save_visible_together,
            over_limit_rejected_nothing_written,
            conflicting_batch_rejected_nothing_written,
            multi_remove,
            multi_save_and_remove_atomic,
            multi_save_and_remove_with_prefix,
            remove_with_prefix_is_literal,
            cas_create_if_absent,
            cas_mismatch,
            cas_concurrent_one_winner,
            paged_prefix_walk,
            batched_writes_over_limit,
            rooted_isolation,
            large_page,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __metakv_conformance_cases {
    ($factory:path; $($case:ident),+ $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(test_kv) = $factory().await else {
                    return;
                };
                $crate::testing::cases::$case(&test_kv).await;
                test_kv.cleanup().await;
            }
        )+
    };
}
