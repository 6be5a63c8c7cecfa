//! Human units for sizes (`64MiB`) and durations (`2s`), both ways.
//!
//! Every size or duration a user types — a deploy flag, a query parameter, a
//! manifest field — goes through [`parse_size`] or [`parse_duration`], and every
//! one shown back goes through [`format_size`] / [`format_duration`], so what
//! `wisp ls` prints can be pasted back into `wisp deploy`.

use std::time::Duration;

/// The accepted forms of a size, for error messages.
pub const SIZE_FORMS: &str =
    "a number with an optional unit: B, KiB, MiB, GiB, KB, MB or GB (e.g. `64MiB`)";

/// The accepted forms of a duration, for error messages.
pub const DURATION_FORMS: &str = "a number with a unit: ms, s, m or h (e.g. `2s`, `500ms`)";

const KIB: u64 = 1024;

/// Parses `64MiB`, `512 KiB`, `1GB`, `1048576` (bytes) into bytes.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let multiplier = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => KIB,
        "mib" | "m" => KIB * KIB,
        "gib" | "g" => KIB * KIB * KIB,
        "kb" => 1000,
        "mb" => 1000 * 1000,
        "gb" => 1000 * 1000 * 1000,
        _ => return None,
    };
    number.checked_mul(multiplier)
}

/// Formats bytes in the largest binary unit that divides them exactly.
pub fn format_size(bytes: u64) -> String {
    for (unit, size) in [("GiB", KIB * KIB * KIB), ("MiB", KIB * KIB), ("KiB", KIB)] {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{}{unit}", bytes / size);
        }
    }
    format!("{bytes}B")
}

/// Formats bytes for people: `1.0 MiB`, `312 KiB`, `17 B` (not parseable).
pub fn format_size_approx(bytes: u64) -> String {
    let value = bytes as f64;
    for (unit, size) in [("GiB", KIB * KIB * KIB), ("MiB", KIB * KIB), ("KiB", KIB)] {
        if bytes >= size {
            let scaled = value / size as f64;
            return if scaled >= 100.0 {
                format!("{scaled:.0} {unit}")
            } else {
                format!("{scaled:.1} {unit}")
            };
        }
    }
    format!("{bytes} B")
}

/// Parses `2s`, `500ms`, `1m`, `1h` into a duration. A unit is required: a
/// bare number is ambiguous.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let millis = match unit.trim() {
        "ms" => Some(number),
        "s" => number.checked_mul(1000),
        "m" | "min" => number.checked_mul(60_000),
        "h" => number.checked_mul(3_600_000),
        _ => None,
    }?;
    Some(Duration::from_millis(millis))
}

/// Formats a duration in the largest unit that divides it exactly.
pub fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    for (unit, size) in [("h", 3_600_000), ("m", 60_000), ("s", 1000)] {
        if millis >= size && millis.is_multiple_of(size) {
            return format!("{}{unit}", millis / size);
        }
    }
    format!("{millis}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_binary_and_decimal_units() {
        assert_eq!(parse_size("64MiB"), Some(64 << 20));
        assert_eq!(parse_size("64 mib"), Some(64 << 20));
        assert_eq!(parse_size("1GiB"), Some(1 << 30));
        assert_eq!(parse_size("2KB"), Some(2000));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("12 parsecs"), None);
        assert_eq!(parse_size("-1MiB"), None);
        assert_eq!(parse_size("99999999999999999999GiB"), None);
    }

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("3m"), Some(Duration::from_secs(180)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("30"), None);
        assert_eq!(parse_duration("soon"), None);
    }

    #[test]
    fn formatting_round_trips() {
        for bytes in [1, 1000, 1024, 64 << 20, 3 << 30, (1 << 20) + 1] {
            assert_eq!(parse_size(&format_size(bytes)), Some(bytes));
        }
        for millis in [1, 999, 1000, 1500, 60_000, 3_600_000] {
            let d = Duration::from_millis(millis);
            assert_eq!(parse_duration(&format_duration(d)), Some(d));
        }
        assert_eq!(format_size(128 << 20), "128MiB");
        assert_eq!(format_duration(Duration::from_secs(30)), "30s");
        assert_eq!(format_size_approx(1_053_328), "1.0 MiB");
        assert_eq!(format_size_approx(17), "17 B");
    }
}
