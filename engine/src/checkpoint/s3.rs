//! Opening an S3-compatible store for checkpoints: `s3://bucket/prefix` with
//! Flink's `s3.*` options, else the standard `AWS_*` environment variables.
//!
//! Requests to a store that is down fail after a bounded retry (a few seconds),
//! never a hang: a checkpoint that cannot be written fails the job, which then
//! restarts per its restart strategy.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

use crate::error::{EngineError, Result};

/// The store's address, e.g. `http://127.0.0.1:9000` (Flink's key).
pub const ENDPOINT: &str = "s3.endpoint";
/// Access key (Flink's key); else `AWS_ACCESS_KEY_ID`.
pub const ACCESS_KEY: &str = "s3.access-key";
/// Secret key (Flink's key); else `AWS_SECRET_ACCESS_KEY`.
pub const SECRET_KEY: &str = "s3.secret-key";
/// `true` addresses buckets by path (`endpoint/bucket/key`), which most
/// self-hosted stores need; `false` by virtual host (Flink's key).
pub const PATH_STYLE: &str = "s3.path.style.access";
/// The bucket's region (default `us-east-1`); else `AWS_REGION`.
pub const REGION: &str = "s3.region";

/// Options under `s3.` this module reads; any other `s3.` key is refused, so a
/// misspelt option is not silently ignored.
const KNOWN: [&str; 5] = [ENDPOINT, ACCESS_KEY, SECRET_KEY, PATH_STYLE, REGION];

/// Opens `url` (`s3://bucket` or `s3://bucket/prefix`) with the `s3.*` entries
/// of `options` (other keys are ignored), rooted at the prefix.
pub fn open_s3(url: &str, options: &BTreeMap<String, String>) -> Result<Arc<dyn ObjectStore>> {
    let fail = |message: String| EngineError::CheckpointStorage {
        location: url.to_string(),
        message,
    };
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| fail("not an s3:// URL".into()))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(fail("no bucket given (s3://bucket/prefix)".into()));
    }
    if let Some(unknown) = options
        .keys()
        .find(|k| k.starts_with("s3.") && !KNOWN.contains(&k.as_str()))
    {
        return Err(fail(format!(
            "unknown option '{unknown}' (known: {})",
            KNOWN.join(", ")
        )));
    }
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_retry(RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(2),
                base: 2.0,
            },
            max_retries: 3,
            retry_timeout: Duration::from_secs(15),
        });
    let mut client = ClientOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs(60));
    if let Some(endpoint) = options.get(ENDPOINT) {
        client = client.with_allow_http(endpoint.starts_with("http://"));
        builder = builder.with_endpoint(endpoint);
    }
    builder = builder.with_client_options(client);
    if let Some(key) = options.get(ACCESS_KEY) {
        builder = builder.with_access_key_id(key);
    }
    if let Some(secret) = options.get(SECRET_KEY) {
        builder = builder.with_secret_access_key(secret);
    }
    if let Some(region) = options.get(REGION) {
        builder = builder.with_region(region);
    }
    if let Some(text) = options.get(PATH_STYLE) {
        let path_style: bool = text
            .parse()
            .map_err(|_| fail(format!("'{PATH_STYLE}' = '{text}': expected true or false")))?;
        builder = builder.with_virtual_hosted_style_request(!path_style);
    }
    let store = builder.build().map_err(|e| fail(e.to_string()))?;
    let prefix = prefix.trim_matches('/');
    Ok(if prefix.is_empty() {
        Arc::new(store)
    } else {
        Arc::new(PrefixStore::new(store, prefix))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn bad_urls_and_options_are_refused_with_a_reason() {
        let no_bucket = open_s3("s3://", &options(&[])).unwrap_err().to_string();
        assert!(no_bucket.contains("no bucket"), "{no_bucket}");
        let typo = open_s3("s3://b/p", &options(&[("s3.endpoit", "http://x")]))
            .unwrap_err()
            .to_string();
        assert!(typo.contains("unknown option 's3.endpoit'"), "{typo}");
        let style = open_s3("s3://b", &options(&[(PATH_STYLE, "yes")]))
            .unwrap_err()
            .to_string();
        assert!(style.contains("expected true or false"), "{style}");
    }

    #[tokio::test]
    async fn a_store_that_is_down_fails_after_a_bounded_retry() {
        use futures::TryStreamExt;
        // Port 1 on loopback: nothing listens, connections are refused.
        let store = open_s3(
            "s3://bucket/prefix",
            &options(&[
                (ENDPOINT, "http://127.0.0.1:1"),
                (ACCESS_KEY, "k"),
                (SECRET_KEY, "s"),
                (PATH_STYLE, "true"),
            ]),
        )
        .unwrap();
        let listed = tokio::time::timeout(
            Duration::from_secs(60),
            store.list(None).try_collect::<Vec<_>>(),
        )
        .await;
        let err = listed.expect("no hang").unwrap_err().to_string();
        assert!(
            err.contains("127.0.0.1:1") || err.contains("onnect"),
            "{err}"
        );
    }
}
