//! `policy audit`: the gateway's audit records, from its daily files or its PostgreSQL database,
//! filtered, as a table or JSON lines.

use std::path::PathBuf;

use clap::Args;
use strata_gateway::audit::{Query, Record, parse_time, query};

use crate::exit;

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The gateway's audit directory (`[audit] dir` in its configuration; `policy up` writes
    /// DATA/audit)
    #[arg(
        long,
        env = "STRATA_AUDIT_DIR",
        default_value = ".strata/audit",
        value_name = "DIR"
    )]
    pub dir: PathBuf,
    /// The gateways' audit database instead (`[audit] store` in their configuration),
    /// postgres://USER[:PASSWORD]@HOST[:PORT]/DB
    #[arg(
        long,
        env = "STRATA_AUDIT_STORE",
        value_name = "URL",
        conflicts_with = "dir"
    )]
    pub store: Option<String>,
    /// Only this user's requests
    #[arg(long)]
    pub user: Option<String>,
    /// Only requests in this project
    #[arg(long)]
    pub project: Option<String>,
    /// Only requests for this model
    #[arg(long)]
    pub model: Option<String>,
    /// Only this outcome: allow, deny, unauthenticated, unavailable, invalid
    #[arg(long)]
    pub decision: Option<String>,
    /// From this time on: 2026-11-30, 2026-11-30T14:05:00Z (UTC), or a span before now (15m, 2h, 7d)
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Before this time (same forms as --since)
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// The most recent N records
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// One JSON object per line, every field
    #[arg(long)]
    pub json: bool,
}

const DECISIONS: [&str; 5] = ["allow", "deny", "unauthenticated", "unavailable", "invalid"];

pub fn run(args: AuditArgs) -> u8 {
    match run_inner(args) {
        Ok(()) => exit::ALLOW,
        Err(m) => {
            eprintln!("error: {m}");
            exit::FAILURE
        }
    }
}

fn run_inner(args: AuditArgs) -> Result<(), String> {
    if let Some(d) = args.decision.as_deref().filter(|d| !DECISIONS.contains(d)) {
        return Err(format!(
            "invalid decision `{d}`: expected one of {}",
            DECISIONS.join(", ")
        ));
    }
    let (_, now, _) = strata_gateway::audit::now();
    let time = |t: &Option<String>| t.as_deref().map(|t| parse_time(t, now)).transpose();
    let q = Query {
        user: args.user,
        project: args.project,
        model: args.model,
        decision: args.decision,
        since_ms: time(&args.since)?,
        until_ms: time(&args.until)?,
        limit: args.limit,
    };
    let (records, torn) = match &args.store {
        Some(url) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            let records = rt
                .block_on(strata_gateway::audit::pg::query(url, &q))
                .map_err(|e| format!("cannot read the audit database: {e}"))?;
            (records, 0)
        }
        None => query(&args.dir, &q).map_err(|e| {
            format!(
                "cannot read the audit directory `{}`: {e}",
                args.dir.display()
            )
        })?,
    };
    if torn > 0 {
        eprintln!(
            "warning: {torn} line(s) could not be read (cut short by a crash?) and are left out"
        );
    }
    if args.json {
        for r in &records {
            if let Ok(line) = serde_json::to_string(r) {
                outln!("{line}");
            }
        }
        return Ok(());
    }
    if records.is_empty() {
        eprintln!("no records match");
        return Ok(());
    }
    outln!(
        "{:<24} {:<10} {:<12} {:<26} {:<15} {:>6} {:>9}  {}",
        "TIME",
        "USER",
        "PROJECT",
        "MODEL",
        "DECISION",
        "STATUS",
        "TOTAL",
        "RULES / TOKENS"
    );
    for r in &records {
        outln!("{}", row(r));
    }
    eprintln!("{} record(s)", records.len());
    Ok(())
}

fn row(r: &Record) -> String {
    let cut = |s: &str, n: usize| -> String {
        if s.chars().count() > n {
            format!("{}…", s.chars().take(n - 1).collect::<String>())
        } else if s.is_empty() {
            "-".to_string()
        } else {
            s.to_string()
        }
    };
    let mut tail = r.rules.join(", ");
    if let Some(u) = &r.usage {
        if !tail.is_empty() {
            tail.push_str("; ");
        }
        tail.push_str(&format!("{} in / {} out", u.input_tokens, u.output_tokens));
        if u.cache_read_tokens > 0 {
            tail.push_str(&format!(" / {} cached", u.cache_read_tokens));
        }
    }
    if let Some(e) = &r.error {
        if !tail.is_empty() {
            tail.push_str("; ");
        }
        tail.push_str(e);
    }
    if r.client_disconnected {
        tail.push_str(" (client left)");
    }
    format!(
        "{:<24} {:<10} {:<12} {:<26} {:<15} {:>6} {:>7}ms  {}",
        r.time,
        cut(&r.user, 10),
        cut(&r.project, 12),
        cut(&r.model, 26),
        r.decision,
        r.status,
        format!("{:.1}", r.total_ms),
        tail
    )
}
