//! Human output: decisions, rules with provenance, problems.

use std::fmt::Write;

use strata_policy::explain::{Considered, EffectiveSettings, Explanation};
use strata_policy::{Determining, Effect, Problem, Problems};

pub fn effect(e: Effect) -> &'static str {
    match e {
        Effect::Allow => "ALLOW",
        Effect::Deny => "DENY",
    }
}

fn place(
    level: &impl std::fmt::Display,
    file: &Option<String>,
    line: Option<u32>,
    pointer: &Option<String>,
) -> String {
    let mut s = level.to_string();
    if let Some(f) = file {
        s.push(' ');
        s.push_str(f);
        if let Some(l) = line.filter(|l| *l > 0) {
            let _ = write!(s, ":{l}");
        }
    }
    if let Some(p) = pointer.as_deref().filter(|p| !p.is_empty()) {
        let _ = write!(s, " {p}");
    }
    s
}

fn determining(out: &mut String, d: &Determining) {
    let _ = writeln!(
        out,
        "  {} {}  [enforced by: {}]",
        d.effect.as_str(),
        d.rule,
        d.enforced_by.label()
    );
    let _ = writeln!(
        out,
        "      at   {}",
        place(&d.level, &d.file, d.line, &d.pointer)
    );
    if let Some(m) = &d.matched {
        let _ = writeln!(out, "      entry `{m}`");
    }
    let _ = writeln!(out, "      why  {}", d.reason);
}

fn considered(out: &mut String, c: &Considered) {
    let _ = writeln!(
        out,
        "  {} {}  ({})",
        c.effect.as_str(),
        c.rule,
        place(&c.level, &c.file, c.line, &c.pointer)
    );
}

pub fn problems(out: &mut String, ps: &[Problem]) {
    for p in ps {
        let _ = writeln!(out, "  {p}");
    }
}

