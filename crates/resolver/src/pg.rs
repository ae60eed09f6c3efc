//! The store in PostgreSQL, so that several resolver replicas can share one database.
//!
//! - **Tables** are created and upgraded by the versioned migrations in `migrations/`, applied at
//!   open in one transaction under an advisory lock, so replicas starting together apply each
//!   migration once; a database whose schema is newer than this binary is refused.
//! - **Activation** is one transaction: lock the `strata_active` row (`SELECT ... FOR UPDATE`),
//!   check it still names the revision the new one was built on (else [`StoreError::Conflict`]),
//!   write, move the pointer and `NOTIFY strata_active`. PostgreSQL delivers a notification only
//!   when its transaction commits, so listeners never see a change that did not happen.
//! - **Push**: a listener task keeps one connection `LISTEN`ing on `strata_active` and
//!   `strata_tokens`, checks the active pointer every [`CHECK_EVERY`] as a safety net, reconnects
//!   with backoff when the connection breaks, and reports through [`StoreWatch`]: `changed` on
//!   every notification, change seen by the check, and reconnect; `ready` while connected.
//!
//! The client is `tokio-postgres` without TLS (loopback or a trusted network), on a runtime of
//! the store's own, on one thread: the [`Store`] trait is synchronous, so a call hands its work to
//! that runtime and waits for the answer. Nothing here runs on the caller's runtime, so a call
//! cannot deadlock it (the resolver makes every store call on a blocking thread anyway).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strata_pg::{MigrateError, Migration, Schema};
use strata_proto::v1::{StoredActivation, StoredChange, StoredRevision, StoredToken};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::timeout;
use tokio_postgres::{AsyncMessage, Client, Config};

use crate::store::{Commit, Store, StoreError, StoreWatch, check_active};

/// How long to wait for a connection to the database
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one store call may take (bundles can be tens of MiB)
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the listener reads the active pointer, in case a notification was lost
pub const CHECK_EVERY: Duration = Duration::from_secs(5);
/// The first and the longest wait before reconnecting the listener
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The notification channels
const ACTIVE_CHANNEL: &str = "strata_active";
const TOKENS_CHANNEL: &str = "strata_tokens";
/// Every schema version this binary knows, oldest first
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "bundles, revisions, activations, the active pointer, project history, tokens, meta",
        sql: include_str!("../migrations/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "a revision's projects in buckets of blobs",
        sql: include_str!("../migrations/0002_project_buckets.sql"),
    },
    Migration {
        version: 3,
        name: "the admin console's change log",
        sql: include_str!("../migrations/0003_console_changes.sql"),
    },
    Migration {
        version: 4,
        name: "token changes by number; a revision's project count and changed projects",
        sql: include_str!("../migrations/0004_token_changes_revision_meta.sql"),
    },
];

/// The advisory lock token writes take inside their transaction ("STRATA TOKENS"), so that the
/// numbers of `strata_tokens.changed` are taken in commit order: a replica that has applied the
/// changes up to n has seen every change numbered n or less
const TOKEN_WRITE_LOCK: i64 = 0x5354_5241_544f;

/// The store's schema, recorded in `strata_migrations`; migrated under the advisory lock
/// "STRATA"
pub const SCHEMA: Schema = Schema {
    table: "strata_migrations",
    lock: 0x5354_5241_5441,
    migrations: MIGRATIONS,
};

/// A shared store in PostgreSQL; see the module docs
pub struct PgStore {
    rt: tokio::runtime::Handle,
    db: Arc<Db>,
    watch: StoreWatch,
    /// dropping it stops the store's runtime (the listener and any call in flight)
    _stop: oneshot::Sender<()>,
}

struct Db {
    config: Config,
    /// the same, with its own `application_name` (`...-listen`) so operators can tell it apart
    listen_config: Config,
    /// TLS as the connection string asks (`sslmode`, `sslrootcert`)
    tls: strata_pg::Tls,
    /// `host:port/dbname`, for messages (never the password)
    target: String,
    /// the connection kept between calls
    idle: Mutex<Option<Client>>,
}

