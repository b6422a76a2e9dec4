//! Test doubles: an in-memory [`SegmentStore`] with write-failure injection and a manual clock.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use milvus_proto::common::{KeyValuePair, SegmentState};
use milvus_proto::data::SegmentInfo;
use milvus_proto::schema::{CollectionSchema, DataType, FieldSchema};
use milvus_types::{ErrorCode, MilvusError, MilvusResult, SegmentId};

use crate::{Clock, SegmentStore, is_healthy, state_of};

#[derive(Default)]
struct StoreState {
    segments: BTreeMap<SegmentId, Arc<SegmentInfo>>,
    failing_writes: usize,
    writes: usize,
}

/// A [`SegmentStore`] in memory with the meta crate's SetState rules.
#[derive(Default)]
pub struct MemorySegmentStore {
    state: Mutex<StoreState>,
}

impl MemorySegmentStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Puts a segment as if it had been loaded from etcd (no write counted).
    pub fn insert(&self, seg: SegmentInfo) {
        self.lock().segments.insert(seg.id, Arc::new(seg));
    }

    /// Changes a stored segment in place (what other meta writers would do); false if unknown.
    pub fn modify(&self, id: SegmentId, change: impl FnOnce(&mut SegmentInfo)) -> bool {
        let mut state = self.lock();
        let Some(current) = state.segments.get(&id) else {
            return false;
        };
        let mut updated = SegmentInfo::clone(current);
        change(&mut updated);
        state.segments.insert(id, Arc::new(updated));
        true
    }

    /// Every stored segment, by ID.
    pub fn all(&self) -> Vec<Arc<SegmentInfo>> {
        self.lock().segments.values().cloned().collect()
    }

    /// The next `count` writes fail with an IO error and change nothing.
    pub fn fail_next_writes(&self, count: usize) {
        self.lock().failing_writes = count;
    }

    /// Writes attempted so far, failed ones included.
    pub fn write_count(&self) -> usize {
        self.lock().writes
    }

    fn lock(&self) -> MutexGuard<'_, StoreState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn enter_write(&self) -> MilvusResult<MutexGuard<'_, StoreState>> {
        let mut state = self.lock();
        state.writes += 1;
        if state.failing_writes > 0 {
            state.failing_writes -= 1;
            return Err(MilvusError::io_failed("injected store failure"));
        }
        Ok(state)
    }
}

#[async_trait]
impl SegmentStore for MemorySegmentStore {
    fn segment(&self, id: SegmentId) -> Option<Arc<SegmentInfo>> {
        self.lock().segments.get(&id).cloned()
    }

    fn segments_in_states(&self, states: &[SegmentState]) -> Vec<Arc<SegmentInfo>> {
        self.lock()
            .segments
            .values()
            .filter(|seg| states.contains(&state_of(seg)))
            .cloned()
            .collect()
    }

    async fn add_segment(&self, seg: SegmentInfo) -> MilvusResult<()> {
        let mut state = self.enter_write()?;
        state.segments.insert(seg.id, Arc::new(seg));
        Ok(())
    }

    async fn set_state(&self, id: SegmentId, target: SegmentState) -> MilvusResult<()> {
        let mut state = self.enter_write()?;
        let Some(current) = state.segments.get(&id) else {
            if target == SegmentState::Dropped {
                return Ok(());
            }
            return Err(MilvusError::new(ErrorCode::SEGMENT_NOT_FOUND)
                .with_desc(format!("segment is not exist with ID = {id}")));
        };
        if !is_healthy(state_of(current)) {
            return Ok(());
        }
        let mut updated = SegmentInfo::clone(current);
        updated.state = target as i32;
        state.segments.insert(id, Arc::new(updated));
        Ok(())
    }
}

/// A [`Clock`] that moves only when told to.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<SystemTime>,
}

impl ManualClock {
    /// Starts at `start`.
    pub fn new(start: SystemTime) -> Arc<Self> {
        Arc::new(Self {
            now: Mutex::new(start),
        })
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A collection schema as RootCoord describes it: RowID, Timestamp, an Int64 primary key and a
/// FloatVector of `dim` — `24 + 4·dim` bytes per row (dim 8 → 56 B).
pub fn sample_schema(dim: i64) -> CollectionSchema {
    let field = |field_id, name: &str, data_type: DataType| FieldSchema {
        field_id,
        name: name.to_string(),
        data_type: data_type as i32,
        ..Default::default()
    };
    let mut pk = field(100, "pk", DataType::Int64);
    pk.is_primary_key = true;
    let mut vector = field(101, "vec", DataType::FloatVector);
    vector.type_params = vec![KeyValuePair {
        key: "dim".to_string(),
        value: dim.to_string(),
    }];
    CollectionSchema {
        name: "sample".to_string(),
        fields: vec![
            field(0, "RowID", DataType::Int64),
            field(1, "Timestamp", DataType::Int64),
            pk,
            vector,
        ],
        ..Default::default()
    }
}
