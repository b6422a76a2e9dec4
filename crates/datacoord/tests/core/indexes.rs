//! `Indexes`: CreateIndex over RootCoord's schema, and the post-flush seam that brings every
//! newly flushed segment to the index builder.

use milvus_proto::common::{KeyValuePair, SegmentState};
use milvus_proto::index::{CreateIndexRequest, DescribeIndexRequest};
use milvus_types::ErrorCode;

use crate::support::{self, COLLECTION, VECTOR_FIELD, assign, synced, until};

fn pairs(items: &[(&str, &str)]) -> Vec<KeyValuePair> {
    items
        .iter()
        .map(|(key, value)| KeyValuePair {
            key: key.to_string(),
            value: value.to_string(),
        })
        .collect()
}

/// An IVF_FLAT index on the vector field with `nlist`.
fn create_request(nlist: u32) -> CreateIndexRequest {
    let nlist = nlist.to_string();
    CreateIndexRequest {
        collection_id: COLLECTION,
        field_id: VECTOR_FIELD,
        index_name: "vec_index".to_string(),
        type_params: pairs(&[("dim", "8")]),
        index_params: pairs(&[
            ("index_type", "IVF_FLAT"),
            ("metric_type", "L2"),
            ("nlist", nlist.as_str()),
        ]),
        timestamp: 1,
        is_auto_index: false,
        user_index_params: Vec::new(),
    }
}

#[tokio::test(start_paused = true)]
async fn a_flushed_segment_reaches_the_index_builder() {
    let core = support::core().await;
    core.start();
    core.indexes()
        .create_index(create_request(16))
        .await
        .unwrap();
    let described = core
        .indexes()
        .describe_index(&DescribeIndexRequest {
            collection_id: COLLECTION,
            index_name: String::new(),
            timestamp: 0,
        })
        .unwrap();
    let index_id = described[0].index_id;

    // Flushed after CreateIndex and the builder's start-up sweep: only the flush event can
    // bring it to the builder before its next periodic sweep (a minute away).
    let segment = assign(&core, 10).await;
    core.data_path()
        .save_binlog_paths(synced(&core, segment, 1, 10, 5, true))
        .await
        .unwrap();
    until("segment index created", || {
        core.index_meta
            .segment_index_of(segment, index_id)
            .is_some()
    })
    .await;
    assert_eq!(
        core.meta.segment(segment).unwrap().state(),
        SegmentState::Flushed
    );
    core.stop().await;
}

#[tokio::test]
async fn a_diskann_index_needs_an_indexnode_with_a_disk() {
    let core = support::core().await;
    let mut request = create_request(16);
    request.index_params = pairs(&[("index_type", "DISKANN"), ("metric_type", "L2")]);
    core.indexnodes.add_node(1, 1);
    let err = core
        .indexes()
        .create_index(request.clone())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::INDEX_NOT_SUPPORTED, "{err}");
    core.indexnodes.add_node(2, 1);
    core.indexnodes.set_enable_disk(2, true);
    core.indexes().create_index(request).await.unwrap();
}
