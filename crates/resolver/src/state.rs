//! The resolver's live state: the active snapshot (swapped atomically, read without locks), the
//! token table, and the publish / rollback / token operations that build the next state off the
//! hot path and swap it in. On a store shared with other resolvers, `sync` catches up with what
//! they activated.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use prost::Message;
use sha2::{Digest, Sha256};
use strata_policy::{Bundle, FileTree, Problems, ProjectTrees, Snapshot};
use strata_proto::v1::{
    self, RevisionEvent, StoredActivation, StoredChange, StoredOrg, StoredProject, StoredRevision,
    StoredToken,
};
use tokio::sync::{Mutex, watch};

use crate::error::ResolverError;
use crate::store::{Commit, Store, StoreError, StoreWatch};

/// What is active: the compiled snapshot and the files it was compiled from. A project publish
/// shares every other project's entry (and compiled sets) with the revision before.
pub struct Active {
    pub snapshot: Arc<Snapshot>,
    pub revision: String,
    pub org: Arc<StoredOrg>,
    /// the blob hash of `org`
    pub org_blob: String,
    pub projects: Projects,
    /// the bucket blobs listing `projects` (empty for a revision stored before buckets)
    pub buckets: Vec<String>,
}

/// A stored project layer, its blob hash and the bucket of revisions it is listed in
pub struct StoredEntry {
    pub blob: String,
    pub layer: StoredProject,
    pub bucket: usize,
}

impl StoredEntry {
    fn new(id: &str, layer: StoredProject) -> (StoredEntry, Vec<u8>) {
        let bytes = layer.encode_to_vec();
        let blob = blob_hash(&bytes);
        let bucket = bucket_of(id);
        (
            StoredEntry {
                blob,
                layer,
                bucket,
            },
            bytes,
        )
    }
}

/// How many buckets a revision lists its projects in (`StoredRevision.project_buckets`): a
/// project publish writes one bucket of about 1/64th of the projects. The in-memory
/// [`Projects`] has the same buckets, so a bucket to store is a bucket to encode.
const BUCKETS: usize = strata_policy::buckets::BUCKETS;

/// The stored bucket of project `id` (the first byte of the sha-256 of its id, modulo
/// [`BUCKETS`]): part of the store's format
fn bucket_of(id: &str) -> usize {
    sha256(id.as_bytes())[0] as usize % BUCKETS
}

/// No projects, in the store's buckets
pub fn no_projects() -> Projects {
    Projects::new(bucket_of)
}

/// Bucket `k` of `projects`, encoded, and its blob hash
fn bucket_blob(projects: &Projects, k: usize) -> (String, Vec<u8>) {
    let index = v1::StoredProjectIndex {
        projects: projects
            .bucket(k)
            .iter()
            .map(|(id, e)| v1::ProjectBlob {
                id: id.clone(),
                blob: e.blob.clone(),
            })
            .collect(),
    };
    let bytes = index.encode_to_vec();
    (blob_hash(&bytes), bytes)
}

/// The buckets of the next revision and the bucket blobs it adds: `prev`'s with bucket `changed`
/// written again, or every bucket when `prev` has none (a first revision, or one stored before
/// buckets)
fn rebucket(
    prev: &[String],
    projects: &Projects,
    changed: Option<usize>,
) -> (Vec<String>, Vec<(String, Vec<u8>)>) {
    let mut blobs = Vec::new();
    if prev.len() != BUCKETS {
        let buckets = (0..BUCKETS)
            .map(|k| {
                let (h, bytes) = bucket_blob(projects, k);
                blobs.push((h.clone(), bytes));
                h
            })
            .collect();
        return (buckets, blobs);
    }
    let mut buckets = prev.to_vec();
    if let Some(k) = changed {
        let (h, bytes) = bucket_blob(projects, k);
        buckets[k] = h.clone();
        blobs.push((h, bytes));
    }
    (buckets, blobs)
}

/// The (project id, blob hash) pairs listed in bucket blob `h` of revision `rev`
fn read_bucket(
    store: &dyn Store,
    rev: &str,
    h: &str,
) -> Result<Vec<v1::ProjectBlob>, ResolverError> {
    let bytes = store.blob(h)?.ok_or_else(|| {
        ResolverError::Internal(format!("missing bucket `{h}` of revision `{rev}`"))
    })?;
    let index = v1::StoredProjectIndex::decode(bytes.as_slice())
        .map_err(|e| ResolverError::Internal(e.to_string()))?;
    Ok(index.projects)
}

/// Every (project id, blob hash) of a stored revision, from its buckets (or its own list)
fn project_blobs(
    store: &dyn Store,
    record: &StoredRevision,
) -> Result<Vec<(String, String)>, ResolverError> {
    if record.project_buckets.is_empty() {
        return Ok(record
            .project_blobs
            .iter()
            .map(|(id, h)| (id.clone(), h.clone()))
            .collect());
    }
    let mut out = Vec::new();
    for h in &record.project_buckets {
        let found = read_bucket(store, &record.revision, h)?;
        out.extend(found.into_iter().map(|p| (p.id, p.blob)));
    }
    Ok(out)
}

