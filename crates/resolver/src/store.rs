//! Where revisions, project layers and tokens live: a small trait, with sled behind it by default,
//! PostgreSQL for several resolver replicas (`crate::pg`), and an in-memory implementation for
//! tests. Only the publish path, startup and catching up with other replicas read the store; the
//! decision path never does.
//!
//! The trait is synchronous: the resolver calls it on blocking threads only, never on an async
//! worker (`state::blocking`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use prost::Message;
use sled::Transactional;
use strata_proto::v1::{StoredActivation, StoredChange, StoredRevision, StoredToken};
use tokio::sync::watch;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage error: {0}")]
    Backend(String),
    #[error("corrupt record `{key}`: {error}")]
    Corrupt { key: String, error: String },
    /// The store cannot be reached now (a database that went away); nothing was written
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// Another writer activated a revision since this one was built; nothing was written
    #[error("the active revision changed concurrently (expected {}, found {})", show(.expected), show(.found))]
    Conflict {
        expected: Option<String>,
        found: Option<String>,
    },
}

fn show(rev: &Option<String>) -> String {
    match rev {
        Some(r) => format!("`{r}`"),
        None => "none".to_string(),
    }
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
    /// The active revision this one was built on: if another is active by the time of the
    /// commit, it fails with [`StoreError::Conflict`] and writes nothing
    pub replaces: Option<String>,
}

/// What a store shared with other resolvers tells each of them
#[derive(Clone, Debug)]
pub struct StoreWatch {
    /// Bumped whenever the active revision or the tokens may have been changed by another writer
    /// (and after a reconnect): read the store again
    pub changed: watch::Receiver<u64>,
    /// Whether the store can be written now (publishing works)
    pub ready: watch::Receiver<bool>,
}

pub trait Store: Send + Sync + 'static {
    /// Store the revision and its blobs and make it active, all or nothing, durably
    fn commit(&self, c: Commit) -> Result<(), StoreError>;
    /// Make an existing revision active again (rollback), durably, if `replaces` is still the
    /// active one (else [`StoreError::Conflict`])
    fn activate(&self, a: StoredActivation, replaces: Option<String>) -> Result<(), StoreError>;
    fn active(&self) -> Result<Option<String>, StoreError>;
    fn revision(&self, id: &str) -> Result<Option<StoredRevision>, StoreError>;
    fn revisions(&self) -> Result<Vec<StoredRevision>, StoreError>;
    /// The ids of the revisions whose id starts with `prefix`
    fn revision_ids(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        Ok(self
            .revisions()?
            .into_iter()
            .map(|r| r.revision)
            .filter(|r| r.starts_with(prefix))
            .collect())
    }
    fn activations(&self) -> Result<Vec<StoredActivation>, StoreError>;
    fn blob(&self, hash: &str) -> Result<Option<Vec<u8>>, StoreError>;
    fn project_history(&self, project: &str) -> Result<Vec<String>, StoreError>;
    fn put_token(&self, t: &StoredToken) -> Result<(), StoreError>;
    fn tokens(&self) -> Result<Vec<StoredToken>, StoreError>;
    /// The tokens written since change `since` (every token for `None`, revoked ones included)
    /// and the number of the newest change, so that a replica following a shared store applies
    /// what changed instead of reloading every token. `None` as that number (the default, for a
    /// store that does not number its token writes) means: read them all again next time.
    fn token_changes(
        &self,
        since: Option<i64>,
    ) -> Result<(Vec<StoredToken>, Option<i64>), StoreError> {
        let _ = since;
        Ok((self.tokens()?, None))
    }
    /// The token with id `id` (revoked or not)
    fn token(&self, id: &str) -> Result<Option<StoredToken>, StoreError> {
        Ok(self.tokens()?.into_iter().find(|t| t.token_id == id))
    }
    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    fn set_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError>;
    /// Append to the console's change log, durably
    fn add_change(&self, c: &StoredChange) -> Result<(), StoreError>;
    /// The change log newest first: `limit` changes after skipping `skip`, and how many there
    /// are in all
    fn changes(&self, skip: usize, limit: usize) -> Result<(Vec<StoredChange>, u64), StoreError>;
    /// Change signals for a store that other processes write too; `None` (the default) for a
    /// store only this process writes
    fn watch(&self) -> Option<StoreWatch> {
        None
    }
}

