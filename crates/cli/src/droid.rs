//! `policy droid-settings`: write the `customModels` of Droid's `~/.factory/settings.json` for
//! exactly the models this person may use, pointed at the gateway. Every other key, and every
//! custom model that does not go through this gateway (a personal BYOK entry, say), is kept; the
//! old file is backed up; the new one replaces it atomically.

use std::path::PathBuf;

use clap::Args;
use serde_json::Value;

use crate::exit;
use crate::remote::Failed;

#[derive(Debug, Args)]
pub struct DroidSettingsArgs {
    /// The gateway's base URL, as Droid should call it
    #[arg(long, env = "STRATA_GATEWAY", value_name = "URL")]
    pub gateway: String,
    /// Your gateway token
    #[arg(
        long,
        env = "STRATA_GATEWAY_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: String,
    /// The project the models are for: with --project-dir, the project's own
    /// `.factory/settings.json` is written, its models sending `X-Strata-Project`
    #[arg(long, value_name = "ID")]
    pub project: Option<String>,
    /// A checkout of the project: write `DIR/.factory/settings.json` (or, with --folder,
    /// `DIR/FOLDER/.factory/settings.json`), which can be committed: the key is
    /// `${STRATA_TOKEN}`, read by Droid from each person's environment
    #[arg(long, value_name = "DIR", requires = "project")]
    pub project_dir: Option<PathBuf>,
    /// A folder below the project root (a monorepo package): its models send `X-Strata-Folder` too
    #[arg(long, value_name = "PATH", requires = "project_dir")]
    pub folder: Option<String>,
    /// The settings file to write [default: ~/.factory/settings.json, or the project's with
    /// --project-dir]
    #[arg(long, value_name = "FILE", conflicts_with = "project_dir")]
    pub settings: Option<PathBuf>,
    /// Write Droid's org level for this token instead (the document the gateway serves at
    /// /api/organization/managed-settings), for FACTORY_ORG_MANAGED_SETTINGS_LOCAL_PATH or
    /// /etc/factory/settings.json on machines managed by MDM
    #[arg(long, value_name = "FILE", conflicts_with_all = ["project_dir", "settings", "project"])]
    pub org_file: Option<PathBuf>,
    /// Print the result instead of writing it
    #[arg(long)]
    pub dry_run: bool,
}

/// The org level the gateway serves this token, as Droid reads it from a file (the bare
/// settings, without the API's `{success, settings, revision}` wrapper)
async fn fetch_org_document(
    client: &reqwest::Client,
    gateway: &str,
    token: &str,
) -> Result<String, String> {
    let url = format!(
        "{}/api/organization/managed-settings",
        gateway.trim_end_matches('/')
    );
    let (status, body) = send(client.get(&url).bearer_auth(token), &url).await?;
    if !status.is_success() || body["success"] != true {
        let msg = body["errors"][0]["message"]
            .as_str()
            .unwrap_or("no message");
        return Err(format!("the gateway answered {status}: {msg}"));
    }
    serde_json::to_string_pretty(&body["settings"])
        .map(|t| t + "\n")
        .map_err(|e| e.to_string())
}

/// Send a request to the gateway at `url`: its status and JSON answer
async fn send(
    req: reqwest::RequestBuilder,
    url: &str,
) -> Result<(reqwest::StatusCode, Value), String> {
    let resp = req
        .send()
        .await
        .map_err(|e| format!("cannot reach the gateway at {url}: {e}"))?;
    let status = resp.status();
    let body = resp
        .json()
        .await
        .map_err(|e| format!("the gateway's answer is not JSON: {e}"))?;
    Ok((status, body))
}

/// Replace `path` with `text` atomically, backing up what was there
fn write_replacing(path: &std::path::Path, text: &str) -> Result<(), String> {
    let shown = path.display().to_string();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    if path.exists() {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let backup = PathBuf::from(format!("{shown}.bak-{secs}"));
        std::fs::copy(path, &backup).map_err(|e| format!("cannot back up {shown}: {e}"))?;
        eprintln!("backed up the old file to {}", backup.display());
    }
    let tmp = PathBuf::from(format!("{shown}.tmp-{}", std::process::id()));
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| format!("cannot write {shown}: {e}"))
}

