//! The conformance cases: one function per behaviour every [`MetaKv`] backend must show.
//!
//! Each case works on `test_kv.kv` (relative keys under a private root) and panics on a
//! violation. They run through [`crate::metakv_conformance_tests!`].

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use futures::TryStreamExt;

use super::TestKv;
use crate::{MetaKv, MetastoreError, RootedKv};

fn value(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

fn entry(key: impl Into<String>, text: &str) -> (String, Bytes) {
    (key.into(), value(text))
}

async fn keys_under(kv: &dyn MetaKv, prefix: &str) -> Vec<String> {
    kv.load_all_with_prefix(prefix)
        .await
        .expect("load_all_with_prefix")
        .into_iter()
        .map(|(key, _)| key)
        .collect()
}

/// A missing key loads as `None`; an empty prefix range yields nothing.
pub async fn load_missing(test_kv: &TestKv) {
    let kv = &*test_kv.kv;
    assert_eq!(kv.load("missing/key").await.unwrap(), None);
    let page = kv.load_prefix_page("missing/", None, 10).await.unwrap();
    assert!(page.kvs.is_empty() && !page.more, "{page:?}");
    assert!(keys_under(kv, "missing/").await.is_empty());
}

/// Saved values load back; removed keys are gone; removing a missing key is fine.
pub async fn save_and_load(test_kv: &TestKv) {
    let kv = &*test_kv.kv;
    kv.save("s/1", value("one")).await.unwrap();
    kv.save("s/2", value("two")).await.unwrap();
    assert_eq!(kv.load("s/1").await.unwrap(), Some(value("one")));
    assert_eq!(kv.load("s/2").await.unwrap(), Some(value("two")));
    kv.remove("s/1").await.unwrap();
    assert_eq!(kv.load("s/1").await.unwrap(), None);
    assert_eq!(kv.load("s/2").await.unwrap(), Some(value("two")));
    kv.remove("s/1").await.unwrap();
}

/// Arbitrary bytes and zero-length values round-trip, through `load` and prefix walks.
pub async fn binary_and_empty_values(test_kv: &TestKv) {
    let kv = &*test_kv.kv;
    let every_byte: Bytes = (0..=255u8).rev().collect::<Vec<u8>>().into();
    kv.save("b/binary", every_byte.clone()).await.unwrap();
    kv.save("b/empty", Bytes::new()).await.unwrap();
    kv.multi_save(vec![
        ("b/empty2".to_string(), Bytes::new()),
        ("b/nul".to_string(), Bytes::from_static(b"\0")),
    ])
    .await
    .unwrap();

    assert_eq!(kv.load("b/binary").await.unwrap(), Some(every_byte.clone()));
    assert_eq!(kv.load("b/empty").await.unwrap(), Some(Bytes::new()));
    assert_eq!(kv.load("b/empty2").await.unwrap(), Some(Bytes::new()));
    assert_eq!(
        kv.load("b/nul").await.unwrap(),
        Some(Bytes::from_static(b"\0"))
    );
    let all = kv.load_all_with_prefix("b/").await.unwrap();
    assert_eq!(
        all,
        vec![
            ("b/binary".to_string(), every_byte),
            ("b/empty".to_string(), Bytes::new()),
            ("b/empty2".to_string(), Bytes::new()),
            ("b/nul".to_string(), Bytes::from_static(b"\0")),
        ]
    );
}

/// A later save replaces the value, for single and multi saves.
pub async fn overwrite(test_kv: &TestKv) {
    let kv = &*test_kv.kv;
    kv.save("o/k", value("v1")).await.unwrap();
    kv.save("o/k", value("v2")).await.unwrap();
    assert_eq!(kv.load("o/k").await.unwrap(), Some(value("v2")));
    kv.multi_save(vec![entry("o/k", "v3"), entry("o/j", "j")])
        .await
        .unwrap();
    assert_eq!(kv.load("o/k").await.unwrap(), Some(value("v3")));
    assert_eq!(keys_under(kv, "o/").await, vec!["o/j", "o/k"]);
}

/// A reader never sees part of a multi_save: every single-range read of the keys shows one
/// generation.
pub async fn multi_save_visible_together(test_kv: &TestKv) {
    let kv = test_kv.kv.clone();
    let width = kv.max_txn_ops().min(16);
    let generations = 30;
    let keys: Vec<String> = (0..width).map(|i| format!("g/{i:03}")).collect();
    kv.multi_save(keys.iter().map(|key| entry(key.clone(), "0")).collect())
        .await
        .unwrap();

    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let kv = kv.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut reads = 0u32;
            while !done.load(Ordering::Acquire) || reads == 0 {
                let page = kv.load_prefix_page("g/", None, width + 1).await.unwrap();
                assert_eq!(page.kvs.len(), width, "a key is missing");
                let seen: BTreeSet<&Bytes> = page.kvs.iter().map(|(_, v)| v).collect();
                assert_eq!(seen.len(), 1, "mixed generations visible: {seen:?}");
                reads += 1;
                tokio::task::yield_now().await;
            }
        })
    };
    for generation in 1..=generations {
        let text = generation.to_string();
        kv.multi_save(keys.iter().map(|key| entry(key.clone(), &text)).collect())
            .await
            .unwrap();
    }
    done.store(true, Ordering::Release);
    reader.await.expect("reader saw a torn write");
    for key in &keys {
        assert_eq!(
            kv.load(key).await.unwrap(),
            Some(value(&generations.to_string()))
        );
    }
}

