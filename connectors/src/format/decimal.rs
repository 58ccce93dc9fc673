//! Exact text forms of `DECIMAL(p, s)` values stored as Arrow `Decimal128`
//! mantissas.
//!
//! Parsing never goes through a float: digits are read straight into an `i128`
//! at the column's scale, extra fractional digits are rounded HALF_UP (away from
//! zero on a tie, as Flink and `java.math.RoundingMode.HALF_UP`), scientific
//! notation (`1e3`) is accepted, and a value whose rounded form needs more than
//! `p` digits is rejected rather than turned into NULL. Unlike `rust_decimal`
//! (96-bit mantissa) this covers the full `DECIMAL(38, s)` range.

use std::fmt::Write as _;

/// The largest precision of a `Decimal128`.
pub const MAX_PRECISION: u8 = 38;

/// `10^n` for `n <= 38`.
pub fn pow10(n: u32) -> Option<i128> {
    10i128.checked_pow(n)
}

/// The parts of a syntactically valid decimal literal.
struct Literal<'a> {
    negative: bool,
    /// The digits of the mantissa, possibly with one `.`.
    mantissa: &'a [u8],
    /// The explicit exponent minus the number of fractional digits.
    exponent: i64,
}

fn split_literal(text: &str) -> Option<Literal<'_>> {
    let bytes = text.trim().as_bytes();
    let (negative, bytes) = match bytes.first() {
        Some(b'-') => (true, &bytes[1..]),
        Some(b'+') => (false, &bytes[1..]),
        _ => (false, bytes),
    };
    let (mantissa, exponent_text) = match bytes.iter().position(|b| *b == b'e' || *b == b'E') {
        Some(i) => (&bytes[..i], Some(&bytes[i + 1..])),
        None => (bytes, None),
    };
    let mut explicit: i64 = 0;
    if let Some(exp) = exponent_text {
        let (exp_negative, exp_digits) = match exp.first() {
            Some(b'-') => (true, &exp[1..]),
            Some(b'+') => (false, &exp[1..]),
            _ => (false, exp),
        };
        if exp_digits.is_empty() || !exp_digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        for d in exp_digits {
            // Saturate: any exponent beyond a few thousand already decides the outcome.
            explicit = (explicit * 10 + i64::from(d - b'0')).min(1_000_000);
        }
        if exp_negative {
            explicit = -explicit;
        }
    }
    let mut digit_count = 0usize;
    let mut fraction_digits = 0i64;
    let mut seen_point = false;
    for b in mantissa {
        match b {
            b'0'..=b'9' => {
                digit_count += 1;
                if seen_point {
                    fraction_digits += 1;
                }
            }
            b'.' if !seen_point => seen_point = true,
            _ => return None,
        }
    }
    if digit_count == 0 {
        return None;
    }
    Some(Literal {
        negative,
        mantissa,
        exponent: explicit - fraction_digits,
    })
}

/// Parses decimal text into a mantissa at `scale`, rounding HALF_UP and checking
/// that it fits `precision` digits. The error is a reason for a rejected row.
pub fn parse_decimal(text: &str, precision: u8, scale: i8) -> Result<i128, String> {
    let literal = split_literal(text).ok_or_else(|| format!("invalid decimal '{text}'"))?;
    let too_large = || {
        format!(
            "value {} does not fit DECIMAL({precision}, {scale})",
            text.trim()
        )
    };
    let mut digits = literal
        .mantissa
        .iter()
        .filter(|b| b.is_ascii_digit())
        .map(|b| b - b'0')
        .skip_while(|d| *d == 0)
        .peekable();
    if digits.peek().is_none() {
        return Ok(0);
    }
    let count = literal
        .mantissa
        .iter()
        .filter(|b| b.is_ascii_digit())
        .skip_while(|b| **b == b'0')
        .count() as i64;
    // value = D * 10^exponent with D = the `count` significant digits;
    // the mantissa at `scale` is D * 10^(exponent + scale).
    let shift = literal.exponent + i64::from(scale);
    let keep = count + shift.min(0);
    if keep > i64::from(MAX_PRECISION) || (shift > 0 && count + shift > i64::from(MAX_PRECISION)) {
        return Err(too_large());
    }
    let mut magnitude: i128 = 0;
    let mut round_up = false;
    for (i, d) in digits.enumerate() {
        let i = i as i64;
        if i < keep {
            magnitude = magnitude * 10 + i128::from(d);
        } else {
            round_up = i == keep && d >= 5;
            break;
        }
    }
    if shift > 0 {
        let factor = u32::try_from(shift)
            .ok()
            .and_then(pow10)
            .ok_or_else(too_large)?;
        magnitude = magnitude.checked_mul(factor).ok_or_else(too_large)?;
    }
    if round_up {
        magnitude += 1;
    }
    let limit = pow10(u32::from(precision.min(MAX_PRECISION))).ok_or_else(too_large)?;
    if magnitude >= limit {
        return Err(too_large());
    }
    Ok(if literal.negative {
        -magnitude
    } else {
        magnitude
    })
}

