//! The real Droid CLI in integration tests: found, sandboxed, run headless, killed on drop.
//!
//! The binary comes from `STRATA_DROID_BIN`, else from where `tests/droid/install.sh` puts it
//! (`target/droid/node_modules/@factory/cli-linux-x64/bin/droid`). Without it a test prints
//! `SKIPPED` and returns, unless `STRATA_REQUIRE_DROID=1` (set by `.ci/run`): then it fails.
//!
//! Each [`Sandbox`] is a temporary directory with an empty HOME (so `~/.factory/` is the test's
//! own) and a git checkout of `policies/examples/acme/project` (so Droid finds a git root and reads
//! the project's `.factory/`). [`Droid::exec`] runs `droid exec` there with a cleared
//! environment: only PATH, the sandbox's HOME and XDG directories, and what the test passes.
//! What Droid needs to run offline is in `docs/droid-observed.md`; [`OFFLINE`] is the short
//! answer.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Where `tests/droid/install.sh` installs the binary, from the workspace root
pub const INSTALLED: &str = "target/droid/node_modules/@factory/cli-linux-x64/bin/droid";

/// Droid without Factory's cloud: no calls to Factory's API, telemetry or updates (a custom
/// model's requests still go to its `baseUrl`). Without it, and without `FACTORY_API_BASE_URL`,
/// each run spends seconds failing to reach Factory's hosts.
pub const OFFLINE: &[(&str, &str)] = &[
    ("FACTORY_AIRGAP_ENABLED", "1"),
    ("FACTORY_DROID_AUTO_UPDATE_ENABLED", "false"),
    ("FACTORY_DISABLE_KEYRING", "1"),
];

/// Droid loading its org level from Strata's gateway: Factory's API at `FACTORY_API_BASE_URL`
/// (whoami, managed-settings), no telemetry updates or keyring; [`with_api`] adds the two
/// variables. Not [`OFFLINE`]: `FACTORY_AIRGAP_ENABLED` switches the API off.
pub const WITH_API: &[(&str, &str)] = &[
    ("FACTORY_DROID_AUTO_UPDATE_ENABLED", "false"),
    ("FACTORY_DISABLE_KEYRING", "1"),
];

/// [`WITH_API`] with `FACTORY_API_BASE_URL=gateway` and `FACTORY_API_KEY=token`
pub fn with_api<'a>(gateway: &'a str, token: &'a str) -> Vec<(&'a str, &'a str)> {
    WITH_API
        .iter()
        .copied()
        .chain([
            ("FACTORY_API_BASE_URL", gateway),
            ("FACTORY_API_KEY", token),
        ])
        .collect()
}

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The Droid binary, or `None` (after printing `SKIPPED`) when there is none and
/// `STRATA_REQUIRE_DROID` is not `1`
pub struct Droid {
    pub bin: PathBuf,
}

impl Droid {
    pub fn find(test: &str) -> Option<Droid> {
        let bin = match std::env::var_os("STRATA_DROID_BIN") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => workspace().join(INSTALLED),
        };
        if bin.is_file() {
            return Some(Droid { bin });
        }
        let why = format!(
            "no Droid CLI at {} (run tests/droid/install.sh, or set STRATA_DROID_BIN)",
            bin.display()
        );
        if std::env::var("STRATA_REQUIRE_DROID").as_deref() == Ok("1") {
            panic!("{test}: {why}; STRATA_REQUIRE_DROID=1 makes this a failure");
        }
        // straight to stderr, past the test harness's capture, so a plain `cargo test` shows it
        let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
        None
    }

    /// `droid exec ARGS` in `cwd`, with the sandbox's HOME and `env`, killed after `timeout`
    pub fn exec(
        &self,
        sandbox: &Sandbox,
        cwd: &Path,
        env: &[(&str, &str)],
        args: &[&str],
        timeout: Duration,
    ) -> Run {
        let args: Vec<&str> = std::iter::once("exec")
            .chain(args.iter().copied())
            .collect();
        self.run(sandbox, cwd, env, &args, timeout)
    }

    /// `droid ARGS` (any subcommand) in `cwd`, with the sandbox's HOME and `env`, killed after
    /// `timeout`
    pub fn run(
        &self,
        sandbox: &Sandbox,
        cwd: &Path,
        env: &[(&str, &str)],
        args: &[&str],
        timeout: Duration,
    ) -> Run {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .current_dir(cwd)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &sandbox.home)
            .env("XDG_CONFIG_HOME", sandbox.home.join(".config"))
            .env("XDG_DATA_HOME", sandbox.home.join(".local/share"))
            .env("XDG_CACHE_HOME", sandbox.home.join(".cache"))
            .env("XDG_STATE_HOME", sandbox.home.join(".local/state"))
            .env("TMPDIR", &sandbox.tmp)
            .env("LANG", "C.UTF-8")
            .env("TERM", "dumb")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let started = Instant::now();
        let mut child = Killed(cmd.spawn().unwrap());
        let mut out = child.0.stdout.take().unwrap();
        let mut err = child.0.stderr.take().unwrap();
        let stdout = std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = out.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        });
        let stderr = std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = err.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        });
        let deadline = started + timeout;
        let status = loop {
            if let Some(s) = child.0.try_wait().unwrap() {
                break Some(s);
            }
            if Instant::now() >= deadline {
                let _ = child.0.kill();
                let _ = child.0.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        drop(child);
        Run {
            status,
            elapsed: started.elapsed(),
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
            logs: sandbox.logs(),
        }
    }
}

