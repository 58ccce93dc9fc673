//! Batches of one Nexmark table: the events of its kind among the event
//! numbers a split owns (`n % count == index`), column by column.
//!
//! Field values follow the Nexmark generator's distributions (see
//! [`super::model`]): people get a first and last name from fixed lists, a
//! random e-mail address and credit card, a city and a state; auctions a
//! random item name and description, an initial bid and a reserve above it,
//! a seller and a category, an expiry; bids an auction, a bidder, a
//! log-uniform price, a channel (half of them one of four hot channels) and
//! its URL. `extra` pads each event to the kind's average size. Random text
//! is cut from pools generated once from the seed, so making a string costs a
//! copy, not a random draw per character.

use std::fmt::Write;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array, StringBuilder, TimestampMillisecondArray};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use watershed_engine::EngineError;
use watershed_engine::source::Split;

use super::columns::{NexmarkColumn, resolve_columns};
use super::config::{EventKind, NexmarkConfig};
use super::model::{EventModel, below, mix, price};

const FIRST_NAMES: &[&str] = &[
    "Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter",
];
const LAST_NAMES: &[&str] = &[
    "Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris",
];
const CITIES: &[&str] = &[
    "Phoenix",
    "Los Angeles",
    "San Francisco",
    "Boise",
    "Portland",
    "Bend",
    "Redmond",
    "Seattle",
    "Kent",
    "Cheyenne",
];
const STATES: &[&str] = &["AZ", "CA", "ID", "OR", "WA", "WY"];
const HOT_CHANNELS: &[&str] = &["Google", "Facebook", "Baidu", "Apple"];
/// Cold channels are `channel-0` .. `channel-9999`.
const COLD_CHANNELS: u64 = 10_000;
/// Bytes of each random text pool.
const POOL_BYTES: usize = 1 << 16;

/// Random text to cut strings from.
#[derive(Debug, Clone)]
struct TextPools {
    /// Lowercase letters (ASCII, so any byte range is a `str`).
    letters: String,
    /// Lowercase letters with a space in about one of 13 places.
    words: String,
}

impl TextPools {
    fn new(seed: u64) -> Self {
        let byte = |i: usize, spaces: bool| {
            let d = mix(seed ^ mix(i as u64 ^ if spaces { 1 << 40 } else { 0 }));
            if spaces && below(d, 13) == 0 {
                b' '
            } else {
                b'a' + below(d.rotate_left(17), 26) as u8
            }
        };
        TextPools {
            letters: (0..POOL_BYTES)
                .map(|i| char::from(byte(i, false)))
                .collect(),
            words: (0..POOL_BYTES).map(|i| char::from(byte(i, true))).collect(),
        }
    }

    /// A string of 3 to `max_len - 1` characters with a few spaces, trimmed.
    fn words(&self, draw: u64, max_len: u64) -> &str {
        let len = 3 + below(draw, max_len - 3) as usize;
        let start = below(draw.rotate_left(32), (POOL_BYTES - len) as u64) as usize;
        self.words
            .get(start..start + len)
            .unwrap_or_default()
            .trim()
    }

    /// `len` letters.
    fn letters(&self, draw: u64, len: usize) -> &str {
        let len = len.min(POOL_BYTES);
        let start = below(draw, (POOL_BYTES - len + 1) as u64) as usize;
        self.letters.get(start..start + len).unwrap_or_default()
    }

    /// Padding that brings an event of `size` bytes to `avg` on average:
    /// within 20% of the difference (none when the event is larger).
    fn extra(&self, draw: u64, size: u64, avg: u64) -> &str {
        if size >= avg {
            return "";
        }
        let missing = avg - size;
        let delta = (missing as f64 * 0.2).round() as u64;
        let len = missing - delta
            + if delta == 0 {
                0
            } else {
                below(draw, 2 * delta)
            };
        self.letters(draw.rotate_left(32), len as usize)
    }
}

/// A URL of three random directories, made from draw `d`.
fn base_url(pools: &TextPools, d: u64) -> String {
    let part = |k: u32| {
        pools.letters(
            d.rotate_left(k * 16),
            3 + below(d.rotate_left(k * 7), 2) as usize,
        )
    };
    format!(
        "https://www.nexmark.com/{}/{}/{}/item.htm?query=1",
        part(1),
        part(2),
        part(3)
    )
}

/// Cold channel `c`'s name and URL: nine in ten URLs carry the channel's id.
fn cold_channel(pools: &TextPools, seed: u64, c: u64) -> (String, String) {
    let d = mix(seed ^ mix(c.wrapping_add(1 << 48)));
    let mut url = base_url(pools, d);
    if below(d, 10) > 0 {
        let id = ((c as u32).reverse_bits() as i32).unsigned_abs();
        url.push_str(&format!("&channel_id={id}"));
    }
    (format!("channel-{c}"), url)
}

