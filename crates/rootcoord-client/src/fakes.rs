//! In-memory [`Broker`] and [`Allocator`] for tests, with "fail the next N calls" injection.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Mutex;

use async_trait::async_trait;
use milvus_proto::milvus::DescribeCollectionResponse;
use milvus_proto::schema::CollectionSchema;
use milvus_types::{
    CollectionId, ErrorCode, MilvusError, MilvusResult, PartitionId, Status, Timestamp, UniqueId,
    compose_ts,
};

use crate::{Allocator, Broker};

/// Injected failures: the next `remaining` calls fail with `status`.
#[derive(Default)]
struct Injection {
    remaining: usize,
    status: Status,
}

impl Injection {
    fn set(&mut self, count: usize, status: Status) {
        assert!(
            MilvusError::from_status(&status).is_some(),
            "an injected status must be an error"
        );
        self.remaining = count;
        self.status = status;
    }

    /// Consumes one injected failure, if any is left.
    fn take(&mut self) -> Option<MilvusError> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        MilvusError::from_status(&self.status)
    }
}

/// A fake's state with call counting and failure injection, shared by every fake here.
struct Faked<S> {
    state: Mutex<Counted<S>>,
}

struct Counted<S> {
    data: S,
    injection: Injection,
    calls: usize,
}

impl<S> std::ops::Deref for Counted<S> {
    type Target = S;
    fn deref(&self) -> &S {
        &self.data
    }
}

impl<S> std::ops::DerefMut for Counted<S> {
    fn deref_mut(&mut self) -> &mut S {
        &mut self.data
    }
}

