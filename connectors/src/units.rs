//! Parsing of the unit-carrying option values Flink accepts: durations such as
//! `'4s'`, `'4000ms'` or `'4 s'`, and memory sizes such as `'128MB'` or `'1 kb'`.
//!
//! The functions return a human-readable reason on failure; the caller adds the
//! table and option name (see [`crate::options::TableOptions`]).

use std::time::Duration;

/// Splits `"4 s"` / `"4000ms"` into the number and the (trimmed, lower-cased) unit.
fn split_number_unit(text: &str) -> Option<(u64, String)> {
    let text = text.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    if digits_end == 0 {
        return None;
    }
    let number = text[..digits_end].parse::<u64>().ok()?;
    let unit = text[digits_end..].trim().to_ascii_lowercase();
    Some((number, unit))
}

/// Parses a Flink-style duration: a non-negative integer followed by an optional
/// unit (`ms`, `s`, `min`, `h`, `d` and their long forms). A bare number means
/// milliseconds, as in Flink.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid =
        || format!("invalid duration '{text}' (expected e.g. '500ms', '4s', '4 s', '1 min', '2h')");
    let (number, unit) = split_number_unit(text).ok_or_else(invalid)?;
    let millis_per_unit: u64 = match unit.as_str() {
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => 1,
        "s" | "sec" | "secs" | "second" | "seconds" => 1_000,
        "m" | "min" | "mins" | "minute" | "minutes" => 60_000,
        "h" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        _ => return Err(invalid()),
    };
    number
        .checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("duration '{text}' is too large"))
}

/// Parses a Flink-style memory size: a non-negative integer followed by an optional
/// unit (`b`, `kb`/`k`, `mb`/`m`, `gb`/`g`, `tb`/`t`; case-insensitive; powers of
/// 1024). A bare number means bytes.
pub fn parse_memory_size(text: &str) -> Result<u64, String> {
    let invalid =
        || format!("invalid memory size '{text}' (expected e.g. '128MB', '1 kb', '4096')");
    let (number, unit) = split_number_unit(text).ok_or_else(invalid)?;
    let multiplier: u64 = match unit.as_str() {
        "" | "b" | "bytes" => 1,
        "k" | "kb" | "kib" | "kibibytes" => 1 << 10,
        "m" | "mb" | "mib" | "mebibytes" => 1 << 20,
        "g" | "gb" | "gib" | "gibibytes" => 1 << 30,
        "t" | "tb" | "tib" | "tebibytes" => 1 << 40,
        _ => return Err(invalid()),
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("memory size '{text}' is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("4s"), Ok(Duration::from_secs(4)));
        assert_eq!(parse_duration("4000ms"), Ok(Duration::from_secs(4)));
        assert_eq!(parse_duration("4 s"), Ok(Duration::from_secs(4)));
        assert_eq!(parse_duration(" 2 min "), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("250"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1 HOUR"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("-4s").is_err());
        assert!(parse_duration("4 parsecs").is_err());
        assert!(parse_duration("4.5s").is_err());
    }

    #[test]
    fn parses_memory_sizes() {
        assert_eq!(parse_memory_size("128MB"), Ok(128 << 20));
        assert_eq!(parse_memory_size("1KB"), Ok(1024));
        assert_eq!(parse_memory_size("1 kb"), Ok(1024));
        assert_eq!(parse_memory_size("4096"), Ok(4096));
        assert_eq!(parse_memory_size("2g"), Ok(2 << 30));
        assert!(parse_memory_size("MB").is_err());
        assert!(parse_memory_size("12 parsecs").is_err());
    }
}
