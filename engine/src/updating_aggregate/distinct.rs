//! The values DISTINCT aggregates have seen per group: one hash map per
//! distinct argument, keyed by (group id, group epoch, value), whose value is
//! a bit per aggregate call over that argument (its *member* number): the bit
//! is set once the call has counted the value. Nexmark q16's eight
//! `COUNT(DISTINCT ...) FILTER (...)` over two columns probe two maps per row
//! instead of inserting into up to eight sets (Flink shares its distinct
//! state the same way).
//!
//! Values are keyed without `ScalarValue`: integers, booleans and temporal
//! values as `i64`, floats by their bits (all NaNs alike, `-0.0` apart from
//! `0.0`, as Java's `Double.equals`), `Decimal128` as `i128`, strings and
//! binaries by their bytes, any other type by its Arrow row encoding. Byte keys
//! live in one arena per aggregate; the table holds offsets into it.
//!
//! A group whose state expired (TTL) and is touched again before the sweep
//! removes it gets a new epoch: its old values no longer match and it counts
//! from zero. Entries of old epochs and of expired groups are dropped by the
//! sweep ([`DistinctValues::compact`]).

use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, Decimal128Array, Int64Array, ListArray,
};
use datafusion::arrow::buffer::{OffsetBuffer, ScalarBuffer};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Decimal128Type, Field, Float64Type, Int64Type, UInt64Type,
};
use datafusion::arrow::row::{RowConverter, SortField};
use hashbrown::hash_table::Entry;
use hashbrown::{DefaultHashBuilder, HashMap, HashTable};

use crate::checkpoint::malformed_state;
use crate::error::{EngineError, Result};

/// How the values of one input type are keyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    /// Integers, booleans, dates, times, timestamps, durations: as `i64`.
    Int,
    /// `Float16`/`Float32`/`Float64`: the `f64` bits, NaN made canonical.
    Float,
    /// `Decimal128`: the unscaled `i128`.
    Dec,
    /// Strings and binaries: their bytes.
    Bytes,
    /// Anything else: the Arrow row encoding.
    Rows,
}

impl KeyKind {
    fn of(data_type: &DataType) -> KeyKind {
        use DataType::*;
        match data_type {
            Boolean
            | Int8
            | Int16
            | Int32
            | Int64
            | UInt8
            | UInt16
            | UInt32
            | UInt64
            | Date32
            | Date64
            | Time32(_)
            | Time64(_)
            | Timestamp(_, _)
            | Duration(_) => KeyKind::Int,
            Float16 | Float32 | Float64 => KeyKind::Float,
            Decimal128(_, _) => KeyKind::Dec,
            Utf8 | LargeUtf8 | Utf8View | Binary | LargeBinary | BinaryView => KeyKind::Bytes,
            _ => KeyKind::Rows,
        }
    }
}

/// A key of a fixed-width value: group id, the group's epoch, value.
type Slot<V> = (u32, u32, V);

/// Per value: bit `m` set once member `m` has counted it.
type Members = u64;

/// Most aggregate calls that share one map.
pub(super) const MAX_MEMBERS: usize = Members::BITS as usize;

/// The maps, by key kind.
enum Store {
    /// Integers and float bits.
    Wide(HashMap<Slot<i64>, Members>),
    /// Decimals.
    Dec(HashMap<Slot<i128>, Members>),
    /// Bytes (strings, binaries, row-encoded values).
    Bytes(ByteSet),
}

/// Distinct values per group of the aggregate calls over one argument.
pub(super) struct DistinctValues {
    kind: KeyKind,
    store: Store,
    /// The row encoder, for [`KeyKind::Rows`].
    rows: Option<RowConverter>,
    /// Per group id: the epoch whose values count.
    epochs: Vec<u32>,
}

