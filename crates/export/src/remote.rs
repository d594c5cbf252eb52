//! Where a dataset is published: a local folder, or a prefix in an object store (S3 and
//! S3-compatible servers through the `object_store` crate, with its retries). Partitions
//! are always written to a local file first (a Parquet writer needs a file); for an object
//! store that file lives in a private staging folder and is uploaded whole, and the state
//! file is uploaded after the partitions it lists, so a reader that trusts the state never
//! finds a partition missing. Reading an object store back (import) downloads one
//! partition file at a time into the staging folder.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::dataset::{DatasetState, Partition, STATE_PATH};
use crate::{Error, Result};

/// Where a dataset lives.
#[derive(Clone, Debug)]
pub enum DatasetLocation {
    /// A local folder.
    Local(PathBuf),
    /// A prefix in an object store.
    Store(Remote),
}

/// An object-store prefix.
#[derive(Clone, Debug)]
pub struct Remote {
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) prefix: StorePath,
    /// The location as given (`s3://bucket/prefix`).
    pub(crate) url: String,
}

impl DatasetLocation {
    /// Reads `text`: `s3://bucket/prefix` is an object-store location, configured from the
    /// usual `AWS_*` variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
    /// `AWS_ENDPOINT_URL` for an S3-compatible server, `AWS_ALLOW_HTTP`...) and then
    /// `options` (the same keys in lower case, such as `aws_endpoint`); anything else is a
    /// local path.
    pub fn parse(text: &str, options: &[(String, String)]) -> Result<DatasetLocation> {
        let Some(rest) = text.strip_prefix("s3://") else {
            return Ok(DatasetLocation::Local(PathBuf::from(text)));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(Error::request("dataset location", text, "names no bucket"));
        }
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        for (k, v) in options {
            let key: AmazonS3ConfigKey = k
                .parse()
                .map_err(|_| Error::request("object store option", k, "is not an s3 option"))?;
            builder = builder.with_config(key, v);
        }
        let store = builder.build().map_err(|source| Error::ObjectStore {
            url: text.to_owned(),
            source,
        })?;
        let prefix = StorePath::parse(prefix.trim_end_matches('/'))
            .map_err(|e| Error::request("dataset location", text, format!("bad prefix: {e}")))?;
        Ok(DatasetLocation::Store(Remote {
            store: Arc::new(store),
            prefix,
            url: text.trim_end_matches('/').to_owned(),
        }))
    }

    /// The location as given.
    pub fn label(&self) -> String {
        match self {
            DatasetLocation::Local(p) => p.display().to_string(),
            DatasetLocation::Store(r) => r.url.clone(),
        }
    }
}

impl Remote {
    fn path(&self, rel: &str) -> StorePath {
        rel.split('/')
            .fold(self.prefix.clone(), |p, part| p.clone().join(part))
    }

    fn err(&self, rel: &str, source: object_store::Error) -> Error {
        Error::ObjectStore {
            url: format!("{}/{rel}", self.url),
            source,
        }
    }

    /// The object at `rel`, or `None` when there is none.
    pub(crate) async fn get(&self, rel: &str) -> Result<Option<Vec<u8>>> {
        match self.store.get(&self.path(rel)).await {
            Ok(r) => Ok(Some(
                r.bytes().await.map_err(|e| self.err(rel, e))?.to_vec(),
            )),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(rel, e)),
        }
    }

    pub(crate) async fn put(&self, rel: &str, bytes: Vec<u8>) -> Result<()> {
        self.store
            .put(&self.path(rel), PutPayload::from(bytes))
            .await
            .map_err(|e| self.err(rel, e))?;
        Ok(())
    }

    pub(crate) async fn exists(&self, rel: &str) -> Result<bool> {
        match self.store.head(&self.path(rel)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.err(rel, e)),
        }
    }

    pub(crate) async fn delete(&self, rel: &str) -> Result<()> {
        match self.store.delete(&self.path(rel)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(rel, e)),
        }
    }

    /// The dataset's state, or `None` when the prefix holds none.
    pub(crate) async fn state(&self) -> Result<Option<DatasetState>> {
        let Some(bytes) = self.get(STATE_PATH).await? else {
            return Ok(None);
        };
        DatasetState::from_bytes(&bytes, Path::new(&format!("{}/{STATE_PATH}", self.url))).map(Some)
    }
}

/// Where an export writes: files always go to `staging` first.
pub(crate) enum Target<'a> {
    Local(&'a Path),
    Store {
        remote: &'a Remote,
        staging: &'a Path,
    },
}

impl Target<'_> {
    /// The folder partition files are written in.
    pub(crate) fn staging(&self) -> &Path {
        match self {
            Target::Local(root) => root,
            Target::Store { staging, .. } => staging,
        }
    }

    pub(crate) async fn load_state(&self) -> Result<DatasetState> {
        match self {
            Target::Local(root) => DatasetState::load(root),
            Target::Store { remote, .. } => Ok(remote.state().await?.unwrap_or_default()),
        }
    }

    pub(crate) async fn state_exists(&self) -> Result<bool> {
        match self {
            Target::Local(root) => Ok(root.join(STATE_PATH).exists()),
            Target::Store { remote, .. } => remote.exists(STATE_PATH).await,
        }
    }

    /// Whether the partition's file is published.
    pub(crate) async fn exists(&self, p: &Partition) -> Result<bool> {
        match self {
            Target::Local(root) => Ok(root.join(p.file()).exists()),
            Target::Store { remote, .. } => remote.exists(&p.file()).await,
        }
    }

    /// Publishes a partition file written in [`Target::staging`].
    pub(crate) async fn publish(&self, p: &Partition) -> Result<()> {
        let Target::Store { remote, staging } = self else {
            return Ok(());
        };
        let path = staging.join(p.file());
        let bytes = std::fs::read(&path).map_err(|e| Error::Read {
            path: path.clone(),
            source: e,
        })?;
        remote.put(&p.file(), bytes).await?;
        std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))
    }

    /// Removes a published partition (and a staged file of it).
    pub(crate) async fn remove(
        &self,
        gate: &marketdb_output::OutputGate,
        p: &Partition,
    ) -> Result<()> {
        match self {
            Target::Local(root) => crate::dataset::remove_partition(gate, root, p),
            Target::Store { remote, staging } => {
                let _ = std::fs::remove_file(staging.join(p.file()));
                remote.delete(&p.file()).await
            }
        }
    }

    pub(crate) async fn save_state(
        &self,
        gate: &marketdb_output::OutputGate,
        state: &DatasetState,
    ) -> Result<()> {
        match self {
            Target::Local(root) => state.save(gate, root),
            Target::Store { remote, .. } => {
                let bytes = serde_json::to_vec_pretty(state).map_err(|source| Error::Json {
                    path: PathBuf::from(format!("{}/{STATE_PATH}", remote.url)),
                    source,
                })?;
                remote.put(STATE_PATH, bytes).await
            }
        }
    }
}
