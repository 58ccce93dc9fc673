//! The Nexmark event model: which kind event number `n` is, its ids, its
//! time, and its random draws.
//!
//! Events are numbered `0, 1, 2, ...` on one timeline, whatever the
//! parallelism. Of every `person + auction + bid` proportion units (50 by
//! default), the first `person` numbers are people, the next `auction` numbers
//! auctions, the rest bids. A person's id is the number of people before it
//! plus 1000, an auction's likewise; bids, and auctions' sellers, refer to
//! recent people and auctions, and to "hot" ones (the first person or auction
//! of the current block of 100) with the configured ratios, as in the Nexmark
//! generator. Event `n` happens at `2015-07-15 00:00:00 + n / rate` seconds, in
//! order (no out-of-order groups, as in Flink's runs).
//!
//! Randomness is counter-based: draw `j` of event `n` is a hash of the seed,
//! `n` and `j`, so an event's values do not depend on which split generates it,
//! on the batch size, or on which columns are read.

use super::config::{EventKind, NexmarkConfig};

/// `2015-07-15 00:00:00` UTC in milliseconds (Nexmark's base time).
pub const BASE_TIME_MILLIS: i64 = 1_436_918_400_000;
/// The first person id (and auction id).
pub const FIRST_ID: i64 = 1000;
/// The first auction category.
pub const FIRST_CATEGORY_ID: i64 = 10;
/// Auction categories `10..15`.
pub const CATEGORIES: u64 = 5;
/// People a random bidder or seller is drawn from (the most recent ones).
const ACTIVE_PEOPLE: u64 = 1000;
/// Auctions a random bid is drawn from (the most recent ones).
const IN_FLIGHT_AUCTIONS: u64 = 100;
/// How far past the newest person or auction a random id may reach.
const ID_LEAD: u64 = 10;
/// Hot people and auctions are the first of each block of this many.
const HOT_BLOCK: u64 = 100;

/// SplitMix64's finalizer.
#[inline]
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform integer below `n` (`n >= 1`) from a 64-bit draw.
#[inline]
pub fn below(draw: u64, n: u64) -> u64 {
    ((u128::from(draw) * u128::from(n)) >> 64) as u64
}

/// The event model of one configuration.
#[derive(Debug, Clone)]
pub struct EventModel {
    person: u64,
    auction: u64,
    total: u64,
    rate: u64,
    seed: u64,
    /// Auctions last about as long as it takes `IN_FLIGHT_AUCTIONS` new ones
    /// to appear: this many events.
    auction_horizon_events: u64,
    hot_auctions_ratio: u64,
    hot_bidders_ratio: u64,
    hot_sellers_ratio: u64,
}

impl EventModel {
    /// The model of `config`.
    pub fn new(config: &NexmarkConfig) -> Self {
        let [person, auction, bid] = config.proportions;
        let total = person + auction + bid;
        EventModel {
            person,
            auction,
            total,
            rate: config.rate,
            seed: mix(config.seed ^ 0x4E45_584D_4152_4B00),
            auction_horizon_events: IN_FLIGHT_AUCTIONS * total / auction,
            hot_auctions_ratio: config.hot_auctions_ratio,
            hot_bidders_ratio: config.hot_bidders_ratio,
            hot_sellers_ratio: config.hot_sellers_ratio,
        }
    }

    /// The kind of event `n`.
    #[inline]
    pub fn kind(&self, n: u64) -> EventKind {
        let rem = n % self.total;
        if rem < self.person {
            EventKind::Person
        } else if rem < self.person + self.auction {
            EventKind::Auction
        } else {
            EventKind::Bid
        }
    }

    /// The event time of event `n`, in milliseconds.
    #[inline]
    pub fn timestamp(&self, n: u64) -> i64 {
        let offset = u128::from(n) * 1000 / u128::from(self.rate);
        BASE_TIME_MILLIS.saturating_add(i64::try_from(offset).unwrap_or(i64::MAX))
    }

    /// Draw `j` of event `n`.
    #[inline]
    pub fn draw(&self, n: u64, j: u64) -> u64 {
        mix(self.seed ^ mix(n.wrapping_mul(16).wrapping_add(j)))
    }

    /// People created before or at event `n`, minus one (the 0-based id of
    /// the newest person; -1 before the first).
    #[inline]
    pub fn last_person(&self, n: u64) -> i64 {
        let epoch = n / self.total;
        let offset = (n % self.total).min(self.person - 1);
        (epoch * self.person + offset) as i64
    }

    /// The 0-based id of the newest auction at event `n` (-1 before the first).
    #[inline]
    pub fn last_auction(&self, n: u64) -> i64 {
        let mut epoch = (n / self.total) as i64;
        let rem = n % self.total;
        let offset = if rem < self.person {
            epoch -= 1;
            self.auction - 1
        } else if rem >= self.person + self.auction {
            self.auction - 1
        } else {
            rem - self.person
        };
        epoch * self.auction as i64 + offset as i64
    }

    /// The id of the person event `n` creates.
    pub fn person_id(&self, n: u64) -> i64 {
        self.last_person(n) + FIRST_ID
    }

    /// The id of the auction event `n` creates.
    pub fn auction_id(&self, n: u64) -> i64 {
        self.last_auction(n) + FIRST_ID
    }

