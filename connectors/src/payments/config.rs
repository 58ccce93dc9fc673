//! The payments generator's options (`'connector' = 'payments'`), named after
//! Flink's datagen where one exists (`number-of-rows`, `rows-per-second`).

use std::time::Duration;

use watershed_engine::EngineError;

use crate::format::datetime::{TimestampStandard, parse_timestamp_millis};
use crate::options::{CONNECTOR, TableOptions};

use super::IDENTIFIER;

/// `'seed'`: the random seed (default 42).
pub const SEED: &str = "seed";
/// `'number-of-rows'`: makes the source bounded with this many rows.
pub const NUMBER_OF_ROWS: &str = "number-of-rows";
/// `'rows-per-second'`: wall-clock rate limit.
pub const ROWS_PER_SECOND: &str = "rows-per-second";
/// `'cards'`: number of distinct card ids (default 10 000).
pub const CARDS: &str = "cards";
/// `'accounts'`: number of distinct accounts (default: half the cards, rounded up).
pub const ACCOUNTS: &str = "accounts";
/// `'merchants'`: number of distinct merchants (default 1 000).
pub const MERCHANTS: &str = "merchants";
/// `'start-time'`: event time of the first row (default `2024-01-01 00:00:00`).
pub const START_TIME: &str = "start-time";
/// `'events-per-second-event-time'`: rows per second of event time (default 1 000).
pub const EVENTS_PER_SECOND_EVENT_TIME: &str = "events-per-second-event-time";
/// `'max-out-of-orderness'`: bound of the event-time disorder (default `4s`).
pub const MAX_OUT_OF_ORDERNESS: &str = "max-out-of-orderness";
/// `'late-rows-percent'`: percentage of rows made late by twice the bound (default 0).
pub const LATE_ROWS_PERCENT: &str = "late-rows-percent";

/// Every option key of the payments connector.
pub const OPTION_KEYS: &[&str] = &[
    CONNECTOR,
    SEED,
    NUMBER_OF_ROWS,
    ROWS_PER_SECOND,
    CARDS,
    ACCOUNTS,
    MERCHANTS,
    START_TIME,
    EVENTS_PER_SECOND_EVENT_TIME,
    MAX_OUT_OF_ORDERNESS,
    LATE_ROWS_PERCENT,
];

/// `2024-01-01 00:00:00` in milliseconds since the epoch.
pub const DEFAULT_START_TIME_MILLIS: i64 = 1_704_067_200_000;

/// Parameters of the payments generator.
#[derive(Debug, Clone, PartialEq)]
pub struct PaymentsConfig {
    /// Seed of the random stream.
    pub seed: u64,
    /// Total rows; `None` generates forever.
    pub number_of_rows: Option<u64>,
    /// Wall-clock rate limit of the source; `None` generates as fast as possible.
    pub rows_per_second: Option<u64>,
    /// Distinct card ids `0..cards`.
    pub cards: u64,
    /// Distinct account ids `0..accounts` (`account_id = card_id % accounts`).
    /// Defaults to 5 000; from options, to half of `cards` rounded up.
    pub accounts: u64,
    /// Distinct merchant ids `0..merchants`.
    pub merchants: u64,
    /// Event time of row 0, in milliseconds since the epoch.
    pub start_time_millis: i64,
    /// Rows per second of event time: row `i` is due at `start + i * 1000 / this` ms.
    pub events_per_second: u64,
    /// Each row's event time is its due time minus a uniform jitter in `[0, this)`.
    pub max_out_of_orderness: Duration,
    /// Percentage (0..=100) of rows that are additionally late by twice the bound.
    pub late_rows_percent: f64,
}

impl Default for PaymentsConfig {
    fn default() -> Self {
        PaymentsConfig {
            seed: 42,
            number_of_rows: None,
            rows_per_second: None,
            cards: 10_000,
            accounts: 5_000,
            merchants: 1_000,
            start_time_millis: DEFAULT_START_TIME_MILLIS,
            events_per_second: 1_000,
            max_out_of_orderness: Duration::from_secs(4),
            late_rows_percent: 0.0,
        }
    }
}

impl PaymentsConfig {
    /// The default configuration bounded to `rows` rows.
    pub fn bounded(rows: u64) -> Self {
        PaymentsConfig {
            number_of_rows: Some(rows),
            ..PaymentsConfig::default()
        }
    }