/// Generates one split of one Nexmark table.
pub struct NexmarkGenerator {
    config: NexmarkConfig,
    model: EventModel,
    schema: SchemaRef,
    columns: Vec<NexmarkColumn>,
    pools: TextPools,
    /// The four hot channels' URLs.
    hot_urls: Vec<String>,
    /// Cold channels' names and URLs, made when first used.
    cold: Vec<Option<(String, String)>>,
    /// The next event number this split looks at.
    next_event: u64,
    stride: u64,
}

impl NexmarkGenerator {
    /// A generator of `schema`'s columns for split `split` of table `table`.
    pub fn for_split(
        table: &str,
        config: NexmarkConfig,
        schema: SchemaRef,
        split: Split,
    ) -> Result<Self, EngineError> {
        let columns = resolve_columns(table, config.kind, &schema)?;
        if split.count > 1 && split.index >= split.count {
            return Err(EngineError::Config(format!(
                "table '{table}': split {} out of range for {} instances",
                split.index, split.count
            )));
        }
        let model = EventModel::new(&config);
        let pools = TextPools::new(config.seed);
        let hot_urls = (0..HOT_CHANNELS.len() as u64)
            .map(|i| base_url(&pools, mix(config.seed ^ mix(i.wrapping_add(1 << 56)))))
            .collect();
        Ok(NexmarkGenerator {
            model,
            schema,
            columns,
            pools,
            hot_urls,
            cold: vec![None; COLD_CHANNELS as usize],
            next_event: split.index.min(split.count.saturating_sub(1)) as u64,
            stride: split.count.max(1) as u64,
            config,
        })
    }

    /// The next event number this split looks at (its read position).
    pub fn next_event(&self) -> u64 {
        self.next_event
    }

    /// Continues from a position [`NexmarkGenerator::next_event`] reported.
    pub fn seek(&mut self, next_event: u64) {
        self.next_event = next_event;
    }

    /// Events (of every kind) this split has left to look at; `None` when
    /// unbounded.
    pub fn remaining_events(&self) -> Option<u64> {
        self.config.events.map(|end| {
            end.checked_sub(self.next_event)
                .map_or(0, |left| left.div_ceil(self.stride))
        })
    }

    /// The next batch of at most `max_rows` rows and the number of events
    /// (of any kind) it covered, looking at no more than `max_events` events;
    /// `None` once the events are exhausted.
    pub fn next_batch(
        &mut self,
        max_rows: usize,
        max_events: u64,
    ) -> Result<Option<(RecordBatch, u64)>, EngineError> {
        let end = self.config.events.unwrap_or(u64::MAX);
        if self.next_event >= end {
            return Ok(None);
        }
        let mut events = Vec::with_capacity(max_rows.min(1 << 16));
        let mut looked = 0;
        let mut n = self.next_event;
        while events.len() < max_rows.max(1) && n < end && looked < max_events.max(1) {
            if self.model.kind(n) == self.config.kind {
                events.push(n);
            }
            n = n.saturating_add(self.stride);
            looked += 1;
        }
        self.next_event = n;
        let columns = self
            .columns
            .clone()
            .into_iter()
            .map(|c| self.column(c, &events))
            .collect::<Vec<_>>();
        let options = RecordBatchOptions::new().with_row_count(Some(events.len()));
        let batch = RecordBatch::try_new_with_options(self.schema.clone(), columns, &options)?;
        Ok(Some((batch, looked)))
    }

