//! The deterministic payments generator.
//!
//! One ChaCha8 stream, seeded with `seed`, is consumed in row order with exactly
//! [`DRAWS_PER_ROW`] 64-bit draws per row whatever columns are selected, so row
//! `i` is the same for any batch size and any column subset. Batches are built
//! column by column from the block of draws; value tables are integers (see
//! [`super::tables`]), so output is identical on every platform.
//!
//! # Parallel splits
//!
//! A generator for split `index` of `count` ([`PaymentsGenerator::for_split`])
//! produces the rows `i` with `i % count == index`, in increasing order, with
//! exactly the values row `i` has in a single-split run: row `i`'s draws sit at a
//! fixed position of the stream (word `i * 8` of ChaCha's 32-bit words), so a
//! split reads its own rows' draws and skips the others'. Gaps of up to one
//! ChaCha buffer (256 bytes, i.e. `count <= 9`) are skipped by reading and
//! discarding keystream, larger ones by seeking (which regenerates one buffer),
//! so a split pays at most about `min(count, 9)` rows' worth of keystream per
//! row it emits; that is cheap next to building the columns, which is done only
//! for the split's own rows.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Decimal128Array, Int64Array, StringBuilder, TimestampMillisecondArray,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use watershed_engine::EngineError;
use watershed_engine::source::Split;

use super::columns::{PaymentColumn, payments_schema, resolve_columns};
use super::config::PaymentsConfig;
use super::tables::{
    AMOUNT_QUANTILES_CENTS, COUNTRIES, FOREIGN_SHARE, HOT_CARD_SHARE, LARGE_AMOUNT_MIN_CENTS,
    LARGE_AMOUNT_PER_MILLION, LARGE_AMOUNT_SPAN_CENTS, MCCS, STATUSES, cumulative_thresholds, pick,
    threshold,
};

/// Random 64-bit draws consumed per row. Bit fields (high to low):
/// - draw 0: event-time jitter (32) | hot-card choice (16) | lateness choice (16);
/// - draw 1: card index (32) | merchant (32);
/// - draw 2: amount bucket (6) | position in the bucket (26) | large-amount choice (16) | status (16);
/// - draw 3: large-amount size (32) | foreign country (16) | going abroad (16).
pub const DRAWS_PER_ROW: usize = 4;

/// Bytes of the random stream consumed per row.
const ROW_BYTES: usize = DRAWS_PER_ROW * 8;

/// 32-bit ChaCha words consumed per row.
const WORDS_PER_ROW: u128 = (ROW_BYTES / 4) as u128;

/// Largest gap between a split's rows (in bytes of the stream) skipped by
/// reading and discarding: one ChaCha8 buffer (4 blocks of 64 bytes), which is
/// what a seek regenerates anyway.
const SKIP_BY_READING_MAX_BYTES: usize = 256;

/// The stream position (in 32-bit words) of row `row`'s first draw.
#[inline]
fn word_pos(row: u64) -> u128 {
    u128::from(row) * WORDS_PER_ROW
}

const LOW16: u64 = 0xffff;
const AMOUNT_POSITION_BITS: u32 = 26;

/// `draw * n / 2^32` for the high half of `draw`: a uniform index below `n`.
#[inline]
fn high_index(draw: u64, n: u64) -> u64 {
    ((u128::from(draw >> 32) * u128::from(n)) >> 32) as u64
}

/// The 16-bit field of `draw` starting at bit `shift`.
#[inline]
fn field16(draw: u64, shift: u32) -> u64 {
    (draw >> shift) & LOW16
}

/// SplitMix64 finalizer, used for per-card and per-merchant attributes.
#[inline]
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Thresholds and sizes derived once from the configuration.
#[derive(Debug, Clone)]
struct Derived {
    hot_cards: u64,
    cold_cards: u64,
    hot_threshold: u64,
    late_threshold: u64,
    bound_millis: u64,
    foreign_threshold: u64,
    large_threshold: u64,
    country_thresholds: Vec<u64>,
    status_thresholds: Vec<u64>,
    seed_mix: u64,
}