impl DistinctValues {
    /// An empty set for values of `data_type`; fails when Arrow cannot encode
    /// the type as rows.
    pub(super) fn try_new(data_type: &DataType) -> Result<Self> {
        let kind = KeyKind::of(data_type);
        let rows = if kind == KeyKind::Rows {
            let field = SortField::new(data_type.clone());
            if !RowConverter::supports_fields(std::slice::from_ref(&field)) {
                return Err(EngineError::Config(format!(
                    "DISTINCT over values of type {data_type} is not supported"
                )));
            }
            Some(RowConverter::new(vec![field])?)
        } else {
            None
        };
        let store = match kind {
            KeyKind::Int | KeyKind::Float => Store::Wide(HashMap::new()),
            KeyKind::Dec => Store::Dec(HashMap::new()),
            KeyKind::Bytes | KeyKind::Rows => Store::Bytes(ByteSet::default()),
        };
        Ok(DistinctValues {
            kind,
            store,
            rows,
            epochs: Vec::new(),
        })
    }

    /// Tracks `groups` groups (new ones start at epoch 0, with no values).
    pub(super) fn resize(&mut self, groups: usize) -> Result<()> {
        if groups > u32::MAX as usize {
            return Err(EngineError::Config(format!(
                "updating aggregate: {groups} groups exceed the {} a DISTINCT aggregate can hold",
                u32::MAX
            )));
        }
        self.epochs.resize(groups, 0);
        Ok(())
    }

    /// Forgets the values of `group` (it restarts after expiring).
    pub(super) fn reset(&mut self, group: usize) {
        if let Some(epoch) = self.epochs.get_mut(group) {
            *epoch = epoch.wrapping_add(1);
        }
    }