/// Every single-transaction method rejects more than `max_txn_ops` operations and writes
/// nothing; exactly the limit is accepted.
pub async fn over_limit_rejected_nothing_written(test_kv: &TestKv) {
    let kv = &*test_kv.kv;
    let limit = kv.max_txn_ops();
    kv.save("keep/x", value("x")).await.unwrap();
    let over: Vec<(String, Bytes)> = (0..=limit)
        .map(|i| entry(format!("l/{i:05}"), "v"))
        .collect();

    let too_large = |result: Result<(), MetastoreError>| match result {
        Err(MetastoreError::TxnTooLarge {
            ops,
            limit: reported,
        }) => {
            assert_eq!((ops, reported), (limit + 1, limit));
        }
        other => panic!("expected TxnTooLarge, got {other:?}"),
    };
    too_large(kv.multi_save(over.clone()).await);
    too_large(
        kv.multi_remove((0..=limit).map(|i| format!("keep/{i}")).collect())
            .await,
    );
    let (saves, rest) = over.split_at(limit);
    too_large(
        kv.multi_save_and_remove(saves.to_vec(), vec!["keep/x".to_string()])
            .await,
    );
    too_large(
        kv.multi_save_and_remove_with_prefix(saves.to_vec(), vec!["keep/".to_string()])
            .await,
    );
    assert!(keys_under(kv, "l/").await.is_empty(), "partial write");
    assert_eq!(kv.load("keep/x").await.unwrap(), Some(value("x")));

    assert_eq!(rest.len(), 1);
    kv.multi_save(saves.to_vec()).await.unwrap();
    assert_eq!(keys_under(kv, "l/").await.len(), limit);
}

/// A batch that saves a key twice, or saves and removes the same key, fails without writing.
pub async fn conflicting_batch_rejected_nothing_written(test_kv: &TestKv) {
    let kv = &*test_kv.kv;
    kv.save("c/old", value("old")).await.unwrap();
    let twice = kv
        .multi_save(vec![
            entry("c/a", "1"),
            entry("c/b", "2"),
            entry("c/a", "3"),
        ])
        .await;
    assert!(
        matches!(twice, Err(MetastoreError::InvalidRequest(_))),
        "{twice:?}"
    );
    let save_and_remove = kv
        .multi_save_and_remove(
            vec![entry("c/a", "1"), entry("c/old", "new")],
            vec!["c/old".into()],
        )
        .await;
    assert!(matches!(
        save_and_remove,
        Err(MetastoreError::InvalidRequest(_))
    ));
    let under_prefix = kv
        .multi_save_and_remove_with_prefix(
            vec![entry("c/a", "1"), entry("c/o/x", "x")],
            vec!["c/o".into()],
        )
        .await;
    assert!(matches!(
        under_prefix,
        Err(MetastoreError::InvalidRequest(_))
    ));
    let empty_key = kv.multi_save(vec![entry("c/a", "1"), entry("", "x")]).await;
    assert!(matches!(empty_key, Err(MetastoreError::InvalidRequest(_))));
    assert_eq!(keys_under(kv, "c/").await, vec!["c/old"]);
    assert_eq!(kv.load("c/old").await.unwrap(), Some(value("old")));
}