/// Appends a mantissa in plain notation with exactly `scale` fractional digits.
pub fn write_decimal(mantissa: i128, scale: i8, out: &mut String) {
    if mantissa < 0 {
        out.push('-');
    }
    let magnitude = mantissa.unsigned_abs();
    if scale <= 0 {
        let _ = write!(out, "{magnitude}");
        for _ in 0..scale.unsigned_abs() {
            if magnitude != 0 {
                out.push('0');
            }
        }
        return;
    }
    let scale = u32::from(scale.unsigned_abs());
    let factor = 10u128.pow(scale.min(38));
    let _ = write!(
        out,
        "{}.{:0width$}",
        magnitude / factor,
        magnitude % factor,
        width = scale as usize
    );
}

/// A mantissa in plain notation as a new string.
pub fn format_decimal(mantissa: i128, scale: i8) -> String {
    let mut s = String::new();
    write_decimal(mantissa, scale, &mut s);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str, precision: u8, scale: i8) -> Result<String, String> {
        parse_decimal(text, precision, scale).map(|m| format_decimal(m, scale))
    }

    #[test]
    fn parses_plain_values_at_the_column_scale() {
        assert_eq!(p("12.5", 18, 2).unwrap(), "12.50");
        assert_eq!(p("-0.07", 18, 2).unwrap(), "-0.07");
        assert_eq!(p("+3", 18, 2).unwrap(), "3.00");
        assert_eq!(p(".5", 18, 2).unwrap(), "0.50");
        assert_eq!(p("5.", 18, 2).unwrap(), "5.00");
        assert_eq!(p("000123.4500", 18, 2).unwrap(), "123.45");
        assert_eq!(p("0", 5, 2).unwrap(), "0.00");
        assert_eq!(p("0.000", 5, 0).unwrap(), "0");
        assert_eq!(p("42", 10, 0).unwrap(), "42");
    }

    #[test]
    fn rounds_half_up_away_from_zero() {
        assert_eq!(p("1.555", 18, 2).unwrap(), "1.56");
        assert_eq!(p("1.554999", 18, 2).unwrap(), "1.55");
        assert_eq!(p("-1.555", 18, 2).unwrap(), "-1.56");
        assert_eq!(p("0.005", 18, 2).unwrap(), "0.01");
        assert_eq!(p("0.0049", 18, 2).unwrap(), "0.00");
        assert_eq!(p("0.0000001", 18, 2).unwrap(), "0.00");
        assert_eq!(p("9.995", 18, 2).unwrap(), "10.00");
        assert_eq!(p("2.5", 5, 0).unwrap(), "3");
    }

    #[test]
    fn accepts_scientific_notation() {
        assert_eq!(p("1e3", 18, 2).unwrap(), "1000.00");
        assert_eq!(p("1.5E-2", 18, 2).unwrap(), "0.02");
        assert_eq!(p("-2.5e+1", 18, 2).unwrap(), "-25.00");
        assert_eq!(p("1e-999999999", 18, 2).unwrap(), "0.00");
        assert!(p("1e99999", 18, 2).is_err());
    }

    #[test]
    fn rejects_values_that_do_not_fit_the_precision() {
        assert_eq!(
            p("123456", 5, 2).unwrap_err(),
            "value 123456 does not fit DECIMAL(5, 2)"
        );
        assert!(p("999.995", 5, 2).is_err());
        assert_eq!(p("999.994", 5, 2).unwrap(), "999.99");
        assert_eq!(
            p("99999999999999999999999999999999999999", 38, 0).unwrap(),
            "99999999999999999999999999999999999999"
        );
        assert!(p("999999999999999999999999999999999999999", 38, 0).is_err());
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "", "abc", "1.2.3", "--1", "1e", "e3", ".", "1,5", "1 000", "0x10", "NaN",
        ] {
            let err = parse_decimal(bad, 18, 2).unwrap_err();
            assert!(err.starts_with("invalid decimal"), "{bad}: {err}");
        }
    }

    #[test]
    fn writes_plain_notation() {
        assert_eq!(format_decimal(1250, 2), "12.50");
        assert_eq!(format_decimal(-5, 2), "-0.05");
        assert_eq!(format_decimal(0, 2), "0.00");
        assert_eq!(format_decimal(7, 0), "7");
        assert_eq!(
            format_decimal(i128::MIN, 2),
            "-1701411834604692317316873037158841057.28"
        );
    }
}
