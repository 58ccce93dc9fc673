//! Where checkpoints are stored: the [`StateBackend`] trait and its
//! implementation over the `object_store` crate (a local directory, memory, or
//! an S3-compatible store).
//!
//! Layout under the backend's root, one directory per checkpoint:
//!
//! ```text
//! chk-00000000000000000007/<object>          state objects (Arrow IPC)
//! chk-00000000000000000007/_manifest.json    written last: the checkpoint completed
//! ```
//!
//! Ids are zero-padded so that names sort like numbers. A checkpoint whose
//! manifest is missing was interrupted and is never restored; retention deletes
//! it once a later checkpoint completes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::checkpoint::manifest::CheckpointManifest;
use crate::checkpoint::s3::open_s3;
use crate::error::{EngineError, Result};

/// The name of the manifest object in a checkpoint's directory.
pub const MANIFEST: &str = "_manifest.json";

/// Stores and finds checkpoints.
#[async_trait]
pub trait StateBackend: Send + Sync + std::fmt::Debug {
    /// Where checkpoints go, as the user gave it (for messages and the CLI).
    fn location(&self) -> &str;

    /// Writes one state object of checkpoint `checkpoint_id`.
    async fn write_state(&self, checkpoint_id: u64, object: &str, data: Bytes) -> Result<()>;

    /// Reads one state object of checkpoint `checkpoint_id`.
    async fn read_state(&self, checkpoint_id: u64, object: &str) -> Result<Bytes>;

    /// Marks a checkpoint complete by writing its manifest (after all of its
    /// state objects).
    async fn complete(&self, manifest: &CheckpointManifest) -> Result<()>;

    /// Ids of the completed checkpoints, oldest first.
    async fn completed(&self) -> Result<Vec<u64>>;

    /// The manifest of a completed checkpoint.
    async fn manifest(&self, checkpoint_id: u64) -> Result<CheckpointManifest>;

    /// Deletes every completed checkpoint but the newest `keep` (at least one is
    /// always kept), and every interrupted one older than the newest completed.
    async fn retain(&self, keep: usize) -> Result<()>;

    /// The manifest of the newest completed checkpoint, if any.
    async fn latest_completed(&self) -> Result<Option<CheckpointManifest>> {
        match self.completed().await?.last() {
            Some(&id) => Ok(Some(self.manifest(id).await?)),
            None => Ok(None),
        }
    }
}

/// A [`StateBackend`] over any `object_store` store.
#[derive(Debug)]
pub struct ObjectStoreBackend {
    store: Arc<dyn ObjectStore>,
    location: String,
}

impl ObjectStoreBackend {
    /// Opens the store a URL names: `file:///abs/dir` (or a plain directory
    /// path), created if missing, `memory://` (this process only, for tests),
    /// or `s3://bucket/prefix` configured by the `AWS_*` environment variables.
    pub fn open(url: &str) -> Result<Self> {
        Self::open_with_options(url, &BTreeMap::new())
    }