/// The projects of a revision, by id, in the store's buckets ([`no_projects`]): consecutive
/// revisions share every bucket in which no project changed
pub type Projects = strata_policy::buckets::Buckets<Arc<StoredEntry>>;

/// The live (not revoked) gateway tokens: by the sha-256 of the token (foldhash over the hash,
/// a lookup per decision) and by id (revocation). Kept apart from the snapshot: a token change
/// neither copies nor recompiles it, and creating or revoking one is one insert or removal.
#[derive(Default)]
pub struct TokenTable {
    by_hash: strata_policy::FastMap<[u8; 32], Arc<StoredToken>>,
    by_id: strata_policy::FastMap<String, [u8; 32]>,
}

impl TokenTable {
    fn insert(&mut self, t: StoredToken) {
        let Ok(h) = <[u8; 32]>::try_from(t.hash.as_slice()) else {
            return;
        };
        if t.revoked {
            self.remove(&t.token_id);
            return;
        }
        self.by_id.insert(t.token_id.clone(), h);
        self.by_hash.insert(h, Arc::new(t));
    }

    fn remove(&mut self, id: &str) -> Option<Arc<StoredToken>> {
        let h = self.by_id.remove(id)?;
        self.by_hash.remove(&h)
    }

    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

pub struct Resolver {
    store: Arc<dyn Store>,
    active: ArcSwapOption<Active>,
    /// Written for one insert or removal at a time (or a reload when catching up), read for one
    /// lookup: readers never wait for a store call
    tokens: RwLock<TokenTable>,
    /// The number of the newest token change `tokens` has applied, on a store that numbers them
    /// (`Store::token_changes`): catching up reads the later changes only
    token_seq: std::sync::Mutex<Option<i64>>,
    /// Serializes publishes, rollbacks, token changes and catching up; holds the store's active
    /// revision as this resolver last saw it (what the next commit replaces)
    publish: Mutex<Option<String>>,
    events: watch::Sender<Option<RevisionEvent>>,
    /// `true` once the server is shutting down: `Watch` streams end then, so that the drain
    /// does not wait for them (a gateway follows revisions on one for as long as it runs)
    stopping: watch::Sender<bool>,
    admin_hash: [u8; 32],
    service_hash: [u8; 32],
    /// Droid's org documents of the active revision
    pub droid_docs: crate::droid_org::OrgDocs,
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Constant-time equality of two digests
pub fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    subtle::ConstantTimeEq::ct_eq(&a[..], &b[..]).into()
}

/// A fresh secret: 32 random bytes, hex, with a prefix naming what it is
pub fn new_secret(prefix: &str) -> Result<String, ResolverError> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| ResolverError::Internal(format!("no randomness: {e}")))?;
    Ok(format!("{prefix}{}", hex::encode(b)))
}

const ADMIN_KEY: &str = "admin_token_sha256";
const SERVICE_KEY: &str = "service_token_sha256";

/// Secrets generated at first start, to print once
#[derive(Debug, Default)]
pub struct Generated {
    pub admin_token: Option<String>,
    pub service_token: Option<String>,
}

fn blob_hash(bytes: &[u8]) -> String {
    hex::encode(sha256(bytes))
}

fn org_tree(org: &StoredOrg) -> Result<FileTree, Problems> {
    strata_proto::file_tree("org", &org.files)
}

fn project_trees(id: &str, p: &StoredProject) -> Result<ProjectTrees, Problems> {
    let mut problems = Problems::default();
    let mut tree = |root: String, files: &[v1::File]| match strata_proto::file_tree(&root, files) {
        Ok(t) => t,
        Err(p) => {
            problems.extend(p);
            FileTree::default()
        }
    };
    let project = tree(format!("project:{id}"), &p.files);
    let folders = p
        .folders
        .iter()
        .map(|f| {
            (
                f.path.clone(),
                tree(format!("project:{id}/{}", f.path), &f.files),
            )
        })
        .collect();
    if problems.has_errors() {
        return Err(problems);
    }
    Ok(ProjectTrees {
        id: id.to_string(),
        project,
        folders,
    })
}

fn bundle_of(org: &StoredOrg, projects: &Projects) -> Result<Bundle, Problems> {
    let mut problems = Problems::default();
    let org = org_tree(org).unwrap_or_else(|p| {
        problems.extend(p);
        FileTree::default()
    });
    let mut trees = Vec::with_capacity(projects.len());
    for (id, p) in projects {
        match project_trees(id, &p.layer) {
            Ok(t) => trees.push(t),
            Err(p) => problems.extend(p),
        }
    }
    if problems.has_errors() {
        return Err(problems);
    }
    Ok(Bundle {
        org,
        projects: trees,
        users: Vec::new(),
    })
}

