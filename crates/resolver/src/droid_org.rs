//! Droid's org documents (its managed settings), rendered once per revision and person: serving
//! one is a map lookup. The cache empties when the active revision changes; it never holds
//! more than [`MAX_DOCS`] documents (past that it starts over).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use strata_policy::Snapshot;
use strata_policy::droid::org::{OrgRequest, render};
use strata_proto::v1;

/// Most documents kept for one revision
pub const MAX_DOCS: usize = 10_000;

/// Who a document is for: user, groups, the token's projects, the gateway URL
type Key = (String, Vec<String>, Option<Vec<String>>, String);

#[derive(Default)]
pub struct OrgDocs {
    cache: Mutex<(String, HashMap<Key, Arc<v1::DroidOrgSettingsResponse>>)>,
}

/// Droid's `revision` is a number: the first 52 bits of the revision hash (exact in a double)
fn droid_revision(revision: &str) -> u64 {
    let hex: String = revision
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(13)
        .collect();
    u64::from_str_radix(&hex, 16).unwrap_or(0)
}

impl OrgDocs {
    /// The document for `principal` under `snap`; an error lists why the revision cannot be
    /// rendered in Droid's schema (publish refuses such a bundle, so this is a stored older one)
    pub fn get(
        &self,
        snap: &Snapshot,
        principal: &v1::Principal,
        token_projects: Option<Vec<String>>,
        gateway_url: &str,
    ) -> Result<Arc<v1::DroidOrgSettingsResponse>, String> {
        let revision = snap.revision.to_string();
        let mut groups = principal.groups.clone();
        groups.sort();
        let key: Key = (
            principal.user.clone(),
            groups,
            token_projects,
            gateway_url.to_string(),
        );
        if let Some(hit) = self.lookup(&revision, &key) {
            return Ok(hit);
        }
        let doc = render(
            snap,
            &OrgRequest {
                user: &key.0,
                groups: &key.1,
                token_projects: key.2.as_deref(),
                gateway_url,
            },
        )
        .map_err(|problems| {
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        let resp = Arc::new(v1::DroidOrgSettingsResponse {
            droid_revision: droid_revision(&revision),
            revision: revision.clone(),
            user: principal.user.clone(),
            settings_json: serde_json::Value::Object(doc.settings).to_string(),
            diagnostics: doc.problems.iter().map(v1::Problem::from).collect(),
        });
        self.store(revision, key, Arc::clone(&resp));
        Ok(resp)
    }

    fn lookup(&self, revision: &str, key: &Key) -> Option<Arc<v1::DroidOrgSettingsResponse>> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        (cache.0 == revision).then(|| cache.1.get(key).cloned())?
    }

    fn store(&self, revision: String, key: Key, resp: Arc<v1::DroidOrgSettingsResponse>) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.0 != revision || cache.1.len() >= MAX_DOCS {
            *cache = (revision, HashMap::new());
        }
        cache.1.insert(key, resp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn droid_revision_fits_a_double() {
        assert_eq!(droid_revision("sha256:0000000000001f"), 1);
        assert!(droid_revision("ffffffffffffffffffff") < (1 << 53));
    }
}
