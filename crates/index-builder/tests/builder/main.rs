//! The builder against real segment and index metadata on the memory store and on etcd
//! (`ETCD_ENDPOINTS`; skipped when unset unless `MILVUS_TEST_STRICT=1`), with fake IndexNodes.

mod creation;
mod flow;
mod loops;
mod restart;
mod scheduling;
mod support;