/// `${VAR}` in a published bundle is checked against the resolver's environment
fn env(k: &str) -> Option<String> {
    std::env::var(k).ok()
}

/// Compile on a blocking thread: it is CPU work and must not stall the runtime
async fn compile(bundle: Bundle) -> Result<Snapshot, ResolverError> {
    tokio::task::spawn_blocking(move || strata_policy::compile(&bundle, &env))
        .await
        .map_err(|e| ResolverError::Internal(format!("compile task failed: {e}")))?
        .map_err(ResolverError::Invalid)
}

/// Compile `changed` projects against `prev`'s org, reusing every other project of `prev`
/// (`removed` ones dropped), on a blocking thread
async fn recompile(
    prev: Arc<Snapshot>,
    changed: Vec<ProjectTrees>,
    removed: Vec<String>,
) -> Result<Snapshot, ResolverError> {
    tokio::task::spawn_blocking(move || {
        strata_policy::compile::recompile(&prev, &changed, &removed, &env)
    })
    .await
    .map_err(|e| ResolverError::Internal(format!("compile task failed: {e}")))?
    .map_err(ResolverError::Invalid)
}

/// Run store calls on a blocking thread: a store may block (sled flushes, PostgreSQL round trips),
/// and an async worker must not
pub(crate) async fn blocking<T, E>(
    store: &Arc<dyn Store>,
    f: impl FnOnce(&dyn Store) -> Result<T, E> + Send + 'static,
) -> Result<T, ResolverError>
where
    T: Send + 'static,
    E: Into<ResolverError> + Send + 'static,
{
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(store.as_ref()))
        .await
        .map_err(|e| ResolverError::Internal(format!("store task failed: {e}")))?
        .map_err(Into::into)
}

/// How often a publish or rollback is rebuilt on a revision another resolver activated meanwhile
const PUBLISH_ATTEMPTS: usize = 3;

fn is_conflict(e: &ResolverError) -> bool {
    matches!(e, ResolverError::Store(StoreError::Conflict { .. }))
}

/// What startup reads from (and writes to) the store
struct Opened {
    admin_hash: [u8; 32],
    service_hash: [u8; 32],
    tokens: TokenTable,
    token_seq: Option<i64>,
    stored_active: Option<String>,
    generated: Generated,
}

/// A stored revision with the layers it was built from
struct Loaded {
    record: StoredRevision,
    org: Arc<StoredOrg>,
    org_blob: String,
    projects: Projects,
    buckets: Vec<String>,
}

/// Read revision `rev`, reusing the layers `known` holds under the same blob hash (only the
/// others are read and decoded). When both list their projects in buckets, only the buckets
/// whose blobs differ are read; the others are `known`'s, shared.
fn read_revision(
    store: &dyn Store,
    rev: &str,
    known: Option<&Active>,
) -> Result<Loaded, ResolverError> {
    let record = store
        .revision(rev)?
        .ok_or_else(|| ResolverError::NotFound(format!("revision `{rev}`")))?;
    let blob = |h: &str| -> Result<Vec<u8>, ResolverError> {
        store.blob(h)?.ok_or_else(|| {
            ResolverError::Internal(format!("missing blob `{h}` of revision `{rev}`"))
        })
    };
    let org = match known.filter(|k| k.org_blob == record.org_blob) {
        Some(k) => k.org.clone(),
        None => Arc::new(
            StoredOrg::decode(blob(&record.org_blob)?.as_slice())
                .map_err(|e| ResolverError::Internal(e.to_string()))?,
        ),
    };
    // a layer `known` has under the same blob, or the stored one
    let entry =
        |id: &str, h: String, old: Option<&Arc<StoredEntry>>| match old.filter(|e| e.blob == h) {
            Some(e) => Ok(e.clone()),
            None => Ok::<_, ResolverError>(Arc::new(StoredEntry {
                layer: StoredProject::decode(blob(&h)?.as_slice())
                    .map_err(|e| ResolverError::Internal(e.to_string()))?,
                blob: h,
                bucket: bucket_of(id),
            })),
        };
    let bucketed =
        |k: &&Active| k.buckets.len() == BUCKETS && record.project_buckets.len() == BUCKETS;
    let projects = match known.filter(bucketed) {
        Some(k) => {
            let mut projects = k.projects.clone();
            for b in (0..BUCKETS).filter(|b| record.project_buckets[*b] != k.buckets[*b]) {
                let old = k.projects.bucket(b);
                let mut entries = BTreeMap::new();
                for p in read_bucket(store, rev, &record.project_buckets[b])? {
                    let e = entry(&p.id, p.blob, old.get(&p.id))?;
                    entries.insert(p.id, e);
                }
                projects.set_bucket(b, Arc::new(entries));
            }
            projects
        }
        None => {
            let mut projects = no_projects();
            for (id, h) in project_blobs(store, &record)? {
                let e = entry(&id, h, known.and_then(|k| k.projects.get(&id)))?;
                projects.insert(id, e);
            }
            projects
        }
    };
    Ok(Loaded {
        buckets: record.project_buckets.clone(),
        org_blob: record.org_blob.clone(),
        record,
        org,
        projects,
    })
}