impl Derived {
    fn new(config: &PaymentsConfig) -> Self {
        let hot_cards = config.cards.div_ceil(5).max(1).min(config.cards);
        // `late_rows_percent` is validated to 0..=100; IEEE-754 arithmetic makes
        // this the same on every platform.
        let late_threshold = (config.late_rows_percent / 100.0 * 65_536.0) as u64;
        Derived {
            hot_cards,
            cold_cards: config.cards - hot_cards,
            hot_threshold: threshold(u64::from(HOT_CARD_SHARE), 1000),
            late_threshold,
            bound_millis: u64::try_from(config.max_out_of_orderness.as_millis())
                .unwrap_or(u64::MAX),
            foreign_threshold: threshold(u64::from(FOREIGN_SHARE), 1000),
            large_threshold: threshold(u64::from(LARGE_AMOUNT_PER_MILLION), 1_000_000),
            country_thresholds: cumulative_thresholds(COUNTRIES.iter().map(|c| c.1)),
            status_thresholds: cumulative_thresholds(STATUSES.iter().map(|s| s.1)),
            seed_mix: mix(config.seed),
        }
    }
}

/// Per-row values shared by several columns, computed once per batch.
#[derive(Debug, Default)]
struct Shared {
    card_ids: Vec<u64>,
    merchant_ids: Vec<u64>,
    countries: Vec<usize>,
}

/// Generates payment rows for a schema whose columns are a subset of
/// [`payments_schema`], in any order; optionally only the rows of one parallel
/// split (see the [module docs](self)).
pub struct PaymentsGenerator {
    config: PaymentsConfig,
    derived: Derived,
    schema: SchemaRef,
    columns: Vec<PaymentColumn>,
    rng: ChaCha8Rng,
    /// Index of the next row this generator emits.
    next_row: u64,
    /// Distance between consecutive rows of this split (the split count).
    stride: u64,
    /// Rows emitted so far.
    emitted: u64,
    bytes: Vec<u8>,
    skipped: Vec<u8>,
    draws: Vec<u64>,
}

impl PaymentsGenerator {
    /// A generator of `schema`'s columns; fails on an invalid configuration or a
    /// column the generator cannot produce.
    pub fn new(config: PaymentsConfig, schema: SchemaRef) -> Result<Self, EngineError> {
        Self::for_table("payments", config, schema)
    }

    /// Like [`new`](Self::new), naming `table` in errors.
    pub fn for_table(
        table: &str,
        config: PaymentsConfig,
        schema: SchemaRef,
    ) -> Result<Self, EngineError> {
        Self::for_split(table, config, schema, Split::SINGLE)
    }

    /// Like [`for_table`](Self::for_table), generating only the rows `i` with
    /// `split.owns(i)`, with the same values as in a single-split run.
    pub fn for_split(
        table: &str,
        config: PaymentsConfig,
        schema: SchemaRef,
        split: Split,
    ) -> Result<Self, EngineError> {
        config.validate().map_err(|(key, reason)| {
            EngineError::Config(format!("table '{table}': option '{key}': {reason}"))
        })?;
        let columns = resolve_columns(table, &schema)?;
        let (first_row, stride) = if split.count <= 1 {
            (0, 1)
        } else if split.index < split.count {
            (split.index as u64, split.count as u64)
        } else {
            return Err(EngineError::Config(format!(
                "table '{table}': split {} out of range for {} instances",
                split.index, split.count
            )));
        };
        Ok(PaymentsGenerator {
            derived: Derived::new(&config),
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            config,
            schema,
            columns,
            next_row: first_row,
            stride,
            emitted: 0,
            bytes: Vec::new(),
            skipped: Vec::new(),
            draws: Vec::new(),
        })
    }

    /// A generator of all ten columns ([`payments_schema`]).
    pub fn with_full_schema(config: PaymentsConfig) -> Result<Self, EngineError> {
        Self::new(config, payments_schema())
    }

    /// The schema of the generated batches.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The configuration.
    pub fn config(&self) -> &PaymentsConfig {
        &self.config
    }

