//! The conformance suite on every backend of this crate. etcd runs when `ETCD_ENDPOINTS` is set
//! (and must be set when `MILVUS_TEST_STRICT=1`).

mod memory {
    milvus_metastore::metakv_conformance_tests!(milvus_metastore::testing::memory_test_kv);
}

mod etcd {
    milvus_metastore::metakv_conformance_tests!(milvus_metastore::testing::etcd_test_kv);
}
