//! A map by project id split into a fixed number of buckets, each shared (`Arc`) between the
//! values it was copied from: copying the map copies [`BUCKETS`] pointers, and changing one entry
//! copies that entry's bucket alone (about 1/64th of the projects). Consecutive snapshots (and
//! the resolver's lists of stored layers) share every bucket in which nothing changed, and a
//! changed bucket is what a digest or a stored index is recomputed for.
//!
//! Iteration is by bucket, then by id within a bucket (not by id overall).

use std::collections::BTreeMap;
use std::sync::Arc;

/// How many buckets a [`Buckets`] has
pub const BUCKETS: usize = 64;

/// The bucket of project `id` in a snapshot: FNV-1a, so that it is cheap on the decision path
/// and the same in every process and version (the revision hashes bucket by bucket)
pub fn bucket_of(id: &str) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % BUCKETS as u64) as usize
}

/// Entries by id in [`BUCKETS`] shared buckets; `bucket` says which bucket an id is in
#[derive(Clone)]
pub struct Buckets<V> {
    buckets: Vec<Arc<BTreeMap<String, V>>>,
    len: usize,
    bucket: fn(&str) -> usize,
}

impl<V> Default for Buckets<V> {
    fn default() -> Self {
        Buckets::new(bucket_of)
    }
}

impl<V: std::fmt::Debug> std::fmt::Debug for Buckets<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<V> Buckets<V> {
    /// An empty map whose ids go to bucket `bucket(id)` (taken modulo [`BUCKETS`])
    pub fn new(bucket: fn(&str) -> usize) -> Self {
        Buckets {
            buckets: (0..BUCKETS).map(|_| Arc::new(BTreeMap::new())).collect(),
            len: 0,
            bucket,
        }
    }

    /// The bucket `id` is (or would be) in
    pub fn bucket_index(&self, id: &str) -> usize {
        (self.bucket)(id) % BUCKETS
    }

    pub fn get(&self, id: &str) -> Option<&V> {
        self.buckets[self.bucket_index(id)].get(id)
    }

    pub fn contains_key(&self, id: &str) -> bool {
        self.get(id).is_some()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bucket `k`'s entries, by id
    pub fn bucket(&self, k: usize) -> &Arc<BTreeMap<String, V>> {
        &self.buckets[k]
    }

    /// Replace bucket `k` with `entries` (every id of which must belong to bucket `k`)
    pub fn set_bucket(&mut self, k: usize, entries: Arc<BTreeMap<String, V>>) {
        self.len = self.len - self.buckets[k].len() + entries.len();
        self.buckets[k] = entries;
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &V)> {
        self.buckets.iter().flat_map(|b| b.iter())
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }
}

impl<V: Clone> Buckets<V> {
    /// Add or replace an entry: copies its bucket if another map shares it
    pub fn insert(&mut self, id: String, value: V) -> Option<V> {
        let k = self.bucket_index(&id);
        let old = Arc::make_mut(&mut self.buckets[k]).insert(id, value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Remove an entry: copies its bucket if another map shares it (and it is there)
    pub fn remove(&mut self, id: &str) -> Option<V> {
        let k = self.bucket_index(id);
        if !self.buckets[k].contains_key(id) {
            return None;
        }
        let old = Arc::make_mut(&mut self.buckets[k]).remove(id);
        self.len -= usize::from(old.is_some());
        old
    }
}

impl<'a, V> IntoIterator for &'a Buckets<V> {
    type Item = (&'a String, &'a V);
    type IntoIter = Box<dyn Iterator<Item = (&'a String, &'a V)> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

impl<V: Clone> FromIterator<(String, V)> for Buckets<V> {
    fn from_iter<I: IntoIterator<Item = (String, V)>>(iter: I) -> Self {
        let mut out = Buckets::default();
        for (k, v) in iter {
            out.insert(k, v);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_copy_shares_every_bucket_but_the_one_changed() {
        let mut a: Buckets<usize> = (0..1000).map(|i| (format!("p{i}"), i)).collect();
        assert_eq!(a.len(), 1000);
        let b = a.clone();
        a.insert("p7".into(), 70);
        a.remove("p8");
        a.remove("nope");
        assert_eq!((a.len(), b.len()), (999, 1000));
        assert_eq!((a.get("p7"), b.get("p7")), (Some(&70), Some(&7)));
        assert!(!a.contains_key("p8") && b.contains_key("p8"));
        let changed: Vec<usize> = (0..BUCKETS)
            .filter(|k| !Arc::ptr_eq(a.bucket(*k), b.bucket(*k)))
            .collect();
        let mut want = vec![a.bucket_index("p7"), a.bucket_index("p8")];
        want.sort();
        want.dedup();
        assert_eq!(changed, want);
        assert_eq!(a.iter().count(), 999);
    }

    #[test]
    fn the_bucket_of_an_id_never_changes() {
        // the revision hashes bucket by bucket: this function is part of its formula
        assert_eq!(bucket_of(""), 37);
        assert_eq!(bucket_of("team-00001/repo"), bucket_of("team-00001/repo"));
        let spread: std::collections::HashSet<usize> = (0..10_000)
            .map(|i| bucket_of(&format!("team-{i:05}/repo")))
            .collect();
        assert_eq!(spread.len(), BUCKETS);
    }
}
