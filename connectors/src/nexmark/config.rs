//! The Nexmark generator's options (`'connector' = 'nexmark'`), named as in
//! the nexmark/nexmark repository's Flink connector, plus `'nexmark.table'`,
//! which picks the event kind a table holds (Watershed has no ROW columns, so
//! the three kinds are three tables over one event sequence).

use watershed_engine::EngineError;

use crate::options::{CONNECTOR, TableOptions};

use super::IDENTIFIER;

/// `'nexmark.table'`: `person`, `auction` or `bid` (required).
pub const TABLE: &str = "nexmark.table";
/// `'events.num'`: events of all kinds to generate; 0 (the default) is unbounded.
pub const EVENTS_NUM: &str = "events.num";
/// `'first-event.rate'`: events per second of event time (and of wall-clock
/// time with `'rate.limited'`); default 10 000.
pub const FIRST_EVENT_RATE: &str = "first-event.rate";
/// `'next-event.rate'`: accepted for compatibility; must equal
/// `'first-event.rate'` (Flink's generator ignores it too).
pub const NEXT_EVENT_RATE: &str = "next-event.rate";
/// `'rate.limited'`: pace the source to `'first-event.rate'` on the wall clock
/// (default false: as fast as possible).
pub const RATE_LIMITED: &str = "rate.limited";
/// `'person.proportion'` (default 1).
pub const PERSON_PROPORTION: &str = "person.proportion";
/// `'auction.proportion'` (default 3).
pub const AUCTION_PROPORTION: &str = "auction.proportion";
/// `'bid.proportion'` (default 46).
pub const BID_PROPORTION: &str = "bid.proportion";
/// `'bid.hot-ratio.auctions'`: a bid goes to a hot auction with probability
/// `1 - 1/ratio` (default 2).
pub const HOT_AUCTIONS_RATIO: &str = "bid.hot-ratio.auctions";
/// `'bid.hot-ratio.bidders'` (default 4).
pub const HOT_BIDDERS_RATIO: &str = "bid.hot-ratio.bidders";
/// `'auction.hot-ratio.sellers'` (default 4).
pub const HOT_SELLERS_RATIO: &str = "auction.hot-ratio.sellers";
/// `'person.avg-size'`, `'auction.avg-size'`, `'bid.avg-size'`: average bytes
/// of an event, reached by padding `extra` (defaults 200, 500, 100).
pub const PERSON_AVG_SIZE: &str = "person.avg-size";
/// See [`PERSON_AVG_SIZE`].
pub const AUCTION_AVG_SIZE: &str = "auction.avg-size";
/// See [`PERSON_AVG_SIZE`].
pub const BID_AVG_SIZE: &str = "bid.avg-size";
/// `'seed'`: the random seed (default 0). Watershed's addition: the same seed
/// gives the same events on every run, platform and parallelism.
pub const SEED: &str = "seed";

/// The largest proportion of a kind (their sum must stay far from overflow).
const MAX_PROPORTION: u64 = 1_000_000;
/// The largest average event size (the padding is cut from a 64 KiB pool).
const MAX_AVG_SIZE: u64 = 65_536;

/// Every option key of the connector.
pub const OPTION_KEYS: &[&str] = &[
    CONNECTOR,
    TABLE,
    EVENTS_NUM,
    FIRST_EVENT_RATE,
    NEXT_EVENT_RATE,
    RATE_LIMITED,
    PERSON_PROPORTION,
    AUCTION_PROPORTION,
    BID_PROPORTION,
    HOT_AUCTIONS_RATIO,
    HOT_BIDDERS_RATIO,
    HOT_SELLERS_RATIO,
    PERSON_AVG_SIZE,
    AUCTION_AVG_SIZE,
    BID_AVG_SIZE,
    SEED,
];

/// The event kind a Nexmark table holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// New people (sellers and bidders).
    Person,
    /// New auctions.
    Auction,
    /// Bids on auctions.
    Bid,
}

impl EventKind {
    /// The kind's name in `'nexmark.table'`.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Person => "person",
            EventKind::Auction => "auction",
            EventKind::Bid => "bid",
        }
    }
}

/// Parameters of the Nexmark generator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NexmarkConfig {
    /// The kind of event the table holds.
    pub kind: EventKind,
    /// Events of all kinds; `None`: unbounded.
    pub events: Option<u64>,
    /// Events per second of event time.
    pub rate: u64,
    /// Pace the source to `rate` on the wall clock.
    pub rate_limited: bool,
    /// Proportions of persons, auctions and bids among the events.
    pub proportions: [u64; 3],
    /// Hot-auction, hot-bidder and hot-seller ratios.
    pub hot_auctions_ratio: u64,
    /// See [`NexmarkConfig::hot_auctions_ratio`].
    pub hot_bidders_ratio: u64,
    /// See [`NexmarkConfig::hot_auctions_ratio`].
    pub hot_sellers_ratio: u64,
    /// Average bytes of a person, an auction and a bid.
    pub avg_sizes: [u64; 3],
    /// The random seed.
    pub seed: u64,
}

impl NexmarkConfig {
    /// The defaults of the Nexmark repository, for events of `kind`.
    pub fn new(kind: EventKind) -> Self {
        NexmarkConfig {
            kind,
            events: None,
            rate: 10_000,
            rate_limited: false,
            proportions: [1, 3, 46],
            hot_auctions_ratio: 2,
            hot_bidders_ratio: 4,
            hot_sellers_ratio: 4,
            avg_sizes: [200, 500, 100],
            seed: 0,
        }
    }

