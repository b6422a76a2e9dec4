//! Checking the bucket at start-up and creating it when missing (DataCoord does this in 2.3.5).
//!
//! object_store has no bucket API (and folds list errors into untyped ones), so the check
//! (`ListObjectsV2` with one key) and the creation (`PUT /{bucket}`) are built here, signed with
//! object_store's own SigV4 signer and credentials, and sent through its own HTTP client.

use http::{Method, Request, StatusCode};
use milvus_types::Backoff;
use object_store::ClientOptions;
use object_store::aws::{AmazonS3, AwsAuthorizer};
use object_store::client::{HttpClient, HttpConnector, HttpRequestBody, ReqwestConnector};
use tracing::{info, warn};

use crate::error::{StorageError, StorageResult};
use crate::remote::RemoteSettings;

/// How often the bucket check is tried before start-up fails (2.3.5 tries 20 times too, with
/// `retry.Do`'s backoff).
const CHECK_ATTEMPTS: u32 = 20;

/// Why one bucket check failed.
enum CheckFailure {
    /// Worth another try (transport error, 5xx): the reason.
    Retriable(String),
    /// Retrying will not help (denied, unexpected answer).
    Final(StorageError),
}

/// Returns once the bucket exists and our credentials can list it; creates it when missing.
pub(crate) async fn ensure_bucket(
    store: &AmazonS3,
    settings: &RemoteSettings,
    client_options: &ClientOptions,
) -> StorageResult<()> {
    let client = ReqwestConnector::default()
        .connect(client_options)
        .map_err(|e| StorageError::Config(format!("cannot build the HTTP client: {e}")))?;
    let s3 = SignedClient {
        store,
        settings,
        client,
    };
    if s3.bucket_exists().await? {
        return Ok(());
    }
    info!(bucket = %settings.bucket, endpoint = %settings.endpoint, "bucket does not exist, creating it");
    match s3.create_bucket().await {
        Ok(()) => {
            info!(bucket = %settings.bucket, "bucket created");
            Ok(())
        }
        // Another component may have created it between our check and our PUT.
        Err(create_error) => match s3.bucket_exists().await {
            Ok(true) => Ok(()),
            _ => Err(create_error),
        },
    }
}

/// Bucket-level S3 calls, signed with the store's credentials.
struct SignedClient<'a> {
    store: &'a AmazonS3,
    settings: &'a RemoteSettings,
    client: HttpClient,
}

/// A response: status and body text.
struct Answer {
    status: StatusCode,
    body: String,
}

impl SignedClient<'_> {
    /// A one-key ListObjectsV2: 200 = exists, 404 = missing, 401/403 = bad credentials (the
    /// body names the reason, e.g. `SignatureDoesNotMatch`). Transport errors and 5xx answers
    /// are retried with backoff, which covers a MinIO that is still starting.
    async fn bucket_exists(&self) -> StorageResult<bool> {
        let url = format!("{}/?list-type=2&max-keys=1", self.bucket_url());
        let checked = milvus_types::retry(
            Backoff::RETRY_DO,
            || self.check_bucket(&url),
            |failure, attempt| {
                let CheckFailure::Retriable(reason) = failure else {
                    return false;
                };
                if attempt >= CHECK_ATTEMPTS {
                    return false;
                }
                warn!(bucket = %self.settings.bucket, attempt, error = %reason, "bucket check failed, retrying");
                true
            },
        )
        .await;
        checked.map_err(|failure| match failure {
            CheckFailure::Final(err) => err,
            CheckFailure::Retriable(reason) => self.failed(format!(
                "bucket check failed {CHECK_ATTEMPTS} times, last: {reason}"
            )),
        })
    }

    /// One bucket check; transport errors and 5xx answers are worth another try.
    async fn check_bucket(&self, url: &str) -> Result<bool, CheckFailure> {
        match self.send(Method::GET, url, String::new()).await {
            Ok(answer) if answer.status.is_success() => Ok(true),
            Ok(answer) if answer.status == StatusCode::NOT_FOUND => Ok(false),
            Ok(answer) if is_denied(answer.status) => {
                Err(CheckFailure::Final(self.denied("check bucket", &answer)))
            }
            Ok(answer) if answer.status.is_server_error() => Err(CheckFailure::Retriable(format!(
                "{}: {}",
                answer.status, answer.body
            ))),
            Ok(answer) => Err(CheckFailure::Final(self.failed(format!(
                "checking the bucket returned {}: {}",
                answer.status, answer.body
            )))),
            Err(reason) => Err(CheckFailure::Retriable(reason)),
        }
    }

    async fn create_bucket(&self) -> StorageResult<()> {
        // S3 wants the region in the body for every region but its default one.
        let body = if self.settings.region == "us-east-1" {
            String::new()
        } else {
            format!(
                "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
                 <LocationConstraint>{}</LocationConstraint></CreateBucketConfiguration>",
                self.settings.region
            )
        };
        let url = format!("{}/", self.bucket_url());
        let answer = self
            .send(Method::PUT, &url, body)
            .await
            .map_err(|e| self.create_failed(e))?;
        if answer.status.is_success() {
            return Ok(());
        }
        if is_denied(answer.status) {
            return Err(self.denied("create bucket", &answer));
        }
        Err(self.create_failed(format!("{}: {}", answer.status, answer.body)))
    }

    fn bucket_url(&self) -> &str {
        self.settings.bucket_url.trim_end_matches('/')
    }

    /// Signs (SigV4, payload hashed) and sends one request; `Err` is a transport failure.
    async fn send(&self, method: Method, url: &str, body: String) -> Result<Answer, String> {
        let mut request = Request::builder()
            .method(method)
            .uri(url)
            .body(HttpRequestBody::from(body))
            .map_err(|e| format!("cannot build the request: {e}"))?;
        let credential = self
            .store
            .credentials()
            .get_credential()
            .await
            .map_err(|e| format!("cannot get credentials: {e}"))?;
        AwsAuthorizer::new(&credential, "s3", &self.settings.region)
            .try_authorize(&mut request, None)
            .map_err(|e| format!("cannot sign the request: {e}"))?;
        let response = self
            .client
            .execute(request)
            .await
            .map_err(|e| format!("request to {url} failed: {e}"))?;
        let status = response.status();
        let body = response
            .into_body()
            .bytes()
            .await
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        Ok(Answer { status, body })
    }

    fn denied(&self, op: &'static str, answer: &Answer) -> StorageError {
        StorageError::AccessDenied {
            op,
            path: self.settings.bucket.clone(),
            detail: format!("{}: {}", answer.status, answer.body),
        }
    }

    fn failed(&self, detail: String) -> StorageError {
        StorageError::ObjectStore {
            op: "check bucket",
            path: self.settings.bucket.clone(),
            source: object_store::Error::Generic {
                store: "S3",
                source: detail.into(),
            },
        }
    }

    fn create_failed(&self, detail: String) -> StorageError {
        StorageError::CreateBucket {
            bucket: self.settings.bucket.clone(),
            detail,
        }
    }
}

fn is_denied(status: StatusCode) -> bool {
    matches!(status, StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED)
}