    /// Records the values (non-NULL ones only) under their groups for each
    /// member whose `passes[m]` (its FILTER) holds for the row, and returns per
    /// member and row whether the row brought a value the member had not
    /// counted in that group (false for NULLs, rows not passing and repeats,
    /// also of an earlier row of the same batch).
    pub(super) fn insert(
        &mut self,
        values: &ArrayRef,
        groups: &[usize],
        passes: &[&dyn Fn(usize) -> bool],
    ) -> Result<Vec<Vec<bool>>> {
        if passes.len() > MAX_MEMBERS {
            return Err(EngineError::InvalidGraph(format!(
                "DISTINCT aggregate: {} calls share one map, at most {MAX_MEMBERS}",
                passes.len()
            )));
        }
        if values.len() != groups.len() {
            return Err(EngineError::InvalidGraph(format!(
                "DISTINCT aggregate: {} values for {} group ids",
                values.len(),
                groups.len()
            )));
        }
        let mut fresh = Fresh {
            rows: vec![vec![false; groups.len()]; passes.len()],
        };
        // The members that count row `i` (0: none, or a NULL value).
        let counted = |i: usize| -> Members {
            if values.is_null(i) {
                return 0;
            }
            passes
                .iter()
                .enumerate()
                .filter(|(_, p)| p(i))
                .fold(0, |bits, (m, _)| bits | (1 << m))
        };
        let epochs = &self.epochs;
        let slot = |g: usize| -> (u32, u32) {
            // `resize` keeps group ids below u32::MAX.
            (g as u32, epochs.get(g).copied().unwrap_or(0))
        };
        match (&mut self.store, self.kind) {
            (Store::Wide(set), KeyKind::Float) => {
                let floats = cast(values, &DataType::Float64)?;
                let floats = floats.as_primitive::<Float64Type>().values();
                insert_fixed(set, groups, &counted, &slot, &mut fresh, |i| {
                    float_key(floats[i])
                });
            }
            (Store::Wide(set), _) => {
                if values.data_type() == &DataType::UInt64 {
                    let ints = values.as_primitive::<UInt64Type>().values();
                    // Bit-for-bit: u64 values above i64::MAX stay distinct.
                    insert_fixed(set, groups, &counted, &slot, &mut fresh, |i| {
                        i64::from_ne_bytes(ints[i].to_ne_bytes())
                    });
                } else {
                    let ints = cast(values, &DataType::Int64)?;
                    let ints = ints.as_primitive::<Int64Type>().values();
                    insert_fixed(set, groups, &counted, &slot, &mut fresh, |i| ints[i]);
                }
            }
            (Store::Dec(set), _) => {
                let decs = values
                    .as_primitive_opt::<Decimal128Type>()
                    .ok_or_else(|| {
                        EngineError::InvalidGraph(format!(
                            "DISTINCT aggregate: expected decimal values, got {}",
                            values.data_type()
                        ))
                    })?
                    .values();
                insert_fixed(set, groups, &counted, &slot, &mut fresh, |i| decs[i]);
            }
            (Store::Bytes(set), _) => match values.data_type() {
                DataType::Utf8 => {
                    let s = values.as_string::<i32>();
                    insert_bytes(set, groups, &counted, &slot, &mut fresh, |i| {
                        s.value(i).as_bytes()
                    });
                }
                DataType::LargeUtf8 => {
                    let s = values.as_string::<i64>();
                    insert_bytes(set, groups, &counted, &slot, &mut fresh, |i| {
                        s.value(i).as_bytes()
                    });
                }
                DataType::Utf8View => {
                    let s = values.as_string_view();
                    insert_bytes(set, groups, &counted, &slot, &mut fresh, |i| {
                        s.value(i).as_bytes()
                    });
                }
                DataType::Binary => {
                    let b = values.as_binary::<i32>();
                    insert_bytes(set, groups, &counted, &slot, &mut fresh, |i| b.value(i));
                }
                DataType::LargeBinary => {
                    let b = values.as_binary::<i64>();
                    insert_bytes(set, groups, &counted, &slot, &mut fresh, |i| b.value(i));
                }
                DataType::BinaryView => {
                    let b = values.as_binary_view();
                    insert_bytes(set, groups, &counted, &slot, &mut fresh, |i| b.value(i));
                }
                other => {
                    let converter = self.rows.as_ref().ok_or_else(|| {
                        EngineError::InvalidGraph(format!(
                            "DISTINCT values of type {other} without a row encoder"
                        ))
                    })?;
                    let rows = converter.convert_columns(std::slice::from_ref(values))?;
                    insert_bytes(set, groups, &counted, &slot, &mut fresh, |i| {
                        rows.row(i).data()
                    });
                }
            },
        }
        Ok(fresh.rows)
    }

    /// Keeps the groups where `keep` is true (renumbered in order, as the key
    /// table is) and drops the values of the others and of old epochs.
    pub(super) fn compact(&mut self, keep: &[bool]) {
        let mut next = 0u32;
        // Per old group id: its new id, if kept.
        let renumber: Vec<Option<u32>> = keep
            .iter()
            .map(|&k| {
                k.then(|| {
                    next += 1;
                    next - 1
                })
            })
            .collect();
        let epochs = &self.epochs;
        let live = |group: u32, epoch: u32| -> Option<u32> {
            let g = group as usize;
            let new = renumber.get(g).copied().flatten()?;
            (epochs.get(g) == Some(&epoch)).then_some(new)
        };
        match &mut self.store {
            Store::Wide(set) => compact_fixed(set, &live),
            Store::Dec(set) => compact_fixed(set, &live),
            Store::Bytes(set) => set.compact(&live),
        }
        super::ttl::retain_kept(&mut self.epochs, keep);
    }

    /// The type of the values of [`DistinctValues::snapshot`] lists (see
    /// [`list_type`]).
    pub(super) fn snapshot_type(&self) -> DataType {
        DataType::List(self.snapshot_item())
    }

    /// The item field of [`DistinctValues::snapshot_type`].
    fn snapshot_item(&self) -> Arc<Field> {
        list_item(self.kind)
    }