/// multi_remove deletes exactly the listed keys; missing ones are ignored.
pub async fn multi_remove(test_kv: &TestKv) {
    let kv = &*test_kv.kv;
    kv.multi_save(vec![
        entry("r/1", "1"),
        entry("r/2", "2"),
        entry("r/3", "3"),
    ])
    .await
    .unwrap();
    kv.multi_remove(vec!["r/1".into(), "r/3".into(), "r/never".into()])
        .await
        .unwrap();
    assert_eq!(keys_under(kv, "r/").await, vec!["r/2"]);
}

/// Moving a key with multi_save_and_remove is atomic: a reader always sees exactly one of the
/// two names.
pub async fn multi_save_and_remove_atomic(test_kv: &TestKv) {
    let kv = test_kv.kv.clone();
    kv.save("m/a", value("token")).await.unwrap();

    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let kv = kv.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut reads = 0u32;
            while !done.load(Ordering::Acquire) || reads == 0 {
                let page = kv.load_prefix_page("m/", None, 10).await.unwrap();
                assert_eq!(
                    page.kvs.len(),
                    1,
                    "token duplicated or lost: {:?}",
                    page.kvs
                );
                reads += 1;
                tokio::task::yield_now().await;
            }
        })
    };
    let moves = 30;
    for step in 0..moves {
        let (from, to) = if step % 2 == 0 {
            ("m/a", "m/b")
        } else {
            ("m/b", "m/a")
        };
        kv.multi_save_and_remove(vec![entry(to, "token")], vec![from.to_string()])
            .await
            .unwrap();
    }
    done.store(true, Ordering::Release);
    reader.await.expect("reader saw a half-applied move");
    // An even number of moves brings the token home.
    assert_eq!(keys_under(&*kv, "m/").await, vec!["m/a"]);
}

/// The prefix variant deletes whole prefixes (literally) and saves in one transaction.
pub async fn multi_save_and_remove_with_prefix(test_kv: &TestKv) {
    let kv = &*test_kv.kv;
    kv.multi_save(vec![
        entry("p/d/1/x", "x"),
        entry("p/d/1/y", "y"),
        entry("p/d/10/z", "z"),
        entry("p/d/2/w", "w"),
        entry("p/e", "e"),
    ])
    .await
    .unwrap();
    kv.multi_save_and_remove_with_prefix(
        vec![entry("p/f", "f"), entry("p/d/1", "bare")],
        vec!["p/d/1/".into(), "p/d/2/".into(), "p/none/".into()],
    )
    .await
    .unwrap();
    assert_eq!(
        keys_under(kv, "p/").await,
        vec!["p/d/1", "p/d/10/z", "p/e", "p/f"]
    );
}

/// remove_with_prefix matches literally: `a/1/` spares `a/10` and `a/1`, `a/1` takes all three.
pub async fn remove_with_prefix_is_literal(test_kv: &TestKv) {
    let kv = &*test_kv.kv;
    kv.multi_save(vec![
        entry("a/1", "bare"),
        entry("a/1/x", "x"),
        entry("a/1/y/z", "z"),
        entry("a/10", "ten"),
        entry("a/2", "two"),
    ])
    .await
    .unwrap();
    assert_eq!(keys_under(kv, "a/1/").await, vec!["a/1/x", "a/1/y/z"]);
    kv.remove_with_prefix("a/1/").await.unwrap();
    assert_eq!(keys_under(kv, "a/").await, vec!["a/1", "a/10", "a/2"]);
    kv.remove_with_prefix("a/1").await.unwrap();
    assert_eq!(keys_under(kv, "a/").await, vec!["a/2"]);
    kv.remove_with_prefix("a/nothing/").await.unwrap();
    assert_eq!(keys_under(kv, "a/").await, vec!["a/2"]);
}