/// A compiled next revision, to store and activate
struct Next {
    snapshot: Snapshot,
    org: Arc<StoredOrg>,
    org_blob: String,
    projects: Projects,
    buckets: Vec<String>,
    /// the blobs it adds to the store
    blobs: Vec<(String, Vec<u8>)>,
}

/// The projects of `next` that are not `prev`'s same entry, and the ids `next` no longer has:
/// only buckets the two do not share are compared
fn differences<'a>(
    prev: &Projects,
    next: &'a Projects,
) -> (Vec<(&'a String, &'a Arc<StoredEntry>)>, Vec<String>) {
    let (mut changed, mut removed) = (Vec::new(), Vec::new());
    for b in (0..BUCKETS).filter(|b| !Arc::ptr_eq(prev.bucket(*b), next.bucket(*b))) {
        let (old, new) = (prev.bucket(b), next.bucket(b));
        changed.extend(
            new.iter()
                .filter(|(id, e)| !old.get(*id).is_some_and(|o| Arc::ptr_eq(o, e))),
        );
        removed.extend(old.keys().filter(|id| !new.contains_key(*id)).cloned());
    }
    (changed, removed)
}

fn valid_project_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 200
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
        && !id.contains("..")
}

impl Resolver {
    /// Open over a store: load the last active revision, set or generate the admin and service
    /// tokens (a token given here replaces the stored one)
    pub async fn open(
        store: Arc<dyn Store>,
        admin_token: Option<String>,
        service_token: Option<String>,
    ) -> Result<(Resolver, Generated), ResolverError> {
        let Opened {
            admin_hash,
            service_hash,
            tokens,
            token_seq,
            stored_active,
            generated,
        } = blocking(&store, move |store| {
            Self::open_store(store, admin_token, service_token)
        })
        .await?;
        let (events, _) = watch::channel(None);
        let r = Resolver {
            store,
            active: ArcSwapOption::empty(),
            tokens: RwLock::new(tokens),
            token_seq: std::sync::Mutex::new(token_seq),
            publish: Mutex::new(stored_active.clone()),
            events,
            stopping: watch::channel(false).0,
            admin_hash,
            service_hash,
            droid_docs: Default::default(),
        };
        if let Some(rev) = stored_active {
            match r.load(&rev).await {
                Ok(active) => {
                    tracing::info!(revision = %rev, "serving the last active revision");
                    r.swap(active, "startup", String::new());
                }
                // fail closed: with no active policy every decision is refused
                Err(e) => {
                    tracing::error!(revision = %rev, error = %e, "the active revision does not compile; serving no policy")
                }
            }
        }
        Ok((r, generated))
    }

    /// Startup's store reads and writes: the admin and service token hashes, the token table and
    /// the active revision
    fn open_store(
        store: &dyn Store,
        admin_token: Option<String>,
        service_token: Option<String>,
    ) -> Result<Opened, ResolverError> {
        let mut generated = Generated::default();
        let secret = |key: &str,
                      given: Option<String>,
                      prefix: &str,
                      slot: &mut Option<String>|
         -> Result<[u8; 32], ResolverError> {
            if let Some(t) = given.filter(|t| !t.is_empty()) {
                let h = sha256(t.as_bytes());
                store.set_meta(key, &h)?;
                return Ok(h);
            }
            if let Some(h) = store.meta(key)?
                && let Ok(h) = <[u8; 32]>::try_from(h.as_slice())
            {
                return Ok(h);
            }
            let t = new_secret(prefix)?;
            let h = sha256(t.as_bytes());
            store.set_meta(key, &h)?;
            *slot = Some(t);
            Ok(h)
        };
        let admin_hash = secret(
            ADMIN_KEY,
            admin_token,
            "strata_admin_",
            &mut generated.admin_token,
        )?;
        let service_hash = secret(
            SERVICE_KEY,
            service_token,
            "strata_svc_",
            &mut generated.service_token,
        )?;
        let (tokens, token_seq) = Self::token_table(store)?;
        Ok(Opened {
            admin_hash,
            service_hash,
            tokens,
            token_seq,
            stored_active: store.active()?,
            generated,
        })
    }