    /// Number of rows this generator has emitted so far (for a single split,
    /// also the next row's `txn_id`).
    pub fn rows_generated(&self) -> u64 {
        self.emitted
    }

    /// Index of the next row this generator emits (its read position).
    pub fn next_row(&self) -> u64 {
        self.next_row
    }

    /// Continues from a position [`next_row`](Self::next_row) and
    /// [`rows_generated`](Self::rows_generated) reported: the rows that follow
    /// are the ones an uninterrupted generator would have emitted next.
    pub fn seek(&mut self, next_row: u64, rows_generated: u64) {
        self.next_row = next_row;
        self.emitted = rows_generated;
        self.rng.set_word_pos(word_pos(next_row));
    }

    /// Rows this generator (split) has left to emit, or `None` when unbounded.
    pub fn remaining(&self) -> Option<u64> {
        self.config.number_of_rows.map(|n| {
            n.checked_sub(self.next_row)
                .map_or(0, |left| left.div_ceil(self.stride))
        })
    }

    /// The next batch of at most `max_rows` rows, or `None` once
    /// `number_of_rows` rows have been generated.
    pub fn next_batch(&mut self, max_rows: usize) -> Result<Option<RecordBatch>, EngineError> {
        let mut n = max_rows.max(1) as u64;
        if let Some(remaining) = self.remaining() {
            n = n.min(remaining);
        }
        if n == 0 {
            return Ok(None);
        }
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        let first_row = self.next_row;
        self.fill_draws(first_row, n);
        self.next_row += n as u64 * self.stride;
        self.emitted += n as u64;
        let shared = self.shared_values();
        let columns = self
            .columns
            .iter()
            .map(|c| self.column(c, &shared, first_row, n))
            .collect::<Result<Vec<_>, _>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(n));
        Ok(Some(RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &options,
        )?))
    }

    /// Reads the random numbers of this split's `n` rows starting at row
    /// `first_row` from the single stream, skipping other splits' rows.
    fn fill_draws(&mut self, first_row: u64, n: usize) {
        self.bytes.resize(n * ROW_BYTES, 0);
        if self.stride == 1 {
            // Consecutive rows: the stream is already at `first_row`.
            self.rng.fill_bytes(&mut self.bytes);
        } else {
            let stride = usize::try_from(self.stride).unwrap_or(usize::MAX);
            let gap_bytes = (stride - 1).saturating_mul(ROW_BYTES);
            self.rng.set_word_pos(word_pos(first_row));
            for (k, chunk) in self.bytes.chunks_exact_mut(ROW_BYTES).enumerate() {
                if k > 0 {
                    if gap_bytes <= SKIP_BY_READING_MAX_BYTES {
                        self.skipped.resize(gap_bytes, 0);
                        self.rng.fill_bytes(&mut self.skipped);
                    } else {
                        let row = first_row + k as u64 * self.stride;
                        self.rng.set_word_pos(word_pos(row));
                    }
                }
                self.rng.fill_bytes(chunk);
            }
        }
        self.draws.clear();
        self.draws.extend(
            self.bytes
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default())),
        );
    }

    /// The draws of one slot for every row of the block.
    fn slot(&self, slot: usize) -> impl Iterator<Item = u64> + '_ {
        self.draws.iter().skip(slot).step_by(DRAWS_PER_ROW).copied()
    }

    /// Computes the values that several columns derive from, if any selected
    /// column needs them.
    fn shared_values(&self) -> Shared {
        let needs = |f: fn(&PaymentColumn) -> bool| self.columns.iter().any(f);
        let mut shared = Shared::default();
        let d = &self.derived;
        let need_countries =
            needs(|c| matches!(c, PaymentColumn::Country | PaymentColumn::Currency));
        if need_countries
            || needs(|c| matches!(c, PaymentColumn::CardId | PaymentColumn::AccountId))
        {
            shared.card_ids = self
                .slot(0)
                .zip(self.slot(1))
                .map(|(choice, draw)| {
                    if field16(choice, 16) < d.hot_threshold || d.cold_cards == 0 {
                        high_index(draw, d.hot_cards)
                    } else {
                        d.hot_cards + high_index(draw, d.cold_cards)
                    }
                })
                .collect();
        }
        if needs(|c| matches!(c, PaymentColumn::MerchantId | PaymentColumn::Mcc)) {
            let merchants = self.config.merchants;
            shared.merchant_ids = self
                .slot(1)
                .map(|draw| high_index(draw << 32, merchants))
                .collect();
        }
        if need_countries {
            shared.countries = shared
                .card_ids
                .iter()
                .zip(self.slot(3))
                .map(|(card, draw)| {
                    if field16(draw, 0) < d.foreign_threshold {
                        pick(&d.country_thresholds, field16(draw, 16))
                    } else {
                        pick(&d.country_thresholds, mix(card ^ d.seed_mix) & LOW16)
                    }
                })
                .collect();
        }
        shared
    }

    fn amount_cents(&self) -> impl Iterator<Item = i64> + '_ {
        let d = &self.derived;
        self.slot(2).zip(self.slot(3)).map(move |(draw, size)| {
            if field16(draw, 16) < d.large_threshold {
                LARGE_AMOUNT_MIN_CENTS + high_index(size, LARGE_AMOUNT_SPAN_CENTS) as i64
            } else {
                let bucket = (draw >> 58) as usize;
                let position = (draw >> 32) & ((1 << AMOUNT_POSITION_BITS) - 1);
                let low = AMOUNT_QUANTILES_CENTS[bucket];
                let high = AMOUNT_QUANTILES_CENTS[bucket + 1];
                low + ((position * (high - low) as u64) >> AMOUNT_POSITION_BITS) as i64
            }
        })
    }

    /// The row indices of the current block, starting at `first_row`.
    fn rows(&self, first_row: u64) -> impl Iterator<Item = u64> + use<> {
        let stride = self.stride;
        (0..).map(move |k: u64| first_row + k * stride)
    }

    fn event_times(&self, first_row: u64) -> impl Iterator<Item = i64> + '_ {
        let d = &self.derived;
        let start = self.config.start_time_millis;
        let eps = self.config.events_per_second;
        let late = d.bound_millis.saturating_mul(2);
        self.slot(0)
            .zip(self.rows(first_row))
            .map(move |(draw, row)| {
                let due = start.saturating_add((row.saturating_mul(1000) / eps) as i64);
                let mut behind = high_index(draw, d.bound_millis);
                if field16(draw, 0) < d.late_threshold {
                    behind = behind.saturating_add(late);
                }
                due.saturating_sub(i64::try_from(behind).unwrap_or(i64::MAX))
            })
    }

    fn column(
        &self,
        column: &PaymentColumn,
        shared: &Shared,
        first_row: u64,
        n: usize,
    ) -> Result<ArrayRef, EngineError> {
        let ids = |values: &mut dyn Iterator<Item = u64>| -> ArrayRef {
            Arc::new(Int64Array::from_iter_values(values.map(|v| v as i64)))
        };
        Ok(match column {
            PaymentColumn::TxnId => ids(&mut self.rows(first_row).take(n)),
            PaymentColumn::EventTime { tz } => Arc::new(
                TimestampMillisecondArray::from_iter_values(self.event_times(first_row))
                    .with_timezone_opt(tz.clone()),
            ),
            PaymentColumn::CardId => ids(&mut shared.card_ids.iter().copied()),
            PaymentColumn::AccountId => {
                let accounts = self.config.accounts;
                ids(&mut shared.card_ids.iter().map(|c| c % accounts))
            }
            PaymentColumn::MerchantId => ids(&mut shared.merchant_ids.iter().copied()),
            PaymentColumn::Mcc => {
                let seed = self.derived.seed_mix;
                strings(
                    n,
                    4,
                    shared
                        .merchant_ids
                        .iter()
                        .map(|m| MCCS[(mix(m ^ seed) % MCCS.len() as u64) as usize]),
                )
            }
            PaymentColumn::Country => {
                strings(n, 2, shared.countries.iter().map(|i| COUNTRIES[*i].0))
            }
            PaymentColumn::Currency => {
                strings(n, 3, shared.countries.iter().map(|i| COUNTRIES[*i].2))
            }
            PaymentColumn::Status => {
                let t = &self.derived.status_thresholds;
                strings(
                    n,
                    8,
                    self.slot(2)
                        .map(|draw| STATUSES[pick(t, field16(draw, 0))].0),
                )
            }
            PaymentColumn::Amount { precision, scale } => {
                let values = self
                    .amount_cents()
                    .map(|cents| cents_at_scale(cents, *scale));
                Arc::new(
                    Decimal128Array::from_iter_values(values)
                        .with_precision_and_scale(*precision, *scale)?,
                )
            }
        })
    }
}

