//! Where revisions, project layers and tokens live: a small trait, with sled behind it (and an
//! in-memory implementation for tests). Only the publish path and startup read the store; the
//! decision path never does.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use prost::Message;
use sled::Transactional;
use strata_proto::v1::{StoredActivation, StoredRevision, StoredToken};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage error: {0}")]
    Backend(String),
    #[error("corrupt record `{key}`: {error}")]
    Corrupt { key: String, error: String },
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Backend(e.to_string())
    }
}

impl From<sled::transaction::TransactionError<StoreError>> for StoreError {
    fn from(e: sled::transaction::TransactionError<StoreError>) -> Self {
        match e {
            sled::transaction::TransactionError::Abort(e) => e,
            sled::transaction::TransactionError::Storage(e) => e.into(),
        }
    }
}

/// One new revision to store and activate atomically
pub struct Commit {
    /// content-addressed blobs (hash → bytes) the revision refers to
    pub blobs: Vec<(String, Vec<u8>)>,
    pub revision: StoredRevision,
    pub activation: StoredActivation,
    /// (project id, blob hash) pairs to append to each project's history
    pub project_history: Vec<(String, String)>,
}

pub trait Store: Send + Sync + 'static {
    /// Store the revision and its blobs and make it active, all or nothing, durably
    fn commit(&self, c: Commit) -> Result<(), StoreError>;
    /// Make an existing revision active again (rollback), durably
    fn activate(&self, a: StoredActivation) -> Result<(), StoreError>;
    fn active(&self) -> Result<Option<String>, StoreError>;
    fn revision(&self, id: &str) -> Result<Option<StoredRevision>, StoreError>;
    fn revisions(&self) -> Result<Vec<StoredRevision>, StoreError>;
    fn activations(&self) -> Result<Vec<StoredActivation>, StoreError>;
    fn blob(&self, hash: &str) -> Result<Option<Vec<u8>>, StoreError>;
    fn project_history(&self, project: &str) -> Result<Vec<String>, StoreError>;
    fn put_token(&self, t: &StoredToken) -> Result<(), StoreError>;
    fn tokens(&self) -> Result<Vec<StoredToken>, StoreError>;
    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    fn set_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError>;
}

fn decode<M: Message + Default>(key: &str, bytes: &[u8]) -> Result<M, StoreError> {
    M::decode(bytes).map_err(|e| StoreError::Corrupt {
        key: key.to_string(),
        error: e.to_string(),
    })
}

/// sled on disk: trees `blobs`, `revisions`, `activations` (by sequence), `history`, `tokens`, `meta`
pub struct SledStore {
    db: sled::Db,
    blobs: sled::Tree,
    revisions: sled::Tree,
    activations: sled::Tree,
    history: sled::Tree,
    tokens: sled::Tree,
    meta: sled::Tree,
}

const ACTIVE: &str = "active";

impl SledStore {
    pub fn open(dir: &Path) -> Result<SledStore, StoreError> {
        let db = sled::Config::new().path(dir).open()?;
        Ok(SledStore {
            blobs: db.open_tree("blobs")?,
            revisions: db.open_tree("revisions")?,
            activations: db.open_tree("activations")?,
            history: db.open_tree("history")?,
            tokens: db.open_tree("tokens")?,
            meta: db.open_tree("meta")?,
            db,
        })
    }

    fn next_seq(
        tree: &sled::transaction::TransactionalTree,
    ) -> Result<u64, sled::transaction::ConflictableTransactionError<StoreError>> {
        let key = b"\xffseq";
        let n = tree
            .get(key)?
            .map(|v| v.as_ref().try_into().map(u64::from_be_bytes).unwrap_or(0))
            .unwrap_or(0)
            + 1;
        tree.insert(key, &n.to_be_bytes())?;
        Ok(n)
    }
}

impl Store for SledStore {
    fn commit(&self, c: Commit) -> Result<(), StoreError> {
        // blobs are content-addressed: writing one twice is harmless, so they go first
        for (hash, bytes) in &c.blobs {
            self.blobs.insert(hash.as_bytes(), bytes.as_slice())?;
        }
        let rev = c.revision.encode_to_vec();
        let act = c.activation.encode_to_vec();
        (
            &self.revisions,
            &self.activations,
            &self.history,
            &self.meta,
        )
            .transaction(|(revisions, activations, history, meta)| {
                revisions.insert(c.revision.revision.as_bytes(), rev.as_slice())?;
                let seq = Self::next_seq(activations)?;
                activations.insert(&seq.to_be_bytes(), act.as_slice())?;
                for (project, blob) in &c.project_history {
                    let seq = Self::next_seq(history)?;
                    let mut key = project.as_bytes().to_vec();
                    key.push(0);
                    key.extend_from_slice(&seq.to_be_bytes());
                    history.insert(key, blob.as_bytes())?;
                }
                meta.insert(ACTIVE, c.revision.revision.as_bytes())?;
                Ok(())
            })?;
        self.db.flush()?;
        Ok(())
    }

