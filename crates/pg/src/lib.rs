//! PostgreSQL connections for the resolver's shared store and the gateway's audit records: the
//! connection string, TLS, and how a database is named in messages.
//!
//! A connection string is a URL (`postgres://USER[:PASSWORD]@HOST[:PORT]/DB?KEY=VALUE&...`) or
//! libpq's `KEY=VALUE ...` form. Besides what tokio-postgres reads, two libpq settings work as
//! people who use `psql` expect:
//!
//! - `sslrootcert=FILE`: CA certificates (PEM) trusted for the server's certificate, besides the
//!   system's roots (a managed database's own CA, a private one);
//! - `sslmode=verify-ca` and `sslmode=verify-full`: the same as `require` here.
//!
//! TLS: `sslmode=disable` never; `prefer` (the default) when the server offers it; `require` always,
//! and the connection fails rather than go on in the clear. Whenever TLS is used, the server's
//! certificate is verified, chain and host name, against the system's roots and `sslrootcert`:
//! there is no unverified TLS (libpq's `require` does not verify; this one does).

use std::path::Path;

use tokio_postgres::config::Host;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, Config, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

/// The TLS connector every connection uses
pub type Tls = MakeRustlsConnect;

/// A connection's I/O half, to spawn
pub type Connection =
    tokio_postgres::Connection<Socket, <MakeRustlsConnect as MakeTlsConnect<Socket>>::Stream>;

/// A database to connect to: the parsed settings and the TLS that goes with them
#[derive(Clone)]
pub struct Target {
    pub config: Config,
    pub tls: Tls,
}

impl Target {
    /// Parse a connection string (see the module docs)
    pub fn parse(conn: &str) -> Result<Target, UrlError> {
        let (conn, root_cert) = libpq_settings(conn)?;
        let config: Config = conn
            .parse()
            .map_err(|e: tokio_postgres::Error| UrlError(strata_transport::error_chain(&e)))?;
        let tls = strata_transport::client_config(root_cert.as_deref().map(Path::new))
            .map_err(|e| UrlError(format!("sslrootcert {e}")))?;
        Ok(Target {
            config,
            tls: MakeRustlsConnect::new(tls),
        })
    }

    /// Open a connection (TLS as the connection string says)
    pub async fn connect(&self) -> Result<(Client, Connection), tokio_postgres::Error> {
        self.config.connect(self.tls.clone()).await
    }

    /// `host:port/dbname`, for messages (never the password)
    pub fn describe(&self) -> String {
        describe(&self.config)
    }
}

/// One schema version: applied once, in order, never edited after release
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// A set of schema versions with the table that records which are applied, and the advisory lock
/// held while applying them (replicas starting together apply each once)
pub struct Schema {
    /// e.g. `strata_migrations`
    pub table: &'static str,
    /// the `pg_advisory_xact_lock` key
    pub lock: i64,
    /// oldest first
    pub migrations: &'static [Migration],
}

/// Why migrating failed
#[derive(Debug)]
pub enum MigrateError {
    Pg(tokio_postgres::Error),
    /// the database has a version this binary does not know: it is older than the database
    Newer {
        found: i32,
        known: i32,
    },
}

impl From<tokio_postgres::Error> for MigrateError {
    fn from(e: tokio_postgres::Error) -> Self {
        MigrateError::Pg(e)
    }
}

impl Schema {
    /// Apply the versions this database lacks, all in one transaction under the lock; the ones
    /// applied
    pub async fn migrate(&self, client: &mut Client) -> Result<Vec<&Migration>, MigrateError> {
        let tx = client.transaction().await?;
        // no NOTICE in the logs for the `IF NOT EXISTS` below at every start
        tx.batch_execute("SET LOCAL client_min_messages = warning")
            .await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&self.lock])
            .await?;
        tx.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {} (
                version    integer PRIMARY KEY,
                name       text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )",
            self.table
        ))
        .await?;
        let done: Vec<i32> = tx
            .query(
                &format!("SELECT version FROM {} ORDER BY version", self.table),
                &[],
            )
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        let known = self.migrations.last().map(|m| m.version).unwrap_or(0);
        if let Some(&found) = done.last()
            && found > known
        {
            return Err(MigrateError::Newer { found, known });
        }
        let insert = format!("INSERT INTO {} (version, name) VALUES ($1, $2)", self.table);
        let mut applied = Vec::new();
        for m in self
            .migrations
            .iter()
            .filter(|m| !done.contains(&m.version))
        {
            tx.batch_execute(m.sql).await?;
            tx.execute(&insert, &[&m.version, &m.name]).await?;
            applied.push(m);
        }
        tx.commit().await?;
        Ok(applied)
    }
}

/// A connection string that cannot be used; the message never holds the password
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid PostgreSQL connection string: {0}")]
pub struct UrlError(pub String);

/// `host:port/dbname`, for messages (never the password)
pub fn describe(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("postgres");
    format!("{host}:{port}/{db}")
}

