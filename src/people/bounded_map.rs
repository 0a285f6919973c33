//! A map that holds at most a given number of entries and, when full, forgets the one inserted
//! longest ago: per-isolate memories of keys (look-ups, refusals) that a flood of made-up keys
//! must not grow without bound, nor empty all at once.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

pub struct BoundedMap<K, V> {
    /// Each entry with the number of its insertion.
    map: HashMap<K, (u64, V)>,
    /// The keys in insertion order, oldest first; a key whose number no longer matches its
    /// entry's was removed or inserted again since.
    order: VecDeque<(K, u64)>,
    inserted: u64,
    capacity: usize,
}

impl<K: Eq + Hash + Clone, V> BoundedMap<K, V> {
    pub fn new(capacity: usize) -> Self {
        BoundedMap {
            map: HashMap::new(),
            order: VecDeque::new(),
            inserted: 0,
            capacity: capacity.max(1),
        }
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        self.map.get(key).map(|(_, value)| value)
    }

    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.map.get_mut(key).map(|(_, value)| value)
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        self.map.remove(key).map(|(_, value)| value)
    }

    /// Inserts or replaces `key`'s value. A replaced entry keeps its place in the order.
    pub fn insert(&mut self, key: K, value: V) {
        if let Some((_, held)) = self.map.get_mut(&key) {
            *held = value;
            return;
        }
        let number = self.place_last(&key);
        self.map.insert(key, (number, value));
    }

    /// `key`'s value, inserted from `make` if there is none.
    pub fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        let number = match self.map.get(&key) {
            Some((number, _)) => *number,
            None => self.place_last(&key),
        };
        &mut self.map.entry(key).or_insert_with(|| (number, make())).1
    }

    /// Makes room for a new `key` and puts it last in the order: its insertion's number.
    fn place_last(&mut self, key: &K) -> u64 {
        self.make_room();
        self.inserted += 1;
        self.order.push_back((key.clone(), self.inserted));
        self.inserted
    }

    /// Forgets the oldest entries until one more fits.
    fn make_room(&mut self) {
        while self.map.len() >= self.capacity {
            let Some((oldest, number)) = self.order.pop_front() else {
                break;
            };
            if self.map.get(&oldest).is_some_and(|(n, _)| *n == number) {
                self.map.remove(&oldest);
            }
        }
        // Removed keys leave stale places in the order: drop them now and then.
        if self.order.len() >= 2 * self.capacity {
            let map = &self.map;
            self.order
                .retain(|(key, number)| map.get(key).is_some_and(|(n, _)| n == number));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_map_forgets_the_oldest_entry() {
        let mut map = BoundedMap::new(2);
        map.insert("a", 1);
        map.insert("b", 2);
        map.insert("a", 3); // replaced, not moved
        map.insert("c", 4);
        assert_eq!(
            (map.get(&"a"), map.get(&"b"), map.get(&"c")),
            (None, Some(&2), Some(&4))
        );
        assert_eq!(map.map.len(), 2);
    }

    #[test]
    fn a_removed_key_inserted_again_is_young() {
        let mut map = BoundedMap::new(2);
        map.insert("a", 1);
        map.insert("b", 2);
        assert_eq!(map.remove(&"a"), Some(1));
        map.insert("a", 3);
        map.insert("c", 4);
        assert_eq!(
            (map.get(&"a"), map.get(&"b"), map.get(&"c")),
            (Some(&3), None, Some(&4))
        );
    }

    #[test]
    fn the_order_stays_within_twice_the_capacity() {
        let mut map = BoundedMap::new(2);
        for i in 0..100 {
            map.insert(i, ());
            map.remove(&i);
        }
        assert!(map.order.len() <= 4);
        assert!(map.map.is_empty());
    }
}