    /// Reads and validates a payments table's options; unknown keys are errors.
    pub fn from_options(options: &TableOptions<'_>) -> Result<Self, EngineError> {
        options.check_known(IDENTIFIER, OPTION_KEYS)?;
        let defaults = PaymentsConfig::default();
        let cards = options.u64_or(CARDS, defaults.cards)?;
        let start_time_millis = match options.get(START_TIME) {
            None => defaults.start_time_millis,
            Some(text) => parse_timestamp_millis(text.trim(), TimestampStandard::Sql)
                .map_err(|reason| options.error(START_TIME, reason))?,
        };
        let config = PaymentsConfig {
            seed: options.u64_or(SEED, defaults.seed)?,
            number_of_rows: options.u64_opt(NUMBER_OF_ROWS)?,
            rows_per_second: options.u64_opt(ROWS_PER_SECOND)?,
            cards,
            accounts: options.u64_or(ACCOUNTS, cards.div_ceil(2).max(1))?,
            merchants: options.u64_or(MERCHANTS, defaults.merchants)?,
            start_time_millis,
            events_per_second: options
                .u64_or(EVENTS_PER_SECOND_EVENT_TIME, defaults.events_per_second)?,
            max_out_of_orderness: options
                .duration_or(MAX_OUT_OF_ORDERNESS, defaults.max_out_of_orderness)?,
            late_rows_percent: options.f64_or(LATE_ROWS_PERCENT, defaults.late_rows_percent)?,
        };
        config
            .validate()
            .map_err(|(key, reason)| options.error(key, reason))?;
        Ok(config)
    }

    /// Checks the ranges; on failure returns the option key and the reason.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let positive = |key: &'static str, v: u64| {
            if v == 0 {
                Err((key, "must be at least 1".to_string()))
            } else {
                Ok(())
            }
        };
        positive(CARDS, self.cards)?;
        positive(ACCOUNTS, self.accounts)?;
        positive(MERCHANTS, self.merchants)?;
        positive(EVENTS_PER_SECOND_EVENT_TIME, self.events_per_second)?;
        if let Some(rate) = self.rows_per_second {
            positive(ROWS_PER_SECOND, rate)?;
        }
        if !(0.0..=100.0).contains(&self.late_rows_percent) {
            return Err((LATE_ROWS_PERCENT, "must be between 0 and 100".to_string()));
        }
        if self.max_out_of_orderness > Duration::from_secs(365 * 86_400) {
            return Err((MAX_OUT_OF_ORDERNESS, "must be at most one year".to_string()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn parse(pairs: &[(&str, &str)]) -> Result<PaymentsConfig, EngineError> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        PaymentsConfig::from_options(&TableOptions::new("payments", &map))
    }

    #[test]
    fn defaults_and_overrides() {
        assert_eq!(
            parse(&[("connector", "payments")]).unwrap(),
            PaymentsConfig::default()
        );
        let c = parse(&[
            ("connector", "payments"),
            ("seed", "7"),
            ("number-of-rows", "100"),
            ("cards", "5"),
            ("start-time", "2024-06-01 12:00:00"),
            ("max-out-of-orderness", "4 s"),
            ("late-rows-percent", "0.5"),
        ])
        .unwrap();
        assert_eq!(c.seed, 7);
        assert_eq!(c.number_of_rows, Some(100));
        assert_eq!(c.accounts, 3);
        assert_eq!(c.start_time_millis, 1_717_243_200_000);
        assert_eq!(c.max_out_of_orderness, Duration::from_secs(4));
        assert_eq!(c.late_rows_percent, 0.5);
    }

    #[test]
    fn rejects_bad_values() {
        let err = parse(&[("cards", "0")]).unwrap_err().to_string();
        assert_eq!(
            err,
            "table 'payments': option 'cards' = '0': must be at least 1"
        );
        assert!(parse(&[("late-rows-percent", "150")]).is_err());
        assert!(parse(&[("max-out-of-orderness", "soon")]).is_err());
        let err = parse(&[("rows-per-sec", "5")]).unwrap_err().to_string();
        assert!(err.contains("unsupported option 'rows-per-sec'"), "{err}");
    }
}