/// Take `sslrootcert` out of a connection string (tokio-postgres does not know it) and turn
/// libpq's verifying `sslmode`s into `require`; the rest is left as written
fn libpq_settings(conn: &str) -> Result<(String, Option<String>), UrlError> {
    let mut root_cert = None;
    // `None`: leave the setting out; `Some(None)`: keep it as written; `Some(Some(v))`: use `v`
    let mut keep = |key: &str, value: &str| -> Option<Option<&'static str>> {
        match (key, value) {
            ("sslrootcert", v) => {
                root_cert = Some(v.to_string());
                None
            }
            ("sslmode", "verify-ca" | "verify-full") => Some(Some("require")),
            _ => Some(None),
        }
    };
    let is_url = conn.starts_with("postgres://") || conn.starts_with("postgresql://");
    let out = if is_url {
        match conn.split_once('?') {
            None => conn.to_string(),
            Some((base, query)) => {
                let mut params = Vec::new();
                for pair in query.split('&').filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    match keep(k, &percent_decode(v)?) {
                        None => {}
                        Some(None) => params.push(pair.to_string()),
                        Some(Some(v)) => params.push(format!("{k}={v}")),
                    }
                }
                if params.is_empty() {
                    base.to_string()
                } else {
                    format!("{base}?{}", params.join("&"))
                }
            }
        }
    } else {
        let mut words = Vec::new();
        for word in key_value_words(conn) {
            match word.split_once('=') {
                Some((k, v)) => match keep(k.trim(), &unquote(v.trim())) {
                    None => {}
                    Some(None) => words.push(word.to_string()),
                    Some(Some(v)) => words.push(format!("{k}={v}")),
                },
                None => words.push(word.to_string()),
            }
        }
        words.join(" ")
    };
    Ok((out, root_cert))
}

/// The `key=value` settings of libpq's keyword form, each as written: split at whitespace outside
/// single quotes (a quoted value keeps its spaces and `\'` escapes)
fn key_value_words(conn: &str) -> Vec<&str> {
    let mut words = Vec::new();
    let (mut start, mut quoted, mut escaped) = (None, false, false);
    for (i, c) in conn.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '\'' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if let Some(s) = start.take() {
                    words.push(&conn[s..i]);
                }
                continue;
            }
            _ => {}
        }
        if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        words.push(&conn[s..]);
    }
    words
}

/// A keyword-form value without its quotes and escapes
fn unquote(v: &str) -> String {
    match v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
        Some(inner) => inner.replace("\\'", "'").replace("\\\\", "\\"),
        None => v.to_string(),
    }
}

/// `%XX` escapes of a URL query value; a `%` not followed by two hex digits is an error, as in
/// libpq
fn percent_decode(s: &str) -> Result<String, UrlError> {
    let malformed = s.split('%').skip(1).any(|after| {
        after
            .as_bytes()
            .get(..2)
            .is_none_or(|h| !h.iter().all(u8::is_ascii_hexdigit))
    });
    if malformed {
        return Err(UrlError("a bad %-escape in the query".to_string()));
    }
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|v| v.into_owned())
        .map_err(|_| UrlError("a %-escape that is not UTF-8".to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_postgres::config::SslMode;

    #[test]
    fn percent_escapes_decode_and_malformed_ones_are_refused() {
        assert_eq!(
            percent_decode("%2Fetc%2Fca%20x.pem").unwrap(),
            "/etc/ca x.pem"
        );
        for bad in ["a%2", "%zz", "%", "%ff"] {
            assert!(percent_decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn libpq_settings_are_understood() {
        let (s, ca) = libpq_settings(
            "postgres://u:p@db:6543/audit?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x",
        )
        .unwrap();
        assert_eq!(
            s,
            "postgres://u:p@db:6543/audit?sslmode=require&application_name=x"
        );
        assert_eq!(ca.as_deref(), Some("/etc/ca.pem"));
        let (s, ca) =
            libpq_settings("host=db port=6543 sslrootcert=/etc/ca.pem sslmode=verify-ca").unwrap();
        assert_eq!(s, "host=db port=6543 sslmode=require");
        assert_eq!(ca.as_deref(), Some("/etc/ca.pem"));
        let (s, ca) = libpq_settings("postgres://u@db/x?sslrootcert=/ca.pem").unwrap();
        assert_eq!(
            (s.as_str(), ca.as_deref()),
            ("postgres://u@db/x", Some("/ca.pem"))
        );
        // quoted values keep their spaces; a quoted sslrootcert is unquoted
        let (s, ca) = libpq_settings(
            "host=db password='a  b\\'c' sslrootcert='/etc/my certs/ca.pem'  dbname=x",
        )
        .unwrap();
        assert_eq!(s, "host=db password='a  b\\'c' dbname=x");
        assert_eq!(ca.as_deref(), Some("/etc/my certs/ca.pem"));
        let (s, ca) = libpq_settings("postgres://u@db/x").unwrap();
        assert_eq!((s.as_str(), ca), ("postgres://u@db/x", None));
        assert!(libpq_settings("postgres://u@db/x?sslrootcert=%zz").is_err());
    }

    #[test]
    fn targets_parse_with_their_tls_mode() {
        let t = Target::parse("postgres://u:secret@db:6543/audit?sslmode=verify-full").unwrap();
        assert_eq!(t.config.get_ssl_mode(), SslMode::Require);
        assert_eq!(t.describe(), "db:6543/audit");
        let t = Target::parse("postgres://u@db").unwrap();
        assert_eq!(t.config.get_ssl_mode(), SslMode::Prefer);
        assert_eq!(t.describe(), "db:5432/u");
        let t = Target::parse("postgres://u@db?sslmode=disable").unwrap();
        assert_eq!(t.config.get_ssl_mode(), SslMode::Disable);
    }

    #[test]
    fn bad_strings_and_ca_files_are_named_without_the_password() {
        let e = Target::parse("postgres://u:secret@db/x?sslmode=sometimes")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("sslmode") && !e.contains("secret"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let e = Target::parse(&format!(
            "postgres://u:secret@db/x?sslmode=require&sslrootcert={}",
            junk.display()
        ))
        .err()
        .unwrap()
        .to_string();
        assert!(
            e.contains("junk.pem") && e.contains("no certificate"),
            "{e}"
        );
        assert!(!e.contains("secret"), "{e}");
    }
}
