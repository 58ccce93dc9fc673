//! The key index of one join side: equi-join key → the buffered rows with that key.
//!
//! A key is identified by its Arrow row-format bytes (`RowConverter`) and found
//! through a 64-bit hash from DataFusion's `create_hashes`; keys that share a hash
//! are chained and told apart by comparing their bytes. Every buffered row is one
//! [`Entry`] in a single arena, and the entries of a key form a chain, newest
//! first. Buffering a row therefore allocates nothing beyond the amortized growth
//! of the arena and of the hash map (one map entry per distinct hash).
//!
//! Entries of expired rows stay in their chains until the side rebuilds its index
//! (see `side.rs`); probing never returns them because their time can no longer
//! satisfy the interval predicate of a row that is still accepted.

use datafusion::common::HashMap;

use crate::error::{EngineError, Result};

/// The end of a chain.
pub(super) const NONE: u32 = u32::MAX;

/// One buffered row: its event time and where it is stored.
#[derive(Debug, Clone, Copy)]
pub(super) struct Entry {
    /// Event time of the row (milliseconds).
    pub ts: i64,
    /// The stored batch holding the row.
    pub slot: u32,
    /// The row within that batch.
    pub row: u32,
    /// The next (older) entry with the same key, or [`NONE`].
    next: u32,
}

/// Equi-join key → chain of buffered rows.
#[derive(Debug)]
pub(super) struct KeyIndex {
    /// Hash → newest key id with that hash.
    by_hash: HashMap<u64, u32>,
    /// Key id → next (older) key id with the same hash, or [`NONE`].
    same_hash_next: Vec<u32>,
    /// Key id `k`'s bytes are `key_bytes[key_offsets[k]..key_offsets[k + 1]]`.
    key_offsets: Vec<usize>,
    /// Row-format bytes of all keys, back to back.
    key_bytes: Vec<u8>,
    /// Key id → newest entry, or [`NONE`].
    key_head: Vec<u32>,
    /// All entries, in insertion order.
    entries: Vec<Entry>,
}

impl Default for KeyIndex {
    fn default() -> Self {
        KeyIndex {
            by_hash: HashMap::default(),
            same_hash_next: Vec::new(),
            key_offsets: vec![0],
            key_bytes: Vec::new(),
            key_head: Vec::new(),
            entries: Vec::new(),
        }
    }
}

impl KeyIndex {
    /// The key id of `bytes`, if any row with that key is indexed.
    pub fn find(&self, hash: u64, bytes: &[u8]) -> Option<u32> {
        let mut key = *self.by_hash.get(&hash)?;
        while key != NONE {
            let k = key as usize;
            if &self.key_bytes[self.key_offsets[k]..self.key_offsets[k + 1]] == bytes {
                return Some(key);
            }
            key = self.same_hash_next[k];
        }
        None
    }

    /// True when some indexed key has hash `hash` (a cheap test before
    /// [`KeyIndex::find`], which needs the key's bytes).
    pub fn has_hash(&self, hash: u64) -> bool {
        self.by_hash.contains_key(&hash)
    }

    /// Indexes one row.
    pub fn insert(&mut self, hash: u64, bytes: &[u8], ts: i64, slot: u32, row: u32) -> Result<()> {
        let key = match self.find(hash, bytes) {
            Some(key) => key,
            None => {
                let key = to_u32(self.key_head.len(), "distinct keys")?;
                let older = self.by_hash.insert(hash, key).unwrap_or(NONE);
                self.same_hash_next.push(older);
                self.key_bytes.extend_from_slice(bytes);
                self.key_offsets.push(self.key_bytes.len());
                self.key_head.push(NONE);
                key
            }
        };
        let id = to_u32(self.entries.len(), "rows")?;
        let head = &mut self.key_head[key as usize];
        self.entries.push(Entry {
            ts,
            slot,
            row,
            next: *head,
        });
        *head = id;
        Ok(())
    }

