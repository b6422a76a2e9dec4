//! Conformance factory for TiKV.

use std::sync::Arc;

use milvus_metastore::testing::{TestKv, endpoints_from_env};

use crate::TikvKv;

/// Environment variable naming the PD endpoints of a test TiKV cluster (comma-separated).
pub const TIKV_PD_ENDPOINTS_ENV: &str = "TIKV_PD_ENDPOINTS";

/// Factory of the TiKV backend: `None` (skip, even in strict mode, as no TiKV runs in the dev
/// environment) without `TIKV_PD_ENDPOINTS`; panics when set but unreachable.
pub async fn tikv_test_kv() -> Option<TestKv> {
    let endpoints = endpoints_from_env(TIKV_PD_ENDPOINTS_ENV, false)?;
    let kv = TikvKv::connect(endpoints.clone())
        .await
        .unwrap_or_else(|err| panic!("cannot connect to TiKV PD at {endpoints:?}: {err}"));
    Some(TestKv::new(Arc::new(kv)))
}
