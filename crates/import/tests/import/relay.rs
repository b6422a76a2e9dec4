//! Import: validation, node choice, the background relay and its shutdown.

use milvus_proto::data::ImportTaskRequest;
use milvus_types::ErrorCode;

use crate::support::*;

#[tokio::test]
async fn a_malformed_import_is_refused_and_never_relayed() {
    let h = harness();
    h.nodes.add_node(7);
    let mut cases: Vec<(&str, ImportTaskRequest)> = vec![(
        "no import_task",
        ImportTaskRequest {
            import_task: None,
            ..import_request(vec![])
        },
    )];
    let mut edit = |what: &'static str, change: fn(&mut milvus_proto::data::ImportTask)| {
        let mut req = import_request(vec![]);
        change(req.import_task.as_mut().unwrap());
        cases.push((what, req));
    };
    edit("collection 0", |t| t.collection_id = 0);
    edit("negative collection", |t| t.collection_id = -5);
    edit("negative partition", |t| t.partition_id = -1);
    edit("task 0", |t| t.task_id = 0);
    edit("no files", |t| t.files.clear());
    edit("an empty file name", |t| t.files.push(" ".into()));
    edit("no channels", |t| t.channel_names.clear());
    edit("an empty channel", |t| t.channel_names.push(String::new()));
    for (what, req) in cases {
        let err = h.service.import(req).unwrap_err();
        let (code, error_code, reason) = status_of(&err);
        assert_eq!((code, error_code), (1100, 5), "{what}: {reason}");
        assert!(reason.starts_with("invalid parameter"), "{what}: {reason}");
    }
    h.relays_done().await;
    assert!(h.nodes.imports().is_empty(), "nothing relayed");
}

#[tokio::test]
async fn partition_zero_is_a_partition_key_import_and_is_relayed() {
    let h = harness();
    h.nodes.add_node(7);
    let mut req = import_request(vec![]);
    req.import_task.as_mut().unwrap().partition_id = 0;
    h.service.import(req).unwrap();
    h.relays_done().await;
    assert_eq!(h.nodes.imports().len(), 1);
}

#[tokio::test]
async fn no_datanode_or_none_free_is_node_lack() {
    let h = harness();
    let err = h.service.import(import_request(vec![])).unwrap_err();
    assert_eq!(err.code(), ErrorCode::NODE_LACK);
    assert_eq!(
        status_of(&err),
        (903, 1, "no live DataNode: node lacks".to_string())
    );
    assert!(!err.is_retriable());

    h.nodes.add_node(7);
    h.nodes.add_node(8);
    let err = h.service.import(import_request(vec![8, 7])).unwrap_err();
    assert_eq!(
        status_of(&err),
        (903, 1, "no available DataNode: node lacks".to_string())
    );
    h.relays_done().await;
    assert!(h.nodes.imports().is_empty());
}

#[tokio::test]
async fn the_task_goes_to_a_free_datanode_and_the_answer_does_not_wait_for_it() {
    let h = harness();
    for node in [7, 8, 9] {
        h.nodes.add_node(node);
    }
    h.nodes.hang_imports();
    for _ in 0..20 {
        let resp = h.service.import(import_request(vec![7, 9])).unwrap();
        assert_eq!(resp.datanode_id, 8);
        assert_eq!(resp.status.unwrap_or_default().code, 0);
    }
    // Every relay is still running (the node never answers) and all were answered at once.
    settle(|| h.nodes.imports().len() == 20).await;
    let imports = h.nodes.imports();
    assert_eq!(imports.len(), 20);
    assert!(
        imports
            .iter()
            .all(|(node, req)| *node == 8 && *req == import_request(vec![7, 9]))
    );
    assert_eq!(h.nodes.finished_imports(), 0);
    h.shutdown.cancel();
    h.relays_done().await;
}

#[tokio::test]
async fn the_choice_is_random_among_the_free_nodes() {
    let h = harness();
    for node in [7, 8, 9] {
        h.nodes.add_node(node);
    }
    let mut chosen = std::collections::BTreeSet::new();
    for _ in 0..200 {
        chosen.insert(
            h.service
                .import(import_request(vec![9]))
                .unwrap()
                .datanode_id,
        );
    }
    assert_eq!(chosen, [7, 8].into());
    h.relays_done().await;
    assert_eq!(h.nodes.finished_imports(), 200);
}

#[tokio::test(start_paused = true)]
async fn shutdown_cancels_and_awaits_running_relays() {
    let h = harness();
    h.nodes.add_node(7);
    h.nodes.hang_imports();
    h.service.import(import_request(vec![])).unwrap();
    settle(|| h.nodes.imports().len() == 1).await;
    assert_eq!(h.relays.len(), 1, "the relay runs on the given tracker");
    // The paused clock would jump to the 3 h bound if the relay ignored the cancellation.
    let stopping = tokio::time::Instant::now();
    h.shutdown.cancel();
    h.relays.close();
    h.relays.wait().await;
    assert!(stopping.elapsed() < datacoord_import::IMPORT_TIMEOUT / 2);
    assert_eq!(h.nodes.imports().len(), 1);
    assert_eq!(h.nodes.finished_imports(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_relay_gives_up_after_three_hours() {
    let h = harness();
    h.nodes.add_node(7);
    h.nodes.hang_imports();
    h.service.import(import_request(vec![])).unwrap();
    let started = tokio::time::Instant::now();
    // No cancellation: only the 3 h bound can end the hung call.
    h.relays_done().await;
    assert_eq!(started.elapsed(), datacoord_import::IMPORT_TIMEOUT);
}

/// Lets the spawned relays run until `done` (they need no time, only turns).
async fn settle(done: impl Fn() -> bool) {
    for _ in 0..1000 {
        if done() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("relays did not reach the node");
}