/// CAS with `expected = None` creates the key once and never overwrites.
pub async fn cas_create_if_absent(test_kv: &TestKv) {
    let kv = &*test_kv.kv;
    assert!(
        kv.compare_and_swap("cas/k", None, value("v1"))
            .await
            .unwrap()
    );
    assert_eq!(kv.load("cas/k").await.unwrap(), Some(value("v1")));
    assert!(
        !kv.compare_and_swap("cas/k", None, value("v2"))
            .await
            .unwrap()
    );
    assert_eq!(kv.load("cas/k").await.unwrap(), Some(value("v1")));
    // A deleted key counts as absent again.
    kv.remove("cas/k").await.unwrap();
    assert!(
        kv.compare_and_swap("cas/k", None, Bytes::new())
            .await
            .unwrap()
    );
    assert_eq!(kv.load("cas/k").await.unwrap(), Some(Bytes::new()));
}

/// CAS swaps only on an exact value match; an empty expectation needs an existing empty value.
pub async fn cas_mismatch(test_kv: &TestKv) {
    let kv = &*test_kv.kv;
    kv.save("cas/k", value("v1")).await.unwrap();
    assert!(
        !kv.compare_and_swap("cas/k", Some(value("v0")), value("v2"))
            .await
            .unwrap()
    );
    assert!(
        !kv.compare_and_swap("cas/k", Some(Bytes::new()), value("v2"))
            .await
            .unwrap()
    );
    assert_eq!(kv.load("cas/k").await.unwrap(), Some(value("v1")));
    assert!(
        kv.compare_and_swap("cas/k", Some(value("v1")), value("v2"))
            .await
            .unwrap()
    );
    assert_eq!(kv.load("cas/k").await.unwrap(), Some(value("v2")));

    assert!(
        !kv.compare_and_swap("cas/missing", Some(Bytes::new()), value("x"))
            .await
            .unwrap()
    );
    assert_eq!(kv.load("cas/missing").await.unwrap(), None);

    kv.save("cas/empty", Bytes::new()).await.unwrap();
    assert!(
        kv.compare_and_swap("cas/empty", Some(Bytes::new()), value("full"))
            .await
            .unwrap()
    );
    assert_eq!(kv.load("cas/empty").await.unwrap(), Some(value("full")));
}

