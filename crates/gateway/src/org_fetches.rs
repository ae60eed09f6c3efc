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

#[derive(Default)]
pub struct OrgFetches {
    last: Mutex<HashMap<[u8; 32], i64>>,
}

impl OrgFetches {
    /// `token` loaded the document now
    pub fn record(&self, hash: [u8; 32], unix_ms: i64) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.len() >= MAX_TOKENS && !last.contains_key(&hash) {
            let mut times: Vec<i64> = last.values().copied().collect();
            times.sort_unstable();
            let cut = times[times.len() / 2];
            last.retain(|_, t| *t > cut);
        }
        last.insert(hash, unix_ms);
    }

    /// When `token` last loaded it, if ever
    pub fn last(&self, hash: &[u8; 32]) -> Option<i64> {
        self.last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(hash)
            .copied()
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
        assert_ne!(token_hash("tok-a"), token_hash("tok-b"));
    }
}
