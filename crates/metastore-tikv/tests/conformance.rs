//! The shared metastore conformance suite on TiKV (feature `tikv`; skipped unless
//! `TIKV_PD_ENDPOINTS` is set).

#[cfg(feature = "tikv")]
mod tikv {
    milvus_metastore::metakv_conformance_tests!(milvus_metastore_tikv::testing::tikv_test_kv);
}
