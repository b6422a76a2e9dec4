//! One GC step ([`GcStep`]), where it sits in a run ([`Stage`]) and what it did ([`StepReport`]).

use std::ops::AddAssign;

use async_trait::async_trait;

/// The steps of one 2.3.5 GC run, in the order they run (FACTS §3.1). The collector sorts its
/// steps by stage, so a step registered later still runs in its 2.3.5 place.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// Dropped segments with their files, and checkpoints of gone channels.
    ClearEtcd,
    /// `field-index` records of deleted indexes.
    RecycleUnusedIndexes,
    /// `segment-index` records whose segment or index is gone, and their files.
    RecycleUnusedSegmentIndexes,
    /// Orphan insert/stats/delta objects.
    Scan,
    /// Objects under `index_files/` no record references.
    RecycleUnusedIndexFiles,
}

/// What one step did. Failures are logged where they happen; whatever failed is left as it
/// was and retried by the next run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StepReport {
    /// Metadata records removed.
    pub records_removed: usize,
    /// Objects deleted.
    pub files_removed: usize,
    /// Operations that failed (left for the next run).
    pub failures: usize,
    /// Entries ignored because they do not look like ours (e.g. an unparsable directory name).
    pub skipped: usize,
}

impl AddAssign for StepReport {
    fn add_assign(&mut self, other: Self) {
        self.records_removed += other.records_removed;
        self.files_removed += other.files_removed;
        self.failures += other.failures;
        self.skipped += other.skipped;
    }
}

/// One step of a GC run. A step never returns an error: it logs each failure, leaves that
/// item as it was and moves on, so one bad object cannot block the rest.
///
/// A run may be cancelled (shutdown) at any await point, so every operation of a step must be
/// safe to stop halfway and to repeat.
#[async_trait]
pub trait GcStep: Send + Sync {
    /// Where the step runs within a GC run.
    fn stage(&self) -> Stage;

    /// Runs the step once.
    async fn run(&self) -> StepReport;
}