    /// Reads and validates a Nexmark table's options; unknown keys are errors.
    pub fn from_options(options: &TableOptions<'_>) -> Result<Self, EngineError> {
        options.check_known(IDENTIFIER, OPTION_KEYS)?;
        let kind = match options
            .required(TABLE)?
            .trim()
            .to_ascii_lowercase()
            .as_str()
        {
            "person" => EventKind::Person,
            "auction" => EventKind::Auction,
            "bid" => EventKind::Bid,
            _ => return Err(options.error(TABLE, "expected 'person', 'auction' or 'bid'")),
        };
        let d = NexmarkConfig::new(kind);
        let positive = |key: &str, default: u64| -> Result<u64, EngineError> {
            let value = options.u64_or(key, default)?;
            if value == 0 {
                return Err(options.error(key, "must be at least 1"));
            }
            Ok(value)
        };
        let rate = positive(FIRST_EVENT_RATE, d.rate)?;
        if options.u64_or(NEXT_EVENT_RATE, rate)? != rate {
            return Err(options.error(
                NEXT_EVENT_RATE,
                format!("must equal '{FIRST_EVENT_RATE}' (rate shapes are not supported)"),
            ));
        }
        let proportions = [
            options.u64_or(PERSON_PROPORTION, d.proportions[0])?,
            options.u64_or(AUCTION_PROPORTION, d.proportions[1])?,
            options.u64_or(BID_PROPORTION, d.proportions[2])?,
        ];
        for (key, value) in [
            (PERSON_PROPORTION, proportions[0]),
            (AUCTION_PROPORTION, proportions[1]),
            (BID_PROPORTION, proportions[2]),
        ] {
            if value > MAX_PROPORTION {
                return Err(options.error(key, format!("must be at most {MAX_PROPORTION}")));
            }
        }
        if proportions[0] == 0 || proportions[1] == 0 {
            let key = if proportions[0] == 0 {
                PERSON_PROPORTION
            } else {
                AUCTION_PROPORTION
            };
            return Err(options.error(key, "must be at least 1 (bids need people and auctions)"));
        }
        let avg_size = |key: &str, default: u64| -> Result<u64, EngineError> {
            let size = options.memory_size_or(key, default)?;
            if size > MAX_AVG_SIZE {
                return Err(options.error(key, format!("must be at most {MAX_AVG_SIZE} bytes")));
            }
            Ok(size)
        };
        Ok(NexmarkConfig {
            kind,
            events: options.u64_opt(EVENTS_NUM)?.filter(|n| *n > 0),
            rate,
            rate_limited: options.bool_or(RATE_LIMITED, d.rate_limited)?,
            proportions,
            hot_auctions_ratio: positive(HOT_AUCTIONS_RATIO, d.hot_auctions_ratio)?,
            hot_bidders_ratio: positive(HOT_BIDDERS_RATIO, d.hot_bidders_ratio)?,
            hot_sellers_ratio: positive(HOT_SELLERS_RATIO, d.hot_sellers_ratio)?,
            avg_sizes: [
                avg_size(PERSON_AVG_SIZE, d.avg_sizes[0])?,
                avg_size(AUCTION_AVG_SIZE, d.avg_sizes[1])?,
                avg_size(BID_AVG_SIZE, d.avg_sizes[2])?,
            ],
            seed: options.u64_or(SEED, d.seed)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn parse(pairs: &[(&str, &str)]) -> Result<NexmarkConfig, String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        NexmarkConfig::from_options(&TableOptions::new("bid", &map)).map_err(|e| e.to_string())
    }

    #[test]
    fn reads_the_repository_option_names() {
        let c = parse(&[
            ("connector", "nexmark"),
            ("nexmark.table", "Bid"),
            ("events.num", "1000"),
            ("first-event.rate", "5000"),
            ("next-event.rate", "5000"),
            ("bid.proportion", "92"),
            ("bid.avg-size", "120b"),
        ])
        .unwrap();
        assert_eq!(c.kind, EventKind::Bid);
        assert_eq!(c.events, Some(1000));
        assert_eq!(c.rate, 5000);
        assert_eq!(c.proportions, [1, 3, 92]);
        assert_eq!(c.avg_sizes, [200, 500, 120]);
        let unbounded = parse(&[("nexmark.table", "person"), ("events.num", "0")]).unwrap();
        assert_eq!(unbounded.events, None);
    }

    #[test]
    fn bad_options_name_themselves() {
        for (pairs, expected) in [
            (vec![], "'nexmark.table'"),
            (vec![("nexmark.table", "bids")], "expected 'person'"),
            (
                vec![("nexmark.table", "bid"), ("next-event.rate", "5")],
                "rate shapes",
            ),
            (
                vec![("nexmark.table", "bid"), ("person.proportion", "0")],
                "person.proportion",
            ),
            (
                vec![("nexmark.table", "bid"), ("tps", "5")],
                "unsupported option 'tps'",
            ),
            (
                vec![("nexmark.table", "bid"), ("bid.avg-size", "1gb")],
                "at most 65536 bytes",
            ),
            (
                vec![
                    ("nexmark.table", "bid"),
                    ("bid.proportion", "18446744073709551615"),
                ],
                "at most 1000000",
            ),
        ] {
            let err = parse(&pairs).unwrap_err();
            assert!(err.contains(expected), "{pairs:?}: {err}");
        }
    }
}