/// Concurrent CAS with the same expectation: exactly one wins and its value is stored.
pub async fn cas_concurrent_one_winner(test_kv: &TestKv) {
    let contenders = 8;
    let mut expected = None;
    for round in 0..3 {
        let tasks: Vec<_> = (0..contenders)
            .map(|i| {
                let kv = test_kv.kv.clone();
                let expected = expected.clone();
                let mine = value(&format!("round{round}-task{i}"));
                tokio::spawn(async move {
                    let won = kv
                        .compare_and_swap("cas/leader", expected, mine.clone())
                        .await;
                    (won.expect("compare_and_swap"), mine)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            let (won, mine) = task.await.unwrap();
            if won {
                winners.push(mine);
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        let stored = test_kv.kv.load("cas/leader").await.unwrap();
        assert_eq!(stored.as_ref(), Some(&winners[0]));
        expected = stored;
    }
}

/// A paged walk over more than three pages returns every key of the prefix once, in byte
/// order, never a neighbour outside it; `start_after` is exclusive.
pub async fn paged_prefix_walk(test_kv: &TestKv) {
    let kv = &*test_kv.kv;
    // Numbers without padding so byte order differs from numeric order.
    let inside: Vec<String> = (0..50).map(|i| format!("w/{i}")).collect();
    let neighbours = ["w", "w0", "v/1", "x/1", "w\u{7f}"];
    let mut writes: Vec<(String, Bytes)> =
        inside.iter().map(|key| entry(key.clone(), key)).collect();
    writes.extend(neighbours.iter().map(|key| entry(*key, "outside")));
    kv.multi_save_batched(writes).await.unwrap();

    let page_size = 7;
    let pages: Vec<Vec<(String, Bytes)>> =
        kv.load_prefix("w/", page_size).try_collect().await.unwrap();
    assert!(pages.len() > 3, "only {} pages", pages.len());
    assert!(
        pages
            .iter()
            .all(|page| !page.is_empty() && page.len() <= page_size)
    );
    let walked: Vec<(String, Bytes)> = pages.into_iter().flatten().collect();
    let mut expected = inside.clone();
    expected.sort();
    let walked_keys: Vec<&String> = walked.iter().map(|(key, _)| key).collect();
    assert_eq!(walked_keys, expected.iter().collect::<Vec<_>>());
    assert!(
        walked
            .iter()
            .all(|(key, value)| value.as_ref() == key.as_bytes())
    );

    let page = kv
        .load_prefix_page("w/", Some(&expected[3]), 2)
        .await
        .unwrap();
    assert_eq!(
        page.kvs.iter().map(|(key, _)| key).collect::<Vec<_>>(),
        vec![&expected[4], &expected[5]]
    );
    assert!(page.more);
    let last = kv
        .load_prefix_page("w/", Some(&expected[expected.len() - 2]), 5)
        .await
        .unwrap();
    assert_eq!(last.kvs.len(), 1);
    assert!(!last.more);
    let beyond = kv.load_prefix_page("w/", Some("w0"), 5).await.unwrap();
    assert!(beyond.kvs.is_empty() && !beyond.more);
    assert_eq!(keys_under(kv, "w/").await, expected);
}

/// The batched helpers split over-limit batches and write (or remove) everything.
pub async fn batched_writes_over_limit(test_kv: &TestKv) {
    let kv = &*test_kv.kv;
    let count = 2 * kv.max_txn_ops() + 3;
    let keys: Vec<String> = (0..count).map(|i| format!("batch/{i:05}")).collect();
    kv.multi_save_batched(keys.iter().map(|key| entry(key.clone(), key)).collect())
        .await
        .unwrap();
    assert_eq!(keys_under(kv, "batch/").await, keys);
    kv.multi_remove_batched(keys.clone()).await.unwrap();
    assert!(keys_under(kv, "batch/").await.is_empty());
}

/// Two roots never see each other's keys, even when one root prefixes the other; returned
/// keys are relative and the base store holds the full path.
pub async fn rooted_isolation(test_kv: &TestKv) {
    let base = test_kv.base.clone();
    let short_root = format!("{}/iso/a", test_kv.root);
    let long_root = format!("{}/iso/ab", test_kv.root);
    let short = RootedKv::new(base.clone(), &short_root);
    let long = RootedKv::new(base.clone(), &format!("{long_root}/"));
    assert_eq!(long.root(), long_root);

    short.save("k", value("short")).await.unwrap();
    long.save("k", value("long")).await.unwrap();
    long.save("only-long", value("x")).await.unwrap();
    assert_eq!(short.load("k").await.unwrap(), Some(value("short")));
    assert_eq!(long.load("k").await.unwrap(), Some(value("long")));
    assert_eq!(short.load("only-long").await.unwrap(), None);
    assert_eq!(
        short.load_all_with_prefix("").await.unwrap(),
        vec![("k".to_string(), value("short"))]
    );
    assert_eq!(keys_under(&long, "").await, vec!["k", "only-long"]);
    assert_eq!(
        base.load(&format!("{short_root}/k")).await.unwrap(),
        Some(value("short"))
    );

    short.remove_with_prefix("").await.unwrap();
    assert!(keys_under(&short, "").await.is_empty());
    assert_eq!(keys_under(&long, "").await, vec!["k", "only-long"]);
    assert!(matches!(
        short.load("").await,
        Err(MetastoreError::InvalidRequest(_))
    ));
}

/// One default-size page larger than gRPC's usual 4 MiB response cap loads whole.
pub async fn large_page(test_kv: &TestKv) {
    let kv = &*test_kv.kv;
    let count = 1500;
    let big = Bytes::from(vec![b'x'; 4096]);
    let keys: Vec<String> = (0..count).map(|i| format!("big/{i:05}")).collect();
    kv.multi_save_batched(keys.iter().map(|key| (key.clone(), big.clone())).collect())
        .await
        .unwrap();
    let page = kv
        .load_prefix_page("big/", None, crate::DEFAULT_PAGE_SIZE)
        .await
        .unwrap();
    assert!(!page.more);
    assert_eq!(page.kvs.len(), count);
    assert!(page.kvs.iter().all(|(_, value)| *value == big));
}
