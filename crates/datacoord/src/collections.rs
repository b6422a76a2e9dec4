//! The collection cache: what DataCoord knows of a collection comes from RootCoord on first use
//! (or from BroadcastAlteredCollection) and is kept for the process lifetime, as in 2.3.5.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use milvus_proto::common::{KeyDataPair, KeyValuePair};
use milvus_proto::schema::CollectionSchema;
use milvus_rootcoord_client::Broker;
use milvus_types::{CollectionId, MilvusResult};
use tracing::debug;

/// One collection as DataCoord uses it.
#[derive(Clone, Debug, Default)]
pub(crate) struct CollectionInfo {
    pub(crate) id: CollectionId,
    pub(crate) schema: Option<CollectionSchema>,
    pub(crate) start_positions: Vec<KeyDataPair>,
    pub(crate) properties: Vec<KeyValuePair>,
    /// The collection's creation TSO; 0 when it came from BroadcastAlteredCollection.
    pub(crate) created_at: u64,
}

/// Cached collections, filled lazily from RootCoord.
pub(crate) struct Collections {
    broker: Arc<dyn Broker>,
    cache: RwLock<HashMap<CollectionId, Arc<CollectionInfo>>>,
}

impl Collections {
    pub(crate) fn new(broker: Arc<dyn Broker>) -> Self {
        Self {
            broker,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// The cached entry only (for synchronous paths such as the channel manager's callbacks).
    pub(crate) fn cached(&self, id: CollectionId) -> Option<Arc<CollectionInfo>> {
        self.cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
    }

    /// The cached entry, or RootCoord's DescribeCollectionInternal.
    pub(crate) async fn get(&self, id: CollectionId) -> MilvusResult<Arc<CollectionInfo>> {
        if let Some(info) = self.cached(id) {
            return Ok(info);
        }
        let described = self.broker.describe_collection_internal(id).await?;
        let info = Arc::new(CollectionInfo {
            id,
            schema: described.schema,
            start_positions: described.start_positions,
            properties: described.properties,
            created_at: described.created_timestamp,
        });
        debug!(collection_id = id, "collection cached");
        self.cache
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, info.clone());
        Ok(info)
    }

    /// BroadcastAlteredCollection: a hit only takes the new properties; a miss caches what was sent.
    pub(crate) fn apply_altered(&self, altered: CollectionInfo) {
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        match cache.get(&altered.id) {
            Some(existing) => {
                let mut updated = (**existing).clone();
                updated.properties = altered.properties;
                cache.insert(altered.id, Arc::new(updated));
            }
            None => {
                cache.insert(altered.id, Arc::new(altered));
            }
        }
    }
}
