//! Test helpers (feature `testing`): a real S3 server (s3s + s3s-fs) inside the test process.
//!
//! It checks SigV4 signatures, so wrong credentials fail as they would on MinIO. Every server
//! listens on its own `127.0.0.1` port and stores buckets as directories of `dir`.

use std::path::Path;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnectionBuilder;
use s3s::auth::SimpleAuth;
use s3s::dto::*;
use s3s::service::S3ServiceBuilder;
use s3s::{S3, S3Request, S3Response, S3Result};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use crate::config::{StorageConfig, StorageType};

/// s3s-fs with the fixes real clients need. minio-go (Milvus's Go components) and minio-py send
/// `delimiter=` (empty) for a recursive listing; S3 treats an empty delimiter as none, s3s-fs
/// splits keys on it and answers one-character common prefixes and no objects.
struct MilvusFs(s3s_fs::FileSystem);

/// The `S3` impl: the two listings with the fix, every other listed operation forwarded to s3s-fs
/// unchanged (a macro, because `async_trait` must see the forwarding methods already expanded).
macro_rules! impl_s3_forwarding {
    ($($op:ident: $input:ident => $output:ident),* $(,)?) => {
        #[async_trait::async_trait]
        impl S3 for MilvusFs {
            async fn list_objects(
                &self,
                mut req: S3Request<ListObjectsInput>,
            ) -> S3Result<S3Response<ListObjectsOutput>> {
                if req.input.delimiter.as_deref() == Some("") {
                    req.input.delimiter = None;
                }
                self.0.list_objects(req).await
            }

            async fn list_objects_v2(
                &self,
                mut req: S3Request<ListObjectsV2Input>,
            ) -> S3Result<S3Response<ListObjectsV2Output>> {
                if req.input.delimiter.as_deref() == Some("") {
                    req.input.delimiter = None;
                }
                self.0.list_objects_v2(req).await
            }

            $(async fn $op(&self, req: S3Request<$input>) -> S3Result<S3Response<$output>> {
                self.0.$op(req).await
            })*
        }
    };
}

impl_s3_forwarding! {
    create_bucket: CreateBucketInput => CreateBucketOutput,
    copy_object: CopyObjectInput => CopyObjectOutput,
    delete_bucket: DeleteBucketInput => DeleteBucketOutput,
    delete_object: DeleteObjectInput => DeleteObjectOutput,
    delete_objects: DeleteObjectsInput => DeleteObjectsOutput,
    get_bucket_location: GetBucketLocationInput => GetBucketLocationOutput,
    get_object: GetObjectInput => GetObjectOutput,
    head_bucket: HeadBucketInput => HeadBucketOutput,
    head_object: HeadObjectInput => HeadObjectOutput,
    list_buckets: ListBucketsInput => ListBucketsOutput,
    put_object: PutObjectInput => PutObjectOutput,
    create_multipart_upload: CreateMultipartUploadInput => CreateMultipartUploadOutput,
    upload_part: UploadPartInput => UploadPartOutput,
    upload_part_copy: UploadPartCopyInput => UploadPartCopyOutput,
    list_parts: ListPartsInput => ListPartsOutput,
    complete_multipart_upload: CompleteMultipartUploadInput => CompleteMultipartUploadOutput,
    abort_multipart_upload: AbortMultipartUploadInput => AbortMultipartUploadOutput,
}

/// An S3-compatible server on `127.0.0.1:<port>`; stopped (connections included) on drop.
#[derive(Debug)]
pub struct S3TestServer {
    /// `http://127.0.0.1:<port>`
    pub endpoint: String,
    /// `127.0.0.1` (what goes in `minio.address`).
    pub address: String,
    /// The port it listens on (what goes in `minio.port`).
    pub port: u16,
    /// The only access key it accepts.
    pub access_key: String,
    /// The secret key of `access_key`.
    pub secret_key: String,
    accept_loop: JoinHandle<()>,
}

impl S3TestServer {
    /// Starts a server on a free loopback port, storing its buckets under `dir` (which must exist).
    pub async fn start(dir: &Path) -> std::io::Result<Self> {
        Self::start_on(dir, 0).await
    }

    /// Like [`Self::start`], on a given loopback port (0 picks a free one).
    pub async fn start_on(dir: &Path, port: u16) -> std::io::Result<Self> {
        let access_key = "milvus-test-access-key".to_string();
        let secret_key = "milvus-test-secret-key".to_string();
        let file_system = s3s_fs::FileSystem::new(dir)
            .map_err(|e| std::io::Error::other(format!("s3s-fs on {dir:?}: {e:?}")))?;
        let mut builder = S3ServiceBuilder::new(MilvusFs(file_system));
        builder.set_auth(SimpleAuth::from_single(
            access_key.clone(),
            secret_key.clone(),
        ));
        let service = builder.build();

        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let port = listener.local_addr()?.port();
        let accept_loop = tokio::spawn(async move {
            // Owning the connections here means aborting this task closes them all.
            let mut connections = JoinSet::new();
            let http = ConnectionBuilder::new(TokioExecutor::new());
            loop {
                let socket = match listener.accept().await {
                    Ok((socket, _)) => socket,
                    // e.g. out of file descriptors: back off instead of spinning.
                    Err(_) => {
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let connection = http
                    .serve_connection(TokioIo::new(socket), service.clone())
                    .into_owned();
                connections.spawn(async move {
                    let _ = connection.await;
                });
                // Reap finished connections so the set does not grow without bound.
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            address: "127.0.0.1".to_string(),
            port,
            access_key,
            secret_key,
            accept_loop,
        })
    }

    /// Remote-storage settings pointing at this server with its credentials.
    pub fn storage_config(&self, bucket: &str, root_path: &str) -> StorageConfig {
        StorageConfig {
            storage_type: StorageType::Minio,
            address: self.address.clone(),
            port: self.port,
            bucket_name: bucket.to_string(),
            root_path: root_path.to_string(),
            access_key_id: self.access_key.clone(),
            secret_access_key: self.secret_key.clone(),
            ..StorageConfig::default()
        }
    }
}

impl Drop for S3TestServer {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}