// Longer than a screen: it writes the sections of `policy explain` in the order they are printed
// (request, deciding rules, Droid's verdicts, rules considered, obligations, diagnostics); read top
// to bottom it is the output, which the insta snapshots pin.
pub fn explanation(x: &Explanation, subject: &str) -> String {
    let mut out = String::new();
    let r = &x.request;
    let groups = if r.groups.is_empty() {
        String::new()
    } else {
        format!(" (groups: {})", r.groups.join(", "))
    };
    let project = r
        .project
        .as_deref()
        .map(|p| format!(" in project `{p}`"))
        .unwrap_or_default();
    let folder = r
        .folder
        .as_deref()
        .map(|p| format!(" folder `{p}`"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "{subject} for user `{}`{groups}{project}{folder}: {}",
        r.user,
        effect(x.decision)
    );
    let _ = writeln!(out, "  {}", x.reason);
    let _ = writeln!(out);
    if x.determined_by.is_empty() {
        let _ = writeln!(out, "determined by: nothing permitted it (default deny)");
    } else {
        let _ = writeln!(out, "determined by:");
        for d in &x.determined_by {
            determining(&mut out, d);
        }
    }
    if !x.admitted_by.is_empty() {
        let _ = writeln!(out, "\nadmitted by:");
        for d in &x.admitted_by {
            determining(&mut out, d);
        }
    }
    if let Some(v) = &x.droid {
        let verdict = if v.starts {
            "starts it"
        } else {
            "does not start it"
        };
        let _ = writeln!(
            out,
            "\nDroid (which decides which MCP servers it starts) {verdict}:"
        );
        for l in &v.lists {
            match &l.entry {
                Some(e) => {
                    let _ = writeln!(
                        out,
                        "  the {} allowlist admits it by Droid's rule through `{e}`",
                        l.level
                    );
                }
                None => {
                    let _ = writeln!(
                        out,
                        "  no entry of the {} allowlist admits it by Droid's rule",
                        l.level
                    );
                }
            }
        }
    }
    if let Some(v) = &x.droid_model {
        let line = match (v.refuses, x.decision == strata_policy::Effect::Allow) {
            (true, _) => "refuses it locally (`Model blocked by organization policy`)",
            (false, true) => "lets it through to the gateway, which allows it",
            (false, false) => "lets it through, and the gateway refuses it (this request's scope)",
        };
        let _ = writeln!(
            out,
            "\nDroid, under the org level Strata serves: {line}; {}",
            v.why
        );
    }
    if !x.considered.is_empty() {
        let _ = writeln!(out, "\nalso considered (did not apply):");
        for c in &x.considered {
            considered(&mut out, c);
        }
    }
    let o = &x.obligations;
    if o.upstream_base_url.is_some()
        || o.max_output_tokens.is_some()
        || o.credential_env.is_some()
        || o.require_org_settings
    {
        let _ = writeln!(out, "\nobligations:");
        if let Some(u) = &o.upstream_base_url {
            let _ = writeln!(out, "  upstream {u}");
        }
        if let Some(c) = &o.credential_env {
            let _ = writeln!(out, "  credential from ${c}");
        }
        if let Some(m) = o.max_output_tokens {
            let _ = writeln!(out, "  max output tokens {m}");
        }
        if o.require_org_settings {
            let _ = writeln!(
                out,
                "  only from a client that loaded the org level from the gateway (droid.requireOrgSettings)"
            );
        }
    }
    if !x.diagnostics.is_empty() {
        let _ = writeln!(out, "\ndiagnostics:");
        problems(&mut out, &x.diagnostics);
    }
    let _ = writeln!(
        out,
        "\nrevision {}",
        &x.revision[..x.revision.len().min(12)]
    );
    out
}

fn leaves(out: &mut String, prefix: &str, v: &serde_json::Value) {
    use serde_json::Value;
    let is_leaf = |v: &Value| v.get("value").is_some() && v.get("level").is_some();
    match v {
        Value::Object(m) if is_leaf(v) => {
            let value = m.get("value").map(|x| x.to_string()).unwrap_or_default();
            let level = m.get("level").and_then(Value::as_str).unwrap_or("");
            let file = m.get("file").and_then(Value::as_str).unwrap_or("");
            let line = m.get("line").and_then(Value::as_u64).unwrap_or(0);
            let _ = writeln!(out, "  {prefix} = {value}    ({level} {file}:{line})");
        }
        Value::Object(m) => {
            for (k, v) in m {
                leaves(out, format!("{prefix}.{k}").trim_start_matches('.'), v);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                leaves(out, &format!("{prefix}[{i}]"), item);
            }
        }
        _ => {}
    }
}

pub fn settings(s: &EffectiveSettings) -> String {
    let mut out = String::new();
    let project = s
        .project
        .as_deref()
        .map(|p| format!(" in project `{p}`"))
        .unwrap_or_default();
    let _ = writeln!(out, "effective settings for user `{}`{project}\n", s.user);
    let _ = writeln!(out, "settings:");
    leaves(&mut out, "", &s.settings);
    let _ = writeln!(out, "\nmodels you may use:");
    if s.models.is_empty() {
        let _ = writeln!(out, "  (none named in scope)");
    }
    for m in &s.models {
        let via = m
            .base_url
            .as_deref()
            .map(|u| format!(" via {u}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {} [{}{}] ({} layer)",
            m.model,
            m.key_mode.as_str(),
            via,
            m.level
        );
    }
    if !s.hidden_models.is_empty() {
        let _ = writeln!(out, "\nmodels hidden from you:");
        for m in &s.hidden_models {
            let _ = writeln!(out, "  {}: {}", m.model, m.reason);
        }
    }
    for (title, list) in [
        ("MCP servers", &s.mcp_servers),
        ("droids", &s.droids),
        ("commands", &s.commands),
    ] {
        if list.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n{title}:");
        for n in list {
            let _ = writeln!(
                out,
                "  {} {}  ({} {}:{})\n      {}",
                effect(n.decision),
                n.name,
                n.level,
                n.file,
                n.line,
                n.reason
            );
        }
    }
    if !s.diagnostics.is_empty() {
        let _ = writeln!(out, "\ndiagnostics:");
        problems(&mut out, &s.diagnostics);
    }
    let _ = writeln!(
        out,
        "\nrevision {}",
        &s.revision[..s.revision.len().min(12)]
    );
    out
}

/// Every problem, one per line, then a count
pub fn problem_report(ps: &Problems) -> String {
    let mut out = String::new();
    for p in &ps.problems {
        let _ = writeln!(out, "{p}");
    }
    let errors = ps.errors().count();
    let warnings = ps.warnings().count();
    let _ = writeln!(out, "{errors} error(s), {warnings} warning(s)");
    out
}

/// `  [enforced by: …]` for a rule from the resolver; nothing from a resolver older than
/// strata.v1 revision 3, which does not say
fn enforcement_label(wire: &str) -> String {
    let e = match wire {
        "gateway" => strata_policy::Enforcement::Gateway,
        "droid" => strata_policy::Enforcement::Droid,
        "both" => strata_policy::Enforcement::Both,
        "client" => strata_policy::Enforcement::Client,
        _ => return String::new(),
    };
    format!("  [enforced by: {}]", e.label())
}

/// A decision from the resolver, as `explain` prints a local one
pub fn remote_decision(d: &strata_proto::v1::DecideResponse, subject: &str) -> String {
    let mut out = String::new();
    let verdict = if d.effect == strata_proto::v1::Effect::Allow as i32 {
        "ALLOW"
    } else {
        "DENY"
    };
    let user = d.principal.as_ref().map(|p| p.user.as_str()).unwrap_or("");
    let _ = writeln!(out, "{subject} for user `{user}`: {verdict}");
    let _ = writeln!(out, "  {}\n", d.reason);
    if d.determined_by.is_empty() {
        let _ = writeln!(out, "determined by: nothing permitted it (default deny)");
    } else {
        let _ = writeln!(out, "determined by:");
        for r in &d.determined_by {
            let level = strata_proto::v1::Level::try_from(r.level)
                .map(|l| l.as_str_name().trim_start_matches("LEVEL_").to_lowercase())
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {} {}{}",
                r.effect,
                r.rule,
                enforcement_label(&r.enforced_by)
            );
            let line = if r.line > 0 {
                format!(":{}", r.line)
            } else {
                String::new()
            };
            let _ = writeln!(out, "      at   {level} {}{line} {}", r.file, r.pointer);
            if !r.matched.is_empty() {
                let _ = writeln!(out, "      entry `{}`", r.matched);
            }
            let _ = writeln!(out, "      why  {}", r.reason);
        }
    }
    if !d.admitted_by.is_empty() {
        let _ = writeln!(out, "\nadmitted by:");
        for r in &d.admitted_by {
            let _ = writeln!(
                out,
                "  {} {} at {}:{}{}",
                r.rule,
                r.matched,
                r.file,
                r.line,
                enforcement_label(&r.enforced_by)
            );
            let _ = writeln!(out, "      why  {}", r.reason);
        }
    }
    let _ = writeln!(
        out,
        "\nrevision {}  decision {}",
        &d.revision[..d.revision.len().min(12)],
        d.decision_id
    );
    out
}