    /// Every live token, and the number of the newest change
    fn token_table(store: &dyn Store) -> Result<(TokenTable, Option<i64>), ResolverError> {
        let (all, newest) = store.token_changes(None)?;
        let mut table = TokenTable::default();
        for t in all {
            table.insert(t);
        }
        Ok((table, newest))
    }

    /// Apply the token changes other resolvers made since the last ones applied (all tokens
    /// again on a store that does not number its changes)
    async fn catch_up_tokens(&self) -> Result<(), ResolverError> {
        let since = *self
            .token_seq
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (changes, newest) = blocking(&self.store, move |s| s.token_changes(since)).await?;
        if since.is_none() {
            // everything again: built aside, then swapped in (readers never wait for it)
            let mut fresh = TokenTable::default();
            for t in changes {
                fresh.insert(t);
            }
            *self.tokens.write().unwrap_or_else(PoisonError::into_inner) = fresh;
        } else {
            self.change_tokens(|table| changes.into_iter().for_each(|t| table.insert(t)));
        }
        *self
            .token_seq
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = newest;
        Ok(())
    }

    fn change_tokens<T>(&self, f: impl FnOnce(&mut TokenTable) -> T) -> T {
        f(&mut self.tokens.write().unwrap_or_else(PoisonError::into_inner))
    }