    fn activate(&self, a: StoredActivation) -> Result<(), StoreError> {
        let act = a.encode_to_vec();
        (&self.activations, &self.meta).transaction(|(activations, meta)| {
            let seq = Self::next_seq(activations)?;
            activations.insert(&seq.to_be_bytes(), act.as_slice())?;
            meta.insert(ACTIVE, a.revision.as_bytes())?;
            Ok(())
        })?;
        self.db.flush()?;
        Ok(())
    }

    fn active(&self) -> Result<Option<String>, StoreError> {
        Ok(self
            .meta
            .get(ACTIVE)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    fn revision(&self, id: &str) -> Result<Option<StoredRevision>, StoreError> {
        self.revisions
            .get(id.as_bytes())?
            .map(|v| decode(id, &v))
            .transpose()
    }

    fn revisions(&self) -> Result<Vec<StoredRevision>, StoreError> {
        self.revisions
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                decode(&String::from_utf8_lossy(&k), &v)
            })
            .collect()
    }

    fn activations(&self) -> Result<Vec<StoredActivation>, StoreError> {
        self.activations
            .iter()
            .filter(|kv| kv.as_ref().map(|(k, _)| k.len() == 8).unwrap_or(true))
            .map(|kv| {
                let (_, v) = kv?;
                decode("activation", &v)
            })
            .collect()
    }

    fn blob(&self, hash: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.blobs.get(hash.as_bytes())?.map(|v| v.to_vec()))
    }

    fn project_history(&self, project: &str) -> Result<Vec<String>, StoreError> {
        let mut prefix = project.as_bytes().to_vec();
        prefix.push(0);
        self.history
            .scan_prefix(prefix)
            .map(|kv| Ok(String::from_utf8_lossy(&kv?.1).into_owned()))
            .collect()
    }

    fn put_token(&self, t: &StoredToken) -> Result<(), StoreError> {
        self.tokens
            .insert(t.token_id.as_bytes(), t.encode_to_vec())?;
        self.db.flush()?;
        Ok(())
    }

    fn tokens(&self) -> Result<Vec<StoredToken>, StoreError> {
        self.tokens
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                decode(&String::from_utf8_lossy(&k), &v)
            })
            .collect()
    }

    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.meta.get(key)?.map(|v| v.to_vec()))
    }

    fn set_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.meta.insert(key, value)?;
        self.db.flush()?;
        Ok(())
    }
}

/// Everything in memory: for tests and throwaway runs
#[derive(Default)]
pub struct MemStore {
    inner: Mutex<Mem>,
}

#[derive(Default)]
struct Mem {
    blobs: BTreeMap<String, Vec<u8>>,
    revisions: BTreeMap<String, StoredRevision>,
    activations: Vec<StoredActivation>,
    history: Vec<(String, String)>,
    tokens: BTreeMap<String, StoredToken>,
    meta: BTreeMap<String, Vec<u8>>,
}

impl MemStore {
    fn with<T>(&self, f: impl FnOnce(&mut Mem) -> T) -> Result<T, StoreError> {
        let mut g = self
            .inner
            .lock()
            .map_err(|_| StoreError::Backend("store lock poisoned".to_string()))?;
        Ok(f(&mut g))
    }
}

impl Store for MemStore {
    fn commit(&self, c: Commit) -> Result<(), StoreError> {
        self.with(|m| {
            m.blobs.extend(c.blobs);
            m.meta
                .insert(ACTIVE.to_string(), c.revision.revision.clone().into_bytes());
            m.revisions.insert(c.revision.revision.clone(), c.revision);
            m.activations.push(c.activation);
            m.history.extend(c.project_history);
        })
    }
    fn activate(&self, a: StoredActivation) -> Result<(), StoreError> {
        self.with(|m| {
            m.meta
                .insert(ACTIVE.to_string(), a.revision.clone().into_bytes());
            m.activations.push(a);
        })
    }
    fn active(&self) -> Result<Option<String>, StoreError> {
        self.with(|m| {
            m.meta
                .get(ACTIVE)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        })
    }
    fn revision(&self, id: &str) -> Result<Option<StoredRevision>, StoreError> {
        self.with(|m| m.revisions.get(id).cloned())
    }
    fn revisions(&self) -> Result<Vec<StoredRevision>, StoreError> {
        self.with(|m| m.revisions.values().cloned().collect())
    }
    fn activations(&self) -> Result<Vec<StoredActivation>, StoreError> {
        self.with(|m| m.activations.clone())
    }
    fn blob(&self, hash: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.with(|m| m.blobs.get(hash).cloned())
    }
    fn project_history(&self, project: &str) -> Result<Vec<String>, StoreError> {
        self.with(|m| {
            m.history
                .iter()
                .filter(|(p, _)| p == project)
                .map(|(_, b)| b.clone())
                .collect()
        })
    }
    fn put_token(&self, t: &StoredToken) -> Result<(), StoreError> {
        self.with(|m| {
            m.tokens.insert(t.token_id.clone(), t.clone());
        })
    }
    fn tokens(&self) -> Result<Vec<StoredToken>, StoreError> {
        self.with(|m| m.tokens.values().cloned().collect())
    }
    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.with(|m| m.meta.get(key).cloned())
    }
    fn set_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.with(|m| {
            m.meta.insert(key.to_string(), value.to_vec());
        })
    }
}