/// The compare part of compare-and-set on the active pointer
pub(crate) fn check_active(
    found: Option<String>,
    expected: &Option<String>,
) -> Result<(), StoreError> {
    if found == *expected {
        Ok(())
    } else {
        Err(StoreError::Conflict {
            expected: expected.clone(),
            found,
        })
    }
}

fn decode<M: Message + Default>(key: &str, bytes: &[u8]) -> Result<M, StoreError> {
    M::decode(bytes).map_err(|e| StoreError::Corrupt {
        key: key.to_string(),
        error: e.to_string(),
    })
}

/// sled on disk: trees `blobs`, `revisions`, `activations` (by sequence), `history`, `tokens`,
/// `meta`, `changes` (by sequence)
pub struct SledStore {
    db: sled::Db,
    blobs: sled::Tree,
    revisions: sled::Tree,
    activations: sled::Tree,
    history: sled::Tree,
    tokens: sled::Tree,
    meta: sled::Tree,
    changes: sled::Tree,
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
            changes: db.open_tree("changes")?,
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
                let found = meta
                    .get(ACTIVE)?
                    .map(|v| String::from_utf8_lossy(&v).into_owned());
                check_active(found, &c.replaces)
                    .map_err(sled::transaction::ConflictableTransactionError::Abort)?;
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