    /// How many live gateway tokens there are
    pub fn token_count(&self) -> usize {
        self.tokens
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Rebuild a stored revision. With the same org as the active one, only the projects whose
    /// layers differ are compiled (a rollback or another resolver's publish costs what a publish
    /// costs); otherwise everything is.
    async fn load(&self, rev: &str) -> Result<Active, ResolverError> {
        let id = rev.to_string();
        let known = self.active();
        let k = known.clone();
        let Loaded {
            record,
            org,
            org_blob,
            projects,
            buckets,
        } = blocking(&self.store, move |s| read_revision(s, &id, k.as_deref())).await?;
        let mut snapshot = match known.filter(|k| k.org_blob == org_blob) {
            Some(k) => {
                let (changed, removed) = differences(&k.projects, &projects);
                let changed = changed
                    .into_iter()
                    .map(|(id, e)| project_trees(id, &e.layer))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(ResolverError::Invalid)?;
                recompile(k.snapshot.clone(), changed, removed).await?
            }
            None => compile(bundle_of(&org, &projects).map_err(ResolverError::Invalid)?).await?,
        };
        // a revision stored by a version that hashed revisions otherwise (before issue 20's
        // project buckets) keeps the id it is stored and listed under: decisions name it
        if *snapshot.revision.0 != *record.revision {
            snapshot.revision = strata_policy::Revision(Arc::from(record.revision.as_str()));
        }
        Ok(Active {
            snapshot: Arc::new(snapshot),
            revision: record.revision,
            org,
            org_blob,
            projects,
            buckets,
        })
    }

    fn swap(&self, next: Active, kind: &str, previous: String) {
        let event = RevisionEvent {
            revision: next.revision.clone(),
            previous,
            kind: kind.to_string(),
            activated_at_unix_ms: now_ms(),
        };
        self.active.store(Some(Arc::new(next)));
        self.events.send_replace(Some(event));
    }

    /// The active state; `None` until a first bundle is published (every decision then fails closed)
    pub fn active(&self) -> Option<Arc<Active>> {
        self.active.load_full()
    }

    pub fn subscribe(&self) -> watch::Receiver<Option<RevisionEvent>> {
        self.events.subscribe()
    }

    /// Whether the server is shutting down ([`Resolver::stop_watches`]), and every change
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    /// End every `Watch` stream: the server is shutting down
    pub fn stop_watches(&self) {
        self.stopping.send_replace(true);
    }

    pub fn is_admin(&self, token: &str) -> bool {
        same(&sha256(token.as_bytes()), &self.admin_hash)
    }

    /// Gateways (service token) and admins may ask for decisions
    pub fn is_service(&self, token: &str) -> bool {
        let h = sha256(token.as_bytes());
        same(&h, &self.service_hash) || same(&h, &self.admin_hash)
    }

    /// The live (not revoked) gateway token `token`
    pub fn token(&self, token: &str) -> Option<Arc<StoredToken>> {
        let h = sha256(token.as_bytes());
        let table = self.tokens.read().unwrap_or_else(PoisonError::into_inner);
        table.by_hash.get(&h).cloned()
    }

    /// The store's change signals, when other resolvers share it
    pub fn store_watch(&self) -> Option<StoreWatch> {
        self.store.watch()
    }

    /// Under the publish lock: serve what the store has active, which another resolver sharing
    /// the store may have moved. A store error leaves everything as it was (to retry); a revision
    /// that cannot be rebuilt here fails closed, as at startup.
    async fn catch_up(&self, seen: &mut Option<String>) -> Result<(), ResolverError> {
        let current = blocking(&self.store, |s| s.active()).await?;
        if current == *seen {
            return Ok(());
        }
        if let Some(rev) = &current {
            let started = std::time::Instant::now();
            match self.load(rev).await {
                Ok(next) => {
                    let previous = self
                        .active()
                        .map(|a| a.revision.clone())
                        .unwrap_or_default();
                    tracing::info!(
                        revision = %rev,
                        previous = %previous,
                        load_and_compile_ms = started.elapsed().as_millis() as u64,
                        "following the revision another resolver activated"
                    );
                    self.swap(next, "sync", previous);
                }
                Err(e @ ResolverError::Store(_)) => return Err(e),
                Err(e) => {
                    tracing::error!(revision = %rev, error = %e, "the active revision does not compile here; serving no policy");
                    self.active.store(None);
                }
            }
        }
        *seen = current;
        Ok(())
    }

    /// Catch up with the store: the active revision and the gateway tokens, as other resolvers
    /// sharing it may have changed them. Compiles off the decision path, then swaps.
    pub async fn sync(&self) -> Result<(), ResolverError> {
        let mut seen = self.publish.lock().await;
        self.catch_up(&mut seen).await?;
        self.catch_up_tokens().await
    }

    /// Store and activate a compiled next revision (unless it is the active one)
    async fn activate_next(
        &self,
        seen: &mut Option<String>,
        next: Next,
        kind: &str,
        message: String,
        changed_project: Option<String>,
    ) -> Result<(String, bool, Problems), ResolverError> {
        let revision = next.snapshot.revision.to_string();
        // a project publish reports the org's warnings and that project's, not every project's
        let snap = &next.snapshot;
        let warnings = Problems {
            problems: match changed_project
                .as_ref()
                .and_then(|id| snap.projects.get(id))
            {
                Some(p) => (snap.compiled_org.diagnostics().iter())
                    .chain(&p.diagnostics)
                    .cloned()
                    .collect(),
                None => snap.diagnostics().to_vec(),
            },
        };
        let previous = self
            .active()
            .map(|a| a.revision.clone())
            .unwrap_or_default();
        if previous == revision {
            return Ok((revision, false, warnings));
        }
        let project_history: Vec<(String, String)> = changed_project
            .and_then(|id| next.projects.get(&id).map(|e| (id, e.blob.clone())))
            .into_iter()
            .collect();
        let record = StoredRevision {
            revision: revision.clone(),
            created_at_unix_ms: now_ms(),
            kind: kind.to_string(),
            message,
            org_blob: next.org_blob.clone(),
            project_blobs: Default::default(),
            project_buckets: next.buckets.clone(),
            project_count: Some(next.projects.len() as u64),
            changed_projects: project_history.iter().map(|(id, _)| id.clone()).collect(),
        };
        let activation = StoredActivation {
            revision: revision.clone(),
            kind: kind.to_string(),
            at_unix_ms: now_ms(),
        };
        let commit = Commit {
            blobs: next.blobs,
            revision: record,
            activation,
            project_history,
            replaces: seen.clone(),
        };
        blocking(&self.store, move |s| s.commit(commit)).await?;
        *seen = Some(revision.clone());
        self.swap(
            Active {
                snapshot: Arc::new(next.snapshot),
                revision: revision.clone(),
                org: next.org,
                org_blob: next.org_blob,
                projects: next.projects,
                buckets: next.buckets,
            },
            kind,
            previous,
        );
        tracing::info!(revision = %revision, kind, "activated");
        Ok((revision, true, warnings))
    }

    /// Validate, compile, store and activate a new org bundle (project layers are kept)
    pub async fn publish_org(
        &self,
        files: Vec<v1::File>,
        message: String,
    ) -> Result<(String, bool, Problems), ResolverError> {
        let org = StoredOrg { files };
        org_tree(&org).map_err(ResolverError::Invalid)?;
        let org_bytes = org.encode_to_vec();
        let org_blob = blob_hash(&org_bytes);
        let org = Arc::new(org);
        let mut seen = self.publish.lock().await;
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.catch_up(&mut seen).await?;
            let active = self.active();
            let projects = active
                .as_ref()
                .map(|a| a.projects.clone())
                .unwrap_or_else(no_projects);
            let prev = active.as_ref().map(|a| a.buckets.as_slice()).unwrap_or(&[]);
            let (buckets, mut blobs) = rebucket(prev, &projects, None);
            blobs.push((org_blob.clone(), org_bytes.clone()));
            // a new org: every project compiles again (project blobs are stored already)
            let snapshot =
                compile(bundle_of(&org, &projects).map_err(ResolverError::Invalid)?).await?;
            let next = Next {
                snapshot,
                org: org.clone(),
                org_blob: org_blob.clone(),
                projects,
                buckets,
                blobs,
            };
            let r = self
                .activate_next(&mut seen, next, "publish-org", message.clone(), None)
                .await;
            match r {
                Err(e) if is_conflict(&e) && attempt < PUBLISH_ATTEMPTS => continue,
                r => return r,
            }
        }
    }