    /// Like [`ObjectStoreBackend::open`], with session settings: an `s3://`
    /// store reads Flink's `s3.*` options from them (see [`super::s3`]).
    pub fn open_with_options(url: &str, options: &BTreeMap<String, String>) -> Result<Self> {
        let fail = |message: String| EngineError::CheckpointStorage {
            location: url.to_string(),
            message,
        };
        if url == "memory://" || url == "memory:" {
            return Ok(Self::in_memory());
        }
        let dir = match url.split_once("://") {
            Some(("file", path)) => path,
            Some(("s3", _)) => {
                return Ok(ObjectStoreBackend {
                    store: open_s3(url, options)?,
                    location: url.to_string(),
                });
            }
            Some((scheme, _)) => {
                return Err(fail(format!(
                    "unsupported scheme '{scheme}://' (supported: file://, s3://, memory://)"
                )));
            }
            None => url,
        };
        if dir.is_empty() {
            return Err(fail("no directory given".into()));
        }
        std::fs::create_dir_all(dir).map_err(|e| fail(format!("cannot create it: {e}")))?;
        let store = LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| fail(e.to_string()))?
            .with_automatic_cleanup(true);
        Ok(ObjectStoreBackend {
            store: Arc::new(store),
            location: url.to_string(),
        })
    }

    /// A backend in this process's memory.
    pub fn in_memory() -> Self {
        ObjectStoreBackend {
            store: Arc::new(InMemory::new()),
            location: "memory://".into(),
        }
    }

    fn error(&self, path: &Path, e: impl std::fmt::Display) -> EngineError {
        EngineError::CheckpointStorage {
            location: format!("{}/{path}", self.location.trim_end_matches('/')),
            message: e.to_string(),
        }
    }

    fn object_path(&self, checkpoint_id: u64, object: &str) -> Result<Path> {
        let valid = !object.is_empty()
            && object
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !valid {
            return Err(EngineError::CheckpointStorage {
                location: self.location.clone(),
                message: format!(
                    "invalid state object name '{object}' (letters, digits, '.', '_', '-')"
                ),
            });
        }
        Ok(checkpoint_dir(checkpoint_id).join(object))
    }

    /// Checkpoint ids present in the store, each with whether its manifest is there.
    async fn checkpoints(&self) -> Result<(BTreeSet<u64>, BTreeSet<u64>)> {
        let objects: Vec<_> = self
            .store
            .list(None)
            .try_collect()
            .await
            .map_err(|e| self.error(&Path::default(), e))?;
        let (mut all, mut complete) = (BTreeSet::new(), BTreeSet::new());
        for meta in objects {
            let mut parts = meta.location.parts();
            let Some(id) = parts
                .next()
                .and_then(|dir| parse_checkpoint_dir(dir.as_ref()))
            else {
                continue;
            };
            all.insert(id);
            if parts.next().is_some_and(|name| name.as_ref() == MANIFEST) {
                complete.insert(id);
            }
        }
        Ok((all, complete))
    }

    async fn delete_checkpoint(&self, checkpoint_id: u64) -> Result<()> {
        let dir = checkpoint_dir(checkpoint_id);
        // The manifest goes first: a deletion cut short leaves an interrupted
        // checkpoint, never a "completed" one with missing state.
        let manifest = dir.clone().join(MANIFEST);
        match self.store.delete(&manifest).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(self.error(&manifest, e)),
        }
        let objects: Vec<_> = self
            .store
            .list(Some(&dir))
            .try_collect()
            .await
            .map_err(|e| self.error(&dir, e))?;
        for meta in objects {
            match self.store.delete(&meta.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.error(&meta.location, e)),
            }
        }
        Ok(())
    }
}

fn checkpoint_dir(checkpoint_id: u64) -> Path {
    Path::from(format!("chk-{checkpoint_id:020}"))
}

fn parse_checkpoint_dir(name: &str) -> Option<u64> {
    name.strip_prefix("chk-")?.parse().ok()
}

#[async_trait]
impl StateBackend for ObjectStoreBackend {
    fn location(&self) -> &str {
        &self.location
    }

    async fn write_state(&self, checkpoint_id: u64, object: &str, data: Bytes) -> Result<()> {
        let path = self.object_path(checkpoint_id, object)?;
        self.store
            .put(&path, PutPayload::from_bytes(data))
            .await
            .map_err(|e| self.error(&path, e))?;
        Ok(())
    }

    async fn read_state(&self, checkpoint_id: u64, object: &str) -> Result<Bytes> {
        let path = self.object_path(checkpoint_id, object)?;
        let result = self
            .store
            .get(&path)
            .await
            .map_err(|e| self.error(&path, e))?;
        result.bytes().await.map_err(|e| self.error(&path, e))
    }

    async fn complete(&self, manifest: &CheckpointManifest) -> Result<()> {
        let path = checkpoint_dir(manifest.checkpoint_id).join(MANIFEST);
        let json = serde_json::to_vec_pretty(manifest).map_err(|e| self.error(&path, e))?;
        self.store
            .put(&path, PutPayload::from(json))
            .await
            .map_err(|e| self.error(&path, e))?;
        Ok(())
    }

    async fn completed(&self) -> Result<Vec<u64>> {
        let (_, complete) = self.checkpoints().await?;
        Ok(complete.into_iter().collect())
    }

    async fn manifest(&self, checkpoint_id: u64) -> Result<CheckpointManifest> {
        let path = checkpoint_dir(checkpoint_id).join(MANIFEST);
        let data = self
            .store
            .get(&path)
            .await
            .map_err(|e| match e {
                object_store::Error::NotFound { .. } => {
                    self.error(&path, "no such completed checkpoint")
                }
                e => self.error(&path, e),
            })?
            .bytes()
            .await
            .map_err(|e| self.error(&path, e))?;
        serde_json::from_slice(&data).map_err(|e| self.error(&path, format!("bad manifest: {e}")))
    }

