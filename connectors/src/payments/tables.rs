//! Fixed value tables of the payments generator: merchant category codes,
//! countries with their traffic weights and currencies, statuses, and the amount
//! distribution.
//!
//! Everything here is integer data, so generated values are identical on every
//! platform (no floating-point library calls in the hot path).

/// Real merchant category codes: grocery, restaurants, misc. retail, money
/// transfer, gambling, ATM cash, fuel, airlines, hotels, digital goods.
pub const MCCS: &[&str] = &[
    "5411", "5812", "5999", "4829", "7995", "6011", "5541", "4511", "7011", "5816",
];

/// ISO 3166 country codes with their share of card holders (per mille) and the
/// local ISO 4217 currency.
pub const COUNTRIES: &[(&str, u32, &str)] = &[
    ("US", 350, "USD"),
    ("GB", 150, "GBP"),
    ("DE", 100, "EUR"),
    ("FR", 80, "EUR"),
    ("NL", 50, "EUR"),
    ("ES", 50, "EUR"),
    ("IT", 40, "EUR"),
    ("BR", 50, "BRL"),
    ("IN", 40, "INR"),
    ("JP", 40, "JPY"),
    ("SG", 20, "SGD"),
    ("NG", 15, "NGN"),
    ("CA", 15, "CAD"),
];

/// Transaction statuses with their share (per mille).
pub const STATUSES: &[(&str, u32)] = &[("APPROVED", 900), ("DECLINED", 80), ("TIMEOUT", 20)];

/// Share of rows in the 20% "hot" cards (per mille): 80% of traffic.
pub const HOT_CARD_SHARE: u32 = 800;

/// Share of transactions made abroad, outside the card's home country (per mille).
pub const FOREIGN_SHARE: u32 = 50;

/// Share of unusually large amounts, 10 000.00 and up (per million).
pub const LARGE_AMOUNT_PER_MILLION: u32 = 1_000;

/// Smallest and span of the large amounts, in cents: 10 000.00 ..< 50 000.00.
pub const LARGE_AMOUNT_MIN_CENTS: i64 = 1_000_000;
/// See [`LARGE_AMOUNT_MIN_CENTS`].
pub const LARGE_AMOUNT_SPAN_CENTS: u64 = 4_000_000;

/// The 1/64 quantiles (in cents) of a log-normal distribution with median 35.00
/// and sigma 1.1, clamped to 0.50 ..= 5000.00. An amount is drawn by picking a
/// bucket uniformly and interpolating linearly inside it.
pub const AMOUNT_QUANTILES_CENTS: [i64; 65] = [
    50, 327, 451, 554, 647, 736, 821, 905, 987, 1070, 1152, 1235, 1319, 1404, 1490, 1577, 1667,
    1758, 1851, 1946, 2044, 2145, 2249, 2355, 2465, 2579, 2696, 2818, 2944, 3075, 3211, 3352, 3500,
    3654, 3815, 3984, 4161, 4347, 4543, 4750, 4969, 5201, 5448, 5711, 5992, 6293, 6618, 6969, 7350,
    7766, 8222, 8726, 9287, 9917, 10631, 11450, 12406, 13539, 14918, 16649, 18921, 22116, 27161,
    37413, 500000,
];

/// Resolution of the generator's decisions: shares are compared with 16-bit draws.
pub const DECISION_BITS: u32 = 16;

/// Scales a share (`share / denominator`) to a threshold on a uniform 16-bit draw.
pub const fn threshold(share: u64, denominator: u64) -> u64 {
    share * (1 << DECISION_BITS) / denominator
}

/// Cumulative 16-bit thresholds of a weighted table, for picking by a uniform draw.
pub fn cumulative_thresholds(weights: impl Iterator<Item = u32>) -> Vec<u64> {
    let weights: Vec<u64> = weights.map(u64::from).collect();
    let total: u64 = weights.iter().sum::<u64>().max(1);
    let mut running = 0;
    weights
        .iter()
        .map(|w| {
            running += w;
            threshold(running, total)
        })
        .collect()
}

/// The index picked by a uniform 16-bit `draw` from cumulative `thresholds`.
#[inline]
pub fn pick(thresholds: &[u64], draw: u64) -> usize {
    thresholds
        .iter()
        .position(|t| draw < *t)
        .unwrap_or(thresholds.len().saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_consistent() {
        assert_eq!(COUNTRIES.iter().map(|c| c.1).sum::<u32>(), 1000);
        assert_eq!(STATUSES.iter().map(|s| s.1).sum::<u32>(), 1000);
        assert!(AMOUNT_QUANTILES_CENTS.windows(2).all(|w| w[0] < w[1]));
        let t = cumulative_thresholds(STATUSES.iter().map(|s| s.1));
        assert_eq!(t.last(), Some(&(1 << 16)));
        assert_eq!(pick(&t, 0), 0);
        assert_eq!(pick(&t, threshold(899, 1000)), 0);
        assert_eq!(pick(&t, threshold(950, 1000)), 1);
        assert_eq!(pick(&t, (1 << 16) - 1), 2);
    }
}
