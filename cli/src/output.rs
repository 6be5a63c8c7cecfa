//! What the CLI shows people: tables (`comfy-table`), progress (`indicatif`)
//! and times (`jiff`), in one place so every command looks the same.
//!
//! Progress goes to stderr and only when stderr is a terminal, so scripts and
//! tests that read stdout see the same text either way.

use comfy_table::presets::NOTHING;
use comfy_table::{ContentArrangement, Table};
use indicatif::{ProgressBar, ProgressStyle};
use std::time::Duration;

/// A borderless, left-aligned table, as `ls` tools print; with a header
/// row unless `header` is empty.
pub fn table(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut table = Table::new();
    table
        .load_style(NOTHING)
        .force_no_tty()
        .set_content_arrangement(ContentArrangement::Disabled);
    if !header.is_empty() {
        table.set_header(header.iter().copied());
    }
    for row in rows {
        table.add_row(row);
    }
    table
        .lines()
        .map(|line| line.trim().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) for seconds since the Unix epoch.
pub fn unix_time(secs: u64) -> String {
    let timestamp = i64::try_from(secs)
        .ok()
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    timestamp.strftime("%Y-%m-%d %H:%M:%S").to_string()
}

/// A spinner on stderr for a step of unknown length (a deploy compiling, a
/// build), hidden when stderr is not a terminal.
pub fn spinner(message: impl Into<String>) -> ProgressBar {
    let bar = ProgressBar::new_spinner().with_message(message.into());
    if !is_terminal() {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// A progress bar on stderr for `total` steps, hidden when stderr is not a
/// terminal.
pub fn bar(label: &str, total: u64) -> ProgressBar {
    if !is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template("{msg:<12} [{bar:30}] {pos}/{len} {eta}") {
        bar.set_style(style.progress_chars("#>-"));
    }
    bar.set_message(label.to_owned());
    bar
}

fn is_terminal() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stderr())
}

/// A version's settings on one line, as a user types them:
/// `timeout=2s env=A=1 config="greeting=Hello there"`.
pub fn settings_line(settings: &wisp_spec::settings::RawSettings) -> String {
    settings
        .entries()
        .map(|(name, value)| {
            if value.is_empty() || value.contains(char::is_whitespace) || value.contains('"') {
                format!("{name}={value:?}")
            } else {
                format!("{name}={value}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_times_format_as_utc_dates() {
        assert_eq!(unix_time(0), "1970-01-01 00:00:00");
        assert_eq!(unix_time(1_795_000_000), "2026-11-18 11:06:40");
        assert_eq!(unix_time(951_782_400), "2000-02-29 00:00:00");
    }

    #[test]
    fn tables_align_columns_under_their_headers() {
        let text = table(
            &["NAME", "ROUTE"],
            [
                vec!["hello".into(), "/hello".into()],
                vec!["a".into(), "/".into()],
            ],
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        let column = lines[0].find("ROUTE").unwrap();
        assert_eq!(lines[1].find("/hello"), Some(column), "{text}");
        assert_eq!(lines[2].find('/'), Some(column), "{text}");
    }

    #[test]
    fn settings_read_as_typed() {
        let settings = wisp_spec::settings::RawSettings::new()
            .with("env", "V=2")
            .and_then(|s| s.with("allow-outbound", "http://hello.wisp.internal"))
            .and_then(|s| s.with("config", "greeting=Hello there"))
            .unwrap();
        assert_eq!(
            settings_line(&settings),
            r#"env=V=2 allow-outbound=http://hello.wisp.internal config="greeting=Hello there""#
        );
    }
}
