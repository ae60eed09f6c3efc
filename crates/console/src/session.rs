//! Signed-in sessions: a random id (the cookie) → who signed in and the session's CSRF token

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a session lasts
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

/// A random value, hex
pub fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    // getrandom failing means no entropy: no session can be made safely
    if getrandom::fill(&mut b).is_err() {
        return String::new();
    }
    hex::encode(b)
}

#[derive(Clone)]
pub struct Session {
    pub csrf: String,
    /// who signed in, for the change log (the name they gave, and the session's short id)
    pub who: String,
    created: Instant,
}

#[derive(Default)]
pub struct Sessions(Mutex<HashMap<String, Session>>);

impl Sessions {
    pub fn create(&self, who: String) -> Option<(String, Session)> {
        let id = random_hex(32);
        let csrf = random_hex(32);
        if id.is_empty() || csrf.is_empty() {
            return None;
        }
        let s = Session {
            csrf,
            who: format!("{who} (session {})", &id[..8]),
            created: Instant::now(),
        };
        let mut map = self.0.lock().ok()?;
        map.retain(|_, s| s.created.elapsed() < SESSION_TTL);
        map.insert(id.clone(), s.clone());
        Some((id, s))
    }

    pub fn get(&self, id: &str) -> Option<Session> {
        let map = self.0.lock().ok()?;
        map.get(id)
            .filter(|s| s.created.elapsed() < SESSION_TTL)
            .cloned()
    }

    pub fn remove(&self, id: &str) {
        if let Ok(mut map) = self.0.lock() {
            map.remove(id);
        }
    }
}
