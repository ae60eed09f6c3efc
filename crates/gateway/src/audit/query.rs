//! Reading the daily files back: the records behind `policy audit`.

use std::path::{Path, PathBuf};

use super::Record;
use super::time::day_number;

/// What `policy audit` asks for; every filter that is set must match
#[derive(Clone, Debug, Default)]
pub struct Query {
    pub user: Option<String>,
    pub project: Option<String>,
    /// the model as sent, or its canonical id
    pub model: Option<String>,
    pub decision: Option<String>,
    /// unix ms, inclusive
    pub since_ms: Option<i64>,
    /// unix ms, exclusive
    pub until_ms: Option<i64>,
    /// the most recent `limit` records
    pub limit: Option<usize>,
}

impl Query {
    /// Whether `r` passes every filter that is set (`limit` aside)
    pub fn matches(&self, r: &Record) -> bool {
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        eq(&self.user, &r.user)
            && eq(&self.project, &r.project)
            // a model as sent, or as the rules read it
            && (eq(&self.model, &r.model)
                || (self.model.is_some() && self.model == r.canonical_model))
            && eq(&self.decision, &r.decision)
            && self.since_ms.is_none_or(|t| r.unix_ms >= t)
            && self.until_ms.is_none_or(|t| r.unix_ms < t)
    }
}

/// The records of `dir` that match, oldest first, and the number of lines that could not be
/// read (a line torn by a crash mid-write)
pub fn query(dir: &Path, q: &Query) -> std::io::Result<(Vec<Record>, usize)> {
    let day_of = |ms: i64| ms.div_euclid(86_400_000);
    let mut files: Vec<(i64, PathBuf)> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let day = name.strip_prefix("audit-")?.strip_suffix(".jsonl")?;
            Some((day_number(day)?, e.path()))
        })
        .filter(|(d, _)| q.since_ms.is_none_or(|t| *d >= day_of(t)))
        .filter(|(d, _)| q.until_ms.is_none_or(|t| *d <= day_of(t)))
        .collect();
    files.sort();
    let mut out = Vec::new();
    let mut bad = 0;
    for (_, path) in files {
        let text = std::fs::read(&path)?;
        for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            match serde_json::from_slice::<Record>(line) {
                Ok(r) if q.matches(&r) => out.push(r),
                Ok(_) => {}
                Err(_) => bad += 1,
            }
        }
    }
    out.sort_by_key(|r| r.unix_ms);
    if let Some(n) = q.limit {
        let skip = out.len().saturating_sub(n);
        out.drain(..skip);
    }
    Ok((out, bad))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_filters_skips_torn_lines_and_keeps_the_latest() {
        let dir = tempfile::tempdir().unwrap();
        let rec = |user: &str, day: &str, ms: i64, decision: &str| Record {
            user: user.into(),
            time: format!("{day}T00:00:00.000Z"),
            unix_ms: ms,
            decision: decision.into(),
            ..Default::default()
        };
        let d1 = day_number("2026-11-29").unwrap() * 86_400_000;
        let d2 = d1 + 86_400_000;
        let line = |r: &Record| serde_json::to_string(r).unwrap() + "\n";
        std::fs::write(
            dir.path().join("audit-2026-11-29.jsonl"),
            line(&rec("alice", "2026-11-29", d1 + 5, "allow"))
                + &line(&rec("bob", "2026-11-29", d1 + 9, "deny")),
        )
        .unwrap();
        // a crash mid-write leaves a torn last line
        std::fs::write(
            dir.path().join("audit-2026-11-30.jsonl"),
            line(&rec("alice", "2026-11-30", d2 + 1, "deny")) + "{\"time\":\"2026-11",
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a log").unwrap();
        let all = query(dir.path(), &Query::default()).unwrap();
        assert_eq!(all.1, 1);
        assert_eq!(
            all.0.iter().map(|r| r.unix_ms).collect::<Vec<_>>(),
            [d1 + 5, d1 + 9, d2 + 1]
        );
        let q = Query {
            user: Some("alice".into()),
            ..Default::default()
        };
        assert_eq!(query(dir.path(), &q).unwrap().0.len(), 2);
        let q = Query {
            decision: Some("deny".into()),
            since_ms: Some(d2),
            ..Default::default()
        };
        assert_eq!(query(dir.path(), &q).unwrap().0.len(), 1);
        let q = Query {
            until_ms: Some(d1 + 9),
            ..Default::default()
        };
        assert_eq!(query(dir.path(), &q).unwrap().0.len(), 1);
        let q = Query {
            limit: Some(2),
            ..Default::default()
        };
        assert_eq!(query(dir.path(), &q).unwrap().0[0].user, "bob");
    }
}