/// Merge `entries` into the settings text: keep every key and every custom model whose `baseUrl`
/// does not point at `gateway`; replace the ones that do. Errors name the file, line and column.
pub fn merge(
    existing: Option<&str>,
    file: &str,
    gateway: &str,
    entries: Vec<Value>,
) -> Result<(String, usize), String> {
    let mut root: Value = match existing {
        None => Value::Object(Default::default()),
        Some(text) => serde_json::from_str(text).map_err(|e| {
            format!(
                "{file}:{}:{}: invalid JSON: {}",
                e.line(),
                e.column(),
                e.to_string().split(" at line ").next().unwrap_or_default()
            )
        })?,
    };
    let Value::Object(map) = &mut root else {
        return Err(format!("{file}: expected a JSON object at the top level"));
    };
    let gateway = gateway.trim_end_matches('/');
    let kept: Vec<Value> = match map.get("customModels") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .filter(|m| {
                !m["baseUrl"]
                    .as_str()
                    .is_some_and(|u| u.trim_end_matches('/').starts_with(gateway))
            })
            .cloned()
            .collect(),
        Some(_) => return Err(format!("{file}: /customModels: expected an array")),
    };
    let kept_count = kept.len();
    map.insert(
        "customModels".to_string(),
        Value::Array(kept.into_iter().chain(entries).collect()),
    );
    let text = serde_json::to_string_pretty(&root).map_err(|e| e.to_string())?;
    Ok((text + "\n", kept_count))
}

/// The header that names the project, and the folder, of a request (what the gateway reads)
pub const PROJECT_HEADER: &str = "X-Strata-Project";
pub const FOLDER_HEADER: &str = "X-Strata-Folder";
/// What a committed project file holds instead of a token: Droid expands it from each person's
/// environment (an unset variable is sent as written, which the gateway refuses by name)
pub const TOKEN_VAR: &str = "${STRATA_TOKEN}";

/// The gateway's `customModels` for a scope
async fn fetch_entries(
    client: &reqwest::Client,
    gateway: &str,
    token: &str,
    project: Option<&str>,
    folder: Option<&str>,
) -> Result<Vec<Value>, String> {
    let url = format!("{}/strata/v1/droid-settings", gateway.trim_end_matches('/'));
    let mut req = client.get(&url).header("x-api-key", token);
    if let Some(p) = project {
        req = req.header(PROJECT_HEADER, p);
    }
    if let Some(f) = folder {
        req = req.header(FOLDER_HEADER, f);
    }
    let (status, body) = send(req, &url).await?;
    if !status.is_success() {
        let msg = body["error"]["message"].as_str().unwrap_or("no message");
        return Err(format!("the gateway answered {status}: {msg}"));
    }
    Ok(body["customModels"].as_array().cloned().unwrap_or_default())
}

/// A project's (or folder's) entries: the scope's own models, then every model of a wider scope
/// (user level, or the project around a folder) the scope does not list, under the same display
/// name so that it shadows the wider entry. Each sends the scope's headers and takes its key from
/// `${STRATA_TOKEN}`, so the file can be committed.
pub fn scoped_entries(
    own: Vec<Value>,
    wider: Vec<Value>,
    project: &str,
    folder: Option<&str>,
) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    let listed = |out: &[Value], m: &Value| {
        out.iter()
            .any(|x| x["displayName"] == m["displayName"] || x["model"] == m["model"])
    };
    for m in own.into_iter().chain(wider) {
        if listed(&out, &m) {
            continue;
        }
        out.push(m);
    }
    for m in &mut out {
        if let Value::Object(map) = m {
            map.insert("apiKey".to_string(), Value::String(TOKEN_VAR.to_string()));
            let mut headers = serde_json::Map::new();
            headers.insert(
                PROJECT_HEADER.to_string(),
                Value::String(project.to_string()),
            );
            if let Some(f) = folder {
                headers.insert(FOLDER_HEADER.to_string(), Value::String(f.to_string()));
            }
            map.insert("extraHeaders".to_string(), Value::Object(headers));
        }
    }
    out
}