    /// Removes every key and entry, keeping the allocations: a window join
    /// clears its index at every window, and growing it again from nothing
    /// faulted in fresh pages each time (tens of milliseconds per window).
    pub fn clear(&mut self) {
        self.by_hash.clear();
        self.same_hash_next.clear();
        self.key_offsets.clear();
        self.key_offsets.push(0);
        self.key_bytes.clear();
        self.key_head.clear();
        self.entries.clear();
    }

    /// The entries of a key, newest first.
    pub fn chain(&self, key: u32) -> Chain<'_> {
        Chain {
            entries: &self.entries,
            next: self.key_head.get(key as usize).copied().unwrap_or(NONE),
        }
    }

    /// Number of entries (live and expired).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Bytes held by the index (its vectors' capacities and the hash map's
    /// entries), an estimate for state metrics.
    pub fn memory_size(&self) -> usize {
        use std::mem::size_of;
        self.by_hash.capacity() * (size_of::<u64>() + size_of::<u32>() + 1)
            + self.same_hash_next.capacity() * size_of::<u32>()
            + self.key_offsets.capacity() * size_of::<usize>()
            + self.key_bytes.capacity()
            + self.key_head.capacity() * size_of::<u32>()
            + self.entries.capacity() * size_of::<Entry>()
    }

    /// The entries from position `start` on, to move rows between stored batches.
    pub fn entries_from_mut(&mut self, start: usize) -> &mut [Entry] {
        let start = start.min(self.entries.len());
        &mut self.entries[start..]
    }
}

/// Iterator over the entries of one key.
pub(super) struct Chain<'a> {
    entries: &'a [Entry],
    next: u32,
}

impl<'a> Iterator for Chain<'a> {
    type Item = &'a Entry;

    fn next(&mut self) -> Option<&'a Entry> {
        let entry = self.entries.get(self.next as usize)?;
        self.next = entry.next;
        Some(entry)
    }
}

/// Converts a count to a `u32` id, or fails when one side's state outgrows them.
pub(super) fn to_u32(n: usize, what: &str) -> Result<u32> {
    u32::try_from(n)
        .ok()
        .filter(|&n| n != NONE)
        .ok_or_else(|| EngineError::Config(format!("join state holds too many {what}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_keys_that_share_a_hash() {
        let mut index = KeyIndex::default();
        index.insert(7, b"a", 1, 0, 0).unwrap();
        index.insert(7, b"b", 2, 0, 1).unwrap();
        index.insert(7, b"a", 3, 1, 0).unwrap();
        let a = index.find(7, b"a").unwrap();
        let b = index.find(7, b"b").unwrap();
        assert_ne!(a, b);
        assert_eq!(index.find(7, b"c"), None);
        assert_eq!(index.find(8, b"a"), None);
        let ts: Vec<i64> = index.chain(a).map(|e| e.ts).collect();
        assert_eq!(ts, vec![3, 1]);
        let ts: Vec<i64> = index.chain(b).map(|e| e.ts).collect();
        assert_eq!(ts, vec![2]);
        assert_eq!(index.len(), 3);
    }

    #[test]
    fn a_cleared_index_keeps_its_memory_but_no_keys() {
        let mut index = KeyIndex::default();
        for i in 0..1000u32 {
            index
                .insert(u64::from(i % 10), &i.to_le_bytes(), i64::from(i), 0, i)
                .unwrap();
        }
        let size = index.memory_size();
        index.clear();
        assert_eq!(index.len(), 0);
        assert_eq!(index.memory_size(), size);
        assert_eq!(index.find(3, &3u32.to_le_bytes()), None);
        index.insert(3, b"k", 5, 1, 2).unwrap();
        let key = index.find(3, b"k").unwrap();
        assert_eq!(key, 0, "key ids start again from zero");
        let entries: Vec<(i64, u32, u32)> =
            index.chain(key).map(|e| (e.ts, e.slot, e.row)).collect();
        assert_eq!(entries, vec![(5, 1, 2)]);
    }
}