    /// A recent person's 0-based id (up to `ID_LEAD` past the newest).
    fn random_person(&self, n: u64, draw: u64) -> i64 {
        let people = (self.last_person(n) + 1).max(0) as u64;
        let active = people.min(ACTIVE_PEOPLE);
        (people - active + below(draw, active + ID_LEAD)) as i64
    }

    /// A recent auction's 0-based id (up to `ID_LEAD` past the newest).
    fn random_auction(&self, n: u64, draw: u64) -> i64 {
        let newest = self.last_auction(n).max(0) as u64;
        let oldest = newest.saturating_sub(IN_FLIGHT_AUCTIONS);
        (oldest + below(draw, newest - oldest + 1 + ID_LEAD)) as i64
    }

    /// The auction bid on by bid `n` (draws 0 and 1).
    pub fn bid_auction(&self, n: u64) -> i64 {
        let base0 = if below(self.draw(n, 0), self.hot_auctions_ratio) > 0 {
            (self.last_auction(n).max(0) as u64 / HOT_BLOCK * HOT_BLOCK) as i64
        } else {
            self.random_auction(n, self.draw(n, 1))
        };
        base0 + FIRST_ID
    }

    /// The bidder of bid `n` (draws 2 and 3); hot bidders are the second
    /// person of their block, so they are not the hot sellers.
    pub fn bidder(&self, n: u64) -> i64 {
        let base0 = if below(self.draw(n, 2), self.hot_bidders_ratio) > 0 {
            (self.last_person(n).max(0) as u64 / HOT_BLOCK * HOT_BLOCK) as i64 + 1
        } else {
            self.random_person(n, self.draw(n, 3))
        };
        base0 + FIRST_ID
    }

    /// The seller of auction `n` (draws 0 and 1).
    pub fn seller(&self, n: u64) -> i64 {
        let base0 = if below(self.draw(n, 0), self.hot_sellers_ratio) > 0 {
            (self.last_person(n).max(0) as u64 / HOT_BLOCK * HOT_BLOCK) as i64
        } else {
            self.random_person(n, self.draw(n, 1))
        };
        base0 + FIRST_ID
    }

    /// The category of auction `n` (draw 2).
    pub fn category(&self, n: u64) -> i64 {
        FIRST_CATEGORY_ID + below(self.draw(n, 2), CATEGORIES) as i64
    }

    /// When auction `n` expires (draw 5): after a uniform length in
    /// `[1, 2 * horizon]` ms, where the horizon is the time for the in-flight
    /// auctions to turn over.
    pub fn expires(&self, n: u64) -> i64 {
        let now = self.timestamp(n);
        let horizon = self.timestamp(n + self.auction_horizon_events) - now;
        let span = (2 * horizon).max(1) as u64;
        now + 1 + below(self.draw(n, 5), span) as i64
    }
}

/// A price in cents, log-uniform in `[100, 10^8)`: `round(10^(6u) * 100)`.
pub fn price(draw: u64) -> i64 {
    let u = (draw >> 11) as f64 / (1u64 << 53) as f64;
    (10f64.powf(u * 6.0) * 100.0).round() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> EventModel {
        EventModel::new(&NexmarkConfig::new(EventKind::Bid))
    }

    #[test]
    fn kinds_follow_the_proportions_and_ids_count_people_and_auctions() {
        let m = model();
        let kinds: Vec<EventKind> = (0..50).map(|n| m.kind(n)).collect();
        assert_eq!(kinds[0], EventKind::Person);
        assert!(kinds[1..4].iter().all(|k| *k == EventKind::Auction));
        assert!(kinds[4..].iter().all(|k| *k == EventKind::Bid));
        assert_eq!(m.person_id(0), 1000);
        assert_eq!(m.person_id(50), 1001);
        assert_eq!(
            [1, 2, 3, 51, 52, 53].map(|n| m.auction_id(n)),
            [1000, 1001, 1002, 1003, 1004, 1005]
        );
        // A bid refers only to people and auctions that exist (or are at
        // most ID_LEAD ahead).
        for n in (0..100_000).filter(|n| m.kind(*n) == EventKind::Bid) {
            let (auction, bidder) = (m.bid_auction(n), m.bidder(n));
            assert!(auction >= 1000 && auction <= m.last_auction(n) + 1000 + ID_LEAD as i64);
            assert!(bidder >= 1000 && bidder <= m.last_person(n) + 1000 + ID_LEAD as i64);
        }
    }

    #[test]
    fn times_follow_the_rate_and_prices_span_six_decades() {
        let m = model();
        assert_eq!(m.timestamp(0), BASE_TIME_MILLIS);
        assert_eq!(m.timestamp(10_000), BASE_TIME_MILLIS + 1000);
        let prices: Vec<i64> = (0..10_000).map(|n| price(m.draw(n, 4))).collect();
        assert!(prices.iter().all(|p| (100..=100_000_000).contains(p)));
        let cheap = prices.iter().filter(|p| **p < 10_000).count();
        assert!(
            (2_800..3_900).contains(&cheap),
            "{cheap} of 10000 under 100.00"
        );
        for n in [1, 2, 3, 51] {
            assert!(m.expires(n) > m.timestamp(n));
        }
    }
}
