//! A map whose entries expire, with a hard bound on its size.
//!
//! The replay cache, the sign-in nonces and the bearer tokens all keep entries for a
//! while and must never grow without bound: each is one of these behind a mutex.

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap},
    hash::Hash,
};

/// The map was full when an entry was to be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Full;

/// Entries live while `now < expires_at`. Expired entries are dropped lazily: when an
/// entry is added (all of them), and when one is looked up (that one).
///
/// The bound counts every entry added and not yet expired, including those removed
/// early: a removed entry frees its place only when it would have expired. That keeps
/// the memory strictly bounded by `capacity` without a second index.
#[derive(Debug)]
pub(crate) struct ExpiringMap<K, V> {
    entries: HashMap<K, (u64, V)>,
    by_expiry: BinaryHeap<Reverse<(u64, K)>>,
    capacity: usize,
}

impl<K: Hash + Eq + Ord + Clone, V> ExpiringMap<K, V> {
    /// An empty map that holds at most `capacity` entries.
    pub(crate) fn new(capacity: usize) -> Self {
        Self { entries: HashMap::new(), by_expiry: BinaryHeap::new(), capacity }
    }

    /// The bound given to [`ExpiringMap::new`].
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// The number of live entries (expired ones not yet dropped included).
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Drops every entry that has expired at `now`.
    pub(crate) fn purge(&mut self, now: u64) {
        while let Some(Reverse((expires_at, _))) = self.by_expiry.peek() {
            if *expires_at > now {
                break;
            }
            let Some(Reverse((expires_at, key))) = self.by_expiry.pop() else { break };
            if self.entries.get(&key).is_some_and(|(at, _)| *at == expires_at) {
                self.entries.remove(&key);
            }
        }
    }

    /// Adds or replaces `key` until `expires_at`, after dropping what has expired at
    /// `now`; refuses when the map is full.
    pub(crate) fn insert(
        &mut self,
        key: K,
        value: V,
        expires_at: u64,
        now: u64,
    ) -> Result<(), Full> {
        self.purge(now);
        if self.by_expiry.len() >= self.capacity {
            return Err(Full);
        }
        self.by_expiry.push(Reverse((expires_at, key.clone())));
        self.entries.insert(key, (expires_at, value));
        Ok(())
    }

    /// The entry for `key` if it is live at `now`; an expired one is dropped.
    pub(crate) fn get_mut(&mut self, key: &K, now: u64) -> Option<&mut V> {
        let live = self.entries.get(key).map(|(at, _)| now < *at)?;
        if live {
            self.entries.get_mut(key).map(|(_, v)| v)
        } else {
            self.entries.remove(key);
            None
        }
    }

    /// Removes `key`, returning its value if it was there (live or not).
    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        self.entries.remove(key).map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_at_their_time() {
        let mut m = ExpiringMap::new(4);
        m.insert(1u8, "a", 10, 0).unwrap();
        assert_eq!(m.get_mut(&1, 9).copied(), Some("a"));
        assert_eq!(m.get_mut(&1, 10), None);
        assert_eq!(m.len(), 0, "an expired entry is dropped when looked up");
    }

    #[test]
    fn full_until_something_expires() {
        let mut m = ExpiringMap::new(2);
        m.insert(1u8, (), 10, 0).unwrap();
        m.insert(2u8, (), 20, 0).unwrap();
        assert_eq!(m.insert(3u8, (), 30, 5), Err(Full));
        m.insert(3u8, (), 30, 10).unwrap();
        assert_eq!(m.len(), 2);
        assert!(m.get_mut(&1, 10).is_none());
        assert!(m.get_mut(&3, 10).is_some());
    }

    #[test]
    fn a_removed_entry_frees_its_place_when_it_would_have_expired() {
        let mut m = ExpiringMap::new(1);
        m.insert(1u8, (), 10, 0).unwrap();
        assert_eq!(m.remove(&1), Some(()));
        assert_eq!(m.insert(2u8, (), 20, 5), Err(Full));
        m.insert(2u8, (), 20, 10).unwrap();
        assert_eq!(m.capacity(), 1);
    }

    #[test]
    fn a_stale_heap_entry_does_not_drop_a_newer_value() {
        let mut m = ExpiringMap::new(4);
        m.insert(1u8, "old", 10, 0).unwrap();
        m.insert(1u8, "new", 30, 0).unwrap();
        m.purge(15);
        assert_eq!(m.get_mut(&1, 15).copied(), Some("new"));
    }
}
