//! When each gateway token last loaded the org document (`GET /api/organization/managed-settings`),
//! as this gateway served it. Droid runs unrestricted when it cannot load its org level, so a
//! request from a token that never loaded it comes from a client that may not enforce the
//! org's client-side rules: counted in `/metrics`, marked in the audit, and refused when the org
//! requires it. Tokens are kept by their sha-256, never in clear.

use std::collections::HashMap;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

/// Most tokens remembered; past that the oldest half is forgotten (they load it again at their
/// next session)
pub const MAX_TOKENS: usize = 1_000_000;

pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// What this gateway knows of one token
#[derive(Clone, Debug, Default)]
struct Seen {
    /// when it last loaded the org document
    loaded_ms: Option<i64>,
    /// its person, as the resolver last said (for whoami while the resolver is away)
    user: Option<String>,
}

#[derive(Default)]
pub struct OrgFetches {
    last: Mutex<HashMap<[u8; 32], Seen>>,
    docs: Mutex<Docs>,
}

/// Org documents already served, by token, for the active revision as the gateway's revision
/// stream last said (`None` while the stream is down: then nothing is served from here)
#[derive(Default)]
struct Docs {
    revision: Option<String>,
    by_token: HashMap<[u8; 32], (String, std::sync::Arc<str>, std::time::Instant)>,
}

/// Most documents kept; past that the cache starts over
pub const MAX_DOCS: usize = 100_000;
/// How long a document is served from memory: a token revoked meanwhile (which makes no new
/// revision) is asked about again after this
pub const DOC_TTL: std::time::Duration = std::time::Duration::from_secs(60);

impl OrgFetches {
    fn update(&self, hash: [u8; 32], f: impl FnOnce(&mut Seen)) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.len() >= MAX_TOKENS && !last.contains_key(&hash) {
            let mut times: Vec<i64> = last.values().map(|s| s.loaded_ms.unwrap_or(0)).collect();
            times.sort_unstable();
            let cut = times[times.len() / 2];
            last.retain(|_, s| s.loaded_ms.unwrap_or(0) > cut);
        }
        f(last.entry(hash).or_default());
    }

    /// `token` loaded the document now
    pub fn record(&self, hash: [u8; 32], unix_ms: i64) {
        self.update(hash, |s| s.loaded_ms = Some(unix_ms));
    }

    /// The resolver said `token` is `user`'s
    pub fn record_user(&self, hash: [u8; 32], user: &str) {
        self.update(hash, |s| s.user = Some(user.to_string()));
    }

    fn get(&self, hash: &[u8; 32]) -> Option<Seen> {
        self.last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(hash)
            .cloned()
    }

    /// When `token` last loaded it, if ever
    pub fn last(&self, hash: &[u8; 32]) -> Option<i64> {
        self.get(hash).and_then(|s| s.loaded_ms)
    }

    /// `token`'s person as the resolver last said
    pub fn user(&self, hash: &[u8; 32]) -> Option<String> {
        self.get(hash).and_then(|s| s.user)
    }

    /// The active revision, as the resolver's revision stream announces it (`None`: the stream
    /// is down, and documents are fetched from the resolver every time)
    pub fn set_revision(&self, revision: Option<&str>) {
        let mut docs = self.docs.lock().unwrap_or_else(|e| e.into_inner());
        if docs.revision.as_deref() != revision {
            docs.revision = revision.map(str::to_string);
            docs.by_token.clear();
        }
    }

    /// The response body already served to `token` under the active revision
    pub fn doc(&self, hash: &[u8; 32]) -> Option<std::sync::Arc<str>> {
        let docs = self.docs.lock().unwrap_or_else(|e| e.into_inner());
        let active = docs.revision.as_deref()?;
        docs.by_token
            .get(hash)
            .filter(|(rev, _, at)| rev == active && at.elapsed() < DOC_TTL)
            .map(|(_, body, _)| body.clone())
    }

    /// Keep `body`, rendered under `revision`, for `token`
    pub fn keep_doc(&self, hash: [u8; 32], revision: &str, body: std::sync::Arc<str>) {
        let mut docs = self.docs.lock().unwrap_or_else(|e| e.into_inner());
        if docs.revision.as_deref() != Some(revision) {
            return;
        }
        if docs.by_token.len() >= MAX_DOCS {
            docs.by_token.clear();
        }
        docs.by_token.insert(
            hash,
            (revision.to_string(), body, std::time::Instant::now()),
        );
    }

    /// Tokens that have loaded it
    pub fn len(&self) -> usize {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_by_hash_and_forgets_the_oldest_when_full() {
        let f = OrgFetches::default();
        let h = token_hash("tok-a");
        assert_eq!(f.last(&h), None);
        f.record(h, 5);
        assert_eq!(f.last(&h), Some(5));
        assert_eq!(f.user(&h), None);
        f.record_user(h, "alice");
        assert_eq!(
            (f.last(&h), f.user(&h).as_deref()),
            (Some(5), Some("alice"))
        );
        assert_ne!(token_hash("tok-a"), token_hash("tok-b"));
    }

    #[test]
    fn documents_are_served_from_memory_only_under_the_announced_revision() {
        let f = OrgFetches::default();
        let h = token_hash("tok-a");
        f.keep_doc(h, "r1", "doc1".into());
        assert_eq!(f.doc(&h), None, "no revision announced yet: nothing kept");
        f.set_revision(Some("r1"));
        f.keep_doc(h, "r1", "doc1".into());
        assert_eq!(f.doc(&h).as_deref(), Some("doc1"));
        f.set_revision(Some("r2"));
        assert_eq!(f.doc(&h), None, "a new revision empties it");
        f.keep_doc(h, "r1", "stale".into());
        assert_eq!(
            f.doc(&h),
            None,
            "a document of an older revision is not kept"
        );
        f.set_revision(Some("r2"));
        f.keep_doc(h, "r2", "doc2".into());
        f.set_revision(None);
        assert_eq!(
            f.doc(&h),
            None,
            "the stream is down: from the resolver again"
        );
    }
}
