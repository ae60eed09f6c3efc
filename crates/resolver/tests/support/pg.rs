//! A PostgreSQL server for tests, shared by the resolver's and the CLI's tests
//! (`#[path = ...] mod`).
//!
//! Where the server comes from:
//! - `STRATA_TEST_PG` (a connection string without a database, e.g.
//!   `postgres://strata@127.0.0.1:5433`): a running server; each test creates its own database.
//!   `.ci/run` starts a private instance and sets it.
//! - otherwise, and always for a test that stops the database: a private instance of the test's
//!   own (initdb + pg_ctl in a temporary directory, on a free loopback port), from the binaries in
//!   `STRATA_PG_BIN`, `pg_config --bindir` or `/usr/lib/postgresql/*/bin`; stopped when dropped.
//! - neither: the test prints a skip line and passes, unless `STRATA_REQUIRE_PG=1` (set by
//!   `.ci/run`), where it fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

fn required() -> bool {
    std::env::var("STRATA_REQUIRE_PG").is_ok_and(|v| v == "1")
}

fn skip(test: &str, why: &str) {
    if required() {
        panic!("{test}: {why}, and STRATA_REQUIRE_PG=1");
    }
    // straight to stderr: the test harness captures `eprintln!` of passing tests
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: {why} (set STRATA_TEST_PG or install PostgreSQL's server binaries)"
    );
}

fn pg_bin() -> Option<PathBuf> {
    let has = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    if let Ok(d) = std::env::var("STRATA_PG_BIN") {
        return Some(PathBuf::from(d)).filter(|d| has(d));
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let d = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has(&d) {
            return Some(d);
        }
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let d = e.path().join("bin");
            has(&d).then_some((v, d))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, d)| d)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A private PostgreSQL instance in a temporary directory; stopped when dropped
pub struct Cluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    /// initdb refuses to run as root: then everything runs as this user
    run_as: Option<&'static str>,
    /// more server options (TLS)
    extra: String,
}

impl Cluster {
    pub fn start(test: &str) -> Option<Cluster> {
        Cluster::start_with(test, None)
    }

    /// A cluster that also speaks TLS, with this certificate chain and key (PEM)
    pub fn start_tls(test: &str, chain: &str, key: &str) -> Option<Cluster> {
        Cluster::start_with(test, Some((chain, key)))
    }

    fn start_with(test: &str, tls: Option<(&str, &str)>) -> Option<Cluster> {
        let Some(bin) = pg_bin() else {
            skip(test, "no PostgreSQL server binaries (initdb, pg_ctl) found");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let run_as = is_root().then_some("postgres");
        if let Some(user) = run_as {
            let ok = Command::new("chown")
                .args(["-R", user])
                .arg(dir.path())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "cannot hand {} to `{user}`", dir.path().display());
        }
        let mut extra = String::new();
        if let Some((chain, key)) = tls {
            use std::os::unix::fs::PermissionsExt;
            let (cert_file, key_file) =
                (dir.path().join("server.crt"), dir.path().join("server.key"));
            std::fs::write(&cert_file, chain).unwrap();
            std::fs::write(&key_file, key).unwrap();
            // the server refuses a key others can read
            std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
            if let Some(user) = run_as {
                let ok = Command::new("chown")
                    .arg(user)
                    .args([&cert_file, &key_file])
                    .status()
                    .is_ok_and(|s| s.success());
                assert!(ok, "cannot hand the certificate to `{user}`");
            }
            extra = format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                cert_file.display(),
                key_file.display()
            );
        }
        let c = Cluster {
            bin,
            dir,
            port: free_port(),
            run_as,
            extra,
        };
        let data = c.data();
        c.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "strata",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        c.start_server();
        Some(c)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn run(&self, tool: &str, args: &[&str]) -> bool {
        let exe = self.bin.join(tool);
        let mut cmd = match self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        let out = cmd.args(args).output().unwrap();
        if !out.status.success() {
            eprintln!(
                "{tool} {args:?} failed:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        out.status.success()
    }

    pub fn start_server(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off{}",
            self.port,
            self.dir.path().display(),
            self.extra
        );
        let log = self.dir.path().join("log").display().to_string();
        assert!(
            self.run(
                "pg_ctl",
                &["-D", &self.data(), "-o", &opts, "-l", &log, "-w", "start"]
            ),
            "pg_ctl start failed; log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    pub fn stop_server(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }

    pub fn url(&self) -> String {
        format!("postgres://strata@127.0.0.1:{}", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }
}

/// A fresh database for one test, and the cluster that holds it if the test started one
pub struct Db {
    pub url: String,
    pub cluster: Option<Cluster>,
}

fn with_db(base: &str, db: &str) -> String {
    match base.split_once("://") {
        Some((scheme, rest)) => {
            let authority = rest.split(['/', '?']).next().unwrap_or(rest);
            format!("{scheme}://{authority}/{db}")
        }
        None => format!("{base} dbname={db}"),
    }
}

async fn create_database(base: &str, name: &str) {
    let (client, conn) = tokio_postgres::connect(&with_db(base, "postgres"), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
}

/// A database on `STRATA_TEST_PG`, or on a private instance; `None`: skip
pub async fn database(test: &str, own_cluster: bool) -> Option<Db> {
    let name = format!("strata_{test}_{}", std::process::id());
    let (base, cluster) = match std::env::var("STRATA_TEST_PG") {
        Ok(base) if !base.is_empty() && !own_cluster => (base, None),
        _ => {
            let c = Cluster::start(test)?;
            (c.url(), Some(c))
        }
    };
    create_database(&base, &name).await;
    Some(Db {
        url: with_db(&base, &name),
        cluster,
    })
}

pub async fn sql(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}