    /// Validate, compile, store and activate a project's layer (with its folders)
    pub async fn publish_project(
        &self,
        id: String,
        files: Vec<v1::File>,
        folders: Vec<v1::FolderLayer>,
        message: String,
    ) -> Result<(String, bool, Problems), ResolverError> {
        if !valid_project_id(&id) {
            return Err(ResolverError::BadRequest(format!(
                "invalid project id `{id}`: use letters, digits, `-`, `_`, `.` and `/`"
            )));
        }
        let (entry, bytes) = StoredEntry::new(&id, StoredProject { files, folders });
        let trees = project_trees(&id, &entry.layer).map_err(ResolverError::Invalid)?;
        let entry = Arc::new(entry);
        let mut seen = self.publish.lock().await;
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.catch_up(&mut seen).await?;
            let Some(active) = self.active() else {
                return Err(ResolverError::Precondition(
                    "no org bundle is published yet: publish the org bundle first".to_string(),
                ));
            };
            // this project alone compiles; every other one is the active revision's
            let snapshot = recompile(active.snapshot.clone(), vec![trees.clone()], vec![]).await?;
            let mut projects = active.projects.clone();
            projects.insert(id.clone(), entry.clone());
            let (buckets, mut blobs) = rebucket(&active.buckets, &projects, Some(entry.bucket));
            blobs.push((entry.blob.clone(), bytes.clone()));
            let next = Next {
                snapshot,
                org: active.org.clone(),
                org_blob: active.org_blob.clone(),
                projects,
                buckets,
                blobs,
            };
            let r = self
                .activate_next(
                    &mut seen,
                    next,
                    "publish-project",
                    message.clone(),
                    Some(id.clone()),
                )
                .await;
            match r {
                Err(e) if is_conflict(&e) && attempt < PUBLISH_ATTEMPTS => continue,
                r => return r,
            }
        }
    }

    /// Every revision, newest first, and which is active. A revision's projects are not read:
    /// `project_count` and `changed_projects` say what a listing shows (`project_blobs` is set
    /// only for a revision stored before buckets, whose record lists them). A revision stored
    /// with buckets but before `project_count` has its buckets read to count them.
    pub async fn revisions(&self) -> Result<(Vec<StoredRevision>, Option<String>), ResolverError> {
        let (mut revs, active) = blocking(&self.store, |s| {
            let mut revs = s.revisions()?;
            for r in revs.iter_mut().filter(|r| r.project_count.is_none()) {
                let n = match r.project_buckets.is_empty() {
                    true => r.project_blobs.len(),
                    false => project_blobs(s, r)?.len(),
                };
                r.project_count = Some(n as u64);
            }
            Ok::<_, ResolverError>((revs, s.active()?))
        })
        .await?;
        revs.sort_by(|a, b| {
            b.created_at_unix_ms
                .cmp(&a.created_at_unix_ms)
                .then(a.revision.cmp(&b.revision))
        });
        Ok((revs, active))
    }

    /// Make an earlier revision active again; `rev` may be a unique prefix
    pub async fn rollback(&self, rev: &str) -> Result<String, ResolverError> {
        let mut seen = self.publish.lock().await;
        if rev.is_empty() {
            return Err(ResolverError::NotFound("revision ``".to_string()));
        }
        let prefix = rev.to_string();
        let matches: Vec<String> = blocking(&self.store, move |s| s.revision_ids(&prefix)).await?;
        let target = match matches.as_slice() {
            [one] => one.clone(),
            [] => return Err(ResolverError::NotFound(format!("revision `{rev}`"))),
            _ => {
                return Err(ResolverError::BadRequest(format!(
                    "`{rev}` matches {} revisions; give more digits",
                    matches.len()
                )));
            }
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.catch_up(&mut seen).await?;
            let active = self.load(&target).await?;
            let activation = StoredActivation {
                revision: target.clone(),
                kind: "rollback".to_string(),
                at_unix_ms: now_ms(),
            };
            let replaces = seen.clone();
            match blocking(&self.store, move |s| s.activate(activation, replaces)).await {
                Err(e) if is_conflict(&e) && attempt < PUBLISH_ATTEMPTS => continue,
                r => r?,
            }
            *seen = Some(target.clone());
            let previous = self
                .active()
                .map(|a| a.revision.clone())
                .unwrap_or_default();
            self.swap(active, "rollback", previous);
            return Ok(target);
        }
    }

    pub async fn create_token(
        &self,
        user: String,
        groups: Vec<String>,
        projects: Vec<String>,
        description: String,
    ) -> Result<(String, StoredToken), ResolverError> {
        if user.is_empty() {
            return Err(ResolverError::BadRequest(
                "a token needs a user".to_string(),
            ));
        }
        let token = new_secret("strata_gw_")?;
        let id = format!("tok_{}", &new_secret("")?[..16]);
        let record = StoredToken {
            token_id: id,
            hash: sha256(token.as_bytes()).to_vec(),
            user,
            groups,
            projects,
            description,
            created_at_unix_ms: now_ms(),
            revoked: false,
        };
        let _guard = self.publish.lock().await;
        let put = record.clone();
        blocking(&self.store, move |s| s.put_token(&put)).await?;
        self.change_tokens(|t| t.insert(record.clone()));
        Ok((token, record))
    }

    pub async fn list_tokens(&self) -> Result<Vec<StoredToken>, ResolverError> {
        let mut t = blocking(&self.store, |s| s.tokens()).await?;
        t.sort_by_key(|a| a.created_at_unix_ms);
        Ok(t)
    }

    pub async fn revoke_token(&self, id: &str) -> Result<(), ResolverError> {
        let _guard = self.publish.lock().await;
        let known = self.change_tokens(|t| t.by_id.get(id).and_then(|h| t.by_hash.get(h)).cloned());
        let id = id.to_string();
        let mut t = match known {
            Some(t) => StoredToken::clone(&t),
            // not live here (revoked already, or not caught up with another resolver): the store
            None => {
                let find = id.clone();
                blocking(&self.store, move |s| s.token(&find))
                    .await?
                    .ok_or_else(|| ResolverError::NotFound(format!("token `{id}`")))?
            }
        };
        t.revoked = true;
        let put = t.clone();
        blocking(&self.store, move |s| s.put_token(&put)).await?;
        self.change_tokens(|table| table.remove(&id));
        Ok(())
    }

    /// Bind a token to other projects (none: any project); for the admin console
    pub async fn bind_token(
        &self,
        id: &str,
        projects: Vec<String>,
    ) -> Result<StoredToken, ResolverError> {
        let _guard = self.publish.lock().await;
        let find = id.to_string();
        let mut token = blocking(&self.store, move |s| s.token(&find))
            .await?
            .filter(|t| !t.revoked)
            .ok_or_else(|| ResolverError::NotFound(format!("token `{id}`")))?;
        token.projects = projects;
        let put = token.clone();
        blocking(&self.store, move |s| s.put_token(&put)).await?;
        self.change_tokens(|table| table.insert(token.clone()));
        Ok(token)
    }

    /// A stored revision, read and compiled (not activated): for the admin console's diffs
    pub async fn revision(&self, rev: &str) -> Result<Active, ResolverError> {
        self.load(rev).await
    }

    pub async fn project_history(&self, id: &str) -> Result<Vec<String>, ResolverError> {
        let id = id.to_string();
        blocking(&self.store, move |s| s.project_history(&id)).await
    }

    /// Append to the admin console's change log, in the store (so it survives a restart and is
    /// shared by the replicas of a PostgreSQL store)
    pub async fn record_change(&self, change: StoredChange) -> Result<(), ResolverError> {
        blocking(&self.store, move |s| s.add_change(&change)).await
    }

    /// The console's change log, newest first: `limit` after skipping `skip`, and the total
    pub async fn changes(
        &self,
        skip: usize,
        limit: usize,
    ) -> Result<(Vec<StoredChange>, u64), ResolverError> {
        blocking(&self.store, move |s| s.changes(skip, limit)).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::store::MemStore;

    #[tokio::test]
    async fn tokens_are_created_looked_up_and_revoked_one_at_a_time() {
        let store: Arc<dyn Store> = Arc::new(MemStore::default());
        let open = || Resolver::open(store.clone(), Some("a".into()), Some("s".into()));
        let (r, _) = open().await.unwrap();
        let mut made = Vec::new();
        for i in 0..50 {
            let (secret, rec) = r
                .create_token(format!("u{i}"), vec![], vec![], String::new())
                .await
                .unwrap();
            made.push((secret, rec));
        }
        assert_eq!(r.token_count(), 50);
        let (secret, rec) = &made[7];
        assert_eq!(r.token(secret).unwrap().user, "u7");
        r.revoke_token(&rec.token_id).await.unwrap();
        assert!(r.token(secret).is_none());
        assert_eq!(r.token(&made[8].0).unwrap().user, "u8");
        // revoking twice finds it in the store, and an unknown id is an error
        r.revoke_token(&rec.token_id).await.unwrap();
        assert!(r.revoke_token("tok_nope").await.is_err());
        // a resolver opening the same store sees the same live tokens
        let (again, _) = open().await.unwrap();
        assert_eq!(again.token_count(), 49);
        assert!(again.token(secret).is_none());
        assert_eq!(again.token(&made[49].0).unwrap().user, "u49");
    }
}
