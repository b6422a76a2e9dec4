//! S3-compatible backend over `object_store`'s `AmazonS3`. Paths are object keys in the bucket.

use std::borrow::Cow;
use std::time::SystemTime;

use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::list::{PaginatedListOptions, PaginatedListStore};
use object_store::path::Path;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutPayload};

use crate::bucket;
use crate::chunk_manager::{ObjectInfo, combine_failures};
use crate::config::StorageConfig;
use crate::error::{StorageError, StorageResult};

/// Region used for signing when `minio.region` is empty (what MinIO and AWS expect by default).
const DEFAULT_REGION: &str = "us-east-1";

/// How the S3 endpoint is reached, derived from [`StorageConfig`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RemoteSettings {
    /// `http(s)://host:port`
    pub(crate) endpoint: String,
    /// URL of the bucket itself: `{endpoint}/{bucket}` or `http(s)://{bucket}.host:port`.
    pub(crate) bucket_url: String,
    pub(crate) bucket: String,
    pub(crate) region: String,
    pub(crate) virtual_host: bool,
    pub(crate) allow_http: bool,
}

impl RemoteSettings {
    pub(crate) fn from_config(config: &StorageConfig) -> StorageResult<Self> {
        let address = config.address_with_port();
        if address.is_empty() {
            return Err(StorageError::Config(
                "minio.address is empty (set the S3/MinIO endpoint)".to_string(),
            ));
        }
        if address.contains("://") || address.contains('/') {
            return Err(StorageError::Config(format!(
                "minio.address {address:?} must be host[:port], without scheme or path"
            )));
        }
        if config.bucket_name.is_empty() {
            return Err(StorageError::Config(
                "minio.bucketName is empty".to_string(),
            ));
        }
        let provider = config.cloud_provider.as_str();
        if provider == "azure" {
            return Err(StorageError::Config(
                "minio.cloudProvider azure is not supported by this DataCoord (S3 API only)"
                    .to_string(),
            ));
        }
        // 2.3.5 also recognises these providers from the address alone.
        let is_aliyun = provider == "aliyun" || address.contains("aliyuncs.com");
        let is_gcp = provider == "gcp" || address.contains("storage.googleapis.com");
        if config.use_iam && (is_aliyun || is_gcp) {
            return Err(StorageError::Config(format!(
                "minio.useIAM on {} is not supported; use access keys",
                if is_gcp { "gcp" } else { "aliyun" }
            )));
        }
        // Aliyun OSS only answers virtual-host requests, so 2.3.5 forces that style for it.
        let virtual_host = config.use_virtual_host || is_aliyun;
        let scheme = if config.use_ssl { "https" } else { "http" };
        let endpoint = format!("{scheme}://{address}");
        let bucket = config.bucket_name.clone();
        let bucket_url = if virtual_host {
            format!("{scheme}://{bucket}.{address}")
        } else {
            format!("{endpoint}/{bucket}")
        };
        let region = if config.region.is_empty() {
            DEFAULT_REGION.to_string()
        } else {
            config.region.clone()
        };
        Ok(Self {
            endpoint,
            bucket_url,
            bucket,
            region,
            virtual_host,
            allow_http: !config.use_ssl,
        })
    }
}

#[derive(Debug)]
pub(crate) struct RemoteBackend {
    store: AmazonS3,
}

impl RemoteBackend {
    pub(crate) async fn connect(config: &StorageConfig) -> StorageResult<Self> {
        let settings = RemoteSettings::from_config(config)?;
        let client_options = ClientOptions::new()
            .with_allow_http(settings.allow_http)
            .with_timeout(config.request_timeout);
        // IAM mode reads the usual AWS environment (web identity, container credentials) and
        // falls back to the instance-metadata endpoint; keys from the config are not used.
        let mut builder = if config.use_iam {
            let mut from_env = AmazonS3Builder::from_env();
            if !config.iam_endpoint.is_empty() {
                from_env = from_env.with_metadata_endpoint(&config.iam_endpoint);
            }
            from_env
        } else {
            AmazonS3Builder::new()
                .with_access_key_id(&config.access_key_id)
                .with_secret_access_key(&config.secret_access_key)
        };
        // With virtual-host style object_store takes the endpoint as the bucket's own URL.
        let store_endpoint = if settings.virtual_host {
            &settings.bucket_url
        } else {
            &settings.endpoint
        };
        builder = builder
            .with_endpoint(store_endpoint)
            .with_bucket_name(&settings.bucket)
            .with_region(&settings.region)
            .with_virtual_hosted_style_request(settings.virtual_host)
            .with_allow_http(settings.allow_http)
            .with_client_options(client_options.clone());
        let store = builder
            .build()
            .map_err(|e| StorageError::Config(format!("cannot build the S3 client: {e}")))?;
        bucket::ensure_bucket(&store, &settings, &client_options).await?;
        Ok(Self { store })
    }

