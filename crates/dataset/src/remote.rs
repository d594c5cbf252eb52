//! Where a dataset lives: a local folder, or a prefix in an object store (S3 and
//! S3-compatible servers through the `object_store` crate, with its retries). [`Remote`]
//! offers the few object operations publication and replication need: get, put, a put that
//! only creates (the lock), head, delete. Partitions are always written to a local file
//! first (a Parquet writer needs a file); for an object store that file lives in a private
//! scratch folder and is uploaded whole.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::layout::STATE_PATH;
use crate::state::DatasetState;
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

    /// Creates the object at `rel` only if there is none (a conditional put,
    /// `If-None-Match: *`); false when one was there.
    pub(crate) async fn put_if_absent(&self, rel: &str, bytes: Vec<u8>) -> Result<bool> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .store
            .put_opts(&self.path(rel), PutPayload::from(bytes), opts)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(self.err(rel, e)),
        }
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