impl<S> Faked<S> {
    fn new(data: S) -> Self {
        Self {
            state: Mutex::new(Counted {
                data,
                injection: Injection::default(),
                calls: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counted<S>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fail_next(&self, count: usize, status: Status) {
        self.lock().injection.set(count, status);
    }

    fn call_count(&self) -> usize {
        self.lock().calls
    }

    /// Counts the call and returns the state unless an injected failure is due.
    fn enter(&self) -> MilvusResult<std::sync::MutexGuard<'_, Counted<S>>> {
        let mut state = self.lock();
        state.calls += 1;
        match state.injection.take() {
            Some(err) => Err(err),
            None => Ok(state),
        }
    }
}

struct FakeCollection {
    db_name: String,
    response: DescribeCollectionResponse,
    partitions: Vec<PartitionId>,
}

#[derive(Default)]
struct BrokerState {
    databases: Vec<String>,
    collections: BTreeMap<CollectionId, FakeCollection>,
}

/// A [`Broker`] answering from collections registered with [`FakeBroker::add_collection`].
pub struct FakeBroker {
    inner: Faked<BrokerState>,
}

impl Default for FakeBroker {
    fn default() -> Self {
        Self {
            inner: Faked::new(BrokerState::default()),
        }
    }
}

impl FakeBroker {
    /// A broker that knows only the `default` database.
    pub fn new() -> Self {
        let broker = Self::default();
        broker.add_database("default");
        broker
    }

    /// Registers a database (idempotent).
    pub fn add_database(&self, db_name: &str) {
        let mut state = self.inner.lock();
        if !state.databases.iter().any(|db| db == db_name) {
            state.databases.push(db_name.to_string());
        }
    }

    /// Registers (or replaces) a collection; its database is added if missing.
    pub fn add_collection(
        &self,
        db_name: &str,
        collection_id: CollectionId,
        schema: CollectionSchema,
        partitions: Vec<PartitionId>,
    ) {
        let response = DescribeCollectionResponse {
            status: Some(Status::default()),
            collection_name: schema.name.clone(),
            schema: Some(schema),
            collection_id,
            db_name: db_name.to_string(),
            num_partitions: partitions.len() as i64,
            ..Default::default()
        };
        self.add_collection_response(db_name, response, partitions);
    }

    /// Registers a collection with a full `DescribeCollection` answer (channels, properties, ...).
    pub fn add_collection_response(
        &self,
        db_name: &str,
        response: DescribeCollectionResponse,
        partitions: Vec<PartitionId>,
    ) {
        self.add_database(db_name);
        self.inner.lock().collections.insert(
            response.collection_id,
            FakeCollection {
                db_name: db_name.to_string(),
                response,
                partitions,
            },
        );
    }

    /// Forgets a collection, as if it was dropped.
    pub fn drop_collection(&self, collection_id: CollectionId) {
        self.inner.lock().collections.remove(&collection_id);
    }

    /// The next `count` calls (any method) fail with `status`.
    pub fn fail_next(&self, count: usize, status: Status) {
        self.inner.fail_next(count, status);
    }

    /// How many calls were made so far, failed ones included.
    pub fn call_count(&self) -> usize {
        self.inner.call_count()
    }
}

#[async_trait]
impl Broker for FakeBroker {
    async fn describe_collection_internal(
        &self,
        collection_id: CollectionId,
    ) -> MilvusResult<DescribeCollectionResponse> {
        let state = self.inner.enter()?;
        state
            .collections
            .get(&collection_id)
            .map(|collection| collection.response.clone())
            .ok_or_else(|| MilvusError::collection_not_found(collection_id))
    }

    async fn show_partitions_internal(
        &self,
        collection_id: CollectionId,
    ) -> MilvusResult<Vec<PartitionId>> {
        let state = self.inner.enter()?;
        state
            .collections
            .get(&collection_id)
            .map(|collection| collection.partitions.clone())
            .ok_or_else(|| MilvusError::collection_not_found(collection_id))
    }

    async fn show_collections(&self, db_name: &str) -> MilvusResult<Vec<CollectionId>> {
        let state = self.inner.enter()?;
        Ok(state
            .collections
            .iter()
            .filter(|(_, collection)| collection.db_name == db_name)
            .map(|(id, _)| *id)
            .collect())
    }

    async fn list_databases(&self) -> MilvusResult<Vec<String>> {
        Ok(self.inner.enter()?.databases.clone())
    }

    async fn has_collection(&self, collection_id: CollectionId) -> MilvusResult<bool> {
        match self.inner.enter() {
            Ok(state) => Ok(state.collections.contains_key(&collection_id)),
            // Same reading of RootCoord's answer as the real broker.
            Err(err) if err.code() == ErrorCode::COLLECTION_NOT_FOUND => Ok(false),
            Err(err) => Err(err),
        }
    }
}

struct AllocatorState {
    next_id: UniqueId,
    last_ts: Timestamp,
}

/// An [`Allocator`] handing out increasing IDs and timestamps that track the wall clock.
pub struct FakeAllocator {
    inner: Faked<AllocatorState>,
}

impl Default for FakeAllocator {
    fn default() -> Self {
        Self::new(1)
    }
}

impl FakeAllocator {
    /// IDs start at `first_id`.
    pub fn new(first_id: UniqueId) -> Self {
        Self {
            inner: Faked::new(AllocatorState {
                next_id: first_id,
                last_ts: 0,
            }),
        }
    }

    /// The next timestamp handed out is at least `ts` (to test time-based logic).
    pub fn advance_timestamp_to(&self, ts: Timestamp) {
        let mut state = self.inner.lock();
        state.last_ts = state.last_ts.max(ts.saturating_sub(1));
    }

    /// The next `count` calls (any method) fail with `status`.
    pub fn fail_next(&self, count: usize, status: Status) {
        self.inner.fail_next(count, status);
    }

    /// How many calls were made so far, failed ones included.
    pub fn call_count(&self) -> usize {
        self.inner.call_count()
    }
}

#[async_trait]
impl Allocator for FakeAllocator {
    async fn alloc_id(&self) -> MilvusResult<UniqueId> {
        Ok(self.alloc_n(1).await?.start)
    }

    async fn alloc_n(&self, count: u32) -> MilvusResult<Range<UniqueId>> {
        let mut state = self.inner.enter()?;
        let begin = state.next_id;
        state.next_id += i64::from(count);
        Ok(begin..state.next_id)
    }

    async fn alloc_timestamp(&self) -> MilvusResult<Timestamp> {
        let mut state = self.inner.enter()?;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        let ts = compose_ts(now_ms, 0).max(state.last_ts + 1);
        state.last_ts = ts;
        Ok(ts)
    }
}
