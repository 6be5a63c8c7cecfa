//! Cron schedules: standard 5-field cron with an optional leading seconds
//! field (6 fields), in UTC, parsed with `croner`.
//!
//! A bad schedule is refused with the name of the field that is wrong, so
//! `--cron '0 25 * * *'` says ``field `hour` (`25`)``, not just "invalid".

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use std::time::SystemTime;

/// The fields of a 5-field schedule, in order.
const FIELDS: [&str; 5] = ["minute", "hour", "day-of-month", "month", "day-of-week"];

/// A parsed, valid schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    text: String,
    cron: Cron,
}

impl Schedule {
    /// Parses `text`: 5 fields, or 6 with a leading seconds field.
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        let names: Vec<&str> = match fields.len() {
            5 => FIELDS.to_vec(),
            6 => std::iter::once("second").chain(FIELDS).collect(),
            n => {
                return Err(format!(
                    "a cron schedule of 5 fields (minute hour day-of-month month day-of-week) or 6 (a leading second); `{text}` has {n}"
                ));
            }
        };
        let parser = CronParser::builder().seconds(Seconds::Optional).build();
        match parser.parse(text) {
            Ok(cron) => Ok(Schedule {
                text: fields.join(" "),
                cron,
            }),
            Err(whole) => {
                // Find the field at fault: each field alone, the rest `*`.
                for (at, name) in names.iter().enumerate() {
                    let alone: Vec<&str> = (0..fields.len())
                        .map(|i| if i == at { fields[i] } else { "*" })
                        .collect();
                    if let Err(e) = parser.parse(&alone.join(" ")) {
                        return Err(format!(
                            "a cron schedule: field `{name}` (`{}`) is invalid: {e}",
                            fields[at]
                        ));
                    }
                }
                Err(format!("a cron schedule: `{text}` is invalid: {whole}"))
            }
        }
    }

    /// The schedule as written (fields separated by one space).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first time the schedule fires strictly after `after`.
    pub fn next_after(&self, after: SystemTime) -> Option<SystemTime> {
        let after: DateTime<Utc> = after.into();
        self.cron
            .find_next_occurrence(&after, false)
            .ok()
            .map(SystemTime::from)
    }
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Schedule {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn five_and_six_fields_parse_and_find_the_next_run_in_utc() {
        let every_minute = Schedule::parse("* * * * *").unwrap();
        let at = UNIX_EPOCH + Duration::from_secs(90);
        assert_eq!(
            every_minute.next_after(at),
            Some(UNIX_EPOCH + Duration::from_secs(120))
        );
        let every_second = Schedule::parse("*  * * * * *").unwrap();
        assert_eq!(every_second.as_str(), "* * * * * *");
        assert_eq!(
            every_second.next_after(at),
            Some(UNIX_EPOCH + Duration::from_secs(91))
        );
        let daily = Schedule::parse("30 2 * * *").unwrap();
        assert_eq!(
            daily.next_after(UNIX_EPOCH),
            Some(UNIX_EPOCH + Duration::from_secs(2 * 3600 + 30 * 60))
        );
    }

    #[test]
    fn a_bad_schedule_names_the_bad_field() {
        for (text, field) in [
            ("0 25 * * *", "`hour` (`25`)"),
            ("61 * * * *", "`minute` (`61`)"),
            ("* * * 13 *", "`month` (`13`)"),
            ("* * * * funday", "`day-of-week` (`funday`)"),
            ("99 * * * * *", "`second` (`99`)"),
        ] {
            let error = Schedule::parse(text).unwrap_err();
            assert!(error.contains(field), "{text}: {error}");
        }
        let short = Schedule::parse("* *").unwrap_err();
        assert!(short.contains("has 2"), "{short}");
    }
}