// Longer than a screen: the steps of `policy droid-settings` in the order they run (the org
// document, the entries for the scope, the settings file to write, the dry run); each step reports
// its own failure with its exit code.
pub async fn run(args: DroidSettingsArgs) -> Result<u8, Failed> {
    let fail = |code: u8, m: String| {
        eprintln!("error: {m}");
        Failed(code)
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .map_err(|e| fail(exit::FAILURE, e.to_string()))?;
    if let Some(file) = &args.org_file {
        let text = fetch_org_document(&client, &args.gateway, &args.token)
            .await
            .map_err(|m| fail(exit::FAILURE, m))?;
        if args.dry_run {
            out!("{text}");
            return Ok(exit::ALLOW);
        }
        write_replacing(file, &text).map_err(|m| fail(exit::FAILURE, m))?;
        outln!(
            "wrote Droid's org level from {} to {} (point FACTORY_ORG_MANAGED_SETTINGS_LOCAL_PATH at it, or install it as /etc/factory/settings.json)",
            args.gateway,
            file.display()
        );
        return Ok(exit::ALLOW);
    }
    let entries = match &args.project_dir {
        None => fetch_entries(
            &client,
            &args.gateway,
            &args.token,
            args.project.as_deref(),
            None,
        )
        .await
        .map_err(|m| fail(exit::FAILURE, m))?,
        Some(_) => {
            // Droid offers the person's own (user-level) models inside the checkout too, without
            // the project's header: every one of them is redefined here, under the same display
            // name (so the same Droid id), so that its requests carry the scope and are decided
            // there; the ones the scope refuses are refused by the gateway with the reason
            let project = args.project.as_deref();
            let folder = args.folder.as_deref();
            let mut wider = fetch_entries(&client, &args.gateway, &args.token, None, None)
                .await
                .map_err(|m| fail(exit::FAILURE, m))?;
            if folder.is_some() {
                wider.extend(
                    fetch_entries(&client, &args.gateway, &args.token, project, None)
                        .await
                        .map_err(|m| fail(exit::FAILURE, m))?,
                );
            }
            let own = fetch_entries(&client, &args.gateway, &args.token, project, folder)
                .await
                .map_err(|m| fail(exit::FAILURE, m))?;
            scoped_entries(own, wider, project.unwrap_or_default(), folder)
        }
    };
    let count = entries.len();
    let path = match (args.settings, &args.project_dir) {
        (Some(p), _) => p,
        (None, Some(dir)) => match &args.folder {
            Some(f) => dir.join(f.trim_matches('/')).join(".factory/settings.json"),
            None => dir.join(".factory/settings.json"),
        },
        (None, None) => std::env::var_os("HOME")
            .map(PathBuf::from)
            .ok_or_else(|| fail(exit::FAILURE, "no HOME: pass --settings".to_string()))?
            .join(".factory/settings.json"),
    };
    let shown = path.display().to_string();
    let existing = match std::fs::read_to_string(&path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(fail(exit::FAILURE, format!("{shown}: cannot read: {e}"))),
    };
    let (text, kept) = merge(existing.as_deref(), &shown, &args.gateway, entries)
        .map_err(|m| fail(exit::INVALID, m))?;
    if args.dry_run {
        out!("{text}");
        return Ok(exit::ALLOW);
    }
    write_replacing(&path, &text).map_err(|m| fail(exit::FAILURE, m))?;
    outln!(
        "wrote {count} model(s) through {} to {shown} (kept {kept} other custom model(s) and every other key)",
        args.gateway
    );
    Ok(exit::ALLOW)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_other_keys_and_models_and_replaces_the_gateways() {
        let existing = r#"{"model": "x", "customModels": [
            {"model": "old", "baseUrl": "http://gw:8787/v1"},
            {"model": "mine", "baseUrl": "https://api.anthropic.com"}
        ], "autonomyLevel": "low"}"#;
        let (text, kept) = merge(
            Some(existing),
            "s.json",
            "http://gw:8787",
            vec![json!({"model": "new", "baseUrl": "http://gw:8787"})],
        )
        .unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(kept, 1);
        assert_eq!(v["model"], "x");
        assert_eq!(v["autonomyLevel"], "low");
        let ids: Vec<&str> = v["customModels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["model"].as_str().unwrap())
            .collect();
        assert_eq!(ids, vec!["mine", "new"]);
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            vec!["model", "customModels", "autonomyLevel"],
            "key order is kept"
        );
    }

    #[test]
    fn bad_files_are_refused_with_their_position() {
        let e = merge(Some("{\n  \"a\": 1,\n}"), "s.json", "http://gw", vec![]).unwrap_err();
        assert!(e.starts_with("s.json:3:1: invalid JSON"), "{e}");
        assert!(merge(Some("[1]"), "s.json", "http://gw", vec![]).is_err());
        assert!(
            merge(
                Some(r#"{"customModels": {}}"#),
                "s.json",
                "http://gw",
                vec![]
            )
            .is_err()
        );
        assert!(merge(None, "s.json", "http://gw", vec![]).is_ok());
    }
}