/// Why a database call failed, before it becomes a [`StoreError`]
enum Failure {
    Pg(tokio_postgres::Error),
    Store(StoreError),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        Failure::Pg(e)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

type Attempt<T> = Result<Result<T, Failure>, tokio::time::error::Elapsed>;

impl PgStore {
    /// Connect to `url` (`postgres://user[:password]@host[:port]/dbname`, or the key=value form),
    /// apply the migrations this database lacks and start listening for changes
    pub fn open(url: &str) -> Result<PgStore, StoreError> {
        let strata_pg::Target { mut config, tls } =
            strata_pg::Target::parse(url).map_err(|e| StoreError::Backend(e.to_string()))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("strata-resolver");
        }
        let target = strata_pg::describe(&config);
        let mut listen_config = config.clone();
        listen_config.application_name(format!(
            "{}-listen",
            config.get_application_name().unwrap_or("strata-resolver")
        ));
        let (stop, stopped) = oneshot::channel::<()>();
        let (handle_tx, handle_rx) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("strata-pg".to_string())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => {
                        let _ = handle_tx.send(Ok(rt.handle().clone()));
                        rt.block_on(async {
                            let _ = stopped.await;
                        });
                    }
                    Err(e) => {
                        let _ = handle_tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| StoreError::Backend(format!("cannot start the store's thread: {e}")))?;
        let rt = handle_rx
            .recv()
            .map_err(|_| StoreError::Backend("the store's thread stopped".to_string()))?
            .map_err(|e| StoreError::Backend(format!("cannot start the store's runtime: {e}")))?;
        let (changed_tx, changed) = watch::channel(0u64);
        let (ready_tx, ready) = watch::channel(true);
        let store = PgStore {
            rt,
            db: Arc::new(Db {
                config,
                listen_config,
                tls,
                target,
                idle: Mutex::new(None),
            }),
            watch: StoreWatch { changed, ready },
            _stop: stop,
        };
        store.call(|db| async move { db.migrate(&SCHEMA).await })?;
        store
            .rt
            .spawn(listen(store.db.clone(), changed_tx, ready_tx));
        Ok(store)
    }

    /// Run `work` on the store's runtime and wait for its answer
    fn call<T, F>(&self, work: impl FnOnce(Arc<Db>) -> F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let fut = work(self.db.clone());
        self.rt.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv()
            .map_err(|_| StoreError::Unavailable("the store's runtime has stopped".to_string()))?
    }
}

impl Db {
    fn classify(&self, e: tokio_postgres::Error) -> StoreError {
        match e.as_db_error() {
            // 08: connection exceptions, 57P: the server is shutting down or starting
            Some(db)
                if !db.code().code().starts_with("08") && !db.code().code().starts_with("57P") =>
            {
                StoreError::Backend(format!("PostgreSQL at {}: {db}", self.target))
            }
            _ => StoreError::Unavailable(format!(
                "PostgreSQL at {}: {}",
                self.target,
                strata_proto::transport::error_chain(&e)
            )),
        }
    }

