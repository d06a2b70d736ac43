//! Durations written as Go writes them (`90s`, `1m30s`, `500ms`, `1.5h`), which is how
//! Kubernetes `metav1.Duration` fields are spelled.

use std::time::Duration;

/// The largest duration Go can hold: `i64::MAX` nanoseconds (about 292 years).
const MAX_NANOS: u128 = i64::MAX as u128;

/// Parses a Go duration: one or more decimal numbers (optionally with a fraction), each
/// followed by a unit (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`), such as `90s`, `1m30s`,
/// `500ms` or `1.5h`; or a bare `0`. A leading `+` is allowed. Negative durations are
/// rejected (`-0` is zero), and so are durations Go could not hold (over about 292
/// years). Digits beyond nanosecond precision are truncated, as Go does.
///
/// The error says what is wrong, for use after a field path.
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let mut s = text;
    let mut negative = false;
    if let Some(rest) = s.strip_prefix('-') {
        negative = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(format!("{text:?} is not a duration: it is empty"));
    }
    let bad = |why: &str| {
        format!(
            "{text:?} is not a duration: {why} (write for example \"90s\", \"1m30s\" or \"500ms\")"
        )
    };
    let mut total: u128 = 0;
    while !s.is_empty() {
        // The number: integer digits, then an optional fraction.
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let (int_digits, rest) = s.split_at(int_len);
        s = rest;
        let mut frac_digits = "";
        if let Some(rest) = s.strip_prefix('.') {
            let frac_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            (frac_digits, s) = rest.split_at(frac_len);
        }
        if int_digits.is_empty() && frac_digits.is_empty() {
            return Err(bad("a number is missing"));
        }
        // The unit: everything up to the next digit or dot.
        let unit_len = s
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(s.len(), |(i, _)| i);
        let (unit, rest) = s.split_at(unit_len);
        s = rest;
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(bad("a unit is missing after a number")),
            other => {
                return Err(bad(&format!(
                    "unknown unit {other:?} (units are ns, us, ms, s, m, h)"
                )));
            }
        };
        let too_long = || bad("longer than Go can hold (about 292 years)");
        let mut value: u128 = 0;
        for d in int_digits.bytes() {
            value = value * 10 + u128::from(d - b'0');
            if value > MAX_NANOS {
                return Err(too_long());
            }
        }
        value *= unit_nanos;
        // The fraction, truncated to whole nanoseconds. An hour is under 10^13 ns, so
        // digits past the 20th cannot change the result (and 10^20 times an hour in
        // nanoseconds fits in u128).
        let mut frac: u128 = 0;
        let mut scale: u128 = 1;
        for d in frac_digits.bytes().take(20) {
            frac = frac * 10 + u128::from(d - b'0');
            scale *= 10;
        }
        value += frac * unit_nanos / scale;
        total += value;
        if total > MAX_NANOS {
            return Err(too_long());
        }
    }
    if negative && total != 0 {
        return Err(format!(
            "{text:?} is negative: a duration here must be zero or more"
        ));
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| bad("too long"))?;
    let nanos = u32::try_from(total % 1_000_000_000).map_err(|_| bad("too long"))?;
    Ok(Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_go_durations() {
        let ms = Duration::from_millis;
        for (text, want) in [
            ("0", Duration::ZERO),
            ("-0", Duration::ZERO),
            ("+0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("90s", ms(90_000)),
            ("1m30s", ms(90_000)),
            ("500ms", ms(500)),
            ("1.5h", ms(5_400_000)),
            ("1h2m3s4ms5us6ns", Duration::new(3723, 4_005_006)),
            ("1.5s", ms(1500)),
            (".5s", ms(500)),
            ("1.s", ms(1000)),
            ("3µs", Duration::from_micros(3)),
            ("3μs", Duration::from_micros(3)),
            ("3us", Duration::from_micros(3)),
            ("1.0000000001s", ms(1000)),
            ("2562047h", Duration::from_secs(2_562_047 * 3600)),
            ("+5s", ms(5000)),
        ] {
            assert_eq!(parse_go_duration(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn rejects_what_go_rejects() {
        for text in [
            "",
            "s",
            "5",
            "1x",
            "1.5",
            ".s",
            "-",
            "+",
            "1s5",
            "1 s",
            " 1s",
            "1sec",
            "1..5s",
            "3000000h",
            "9223372036854775808ns",
            "1e3s",
        ] {
            assert!(parse_go_duration(text).is_err(), "{text:?} accepted");
        }
    }

    #[test]
    fn rejects_negatives() {
        let e = parse_go_duration("-5s").unwrap_err();
        assert!(e.contains("negative"), "{e}");
    }

    #[test]
    fn largest() {
        assert_eq!(
            parse_go_duration("9223372036854775807ns"),
            Ok(Duration::new(9_223_372_036, 854_775_807))
        );
        assert!(parse_go_duration("9223372036854775807ns1ns").is_err());
    }
}