    /// The values member `member` counted in groups `0..groups` (of their
    /// current epoch), one list per group, for a checkpoint (each call keeps
    /// its own column, as when it had a set of its own).
    pub(super) fn snapshot(&self, groups: usize, member: usize) -> Result<ArrayRef> {
        let epochs = &self.epochs;
        let bit: Members = 1 << member;
        let current = |group: u32, epoch: u32, members: Members| {
            members & bit != 0
                && (group as usize) < groups
                && epochs.get(group as usize).copied().unwrap_or(0) == epoch
        };
        let (values, group_of): (ArrayRef, Vec<u32>) = match &self.store {
            Store::Wide(set) => {
                let entries = current_entries(set, &current);
                let values = Int64Array::from_iter_values(entries.iter().map(|e| e.1));
                (Arc::new(values), entries.iter().map(|e| e.0).collect())
            }
            Store::Dec(set) => {
                let entries = current_entries(set, &current);
                let values = Decimal128Array::from_iter_values(entries.iter().map(|e| e.1))
                    .with_precision_and_scale(38, 0)?;
                (Arc::new(values), entries.iter().map(|e| e.0).collect())
            }
            Store::Bytes(set) => {
                let mut entries: Vec<(u32, &[u8])> = set
                    .table
                    .iter()
                    .filter(|slot| current(slot.group, slot.epoch, slot.members))
                    .map(|slot| (slot.group, ByteSet::bytes(&set.arena, slot)))
                    .collect();
                entries.sort_unstable();
                let values = BinaryArray::from_iter_values(entries.iter().map(|e| e.1));
                (Arc::new(values), entries.iter().map(|e| e.0).collect())
            }
        };
        let mut offsets = Vec::with_capacity(groups + 1);
        offsets.push(0i32);
        let mut next = 0usize;
        for g in 0..groups {
            while group_of.get(next).is_some_and(|&x| x as usize == g) {
                next += 1;
            }
            offsets.push(i32::try_from(next).map_err(|_| {
                EngineError::Config("DISTINCT aggregate: too many values for a checkpoint".into())
            })?);
        }
        let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
        Ok(Arc::new(ListArray::try_new(
            self.snapshot_item(),
            offsets,
            values,
            None,
        )?))
    }

    /// Puts back the values of member `member`'s [`DistinctValues::snapshot`]
    /// (list `g` holds the values of group `g`).
    pub(super) fn restore(&mut self, lists: &ArrayRef, member: usize) -> Result<()> {
        let bit: Members = 1 << member;
        let bad = |what: &str| malformed_state(&format!("DISTINCT values: {what}"));
        if lists.data_type() != &self.snapshot_type() {
            return Err(bad(&format!(
                "{} where {} was expected",
                lists.data_type(),
                self.snapshot_type()
            )));
        }
        let lists = lists
            .as_list_opt::<i32>()
            .ok_or_else(|| bad("not a list"))?;
        self.resize(lists.len())?;
        let values = lists.values();
        if values.null_count() > 0 {
            return Err(bad("a NULL value"));
        }
        for (g, range) in lists.offsets().windows(2).enumerate() {
            let (start, end) = (range[0] as usize, range[1] as usize);
            let group = u32::try_from(g).map_err(|_| bad("too many groups"))?;
            let epoch = self.epochs.get(g).copied().unwrap_or(0);
            for i in start..end.min(values.len()) {
                match &mut self.store {
                    Store::Wide(set) => {
                        let v = values
                            .as_primitive_opt::<Int64Type>()
                            .ok_or_else(|| bad("not Int64"))?;
                        *set.entry((group, epoch, v.value(i))).or_insert(0) |= bit;
                    }
                    Store::Dec(set) => {
                        let v = values
                            .as_primitive_opt::<Decimal128Type>()
                            .ok_or_else(|| bad("not Decimal128"))?;
                        *set.entry((group, epoch, v.value(i))).or_insert(0) |= bit;
                    }
                    Store::Bytes(set) => {
                        let v = values
                            .as_binary_opt::<i32>()
                            .ok_or_else(|| bad("not Binary"))?;
                        set.insert(group, epoch, v.value(i), bit);
                    }
                }
            }
        }
        Ok(())
    }