    async fn retain(&self, keep: usize) -> Result<()> {
        let (all, complete) = self.checkpoints().await?;
        let Some(&newest) = complete.last() else {
            return Ok(());
        };
        let kept: BTreeSet<u64> = complete.iter().rev().take(keep.max(1)).copied().collect();
        for id in all {
            let interrupted = !complete.contains(&id);
            let expired = complete.contains(&id) && !kept.contains(&id);
            if expired || (interrupted && id < newest) {
                self.delete_checkpoint(id).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::manifest::StateEntry;

    fn manifest(id: u64, entries: &[(&str, u64)]) -> CheckpointManifest {
        CheckpointManifest {
            checkpoint_id: id,
            job: "job".into(),
            fingerprint: "f".into(),
            savepoint: false,
            completed_at_ms: 0,
            parallelism: Default::default(),
            entries: entries
                .iter()
                .map(|(object, bytes)| StateEntry {
                    operator_id: "op".into(),
                    instance: 0,
                    object: object.to_string(),
                    bytes: *bytes,
                })
                .collect(),
        }
    }

    async fn write_checkpoint(backend: &dyn StateBackend, id: u64, complete: bool) {
        let data = Bytes::from(format!("state of {id}"));
        let len = data.len() as u64;
        backend.write_state(id, "op-0", data).await.unwrap();
        if complete {
            backend
                .complete(&manifest(id, &[("op-0", len)]))
                .await
                .unwrap();
        }
    }

    async fn only_completed_checkpoints_are_found_and_retention_keeps_the_newest(
        backend: &dyn StateBackend,
    ) {
        assert_eq!(backend.latest_completed().await.unwrap(), None);
        write_checkpoint(backend, 1, true).await;
        write_checkpoint(backend, 2, true).await;
        write_checkpoint(backend, 3, false).await; // interrupted
        write_checkpoint(backend, 4, true).await;
        write_checkpoint(backend, 5, false).await; // in progress

        assert_eq!(backend.completed().await.unwrap(), vec![1, 2, 4]);
        let latest = backend.latest_completed().await.unwrap().unwrap();
        assert_eq!(latest.checkpoint_id, 4);
        assert_eq!(latest.state_bytes(), "state of 4".len() as u64);
        assert_eq!(
            backend.read_state(4, "op-0").await.unwrap(),
            Bytes::from("state of 4")
        );
        let missing = backend.manifest(3).await.unwrap_err().to_string();
        assert!(
            missing.contains("no such completed checkpoint"),
            "{missing}"
        );

        backend.retain(2).await.unwrap();
        assert_eq!(backend.completed().await.unwrap(), vec![2, 4]);
        // The interrupted checkpoint 3 is gone; 5 (newer than any completed) stays.
        assert!(backend.read_state(3, "op-0").await.is_err());
        assert!(backend.read_state(1, "op-0").await.is_err());
        assert!(backend.read_state(5, "op-0").await.is_ok());

        backend.retain(0).await.unwrap();
        assert_eq!(
            backend.completed().await.unwrap(),
            vec![4],
            "one is always kept"
        );
    }

    #[tokio::test]
    async fn in_memory_backend() {
        let backend = ObjectStoreBackend::open("memory://").unwrap();
        only_completed_checkpoints_are_found_and_retention_keeps_the_newest(&backend).await;
    }

    #[tokio::test]
    async fn local_directory_backend_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}/checkpoints", dir.path().display());
        let backend = ObjectStoreBackend::open(&url).unwrap();
        only_completed_checkpoints_are_found_and_retention_keeps_the_newest(&backend).await;
        drop(backend);

        // Another process (here: another backend) finds the same checkpoints.
        let reopened = ObjectStoreBackend::open(&url).unwrap();
        assert_eq!(reopened.completed().await.unwrap(), vec![4]);
        assert_eq!(
            reopened.read_state(4, "op-0").await.unwrap(),
            Bytes::from("state of 4")
        );
        // Expired checkpoints leave no directories behind.
        let dirs: Vec<String> = std::fs::read_dir(dir.path().join("checkpoints"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let mut dirs = dirs;
        dirs.sort();
        assert_eq!(
            dirs,
            vec!["chk-00000000000000000004", "chk-00000000000000000005"]
        );
    }

    #[tokio::test]
    async fn bad_urls_and_names_are_refused_with_a_reason() {
        let gcs = ObjectStoreBackend::open("gs://bucket/x")
            .unwrap_err()
            .to_string();
        assert!(gcs.contains("unsupported scheme 'gs://'"), "{gcs}");
        let empty = ObjectStoreBackend::open("file://").unwrap_err().to_string();
        assert!(empty.contains("no directory"), "{empty}");

        let backend = ObjectStoreBackend::in_memory();
        let bad = backend
            .write_state(1, "../escape", Bytes::new())
            .await
            .unwrap_err()
            .to_string();
        assert!(bad.contains("invalid state object name"), "{bad}");
        let corrupt = Path::from("chk-00000000000000000009").join(MANIFEST);
        backend
            .store
            .put(&corrupt, PutPayload::from_static(b"{"))
            .await
            .unwrap();
        let err = backend.latest_completed().await.unwrap_err().to_string();
        assert!(err.contains("bad manifest"), "{err}");
    }
}
