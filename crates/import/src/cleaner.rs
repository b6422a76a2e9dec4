//! Failed imports leave nothing Importing. When a DataNode gives up on an import task it tells
//! RootCoord, never DataCoord; 2.3.5's RootCoord then only flips the task to FailedAndCleaned,
//! so every segment the task had allocated stays Importing (with its logs kept from GC) until a
//! restart, or for ever. [`ImportCleaner`] reads RootCoord's failed tasks and expires their
//! Importing segments at once, so the segment manager's stale-import path drops them on the
//! channel's next time tick and GC then removes their logs.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use milvus_types::{MilvusResult, SegmentId};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// An import task RootCoord recorded as failed, with the segments it reported.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FailedImport {
    pub task_id: i64,
    pub segments: Vec<SegmentId>,
}

/// RootCoord's import task records.
#[async_trait]
pub trait ImportTasks: Send + Sync {
    /// Tasks in state ImportFailed or ImportFailedAndCleaned.
    async fn failed(&self) -> MilvusResult<Vec<FailedImport>>;
}

/// The segment manager's Importing segments.
pub trait ImportingSegments: Send + Sync {
    /// Whether any Importing segment is managed (nothing to read otherwise).
    fn any(&self) -> bool;
    /// Expires the Importing segments allocated for `task_id` or listed in `segments`; returns
    /// those it expired.
    fn abandon(&self, task_id: i64, segments: &[SegmentId]) -> Vec<SegmentId>;
}

/// Expires the Importing segments of failed import tasks (see the module docs).
pub struct ImportCleaner {
    tasks: Arc<dyn ImportTasks>,
    segments: Arc<dyn ImportingSegments>,
    interval: Duration,
}

impl ImportCleaner {
    /// Checks every `interval` while Importing segments exist.
    pub fn new(
        tasks: Arc<dyn ImportTasks>,
        segments: Arc<dyn ImportingSegments>,
        interval: Duration,
    ) -> Self {
        Self {
            tasks,
            segments,
            interval,
        }
    }

    /// One check; the segments expired.
    pub async fn run_once(&self) -> MilvusResult<Vec<SegmentId>> {
        if !self.segments.any() {
            return Ok(Vec::new());
        }
        let mut expired = Vec::new();
        for task in self.tasks.failed().await? {
            let segments = self.segments.abandon(task.task_id, &task.segments);
            if !segments.is_empty() {
                info!(task_id = task.task_id, segments = ?segments, "importing segments of a failed import expired");
            }
            expired.extend(segments);
        }
        Ok(expired)
    }

    /// Runs [`Self::run_once`] every interval until `token` is cancelled.
    pub fn start(self, token: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = tokio::time::sleep(self.interval) => {}
                }
                if let Err(err) = self.run_once().await {
                    warn!(error = %err, "failed import tasks not read; retrying next interval");
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[derive(Default)]
    struct Tasks {
        failed: Vec<FailedImport>,
        reads: AtomicUsize,
    }

    #[async_trait]
    impl ImportTasks for Tasks {
        async fn failed(&self) -> MilvusResult<Vec<FailedImport>> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            Ok(self.failed.clone())
        }
    }

    /// Importing segments by task; abandoning removes them.
    #[derive(Default)]
    struct Segments(Mutex<Vec<(i64, SegmentId)>>);

    impl ImportingSegments for Segments {
        fn any(&self) -> bool {
            !self.0.lock().unwrap().is_empty()
        }
        fn abandon(&self, task_id: i64, listed: &[SegmentId]) -> Vec<SegmentId> {
            let mut all = self.0.lock().unwrap();
            let (gone, kept) = all
                .iter()
                .partition(|(task, id)| *task == task_id || listed.contains(id));
            *all = kept;
            gone.into_iter().map(|(_, id)| id).collect()
        }
    }

    #[tokio::test]
    async fn segments_of_failed_tasks_are_expired_and_nothing_is_read_without_imports() {
        let tasks = Arc::new(Tasks {
            failed: vec![
                FailedImport {
                    task_id: 1,
                    segments: vec![],
                },
                FailedImport {
                    task_id: 9,
                    segments: vec![30],
                },
            ],
            ..Default::default()
        });
        let segments = Arc::new(Segments(Mutex::new(vec![(1, 10), (2, 20), (0, 30)])));
        let cleaner = ImportCleaner::new(tasks.clone(), segments.clone(), Duration::from_secs(1));
        assert_eq!(cleaner.run_once().await.unwrap(), vec![10, 30]);
        assert_eq!(
            *segments.0.lock().unwrap(),
            vec![(2, 20)],
            "a live import is kept"
        );

        segments.0.lock().unwrap().clear();
        let reads = tasks.reads.load(Ordering::SeqCst);
        assert!(cleaner.run_once().await.unwrap().is_empty());
        assert_eq!(
            tasks.reads.load(Ordering::SeqCst),
            reads,
            "RootCoord's tasks read for nothing"
        );
    }
}