    async fn connect(
        &self,
        config: &Config,
    ) -> Result<(Client, strata_pg::Connection), StoreError> {
        match timeout(CONNECT_TIMEOUT, config.connect(self.tls.clone())).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(self.classify(e)),
            Err(_) => Err(StoreError::Unavailable(format!(
                "PostgreSQL at {}: no connection within {} s",
                self.target,
                CONNECT_TIMEOUT.as_secs()
            ))),
        }
    }

    /// The idle connection, or a new one
    async fn client(&self) -> Result<Client, StoreError> {
        let idle = self.idle.lock().ok().and_then(|mut slot| slot.take());
        if let Some(c) = idle.filter(|c| !c.is_closed()) {
            return Ok(c);
        }
        let (client, connection) = self.connect(&self.config).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    /// Keep the connection for the next call if it is still good; turn the outcome into ours
    fn finish<T>(&self, client: Client, r: Attempt<T>) -> Result<T, StoreError> {
        match r {
            Ok(r) => {
                if !client.is_closed()
                    && let Ok(mut slot) = self.idle.lock()
                {
                    *slot = Some(client);
                }
                r.map_err(|f| match f {
                    Failure::Pg(e) => self.classify(e),
                    Failure::Store(e) => e,
                })
            }
            // the connection may be stuck: drop it (and with it any open transaction)
            Err(_) => Err(StoreError::Unavailable(format!(
                "PostgreSQL at {}: no answer within {} s",
                self.target,
                CALL_TIMEOUT.as_secs()
            ))),
        }
    }

    async fn migrate(&self, schema: &Schema) -> Result<(), StoreError> {
        let mut c = self.client().await?;
        let r = timeout(CALL_TIMEOUT, async {
            match schema.migrate(&mut c).await {
                Ok(applied) => {
                    for m in applied {
                        tracing::info!(version = m.version, name = m.name, "applied a database migration");
                    }
                    Ok(())
                }
                Err(MigrateError::Pg(e)) => Err(Failure::Pg(e)),
                Err(MigrateError::Newer { found, known }) => Err(Failure::Store(StoreError::Backend(format!(
                    "the database {} has schema version {found}, newer than this resolver knows ({known}): upgrade the resolver",
                    self.target
                )))),
            }
        })
        .await;
        self.finish(c, r)
    }

    async fn commit(&self, commit: Commit) -> Result<(), StoreError> {
        let mut c = self.client().await?;
        let r = timeout(CALL_TIMEOUT, async {
            let tx = c.transaction().await?;
            let found: Option<String> = tx
                .query_one("SELECT revision FROM strata_active FOR UPDATE", &[])
                .await?
                .try_get(0)?;
            check_active(found, &commit.replaces)?;
            for (hash, bytes) in &commit.blobs {
                tx.execute(
                    "INSERT INTO strata_blobs (hash, bytes) VALUES ($1, $2) ON CONFLICT (hash) DO NOTHING",
                    &[hash, bytes],
                )
                .await?;
            }
            let r = &commit.revision;
            tx.execute(
                "INSERT INTO strata_revisions (revision, created_at_unix_ms, kind, message, org_blob,
                    project_buckets, project_count, changed_projects)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (revision) DO UPDATE SET created_at_unix_ms = $2, kind = $3,
                    message = $4, org_blob = $5, project_buckets = $6, project_count = $7,
                    changed_projects = $8",
                &[
                    &r.revision,
                    &r.created_at_unix_ms,
                    &r.kind,
                    &r.message,
                    &r.org_blob,
                    &r.project_buckets,
                    &r.project_count.map(|n| n as i64),
                    &r.changed_projects,
                ],
            )
            .await?;
            for (project, blob) in &r.project_blobs {
                tx.execute(
                    "INSERT INTO strata_revision_projects (revision, project, blob) VALUES ($1, $2, $3)
                     ON CONFLICT (revision, project) DO UPDATE SET blob = $3",
                    &[&r.revision, project, blob],
                )
                .await?;
            }
            for (project, blob) in &commit.project_history {
                tx.execute(
                    "INSERT INTO strata_project_history (project, blob) VALUES ($1, $2)",
                    &[project, blob],
                )
                .await?;
            }
            activate(&tx, &commit.activation).await?;
            tx.commit().await?;
            Ok(())
        })
        .await;
        self.finish(c, r)
    }

    async fn activate(
        &self,
        a: StoredActivation,
        replaces: Option<String>,
    ) -> Result<(), StoreError> {
        let mut c = self.client().await?;
        let r = timeout(CALL_TIMEOUT, async {
            let tx = c.transaction().await?;
            let found: Option<String> = tx
                .query_one("SELECT revision FROM strata_active FOR UPDATE", &[])
                .await?
                .try_get(0)?;
            check_active(found, &replaces)?;
            activate(&tx, &a).await?;
            tx.commit().await?;
            Ok(())
        })
        .await;
        self.finish(c, r)
    }

    async fn active(&self) -> Result<Option<String>, StoreError> {
        let c = self.client().await?;
        let r = timeout(CALL_TIMEOUT, async {
            Ok(c.query_one("SELECT revision FROM strata_active", &[])
                .await?
                .try_get(0)?)
        })
        .await;
        self.finish(c, r)
    }

    /// Revisions with their project layers; `id` = `None` for all
    async fn revisions(&self, id: Option<String>) -> Result<Vec<StoredRevision>, StoreError> {
        let c = self.client().await?;
        let r = timeout(CALL_TIMEOUT, async {
            let rows = c
                .query(
                    "SELECT revision, created_at_unix_ms, kind, message, org_blob, project_buckets,
                        project_count, changed_projects
                     FROM strata_revisions
                     WHERE $1::text IS NULL OR revision = $1 ORDER BY revision",
                    &[&id],
                )
                .await?;
            let mut revs = Vec::with_capacity(rows.len());
            let mut at = HashMap::new();
            for row in rows {
                at.insert(row.try_get::<_, String>(0)?, revs.len());
                revs.push(StoredRevision {
                    revision: row.try_get(0)?,
                    created_at_unix_ms: row.try_get(1)?,
                    kind: row.try_get(2)?,
                    message: row.try_get(3)?,
                    org_blob: row.try_get(4)?,
                    project_blobs: HashMap::new(),
                    project_buckets: row.try_get(5)?,
                    project_count: row.try_get::<_, Option<i64>>(6)?.map(|n| n as u64),
                    changed_projects: row.try_get(7)?,
                });
            }
            let rows = c
                .query(
                    "SELECT revision, project, blob FROM strata_revision_projects
                     WHERE $1::text IS NULL OR revision = $1",
                    &[&id],
                )
                .await?;
            for row in rows {
                let rev: String = row.try_get(0)?;
                if let Some(r) = at.get(&rev).and_then(|&i| revs.get_mut(i)) {
                    r.project_blobs.insert(row.try_get(1)?, row.try_get(2)?);
                }
            }
            Ok(revs)
        })
        .await;
        self.finish(c, r)
    }

    async fn revision_ids(&self, prefix: String) -> Result<Vec<String>, StoreError> {
        // a whole id (what a rollback by id sends) is one index lookup; a prefix scans the ids
        let sql = if prefix.len() == 64 {
            "SELECT revision FROM strata_revisions WHERE revision = $1"
        } else {
            "SELECT revision FROM strata_revisions WHERE starts_with(revision, $1)"
        };
        self.strings_by_key(sql, prefix).await
    }

    /// The one text column of every row a single-key query returns
    async fn strings_by_key(
        &self,
        sql: &'static str,
        key: String,
    ) -> Result<Vec<String>, StoreError> {
        let c = self.client().await?;
        let r = timeout(CALL_TIMEOUT, async {
            c.query(sql, &[&key])
                .await?
                .iter()
                .map(|row| Ok(row.try_get(0)?))
                .collect()
        })
        .await;
        self.finish(c, r)
    }

    async fn activations(&self) -> Result<Vec<StoredActivation>, StoreError> {
        let c = self.client().await?;
        let r = timeout(CALL_TIMEOUT, async {
            c.query(
                "SELECT revision, kind, at_unix_ms FROM strata_activations ORDER BY seq",
                &[],
            )
            .await?
            .iter()
            .map(|row| {
                Ok(StoredActivation {
                    revision: row.try_get(0)?,
                    kind: row.try_get(1)?,
                    at_unix_ms: row.try_get(2)?,
                })
            })
            .collect()
        })
        .await;
        self.finish(c, r)
    }

    async fn blob(&self, hash: String) -> Result<Option<Vec<u8>>, StoreError> {
        self.bytes_by_key("SELECT bytes FROM strata_blobs WHERE hash = $1", hash)
            .await
    }

    /// The one `bytea` column a single-key query returns, if a row matches
    async fn bytes_by_key(
        &self,
        sql: &'static str,
        key: String,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let c = self.client().await?;
        let r = timeout(CALL_TIMEOUT, async {
            match c.query_opt(sql, &[&key]).await? {
                Some(row) => Ok(Some(row.try_get(0)?)),
                None => Ok(None),
            }
        })
        .await;
        self.finish(c, r)
    }

    async fn project_history(&self, project: String) -> Result<Vec<String>, StoreError> {
        self.strings_by_key(
            "SELECT blob FROM strata_project_history WHERE project = $1 ORDER BY seq",
            project,
        )
        .await
    }

    async fn put_token(&self, t: StoredToken) -> Result<(), StoreError> {
        let mut c = self.client().await?;
        let r = timeout(CALL_TIMEOUT, async {
            let tx = c.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&TOKEN_WRITE_LOCK])
                .await?;
            tx.execute(
                "INSERT INTO strata_tokens (token_id, hash, user_name, groups, projects, description,
                    created_at_unix_ms, revoked)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (token_id) DO UPDATE SET hash = $2, user_name = $3, groups = $4,
                    projects = $5, description = $6, created_at_unix_ms = $7, revoked = $8,
                    changed = nextval('strata_token_changes')",
                &[
                    &t.token_id,
                    &t.hash,
                    &t.user,
                    &t.groups,
                    &t.projects,
                    &t.description,
                    &t.created_at_unix_ms,
                    &t.revoked,
                ],
            )
            .await?;
            tx.execute("SELECT pg_notify($1, $2)", &[&TOKENS_CHANNEL, &t.token_id])
                .await?;
            tx.commit().await?;
            Ok(())
        })
        .await;
        self.finish(c, r)
    }

    async fn tokens(&self) -> Result<Vec<StoredToken>, StoreError> {
        Ok(self.token_changes(None).await?.0)
    }

    /// The tokens changed after `since` (all for `None`), and the newest change number
    async fn token_changes(
        &self,
        since: Option<i64>,
    ) -> Result<(Vec<StoredToken>, Option<i64>), StoreError> {
        let c = self.client().await?;
        let r = timeout(CALL_TIMEOUT, async {
            let rows = c
                .query(
                    "SELECT token_id, hash, user_name, groups, projects, description,
                        created_at_unix_ms, revoked, changed
                     FROM strata_tokens WHERE $1::bigint IS NULL OR changed > $1
                     ORDER BY changed",
                    &[&since],
                )
                .await?;
            let mut newest = since.unwrap_or(0);
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                newest = newest.max(row.try_get(8)?);
                out.push(StoredToken {
                    token_id: row.try_get(0)?,
                    hash: row.try_get(1)?,
                    user: row.try_get(2)?,
                    groups: row.try_get(3)?,
                    projects: row.try_get(4)?,
                    description: row.try_get(5)?,
                    created_at_unix_ms: row.try_get(6)?,
                    revoked: row.try_get(7)?,
                });
            }
            Ok((out, Some(newest)))
        })
        .await;
        self.finish(c, r)
    }

    async fn meta(&self, key: String) -> Result<Option<Vec<u8>>, StoreError> {
        self.bytes_by_key("SELECT value FROM strata_meta WHERE key = $1", key)
            .await
    }

    async fn set_meta(&self, key: String, value: Vec<u8>) -> Result<(), StoreError> {
        let c = self.client().await?;
        let r = timeout(CALL_TIMEOUT, async {
            c.execute(
                "INSERT INTO strata_meta (key, value) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET value = $2",
                &[&key, &value],
            )
            .await?;
            Ok(())
        })
        .await;
        self.finish(c, r)
    }

    async fn add_change(&self, ch: StoredChange) -> Result<(), StoreError> {
        let c = self.client().await?;
        let r = timeout(CALL_TIMEOUT, async {
            c.execute(
                "INSERT INTO strata_changes (at_unix_ms, who, what, detail) VALUES ($1, $2, $3, $4)",
                &[&ch.at_unix_ms, &ch.who, &ch.what, &ch.detail],
            )
            .await?;
            Ok(())
        })
        .await;
        self.finish(c, r)
    }

    async fn changes(&self, skip: i64, limit: i64) -> Result<(Vec<StoredChange>, u64), StoreError> {
        let c = self.client().await?;
        let r = timeout(CALL_TIMEOUT, async {
            let page = c
                .query(
                    "SELECT at_unix_ms, who, what, detail FROM strata_changes
                     ORDER BY seq DESC OFFSET $1 LIMIT $2",
                    &[&skip, &limit],
                )
                .await?
                .iter()
                .map(|row| {
                    Ok(StoredChange {
                        at_unix_ms: row.try_get(0)?,
                        who: row.try_get(1)?,
                        what: row.try_get(2)?,
                        detail: row.try_get(3)?,
                    })
                })
                .collect::<Result<Vec<_>, Failure>>()?;
            let total: i64 = c
                .query_one("SELECT count(*) FROM strata_changes", &[])
                .await?
                .try_get(0)?;
            Ok((page, total as u64))
        })
        .await;
        self.finish(c, r)
    }
}

