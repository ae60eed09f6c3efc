//! The gateway's audit files, parsed once and kept: each daily file is read again only from
//! where the last read stopped (the gateway only appends), so a search over 100k records filters
//! memory instead of parsing JSON. A search returns the page asked for and the aggregates of
//! every match (per-day counts, tokens by model), cloning only the page's records.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use strata_gateway::audit::{Query, Record, day_number};

/// What a search asks: `policy audit`'s filters (`limit` unused) and part of a rule id; every
/// filter that is set must match
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub query: Query,
    /// part of a rule id
    pub rule: Option<String>,
}

impl Filter {
    pub fn matches(&self, r: &Record) -> bool {
        self.query.matches(r)
            && self
                .rule
                .as_deref()
                .is_none_or(|w| r.rules.iter().any(|x| x.contains(w)))
    }
}

/// The answer to a search
#[derive(Default)]
pub struct Found {
    pub total: usize,
    /// day (YYYY-MM-DD) → (allowed, refused)
    pub per_day: BTreeMap<String, (u64, u64)>,
    /// model → input + output tokens
    pub by_model: BTreeMap<String, u64>,
    /// the records of the page asked for, newest first
    pub page: Vec<Record>,
}

pub fn tokens(r: &Record) -> u64 {
    r.usage
        .as_ref()
        .map(|u| u.input_tokens + u.output_tokens)
        .unwrap_or(0)
}

impl Found {
    /// Count `r` (the `index`th match, newest first) and keep it when on page `page` of `size`
    pub fn add(&mut self, r: &Record, page: usize, size: usize) {
        // looked up before inserting: one allocation per day and model, not per record
        let day = r.time.get(..10).unwrap_or_default();
        if !self.per_day.contains_key(day) {
            self.per_day.insert(day.to_string(), (0, 0));
        }
        if let Some(d) = self.per_day.get_mut(day) {
            if r.decision == "allow" {
                d.0 += 1;
            } else {
                d.1 += 1;
            }
        }
        let t = tokens(r);
        if t > 0 {
            match self.by_model.get_mut(&r.model) {
                Some(n) => *n += t,
                None => {
                    self.by_model.insert(r.model.clone(), t);
                }
            }
        }
        if self.total / size == page {
            self.page.push(r.clone());
        }
        self.total += 1;
    }
}

#[derive(Default)]
struct File {
    /// bytes read so far (always at the end of a complete line)
    offset: u64,
    /// oldest first
    records: Vec<Record>,
}

/// One audit directory's files, as far as read
#[derive(Default)]
pub struct DirCache(Mutex<BTreeMap<PathBuf, File>>);

fn refresh(f: &mut File, path: &Path) -> std::io::Result<()> {
    let len = std::fs::metadata(path)?.len();
    if len < f.offset {
        // replaced by a shorter file: read it again
        *f = File::default();
    }
    if len == f.offset {
        return Ok(());
    }
    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(f.offset))?;
    let mut buf = Vec::new();
    file.take(len - f.offset).read_to_end(&mut buf)?;
    // a line the gateway is still writing is read next time
    let Some(end) = buf.iter().rposition(|b| *b == b'\n') else {
        return Ok(());
    };
    for line in buf[..end].split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        // a line torn by a crash is skipped, as `policy audit` skips it
        if let Ok(r) = serde_json::from_slice::<Record>(line) {
            f.records.push(r);
        }
    }
    f.offset += end as u64 + 1;
    f.records.sort_by_key(|r| r.unix_ms);
    Ok(())
}

/// The daily files of `dir` in the filter's time range, oldest first
fn day_files(dir: &Path, q: &Filter) -> std::io::Result<Vec<(i64, PathBuf)>> {
    let day_of = |ms: i64| ms.div_euclid(86_400_000);
    let mut files: Vec<(i64, PathBuf)> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let day = name.strip_prefix("audit-")?.strip_suffix(".jsonl")?;
            Some((day_number(day)?, e.path()))
        })
        .filter(|(d, _)| q.query.since_ms.is_none_or(|t| *d >= day_of(t)))
        .filter(|(d, _)| q.query.until_ms.is_none_or(|t| *d <= day_of(t)))
        .collect();
    files.sort();
    Ok(files)
}

impl DirCache {
    /// Search `dir`: the matches' aggregates and page `page` (of `size`, newest first)
    pub fn search(
        &self,
        dir: &Path,
        q: &Filter,
        page: usize,
        size: usize,
    ) -> std::io::Result<Found> {
        let files = match day_files(dir, q) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut cache = self
            .0
            .lock()
            .map_err(|_| std::io::Error::other("audit cache poisoned"))?;
        let mut found = Found::default();
        for (_, path) in files.iter().rev() {
            let f = cache.entry(path.clone()).or_default();
            refresh(f, path)?;
            for r in f.records.iter().rev().filter(|r| q.matches(r)) {
                found.add(r, page, size.max(1));
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(user: &str, ms: i64) -> String {
        let r = Record {
            user: user.into(),
            time: "2026-11-29T00:00:00.000Z".into(),
            unix_ms: ms,
            decision: "allow".into(),
            ..Default::default()
        };
        serde_json::to_string(&r).unwrap_or_default() + "\n"
    }

    #[test]
    fn appended_lines_are_read_and_a_partial_line_waits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit-2026-11-29.jsonl");
        std::fs::write(&path, line("alice", 1) + "{\"user\":").unwrap();
        let cache = DirCache::default();
        let all = Filter::default();
        assert_eq!(cache.search(dir.path(), &all, 0, 10).unwrap().total, 1);
        // the gateway finishes its line and writes another
        let rest = line("bob", 2);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.truncate(text.len() - "{\"user\":".len());
        std::fs::write(&path, text + &line("carol", 3) + &rest).unwrap();
        let found = cache.search(dir.path(), &all, 0, 10).unwrap();
        assert_eq!(found.total, 3);
        let users: Vec<&str> = found.page.iter().map(|r| r.user.as_str()).collect();
        assert_eq!(users, ["carol", "bob", "alice"], "newest first");
        let page2 = cache.search(dir.path(), &all, 1, 2).unwrap();
        assert_eq!(page2.page.len(), 1);
        assert_eq!(page2.page[0].user, "alice");
    }
}
