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
    /// The project the models are for (sent as X-Strata-Project)
    #[arg(long, value_name = "ID")]
    pub project: Option<String>,
    /// The settings file to write [default: ~/.factory/settings.json]
    #[arg(long, value_name = "FILE")]
    pub settings: Option<PathBuf>,
    /// Print the result instead of writing it
    #[arg(long)]
    pub dry_run: bool,
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
    let url = format!(
        "{}/strata/v1/droid-settings",
        args.gateway.trim_end_matches('/')
    );
    let mut req = client.get(&url).header("x-api-key", &args.token);
    if let Some(p) = &args.project {
        req = req.header("x-strata-project", p);
    }
    let resp = req.send().await.map_err(|e| {
        fail(
            exit::FAILURE,
            format!("cannot reach the gateway at {url}: {e}"),
        )
    })?;
    let status = resp.status();
    let body: Value = resp.json().await.map_err(|e| {
        fail(
            exit::FAILURE,
            format!("the gateway's answer is not JSON: {e}"),
        )
    })?;
    if !status.is_success() {
        let msg = body["error"]["message"].as_str().unwrap_or("no message");
        return Err(fail(
            exit::FAILURE,
            format!("the gateway answered {status}: {msg}"),
        ));
    }
    let entries = body["customModels"].as_array().cloned().unwrap_or_default();
    let count = entries.len();
    let path = match args.settings {
        Some(p) => p,
        None => std::env::var_os("HOME")
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
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| {
            fail(
                exit::FAILURE,
                format!("cannot create {}: {e}", dir.display()),
            )
        })?;
    }
    if existing.is_some() {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let backup = PathBuf::from(format!("{shown}.bak-{secs}"));
        std::fs::copy(&path, &backup)
            .map_err(|e| fail(exit::FAILURE, format!("cannot back up {shown}: {e}")))?;
        eprintln!("backed up the old file to {}", backup.display());
    }
    let tmp = PathBuf::from(format!("{shown}.tmp-{}", std::process::id()));
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, &path))
        .map_err(|e| fail(exit::FAILURE, format!("cannot write {shown}: {e}")))?;
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