/// A child process killed when dropped (also when the test panics while it runs)
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// What one `droid` run did
#[derive(Debug)]
pub struct Run {
    /// `None`: killed at the timeout
    pub status: Option<ExitStatus>,
    pub elapsed: Duration,
    pub stdout: String,
    pub stderr: String,
    /// `~/.factory/logs/*`, by file name
    pub logs: Vec<(String, String)>,
}

impl Run {
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// Everything, for assertion messages (logs trimmed to their last lines)
    pub fn describe(&self) -> String {
        let mut s = format!(
            "droid: {} after {:?}\n--- stdout\n{}\n--- stderr\n{}\n",
            match self.status {
                Some(st) => st.to_string(),
                None => "killed at the timeout".to_string(),
            },
            self.elapsed,
            self.stdout,
            self.stderr
        );
        for (name, text) in &self.logs {
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(15)..];
            s.push_str(&format!("--- ~/.factory/logs/{name} (last lines)\n"));
            for l in tail {
                s.push_str(&l.chars().take(600).collect::<String>());
                s.push('\n');
            }
        }
        s
    }

    /// The logs joined, for searching
    pub fn log_text(&self) -> String {
        self.logs
            .iter()
            .map(|(_, t)| t.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// An isolated HOME and a git checkout of the example project
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    /// HOME for Droid; `~/.factory/` starts empty
    pub home: PathBuf,
    /// A git repository holding a copy of `policies/examples/acme/project`
    pub project: PathBuf,
    tmp: PathBuf,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox::with_project(|text| text)
    }

    /// As [`Sandbox::new`], each text file of the project passed through `edit` on the way
    /// (for example to point the example's gateway address at a test's port)
    pub fn with_project(edit: impl Fn(String) -> String) -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let project = dir.path().join("project");
        let tmp = dir.path().join("tmp");
        std::fs::create_dir_all(home.join(".factory")).unwrap();
        std::fs::create_dir_all(&tmp).unwrap();
        copy_tree(
            &workspace().join("policies/examples/acme/project"),
            &project,
            &edit,
        );
        git(&project, &["init", "-q"]);
        git(&project, &["add", "-A"]);
        git(
            &project,
            &[
                "-c",
                "user.name=Strata tests",
                "-c",
                "user.email=tests@strata.invalid",
                "-c",
                "commit.gpgsign=false",
                "commit",
                "-q",
                "-m",
                "the example project",
            ],
        );
        Sandbox {
            dir,
            home,
            project,
            tmp,
        }
    }

    /// `~/.factory/settings.json`
    pub fn user_settings(&self) -> PathBuf {
        self.home.join(".factory/settings.json")
    }

    /// Removes `~/.factory/logs/`, so that the next run's logs are its own
    pub fn clear_logs(&self) {
        let _ = std::fs::remove_dir_all(self.home.join(".factory/logs"));
    }

    /// Every session's settings file (`~/.factory/sessions/<cwd>/<id>.settings.json`), by path:
    /// where Droid records the autonomy level a session actually ran with. Unlike INFO and WARN
    /// log lines, which Droid 0.225.2 buffers and sometimes loses when `droid exec` exits, these
    /// are on disk before the run ends.
    pub fn session_settings(&self) -> std::collections::BTreeMap<PathBuf, serde_json::Value> {
        let mut found = std::collections::BTreeMap::new();
        let Ok(cwds) = std::fs::read_dir(self.home.join(".factory/sessions")) else {
            return found;
        };
        for cwd in cwds.filter_map(|e| e.ok()) {
            let Ok(files) = std::fs::read_dir(cwd.path()) else {
                continue;
            };
            for f in files.filter_map(|e| e.ok()) {
                let path = f.path();
                if !path.to_string_lossy().ends_with(".settings.json") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let value = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("{}: {e}\n{text}", path.display()));
                found.insert(path, value);
            }
        }
        found
    }

    /// The `~/.factory/logs/*` files, by name. Droid writes ERROR lines at once but buffers INFO
    /// and WARN lines, which a run that exits quickly sometimes never writes: assert on those only
    /// as evidence that may be missing.
    pub fn logs(&self) -> Vec<(String, String)> {
        let Ok(dir) = std::fs::read_dir(self.home.join(".factory/logs")) else {
            return Vec::new();
        };
        let mut logs: Vec<(String, String)> = dir
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| {
                let text = std::fs::read(e.path()).unwrap_or_default();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    String::from_utf8_lossy(&text).into_owned(),
                )
            })
            .collect();
        logs.sort();
        logs
    }
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("git is needed for the Droid tests");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn copy_tree(src: &Path, dst: &Path, edit: &impl Fn(String) -> String) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let to = dst.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &to, edit);
        } else {
            let bytes = std::fs::read(entry.path()).unwrap();
            match String::from_utf8(bytes) {
                Ok(text) => std::fs::write(to, edit(text)).unwrap(),
                Err(e) => std::fs::write(to, e.into_bytes()).unwrap(),
            }
        }
    }
}

/// Droid's id for the `index`-th entry of one level's `customModels`: `custom:` + its
/// displayName with whitespace as `-` + `-n`, n counting earlier entries with that displayName
/// in the same list (observed on 0.225.2: `droid exec -m nope` lists the ids)
pub fn custom_model_id(models: &[serde_json::Value], index: usize) -> String {
    let name = |m: &serde_json::Value| {
        m["displayName"]
            .as_str()
            .or(m["model"].as_str())
            .unwrap_or_default()
            .to_string()
    };
    let this = name(&models[index]);
    let n = models[..index].iter().filter(|m| name(m) == this).count();
    let dashed: String = this.split_whitespace().collect::<Vec<_>>().join("-");
    format!("custom:{dashed}-{n}")
}