    /// Number of values held, stale epochs included.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        match &self.store {
            Store::Wide(set) => set.len(),
            Store::Dec(set) => set.len(),
            Store::Bytes(set) => set.table.len(),
        }
    }

    /// Approximate bytes held.
    pub(super) fn size(&self) -> usize {
        let store = match &self.store {
            Store::Wide(set) => set.allocation_size(),
            Store::Dec(set) => set.allocation_size(),
            Store::Bytes(set) => set.size(),
        };
        store + self.epochs.capacity() * 4 + self.rows.as_ref().map_or(0, RowConverter::size)
    }
}

/// The type of a checkpoint's lists of DISTINCT values of `data_type`: the
/// map's own keys (integers and float bits as Int64, decimals as unscaled
/// Decimal128(38, 0), strings, binaries and row-encoded values as bytes).
pub(super) fn list_type(data_type: &DataType) -> DataType {
    DataType::List(list_item(KeyKind::of(data_type)))
}

/// The item field of [`list_type`].
fn list_item(kind: KeyKind) -> Arc<Field> {
    let item = match kind {
        KeyKind::Int | KeyKind::Float => DataType::Int64,
        KeyKind::Dec => DataType::Decimal128(38, 0),
        KeyKind::Bytes | KeyKind::Rows => DataType::Binary,
    };
    Arc::new(Field::new_list_field(item, false))
}

/// The key of a float: its bits, every NaN alike.
fn float_key(value: f64) -> i64 {
    let bits = if value.is_nan() {
        f64::NAN.to_bits()
    } else {
        value.to_bits()
    };
    i64::from_ne_bytes(bits.to_ne_bytes())
}

/// The `(group, value)` entries of `set` that `current(group, epoch)` keeps,
/// in order.
fn current_entries<V: Ord + Copy>(
    set: &HashMap<Slot<V>, Members>,
    current: &dyn Fn(u32, u32, Members) -> bool,
) -> Vec<(u32, V)> {
    let mut entries: Vec<(u32, V)> = set
        .iter()
        .filter(|((g, e, _), members)| current(*g, *e, **members))
        .map(|(&(g, _, v), _)| (g, v))
        .collect();
    entries.sort_unstable();
    entries
}

/// Per member and row: did the row bring a value new to the member's group.
struct Fresh {
    rows: Vec<Vec<bool>>,
}

impl Fresh {
    /// Row `i` brought a new value to the members of `new`.
    fn mark(&mut self, i: usize, mut new: Members) {
        while new != 0 {
            let m = new.trailing_zeros() as usize;
            if let Some(row) = self.rows.get_mut(m).and_then(|r| r.get_mut(i)) {
                *row = true;
            }
            new &= new - 1;
        }
    }
}

/// Records the counted rows' values in `set`, marking in `fresh` the members
/// each value is new to.
fn insert_fixed<V: Hash + Eq + Copy>(
    set: &mut HashMap<Slot<V>, Members>,
    groups: &[usize],
    counted: &dyn Fn(usize) -> Members,
    slot: &dyn Fn(usize) -> (u32, u32),
    fresh: &mut Fresh,
    value: impl Fn(usize) -> V,
) {
    for (i, &g) in groups.iter().enumerate() {
        let want = counted(i);
        if want != 0 {
            let (group, epoch) = slot(g);
            let seen = set.entry((group, epoch, value(i))).or_insert(0);
            fresh.mark(i, want & !*seen);
            *seen |= want;
        }
    }
}