/// Inside an activation's transaction: log it, move the pointer, notify on commit
async fn activate(
    tx: &tokio_postgres::Transaction<'_>,
    a: &StoredActivation,
) -> Result<(), tokio_postgres::Error> {
    tx.execute(
        "INSERT INTO strata_activations (revision, kind, at_unix_ms) VALUES ($1, $2, $3)",
        &[&a.revision, &a.kind, &a.at_unix_ms],
    )
    .await?;
    tx.execute(
        "UPDATE strata_active SET revision = $1, generation = generation + 1",
        &[&a.revision],
    )
    .await?;
    tx.execute("SELECT pg_notify($1, $2)", &[&ACTIVE_CHANNEL, &a.revision])
        .await?;
    Ok(())
}

/// What the safety-net check compares: the active revision and the newest token change
type Seen = (Option<String>, Option<i64>);

async fn check(client: &Client) -> Result<Seen, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT (SELECT revision FROM strata_active), (SELECT max(changed) FROM strata_tokens)",
            &[],
        )
        .await?;
    Ok((row.try_get(0)?, row.try_get(1)?))
}

/// The listener: forever connect, LISTEN, report; reconnect with backoff when the connection breaks
async fn listen(db: Arc<Db>, changed: watch::Sender<u64>, ready: watch::Sender<bool>) {
    let mut backoff = strata_transport::Backoff::new(BACKOFF_MIN, BACKOFF_MAX);
    let mut last: Option<Seen> = None;
    loop {
        let since = Instant::now();
        let e = listen_once(&db, &changed, &ready, &mut last).await;
        if ready.send_replace(false) {
            tracing::warn!(error = %e, "lost the database: decisions go on with the last snapshot, publishing fails until it is back; reconnecting");
        }
        tokio::time::sleep(backoff.wait_after(since.elapsed())).await;
    }
}