    pub(crate) async fn read(&self, key: &str) -> StorageResult<Bytes> {
        let location = object_path(key)?;
        let result = self
            .store
            .get(&location)
            .await
            .map_err(|e| StorageError::from_object_store("read", key, e))?;
        result
            .bytes()
            .await
            .map_err(|e| StorageError::from_object_store("read", key, e))
    }

    pub(crate) async fn write(&self, key: &str, data: Bytes) -> StorageResult<()> {
        let location = object_path(key)?;
        self.store
            .put(&location, PutPayload::from(data))
            .await
            .map_err(|e| StorageError::from_object_store("write", key, e))?;
        Ok(())
    }

    pub(crate) async fn exists(&self, key: &str) -> StorageResult<bool> {
        match self.head_size(key).await {
            Ok(_) => Ok(true),
            Err(StorageError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub(crate) async fn size(&self, key: &str) -> StorageResult<u64> {
        self.head_size(key).await
    }

    async fn head_size(&self, key: &str) -> StorageResult<u64> {
        let location = object_path(key)?;
        let meta = self
            .store
            .head(&location)
            .await
            .map_err(|e| StorageError::from_object_store("stat", key, e))?;
        Ok(meta.size)
    }

    pub(crate) async fn remove(&self, key: &str) -> StorageResult<()> {
        let location = object_path(key)?;
        match self.store.delete(&location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(StorageError::from_object_store("remove", key, e)),
        }
    }

    pub(crate) async fn multi_remove(&self, keys: &[String]) -> StorageResult<()> {
        let mut failures = Vec::new();
        let mut locations = Vec::with_capacity(keys.len());
        for key in keys {
            match object_path(key) {
                Ok(location) => locations.push(Ok(location)),
                Err(e) => failures.push(e),
            }
        }
        let mut results = self.store.delete_stream(stream::iter(locations).boxed());
        while let Some(result) = results.next().await {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => failures.push(StorageError::from_object_store("remove", "", e)),
            }
        }
        combine_failures(failures, keys.len())
    }

    /// Lists with the raw string prefix (S3 `prefix`), page by page; one level with `/` as
    /// delimiter unless recursive.
    pub(crate) fn list_with_prefix(
        &self,
        prefix: &str,
        recursive: bool,
    ) -> BoxStream<'static, StorageResult<ObjectInfo>> {
        let state = ListState {
            store: self.store.clone(),
            prefix: prefix.to_string(),
            recursive,
            page_token: None,
            done: false,
        };
        stream::try_unfold(state, ListState::next_page)
            .map(|page| match page {
                Ok(entries) => stream::iter(entries.into_iter().map(Ok)).left_stream(),
                Err(e) => stream::once(async move { Err(e) }).right_stream(),
            })
            .flatten()
            .boxed()
    }
}

struct ListState {
    store: AmazonS3,
    prefix: String,
    recursive: bool,
    page_token: Option<String>,
    done: bool,
}

impl ListState {
    async fn next_page(mut self) -> StorageResult<Option<(Vec<ObjectInfo>, Self)>> {
        if self.done {
            return Ok(None);
        }
        let options = PaginatedListOptions {
            delimiter: (!self.recursive).then_some(Cow::Borrowed("/")),
            page_token: self.page_token.take(),
            ..PaginatedListOptions::default()
        };
        let prefix = (!self.prefix.is_empty()).then_some(self.prefix.as_str());
        let page = self
            .store
            .list_paginated(prefix, options)
            .await
            .map_err(|e| StorageError::from_object_store("list", &self.prefix, e))?;
        self.page_token = page.page_token;
        self.done = self.page_token.is_none();
        let mut entries: Vec<ObjectInfo> = page
            .result
            .objects
            .into_iter()
            .map(|meta| ObjectInfo {
                path: meta.location.to_string(),
                size: meta.size,
                last_modified: Some(SystemTime::from(meta.last_modified)),
                is_dir: false,
            })
            .collect();
        // object_store strips the delimiter from common prefixes; S3 (and Go) report them with it.
        entries.extend(page.result.common_prefixes.into_iter().map(|p| ObjectInfo {
            path: format!("{p}/"),
            size: 0,
            last_modified: None,
            is_dir: true,
        }));
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(Some((entries, self)))
    }
}

/// The object_store path of a key, refusing keys it would silently rewrite (leading `/`,
/// empty segments, `.`/`..`).
fn object_path(key: &str) -> StorageResult<Path> {
    let invalid = |reason: String| StorageError::InvalidPath {
        path: key.to_string(),
        reason,
    };
    if key.is_empty() || key.starts_with('/') || key.ends_with('/') {
        return Err(invalid(
            "an object key must be non-empty without leading or trailing '/'".to_string(),
        ));
    }
    Path::parse(key).map_err(|e| invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_style_endpoint_appends_the_port_and_the_bucket() {
        let config = StorageConfig {
            address: "minio".into(),
            port: 9000,
            bucket_name: "a-bucket".into(),
            ..StorageConfig::default()
        };
        let settings = RemoteSettings::from_config(&config).unwrap();
        assert_eq!(settings.endpoint, "http://minio:9000");
        assert_eq!(settings.bucket_url, "http://minio:9000/a-bucket");
        assert_eq!(settings.region, "us-east-1");
        assert!(settings.allow_http && !settings.virtual_host);
    }

    #[test]
    fn virtual_host_puts_the_bucket_in_the_host() {
        let config = StorageConfig {
            address: "s3.example.com:443".into(),
            use_ssl: true,
            use_virtual_host: true,
            region: "eu-west-1".into(),
            bucket_name: "b".into(),
            ..StorageConfig::default()
        };
        let settings = RemoteSettings::from_config(&config).unwrap();
        assert_eq!(settings.endpoint, "https://s3.example.com:443");
        assert_eq!(settings.bucket_url, "https://b.s3.example.com:443");
        assert_eq!(settings.region, "eu-west-1");
        assert!(!settings.allow_http);
    }

    #[test]
    fn aliyun_forces_virtual_host() {
        let config = StorageConfig {
            cloud_provider: "aliyun".into(),
            ..StorageConfig::default()
        };
        assert!(RemoteSettings::from_config(&config).unwrap().virtual_host);
    }

    #[test]
    fn iam_on_providers_without_an_s3_credential_chain_is_refused() {
        let config = StorageConfig {
            address: "oss-cn-hangzhou.aliyuncs.com".into(),
            use_iam: true,
            ..StorageConfig::default()
        };
        assert!(matches!(
            RemoteSettings::from_config(&config),
            Err(StorageError::Config(_))
        ));
    }

    #[test]
    fn unusable_settings_are_config_errors() {
        let cases = [
            StorageConfig {
                address: String::new(),
                ..StorageConfig::default()
            },
            StorageConfig {
                address: "http://minio:9000".into(),
                ..StorageConfig::default()
            },
            StorageConfig {
                bucket_name: String::new(),
                ..StorageConfig::default()
            },
            StorageConfig {
                cloud_provider: "azure".into(),
                ..StorageConfig::default()
            },
        ];
        for config in cases {
            let err = RemoteSettings::from_config(&config).unwrap_err();
            assert!(matches!(err, StorageError::Config(_)), "{config:?}: {err}");
        }
    }

    #[test]
    fn object_keys_are_kept_verbatim_or_refused() {
        assert_eq!(
            object_path("files/insert_log/1/2/3/4/5").unwrap().as_ref(),
            "files/insert_log/1/2/3/4/5"
        );
        for bad in ["", "/files/x", "files/x/", "files//x", "files/../x"] {
            assert!(object_path(bad).is_err(), "{bad:?}");
        }
    }
}