/// [`insert_fixed`] for byte values.
fn insert_bytes<'a>(
    set: &mut ByteSet,
    groups: &[usize],
    counted: &dyn Fn(usize) -> Members,
    slot: &dyn Fn(usize) -> (u32, u32),
    fresh: &mut Fresh,
    value: impl Fn(usize) -> &'a [u8],
) {
    for (i, &g) in groups.iter().enumerate() {
        let want = counted(i);
        if want != 0 {
            let (group, epoch) = slot(g);
            fresh.mark(i, set.insert(group, epoch, value(i), want));
        }
    }
}

/// Rebuilds `set` with the live entries under their new group ids.
fn compact_fixed<V: Hash + Eq + Copy>(
    set: &mut HashMap<Slot<V>, Members>,
    live: &dyn Fn(u32, u32) -> Option<u32>,
) {
    let old = std::mem::take(set);
    set.extend(
        old.into_iter()
            .filter_map(|((g, e, v), m)| live(g, e).map(|n| ((n, e, v), m))),
    );
}

/// Where one byte key lives in the arena.
#[derive(Debug, Clone, Copy)]
struct ByteSlot {
    offset: usize,
    len: usize,
    group: u32,
    epoch: u32,
    /// The members that counted the value.
    members: Members,
}

/// Byte keys per (group, epoch): a hash table of slots into one arena.
#[derive(Default)]
struct ByteSet {
    table: HashTable<ByteSlot>,
    arena: Vec<u8>,
    hasher: DefaultHashBuilder,
}

impl ByteSet {
    fn hash(hasher: &DefaultHashBuilder, group: u32, epoch: u32, bytes: &[u8]) -> u64 {
        hasher.hash_one((group, epoch, bytes))
    }

    fn bytes<'a>(arena: &'a [u8], slot: &ByteSlot) -> &'a [u8] {
        arena
            .get(slot.offset..slot.offset + slot.len)
            .unwrap_or_default()
    }

    /// Records that `members` counted `bytes` under (group, epoch); returns
    /// the members it is new to.
    fn insert(&mut self, group: u32, epoch: u32, bytes: &[u8], members: Members) -> Members {
        let ByteSet {
            table,
            arena,
            hasher,
        } = self;
        let len = bytes.len();
        let hash = Self::hash(hasher, group, epoch, bytes);
        let entry = table.entry(
            hash,
            |s| {
                s.group == group
                    && s.epoch == epoch
                    && s.len == len
                    && Self::bytes(arena, s) == bytes
            },
            |s| Self::hash(hasher, s.group, s.epoch, Self::bytes(arena, s)),
        );
        match entry {
            Entry::Occupied(mut occupied) => {
                let slot = occupied.get_mut();
                let new = members & !slot.members;
                slot.members |= members;
                new
            }
            Entry::Vacant(vacant) => {
                vacant.insert(ByteSlot {
                    offset: arena.len(),
                    len,
                    group,
                    epoch,
                    members,
                });
                arena.extend_from_slice(bytes);
                members
            }
        }
    }

    /// Rebuilds the table and arena with the live entries, renumbered.
    fn compact(&mut self, live: &dyn Fn(u32, u32) -> Option<u32>) {
        let old_arena = std::mem::take(&mut self.arena);
        let old_table = std::mem::take(&mut self.table);
        for slot in old_table {
            let Some(group) = live(slot.group, slot.epoch) else {
                continue;
            };
            let bytes = Self::bytes(&old_arena, &slot);
            let hash = Self::hash(&self.hasher, group, slot.epoch, bytes);
            let moved = ByteSlot {
                offset: self.arena.len(),
                group,
                ..slot
            };
            self.arena.extend_from_slice(bytes);
            let (arena, hasher) = (&self.arena, &self.hasher);
            self.table.insert_unique(hash, moved, |s| {
                Self::hash(hasher, s.group, s.epoch, Self::bytes(arena, s))
            });
        }
    }

    /// Approximate bytes held.
    fn size(&self) -> usize {
        self.table.allocation_size() + self.arena.capacity()
    }
}