    fn column(&mut self, column: NexmarkColumn, events: &[u64]) -> ArrayRef {
        use NexmarkColumn::*;
        let m = &self.model;
        let ints = |f: &dyn Fn(u64) -> i64| -> ArrayRef {
            Arc::new(Int64Array::from_iter_values(events.iter().map(|n| f(*n))))
        };
        match column {
            Id => match self.config.kind {
                EventKind::Person => ints(&|n| m.person_id(n)),
                _ => ints(&|n| m.auction_id(n)),
            },
            InitialBid => ints(&|n| price(m.draw(n, 3))),
            Reserve => ints(&|n| price(m.draw(n, 3)) + price(m.draw(n, 4))),
            Seller => ints(&|n| m.seller(n)),
            Category => ints(&|n| m.category(n)),
            Auction => ints(&|n| m.bid_auction(n)),
            Bidder => ints(&|n| m.bidder(n)),
            Price => ints(&|n| price(m.draw(n, 4))),
            DateTime => Arc::new(TimestampMillisecondArray::from_iter_values(
                events.iter().map(|n| m.timestamp(*n)),
            )),
            Expires => Arc::new(TimestampMillisecondArray::from_iter_values(
                events.iter().map(|n| m.expires(*n)),
            )),
            Name => self.strings(events, 12, |g, n, out| {
                let first =
                    FIRST_NAMES[below(g.model.draw(n, 0), FIRST_NAMES.len() as u64) as usize];
                let last = LAST_NAMES[below(g.model.draw(n, 1), LAST_NAMES.len() as u64) as usize];
                let _ = out.write_str(first);
                let _ = out.write_char(' ');
                let _ = out.write_str(last);
            }),
            EmailAddress => self.strings(events, 16, |g, n, out| g.email(n, out)),
            CreditCard => self.strings(events, 19, |g, n, out| g.credit_card(n, out)),
            City => self.strings(events, 8, |g, n, out| {
                let _ =
                    out.write_str(CITIES[below(g.model.draw(n, 5), CITIES.len() as u64) as usize]);
            }),
            State => self.strings(events, 2, |g, n, out| {
                let _ =
                    out.write_str(STATES[below(g.model.draw(n, 6), STATES.len() as u64) as usize]);
            }),
            ItemName => self.strings(events, 12, |g, n, out| {
                let _ = out.write_str(g.pools.words(g.model.draw(n, 6), 20));
            }),
            Description => self.strings(events, 52, |g, n, out| {
                let _ = out.write_str(g.pools.words(g.model.draw(n, 7), 100));
            }),
            Channel => self.strings(events, 12, |g, n, out| {
                let _ = out.write_str(g.channel(n).0);
            }),
            Url => self.strings(events, 80, |g, n, out| {
                let _ = out.write_str(g.channel(n).1);
            }),
            Extra => {
                let avg = self.config.avg_sizes[match self.config.kind {
                    EventKind::Person => 0,
                    EventKind::Auction => 1,
                    EventKind::Bid => 2,
                }];
                self.strings(events, avg as usize, move |g, n, out| {
                    let (size, draw) = g.size_without_extra(n);
                    let _ = out.write_str(g.pools.extra(draw, size, avg));
                })
            }
        }
    }

    /// A string column built by `value`, with `width` bytes reserved per row.
    /// `value` writes each row's text straight into the column's buffer (the
    /// builder's `fmt::Write`), which `append_value("")` then closes: one
    /// copy per string, where a scratch `String` took two.
    fn strings(
        &mut self,
        events: &[u64],
        width: usize,
        value: impl Fn(&mut Self, u64, &mut StringBuilder),
    ) -> ArrayRef {
        let mut builder = StringBuilder::with_capacity(events.len(), events.len() * width);
        for &n in events {
            value(self, n, &mut builder);
            builder.append_value("");
        }
        Arc::new(builder.finish())
    }

    fn email(&self, n: u64, out: &mut impl Write) {
        let _ = out.write_str(self.pools.words(self.model.draw(n, 2), 7));
        let _ = out.write_char('@');
        let _ = out.write_str(self.pools.words(self.model.draw(n, 3), 5));
        let _ = out.write_str(".com");
    }

    fn credit_card(&self, n: u64, out: &mut impl Write) {
        let d = self.model.draw(n, 4);
        for k in 0..4 {
            if k > 0 {
                let _ = out.write_char(' ');
            }
            let group = below(d.rotate_left(16 * k), 10_000);
            let _ = write!(out, "{group:04}");
        }
    }

    /// Bid `n`'s channel and URL (draws 5 and 6): half of the bids come
    /// through one of four hot channels, whose URLs carry no channel id.
    fn channel(&mut self, n: u64) -> (&str, &str) {
        let m = &self.model;
        if below(m.draw(n, 5), 2) > 0 {
            let i = below(m.draw(n, 6), HOT_CHANNELS.len() as u64) as usize;
            return (HOT_CHANNELS[i], &self.hot_urls[i]);
        }
        let c = below(m.draw(n, 6), COLD_CHANNELS);
        let seed = self.config.seed;
        let pools = &self.pools;
        let (name, url) = self.cold[c as usize].get_or_insert_with(|| cold_channel(pools, seed, c));
        (name, url)
    }