    fn activate(&self, a: StoredActivation, replaces: Option<String>) -> Result<(), StoreError> {
        let act = a.encode_to_vec();
        (&self.activations, &self.meta).transaction(|(activations, meta)| {
            let found = meta
                .get(ACTIVE)?
                .map(|v| String::from_utf8_lossy(&v).into_owned());
            check_active(found, &replaces)
                .map_err(sled::transaction::ConflictableTransactionError::Abort)?;
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

    fn revision_ids(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.revisions
            .scan_prefix(prefix.as_bytes())
            .keys()
            .map(|k| Ok(String::from_utf8_lossy(&k?).into_owned()))
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

    fn token(&self, id: &str) -> Result<Option<StoredToken>, StoreError> {
        self.tokens
            .get(id.as_bytes())?
            .map(|v| decode(id, &v))
            .transpose()
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

    fn add_change(&self, c: &StoredChange) -> Result<(), StoreError> {
        // keys are big-endian sequence numbers, so the tree's order is the log's
        let seq = self.db.generate_id()?;
        self.changes.insert(seq.to_be_bytes(), c.encode_to_vec())?;
        self.db.flush()?;
        Ok(())
    }

    fn changes(&self, skip: usize, limit: usize) -> Result<(Vec<StoredChange>, u64), StoreError> {
        let page = self
            .changes
            .iter()
            .rev()
            .skip(skip)
            .take(limit)
            .map(|kv| decode("change", &kv?.1))
            .collect::<Result<_, _>>()?;
        Ok((page, self.changes.len() as u64))
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
    changes: Vec<StoredChange>,
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
            let found = m
                .meta
                .get(ACTIVE)
                .map(|v| String::from_utf8_lossy(v).into_owned());
            check_active(found, &c.replaces)?;
            m.blobs.extend(c.blobs);
            m.meta
                .insert(ACTIVE.to_string(), c.revision.revision.clone().into_bytes());
            m.revisions.insert(c.revision.revision.clone(), c.revision);
            m.activations.push(c.activation);
            m.history.extend(c.project_history);
            Ok(())
        })?
    }
    fn activate(&self, a: StoredActivation, replaces: Option<String>) -> Result<(), StoreError> {
        self.with(|m| {
            let found = m
                .meta
                .get(ACTIVE)
                .map(|v| String::from_utf8_lossy(v).into_owned());
            check_active(found, &replaces)?;
            m.meta
                .insert(ACTIVE.to_string(), a.revision.clone().into_bytes());
            m.activations.push(a);
            Ok(())
        })?
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
    fn add_change(&self, c: &StoredChange) -> Result<(), StoreError> {
        self.with(|m| m.changes.push(c.clone()))
    }
    fn changes(&self, skip: usize, limit: usize) -> Result<(Vec<StoredChange>, u64), StoreError> {
        self.with(|m| {
            let page = m.changes.iter().rev().skip(skip).take(limit).cloned();
            (page.collect(), m.changes.len() as u64)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn commit(rev: &str, replaces: Option<&str>) -> Commit {
        Commit {
            blobs: vec![(format!("blob-{rev}"), rev.as_bytes().to_vec())],
            revision: StoredRevision {
                revision: rev.into(),
                org_blob: format!("blob-{rev}"),
                ..Default::default()
            },
            activation: StoredActivation {
                revision: rev.into(),
                kind: "publish-org".into(),
                at_unix_ms: 1,
            },
            project_history: vec![("web".into(), format!("blob-{rev}"))],
            replaces: replaces.map(String::from),
        }
    }

    /// Each commit and activation names the active revision it replaces; a stale one writes nothing
    fn compare_and_set(store: &dyn Store) {
        store.commit(commit("r1", None)).unwrap();
        let e = store.commit(commit("r2", None)).unwrap_err();
        assert!(
            matches!(&e, StoreError::Conflict { expected: None, found: Some(f) } if f == "r1"),
            "{e}"
        );
        assert_eq!(
            e.to_string(),
            "the active revision changed concurrently (expected none, found `r1`)"
        );
        assert!(store.revision("r2").unwrap().is_none());
        assert_eq!(store.project_history("web").unwrap(), ["blob-r1"]);
        store.commit(commit("r2", Some("r1"))).unwrap();
        let back = StoredActivation {
            revision: "r1".into(),
            kind: "rollback".into(),
            at_unix_ms: 2,
        };
        let e = store.activate(back.clone(), Some("r1".into())).unwrap_err();
        assert!(matches!(e, StoreError::Conflict { .. }), "{e}");
        assert_eq!(store.active().unwrap().as_deref(), Some("r2"));
        store.activate(back, Some("r2".into())).unwrap();
        assert_eq!(store.active().unwrap().as_deref(), Some("r1"));
        assert_eq!(store.activations().unwrap().len(), 3);
    }

    #[test]
    fn sled_compare_and_set() {
        let dir = tempfile::tempdir().unwrap();
        compare_and_set(&SledStore::open(dir.path()).unwrap());
    }

    #[test]
    fn mem_compare_and_set() {
        compare_and_set(&MemStore::default());
    }

    fn change(n: i64) -> StoredChange {
        StoredChange {
            at_unix_ms: n,
            who: "ada".into(),
            what: format!("change {n}"),
            detail: String::new(),
        }
    }

    /// The change log reads back newest first, a page at a time, with the total
    fn change_log(store: &dyn Store, first: i64) {
        let (page, total) = store.changes(0, 2).unwrap();
        let whats: Vec<&str> = page.iter().map(|c| c.what.as_str()).collect();
        assert_eq!(total, (first + 2) as u64);
        assert_eq!(
            whats,
            [format!("change {}", first + 1), format!("change {first}")]
        );
        let (rest, _) = store.changes(2, 100).unwrap();
        assert_eq!(rest.len() as i64, first);
        assert_eq!(store.changes(first as usize + 2, 10).unwrap().0, []);
    }

    #[test]
    fn mem_change_log() {
        let store = MemStore::default();
        for n in 0..5 {
            store.add_change(&change(n)).unwrap();
        }
        change_log(&store, 3);
    }

    /// What was recorded is there after the store is opened again (a restarted resolver)
    #[test]
    fn sled_change_log_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SledStore::open(dir.path()).unwrap();
            for n in 0..3 {
                store.add_change(&change(n)).unwrap();
            }
        }
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(store.changes(0, 10).unwrap().1, 3);
        for n in 3..5 {
            store.add_change(&change(n)).unwrap();
        }
        change_log(&store, 3);
        drop(store);
        change_log(&SledStore::open(dir.path()).unwrap(), 3);
    }
}