/// One connection's life; returns why it ended
async fn listen_once(
    db: &Db,
    changed: &watch::Sender<u64>,
    ready: &watch::Sender<bool>,
    last: &mut Option<Seen>,
) -> StoreError {
    let (client, mut connection) = match db.connect(&db.listen_config).await {
        Ok(c) => c,
        Err(e) => return e,
    };
    let (tx, mut notified) = mpsc::unbounded_channel::<()>();
    // drives the connection and forwards notifications; ends (dropping `tx`) when it breaks
    let driver = tokio::spawn(async move {
        while let Some(m) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            match m {
                Ok(AsyncMessage::Notification(_)) => {
                    if tx.send(()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    let bump = || changed.send_modify(|n| *n = n.wrapping_add(1));
    let r: Result<(), Failure> = async {
        client
            .batch_execute(&format!("LISTEN {ACTIVE_CHANNEL}; LISTEN {TOKENS_CHANNEL}"))
            .await?;
        *last = Some(check(&client).await?);
        if !ready.send_replace(true) {
            tracing::info!(database = %db.target, "connected to the database; catching up");
        }
        // whatever happened while this connection was not listening
        bump();
        let mut tick = tokio::time::interval(CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                n = notified.recv() => match n {
                    Some(()) => bump(),
                    None => return Err(Failure::Store(StoreError::Unavailable(format!(
                        "PostgreSQL at {}: the listening connection closed", db.target
                    )))),
                },
                _ = tick.tick() => {
                    let now = timeout(CALL_TIMEOUT, check(&client)).await.map_err(|_| {
                        StoreError::Unavailable(format!(
                            "PostgreSQL at {}: no answer within {} s", db.target, CALL_TIMEOUT.as_secs()
                        ))
                    })??;
                    if last.as_ref() != Some(&now) {
                        *last = Some(now);
                        bump();
                    }
                }
            }
        }
    }
    .await;
    driver.abort();
    match r {
        Ok(()) => {
            StoreError::Unavailable(format!("PostgreSQL at {}: stopped listening", db.target))
        }
        Err(Failure::Pg(e)) => db.classify(e),
        Err(Failure::Store(e)) => e,
    }
}

impl Store for PgStore {
    fn commit(&self, c: Commit) -> Result<(), StoreError> {
        self.call(|db| async move { db.commit(c).await })
    }
    fn activate(&self, a: StoredActivation, replaces: Option<String>) -> Result<(), StoreError> {
        self.call(|db| async move { db.activate(a, replaces).await })
    }
    fn active(&self) -> Result<Option<String>, StoreError> {
        self.call(|db| async move { db.active().await })
    }
    fn revision(&self, id: &str) -> Result<Option<StoredRevision>, StoreError> {
        let id = id.to_string();
        self.call(|db| async move { Ok(db.revisions(Some(id)).await?.pop()) })
    }
    fn revisions(&self) -> Result<Vec<StoredRevision>, StoreError> {
        self.call(|db| async move { db.revisions(None).await })
    }
    fn revision_ids(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let prefix = prefix.to_string();
        self.call(|db| async move { db.revision_ids(prefix).await })
    }
    fn activations(&self) -> Result<Vec<StoredActivation>, StoreError> {
        self.call(|db| async move { db.activations().await })
    }
    fn blob(&self, hash: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let hash = hash.to_string();
        self.call(|db| async move { db.blob(hash).await })
    }
    fn project_history(&self, project: &str) -> Result<Vec<String>, StoreError> {
        let project = project.to_string();
        self.call(|db| async move { db.project_history(project).await })
    }
    fn put_token(&self, t: &StoredToken) -> Result<(), StoreError> {
        let t = t.clone();
        self.call(|db| async move { db.put_token(t).await })
    }
    fn tokens(&self) -> Result<Vec<StoredToken>, StoreError> {
        self.call(|db| async move { db.tokens().await })
    }
    fn token_changes(
        &self,
        since: Option<i64>,
    ) -> Result<(Vec<StoredToken>, Option<i64>), StoreError> {
        self.call(|db| async move { db.token_changes(since).await })
    }
    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = key.to_string();
        self.call(|db| async move { db.meta(key).await })
    }
    fn set_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let (key, value) = (key.to_string(), value.to_vec());
        self.call(|db| async move { db.set_meta(key, value).await })
    }
    fn add_change(&self, c: &StoredChange) -> Result<(), StoreError> {
        let c = c.clone();
        self.call(|db| async move { db.add_change(c).await })
    }
    fn changes(&self, skip: usize, limit: usize) -> Result<(Vec<StoredChange>, u64), StoreError> {
        let (skip, limit) = (
            i64::try_from(skip).unwrap_or(i64::MAX),
            i64::try_from(limit).unwrap_or(i64::MAX),
        );
        self.call(|db| async move { db.changes(skip, limit).await })
    }
    fn watch(&self) -> Option<StoreWatch> {
        Some(self.watch.clone())
    }
}