    /// The bytes of event `n` without `extra` (as Nexmark counts them) and
    /// the draw for its `extra`.
    fn size_without_extra(&mut self, n: u64) -> (u64, u64) {
        let mut text = String::new();
        match self.config.kind {
            EventKind::Person => {
                let d = &self.model;
                let first = FIRST_NAMES[below(d.draw(n, 0), FIRST_NAMES.len() as u64) as usize];
                let last = LAST_NAMES[below(d.draw(n, 1), LAST_NAMES.len() as u64) as usize];
                self.email(n, &mut text);
                let city = CITIES[below(d.draw(n, 5), CITIES.len() as u64) as usize];
                let size = 8 + first.len() + 1 + last.len() + text.len() + 19 + city.len() + 2;
                (size as u64, d.draw(n, 7))
            }
            EventKind::Auction => {
                let d = &self.model;
                let item = self.pools.words(d.draw(n, 6), 20).len();
                let description = self.pools.words(d.draw(n, 7), 100).len();
                ((8 + item + description + 40) as u64, d.draw(n, 8))
            }
            EventKind::Bid => (32, self.model.draw(n, 7)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nexmark::columns::nexmark_schema;
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::compute::concat_batches;
    use datafusion::arrow::datatypes::Int64Type;

    fn all(kind: EventKind, events: u64, split: Split, batch: usize) -> RecordBatch {
        generate(nexmark_schema(kind), kind, events, split, batch)
    }

    fn generate(
        schema: SchemaRef,
        kind: EventKind,
        events: u64,
        split: Split,
        batch: usize,
    ) -> RecordBatch {
        let mut config = NexmarkConfig::new(kind);
        config.events = Some(events);
        let mut g = NexmarkGenerator::for_split("t", config, schema.clone(), split).unwrap();
        let mut batches = Vec::new();
        while let Some((b, _)) = g.next_batch(batch, u64::MAX).unwrap() {
            batches.push(b);
        }
        concat_batches(&schema, &batches).unwrap()
    }

    /// A generator of some of the columns (projection pushdown) gives each
    /// of them exactly as the whole table has it, whatever the batch size.
    #[test]
    fn some_columns_are_the_whole_tables_columns() {
        for (kind, columns) in [
            (EventKind::Bid, vec![0, 2, 5]),
            (EventKind::Bid, vec![4, 6]),
            (EventKind::Person, vec![1, 3, 7]),
            (EventKind::Auction, vec![2, 9]),
        ] {
            let whole = all(kind, 3_000, Split::SINGLE, 500);
            let schema = Arc::new(nexmark_schema(kind).project(&columns).unwrap());
            let some = generate(schema, kind, 3_000, Split::SINGLE, 333);
            assert_eq!(
                some,
                whole.project(&columns).unwrap(),
                "{kind:?} {columns:?}"
            );
        }
    }

    #[test]
    fn kinds_come_in_the_standard_proportions() {
        let (people, auctions, bids) = (
            all(EventKind::Person, 10_000, Split::SINGLE, 1000),
            all(EventKind::Auction, 10_000, Split::SINGLE, 1000),
            all(EventKind::Bid, 10_000, Split::SINGLE, 1000),
        );
        assert_eq!(
            [people.num_rows(), auctions.num_rows(), bids.num_rows()],
            [200, 600, 9200]
        );
        let sizes: usize = bids
            .columns()
            .iter()
            .filter(|c| c.data_type() == &datafusion::arrow::datatypes::DataType::Utf8)
            .map(|c| c.as_string::<i32>().value_data().len())
            .sum();
        // extra pads a bid (32 bytes counted besides it) to about 100 bytes.
        let extra = bids.column(6).as_string::<i32>().value_data().len() / bids.num_rows();
        assert!((60..=75).contains(&extra), "{extra} bytes of extra per bid");
        assert!(sizes > 0);
    }

    #[test]
    fn splits_and_batch_sizes_do_not_change_the_events() {
        let whole = all(EventKind::Bid, 5_000, Split::SINGLE, 4096);
        let again = all(EventKind::Bid, 5_000, Split::SINGLE, 7);
        assert_eq!(whole, again);
        let mut parts: Vec<RecordBatch> = (0..3)
            .map(|index| all(EventKind::Bid, 5_000, Split { index, count: 3 }, 100))
            .collect();
        let rows: usize = parts.iter().map(RecordBatch::num_rows).sum();
        assert_eq!(rows, whole.num_rows());
        // Split 0 holds events 0, 3, 6, ...: its first bid is event 6.
        let first = parts.remove(0);
        let price = |b: &RecordBatch, i: usize| b.column(2).as_primitive::<Int64Type>().value(i);
        let whole_index_of_event_6 = 2; // bids are events 4, 5, 6, ...
        assert_eq!(price(&first, 0), price(&whole, whole_index_of_event_6));
    }
}