/// A string column from static values.
fn strings<'a>(n: usize, width: usize, values: impl Iterator<Item = &'a str>) -> ArrayRef {
    let mut builder = StringBuilder::with_capacity(n, n * width);
    for v in values {
        builder.append_value(v);
    }
    Arc::new(builder.finish())
}

/// An amount in cents as a mantissa at `scale` (HALF_UP when `scale < 2`).
fn cents_at_scale(cents: i64, scale: i8) -> i128 {
    let cents = i128::from(cents);
    match scale {
        2 => cents,
        s if s > 2 => cents * 10i128.pow(u32::from(s.unsigned_abs()) - 2),
        s => {
            let divisor = 10i128.pow(2 - u32::from(s.unsigned_abs()));
            (cents + divisor / 2) / divisor
        }
    }
}

/// Generates `rows` rows of all ten columns as batches of `batch_size` rows.
pub fn generate_payments(
    config: PaymentsConfig,
    rows: u64,
    batch_size: usize,
) -> Result<Vec<RecordBatch>, EngineError> {
    let mut generator = PaymentsGenerator::with_full_schema(PaymentsConfig {
        number_of_rows: Some(rows),
        ..config
    })?;
    let mut batches = Vec::new();
    while let Some(batch) = generator.next_batch(batch_size)? {
        batches.push(batch);
    }
    Ok(batches)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, AsArray, UInt64Array};
    use datafusion::arrow::compute::concat_batches;
    use datafusion::arrow::datatypes::{
        DataType, Decimal128Type, Field, Int64Type, Schema, TimestampMillisecondType,
    };
    use std::collections::{BTreeMap, HashSet};
    use std::time::Duration;

    fn all(config: PaymentsConfig, rows: u64, batch_size: usize) -> RecordBatch {
        let batches = generate_payments(config, rows, batch_size).unwrap();
        assert!(batches.iter().all(|b| b.num_rows() <= batch_size));
        concat_batches(&payments_schema(), &batches).unwrap()
    }

    #[test]
    fn identical_across_batch_sizes() {
        let config = PaymentsConfig {
            late_rows_percent: 1.0,
            ..PaymentsConfig::default()
        };
        let reference = all(config.clone(), 20_000, 8192);
        assert_eq!(reference.num_rows(), 20_000);
        for batch_size in [1, 7, 1000] {
            assert_eq!(
                all(config.clone(), 20_000, batch_size),
                reference,
                "{batch_size}"
            );
        }
        let other_seed = all(PaymentsConfig { seed: 43, ..config }, 20_000, 8192);
        assert_ne!(other_seed, reference);
    }

    #[test]
    fn a_column_subset_equals_the_projection_of_the_full_schema() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("STATUS", DataType::Utf8, true),
            Field::new("card_id", DataType::Int64, true),
            Field::new("amount", DataType::Decimal128(18, 2), true),
        ]));
        let mut g = PaymentsGenerator::new(PaymentsConfig::bounded(5000), schema).unwrap();
        let subset = g.next_batch(5000).unwrap().unwrap();
        let full = all(PaymentsConfig::default(), 5000, 5000);
        assert_eq!(subset.column(0), full.column(9));
        assert_eq!(subset.column(1), full.column(2));
        assert_eq!(subset.column(2), full.column(7));
        assert!(g.next_batch(10).unwrap().is_none());
    }

    #[test]
    fn disorder_stays_within_the_bound() {
        let config = PaymentsConfig {
            max_out_of_orderness: Duration::from_millis(4000),
            events_per_second: 1000,
            ..PaymentsConfig::default()
        };
        let batch = all(config, 50_000, 8192);
        let times = batch.column(1).as_primitive::<TimestampMillisecondType>();
        let mut max_seen = i64::MIN;
        let mut out_of_order = 0;
        for t in times.values().iter().copied() {
            if t < max_seen {
                out_of_order += 1;
                assert!(max_seen - t < 4000, "{max_seen} - {t}");
            }
            max_seen = max_seen.max(t);
        }
        assert!(out_of_order > 10_000, "{out_of_order}");
        let first = times.value(0);
        assert!(first <= 1_704_067_200_000 && first > 1_704_067_200_000 - 4000);
        // 50 000 rows at 1000 rows per event-time second span about 50 s.
        assert!(max_seen >= 1_704_067_200_000 + 49_000);
    }

    #[test]
    fn late_rows_are_later_than_twice_the_bound() {
        let config = PaymentsConfig {
            max_out_of_orderness: Duration::from_secs(1),
            late_rows_percent: 5.0,
            ..PaymentsConfig::default()
        };
        let batch = all(config, 20_000, 8192);
        let times = batch.column(1).as_primitive::<TimestampMillisecondType>();
        let mut max_seen = i64::MIN;
        let mut late = 0;
        for t in times.values().iter().copied() {
            if max_seen.saturating_sub(t) >= 1000 {
                late += 1;
            }
            max_seen = max_seen.max(t);
        }
        assert!((600..1400).contains(&late), "{late}");
    }

    #[test]
    fn values_have_the_promised_shapes() {
        let batch = all(PaymentsConfig::default(), 100_000, 8192);
        let txn = batch.column(0).as_primitive::<Int64Type>();
        assert!(txn.values().iter().copied().eq(0..100_000));
        let cards = batch.column(2).as_primitive::<Int64Type>();
        let accounts = batch.column(3).as_primitive::<Int64Type>();
        assert!(cards.values().iter().all(|c| (0..10_000).contains(c)));
        let hot = cards.values().iter().filter(|c| **c < 2_000).count();
        assert!((78_000..82_000).contains(&hot), "{hot}");
        assert!(
            cards
                .values()
                .iter()
                .zip(accounts.values())
                .all(|(c, a)| *a == c % 5_000)
        );
        let merchants = batch.column(4).as_primitive::<Int64Type>();
        assert!(merchants.values().iter().all(|m| (0..1_000).contains(m)));
        let mcc = batch.column(5).as_string::<i32>();
        let mut mcc_of_merchant = BTreeMap::new();
        for (m, code) in merchants.values().iter().zip(mcc.iter()) {
            let code = code.unwrap();
            assert!(MCCS.contains(&code));
            assert_eq!(*mcc_of_merchant.entry(*m).or_insert(code), code);
        }
        let country = batch.column(6).as_string::<i32>();
        let currency = batch.column(8).as_string::<i32>();
        for (c, cur) in country.iter().zip(currency.iter()) {
            let entry = COUNTRIES.iter().find(|e| Some(e.0) == c).unwrap();
            assert_eq!(Some(entry.2), cur);
        }
        let us = country.iter().filter(|c| *c == Some("US")).count();
        assert!((30_000..40_000).contains(&us), "{us}");
        let amounts = batch.column(7).as_primitive::<Decimal128Type>();
        assert_eq!(amounts.data_type(), &DataType::Decimal128(18, 2));
        let large = amounts.values().iter().filter(|a| **a >= 1_000_000).count();
        assert!((50..150).contains(&large), "{large}");
        assert!(
            amounts
                .values()
                .iter()
                .all(|a| (50..=500_000).contains(a) || (1_000_000..5_000_000).contains(a))
        );
        let distinct: HashSet<i128> = amounts.values().iter().copied().collect();
        assert!(distinct.len() > 10_000);
        let status = batch.column(9).as_string::<i32>();
        let approved = status.iter().filter(|s| *s == Some("APPROVED")).count();
        let timeout = status.iter().filter(|s| *s == Some("TIMEOUT")).count();
        assert!((89_000..91_000).contains(&approved), "{approved}");
        assert!((1_500..2_500).contains(&timeout), "{timeout}");
        assert_eq!(batch.column(0).null_count(), 0);
    }

    #[test]
    fn amounts_follow_the_column_scale() {
        assert_eq!(cents_at_scale(1250, 2), 1250);
        assert_eq!(cents_at_scale(1250, 4), 125_000);
        assert_eq!(cents_at_scale(1250, 1), 125);
        assert_eq!(cents_at_scale(1255, 1), 126);
        assert_eq!(cents_at_scale(1249, 0), 12);
        assert_eq!(cents_at_scale(1250, 0), 13);
    }

    /// Rows of every split of `count`, concatenated split after split.
    fn splits(
        config: &PaymentsConfig,
        rows: u64,
        count: usize,
        batch_size: usize,
    ) -> Vec<RecordBatch> {
        let config = PaymentsConfig {
            number_of_rows: Some(rows),
            ..config.clone()
        };
        (0..count)
            .map(|index| {
                let split = Split { index, count };
                let mut g =
                    PaymentsGenerator::for_split("t", config.clone(), payments_schema(), split)
                        .unwrap();
                let expected = (rows + (count - 1 - index) as u64) / count as u64;
                assert_eq!(g.remaining(), Some(expected));
                let mut batches = Vec::new();
                while let Some(b) = g.next_batch(batch_size).unwrap() {
                    assert!(b.num_rows() <= batch_size);
                    batches.push(b);
                }
                assert_eq!(g.rows_generated(), expected);
                assert_eq!(g.remaining(), Some(0));
                concat_batches(&payments_schema(), &batches).unwrap()
            })
            .collect()
    }

    #[test]
    fn splits_partition_the_single_split_rows() {
        let config = PaymentsConfig {
            late_rows_percent: 1.0,
            ..PaymentsConfig::default()
        };
        let reference = all(config.clone(), 5_000, 8192);
        // Counts on both sides of the read-or-seek threshold, odd batch sizes.
        for (count, batch_size) in [(2, 333), (3, 8192), (9, 100), (10, 7), (64, 1000)] {
            let parts = splits(&config, 5_000, count, batch_size);
            let mut total = 0;
            for (index, part) in parts.iter().enumerate() {
                let txn = part.column(0).as_primitive::<Int64Type>();
                let rows: Vec<u64> = txn.values().iter().map(|t| *t as u64).collect();
                let expected: Vec<u64> = (index as u64..5_000).step_by(count).collect();
                assert_eq!(rows, expected, "count {count} split {index}");
                let indices = UInt64Array::from(rows);
                let from_reference =
                    datafusion::arrow::compute::take_record_batch(&reference, &indices).unwrap();
                assert_eq!(part, &from_reference, "count {count} split {index}");
                total += part.num_rows();
            }
            assert_eq!(total, 5_000);
        }
    }

    #[test]
    fn a_split_out_of_range_is_rejected() {
        let split = Split { index: 3, count: 3 };
        let err =
            PaymentsGenerator::for_split("t", PaymentsConfig::default(), payments_schema(), split)
                .err()
                .unwrap()
                .to_string();
        assert_eq!(err, "table 't': split 3 out of range for 3 instances");
        let few = splits(&PaymentsConfig::default(), 2, 4, 10);
        let sizes: Vec<usize> = few.iter().map(RecordBatch::num_rows).collect();
        assert_eq!(sizes, vec![1, 1, 0, 0]);
    }

    #[test]
    fn unbounded_generator_keeps_going() {
        let mut g = PaymentsGenerator::with_full_schema(PaymentsConfig::default()).unwrap();
        assert_eq!(g.remaining(), None);
        for _ in 0..3 {
            assert_eq!(g.next_batch(100).unwrap().unwrap().num_rows(), 100);
        }
        assert_eq!(g.rows_generated(), 300);
    }
}
