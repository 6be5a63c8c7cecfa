//! The one table of deploy settings.
//!
//! Each [`Setting`] is declared here once, and that declaration drives
//! everything else: the `wisp deploy --NAME` flag and its help, the `NAME=`
//! query parameter of the admin API, the `NAME = …` field of `wisp.toml`,
//! validation into [`Settings`], the canonical text shown back, the JSON shape,
//! and the README's settings table ([`markdown_table`]). A new setting is one
//! new entry.

use super::{
    DEFAULT_ASYNC_MAX_QUEUED, DEFAULT_ASYNC_MAX_QUEUED_BYTES, DEFAULT_REUSE_IDLE,
    DEFAULT_WEBSOCKET_MAX_CONNECTIONS, DirMount, OutboundRule, Settings,
};
use crate::limits::{MAX_MEMORY_LIMIT_BYTES, MAX_TIMEOUT};
use crate::name::{MAX_NAME_LEN, OWN_BUCKET, is_bucket_name};
use crate::schedule::Schedule;
use crate::units;
use std::path::PathBuf;
use std::time::Duration;

/// How a setting's value looks in JSON (and TOML).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// One string, e.g. `"64MiB"`.
    Text,
    /// One number, e.g. `8`.
    Number,
    /// A list of strings, e.g. `["https://a.example"]`.
    List,
    /// A table of names to values (`{KEY = "VALUE"}`), typed as `KEY=VALUE`.
    Pairs,
}

/// One deploy setting.
pub struct Setting {
    /// Its name: the flag is `--NAME`, the query parameter and the manifest
    /// field are `NAME`.
    pub name: &'static str,
    /// The placeholder in help text, e.g. `SIZE`.
    pub value_name: &'static str,
    /// What it does, one line.
    pub help: &'static str,
    /// The default, as shown to people.
    pub default: &'static str,
    /// An example value.
    pub example: &'static str,
    /// How its value looks in JSON and TOML; `List` and `Pairs` repeat.
    pub form: Form,
    /// Applies one typed value onto settings; `Err` says what is accepted.
    apply: fn(&mut Settings, &str) -> Result<(), String>,
    /// The canonical text of this setting in `settings` (empty: not set).
    show: fn(&Settings) -> Vec<String>,
}

impl Setting {
    /// True when the setting may be given more than once.
    pub fn repeatable(&self) -> bool {
        matches!(self.form, Form::List | Form::Pairs)
    }

    /// Applies one value onto `settings`; `Err` is the accepted form.
    pub(super) fn apply(&self, settings: &mut Settings, value: &str) -> Result<(), String> {
        (self.apply)(settings, value)
    }

    /// The canonical text of this setting in `settings`.
    pub(super) fn show(&self, settings: &Settings) -> Vec<String> {
        (self.show)(settings)
    }
}

impl std::fmt::Debug for Setting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Setting").field("name", &self.name).finish()
    }
}

/// Every deploy setting, in the order help and docs list them.
pub static SETTINGS: &[Setting] = &[
    Setting {
        name: "timeout",
        value_name: "DURATION",
        help: "Wall-clock deadline per request, guest start to last body byte; a breach is 504",
        default: "30s",
        example: "2s",
        form: Form::Text,
        apply: |s, v| {
            s.limits.timeout = bounded_duration(v, MAX_TIMEOUT)?;
            Ok(())
        },
        show: |s| vec![units::format_duration(s.limits.timeout)],
    },
    Setting {
        name: "memory",
        value_name: "SIZE",
        help: "Linear memory cap per memory; `memory.grow` past it fails and the trap is a 500",
        default: "128MiB",
        example: "64MiB",
        form: Form::Text,
        apply: |s, v| {
            s.limits.memory_bytes = bounded_size(v, MAX_MEMORY_LIMIT_BYTES)?;
            Ok(())
        },
        show: |s| vec![units::format_size(s.limits.memory_bytes)],
    },
    Setting {
        name: "max-concurrency",
        value_name: "N",
        help: "Requests this function serves at once; beyond it a request waits up to 1 s, then 503",
        default: "256",
        example: "8",
        form: Form::Number,
        apply: |s, v| {
            s.limits.max_concurrency = count(v, u32::MAX)?;
            Ok(())
        },
        show: |s| vec![s.limits.max_concurrency.to_string()],
    },
    Setting {
        name: "max-request-body",
        value_name: "SIZE",
        help: "Request body cap; a larger body is 413",
        default: "100MiB",
        example: "10MiB",
        form: Form::Text,
        apply: |s, v| {
            s.limits.max_request_body_bytes = bounded_size(v, u64::MAX)?;
            Ok(())
        },
        show: |s| vec![units::format_size(s.limits.max_request_body_bytes)],
    },
    Setting {
        name: "max-response-body",
        value_name: "SIZE",
        help: "Response body cap; declared larger is a 500, streamed larger is cut off and logged",
        default: "100MiB",
        example: "10MiB",
        form: Form::Text,
        apply: |s, v| {
            s.limits.max_response_body_bytes = bounded_size(v, u64::MAX)?;
            Ok(())
        },
        show: |s| vec![units::format_size(s.limits.max_response_body_bytes)],
    },
    Setting {
        name: "fuel",
        value_name: "N",
        help: "Instruction budget per request (turns on metering); exhausted is a 500 naming the budget",
        default: "off",
        example: "50000000",
        form: Form::Number,
        apply: |s, v| {
            s.limits.fuel = Some(count(v, u64::MAX)?);
            Ok(())
        },
        show: |s| s.limits.fuel.map(|f| f.to_string()).into_iter().collect(),
    },
    Setting {
        name: "env",
        value_name: "KEY=VALUE",
        help: "Environment variable the guest sees (repeatable); none of the host's",
        default: "none",
        example: "GREETING=hi",
        form: Form::Pairs,
        apply: |s, v| {
            let (key, value) = key_value_pair(v)?;
            s.env.insert(key, value);
            Ok(())
        },
        show: |s| s.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
    },
    Setting {
        name: "dir",
        value_name: "HOST_DIR:GUEST_DIR",
        help: "Read-only directory the guest sees (repeatable)",
        default: "none",
        example: "./static:/static",
        form: Form::List,
        apply: |s, v| {
            let expected = || {
                "`HOST_DIR:GUEST_DIR` with an absolute GUEST_DIR, e.g. `./static:/static`"
                    .to_owned()
            };
            let (host, guest) = v.rsplit_once(':').ok_or_else(expected)?;
            let guest_ok =
                guest.starts_with('/') && !guest.split('/').any(|s| s == "..") && !host.is_empty();
            if !guest_ok {
                return Err(expected());
            }
            s.dirs.push(DirMount {
                host: PathBuf::from(host),
                guest: guest.to_owned(),
            });
            Ok(())
        },
        show: |s| {
            s.dirs
                .iter()
                .map(|d| format!("{}:{}", d.host.display(), d.guest))
                .collect()
        },
    },
    Setting {
        name: "allow-outbound",
        value_name: "URL",
        help: "Outbound HTTP origin the guest may call (repeatable); anything else is denied",
        default: "none",
        example: "https://api.example.com",
        form: Form::List,
        apply: |s, v| {
            let rule = OutboundRule::parse(v).ok_or_else(|| {
                "an origin: `http://` or `https://`, a host and an optional port, no path (e.g. `https://api.example.com`)".to_owned()
            })?;
            s.allow_outbound.push(rule);
            Ok(())
        },
        show: |s| s.allow_outbound.iter().map(ToString::to_string).collect(),
    },
    Setting {
        name: "kv",
        value_name: "BUCKET",
        help: "App-wide key-value bucket the guest may open (repeatable); its own bucket is always open, any other is denied",
        default: "none",
        example: "sessions",
        form: Form::List,
        apply: |s, v| {
            if v == OWN_BUCKET {
                return Err(format!(
                    "an app bucket name; `{OWN_BUCKET}` is the function's own bucket, which is always open"
                ));
            }
            if !is_bucket_name(v) {
                return Err(format!(
                    "a bucket name: 1 to {MAX_NAME_LEN} lowercase letters, digits, `-` or `_`, starting with a letter or digit"
                ));
            }
            s.kv.insert(v.to_owned());
            Ok(())
        },
        show: |s| s.kv.iter().cloned().collect(),
    },
    Setting {
        name: "sqlite",
        value_name: "DATABASE",
        help: "SQLite database the guest may open through `spin:sqlite` (repeatable): `default` is the function's own, any other name an app-wide one; the rest are denied",
        default: "none",
        example: "default",
        form: Form::List,
        apply: |s, v| {
            if v != OWN_BUCKET && !is_bucket_name(v) {
                return Err(format!(
                    "`{OWN_BUCKET}` (the function's own database) or a database name: 1 to {MAX_NAME_LEN} lowercase letters, digits, `-` or `_`, starting with a letter or digit"
                ));
            }
            s.sqlite.insert(v.to_owned());
            Ok(())
        },
        show: |s| s.sqlite.iter().cloned().collect(),
    },
    Setting {
        name: "config",
        value_name: "KEY=VALUE",
        help: "Configuration value the guest reads through `wasi:config` (repeatable); secrets go in `wisp secret set` instead",
        default: "none",
        example: "greeting=hi",
        form: Form::Pairs,
        apply: |s, v| {
            let (key, value) = key_value_pair(v)?;
            s.config.insert(key, value);
            Ok(())
        },
        show: |s| s.config.iter().map(|(k, v)| format!("{k}={v}")).collect(),
    },
    Setting {
        name: "cron",
        value_name: "SCHEDULE",
        help: "Cron schedule, UTC, 5 fields or 6 with leading seconds (repeatable); each tick POSTs to the route plus `cron-path`",
        default: "none",
        example: "*/5 * * * *",
        form: Form::List,
        apply: |s, v| {
            let schedule = Schedule::parse(v)?;
            if !s.cron.contains(&schedule) {
                s.cron.push(schedule);
            }
            Ok(())
        },
        show: |s| s.cron.iter().map(|c| c.as_str().to_owned()).collect(),
    },
    Setting {
        name: "cron-path",
        value_name: "PATH",
        help: "Path (and query) after the route that cron ticks request; none: the route itself",
        default: "none",
        example: "/tick?source=cron",
        form: Form::Text,
        apply: |s, v| {
            let valid = v.starts_with('/')
                && v.parse::<http::uri::PathAndQuery>()
                    .is_ok_and(|p| p.as_str() == v);
            if !valid {
                return Err("a path starting with `/`, with an optional `?query`".to_owned());
            }
            s.cron_path = Some(v.to_owned());
            Ok(())
        },
        show: |s| s.cron_path.iter().cloned().collect(),
    },
    Setting {
        name: "async",
        value_name: "on|off",
        help: "Take `Prefer: respond-async` requests as async calls (202, run in the background); off: served synchronously",
        default: "off",
        example: "on",
        form: Form::Text,
        apply: |s, v| {
            s.async_calls.enabled = switch(v)?;
            Ok(())
        },
        show: |s| shown_switch(s.async_calls.enabled),
    },
    Setting {
        name: "async-max-queued",
        value_name: "N",
        help: "Async calls of this function queued at once; past it a new one is 429 with `Retry-After`",
        default: "1000",
        example: "100",
        form: Form::Number,
        apply: |s, v| {
            s.async_calls.max_queued = count(v, u32::MAX)?;
            Ok(())
        },
        show: |s| {
            shown_when_async(s, s.async_calls.max_queued != DEFAULT_ASYNC_MAX_QUEUED)
                .then(|| s.async_calls.max_queued.to_string())
                .into_iter()
                .collect()
        },
    },
    Setting {
        name: "async-max-queued-bytes",
        value_name: "SIZE",
        help: "Request bodies of this function's queued async calls, added up; past it a new one is 429",
        default: "64MiB",
        example: "16MiB",
        form: Form::Text,
        apply: |s, v| {
            s.async_calls.max_queued_bytes = bounded_size(v, u64::MAX)?;
            Ok(())
        },
        show: |s| {
            let changed = s.async_calls.max_queued_bytes != DEFAULT_ASYNC_MAX_QUEUED_BYTES;
            shown_when_async(s, changed)
                .then(|| units::format_size(s.async_calls.max_queued_bytes))
                .into_iter()
                .collect()
        },
    },
    Setting {
        name: "async-keep-credentials",
        value_name: "on|off",
        help: "Store async calls' `Authorization`, `Cookie` and `Proxy-Authorization` headers (off: dropped before the call is written to disk)",
        default: "off",
        example: "on",
        form: Form::Text,
        apply: |s, v| {
            s.async_calls.keep_credentials = switch(v)?;
            Ok(())
        },
        show: |s| shown_switch(s.async_calls.keep_credentials),
    },
    Setting {
        name: "middleware",
        value_name: "FUNCTION",
        help: "WASI 0.3 only: a deployed `wasi:http/middleware` function to put in front (repeatable, outermost first), composed in at deploy; redeploying it makes a new version of this function",
        default: "none",
        example: "auth",
        form: Form::List,
        apply: |s, v| {
            crate::name::validate_name(v)
                .map_err(|_| "the name of a deployed function".to_owned())?;
            if s.middleware.iter().any(|m| m == v) {
                return Err("each middleware once".to_owned());
            }
            s.middleware.push(v.to_owned());
            Ok(())
        },
        show: |s| s.middleware.clone(),
    },
    Setting {
        name: "reuse",
        value_name: "N|off",
        help: "WASI 0.3 only: one instance serves up to N requests (weaker isolation: its memory survives between them); off: a fresh instance per request",
        default: "off",
        example: "100",
        form: Form::Number,
        apply: |s, v| {
            s.reuse.requests = match v {
                "off" => 1,
                _ => count(v, u32::MAX).map_err(|range| format!("`off` or {range}"))?,
            };
            Ok(())
        },
        show: |s| {
            s.reuse
                .is_on()
                .then(|| s.reuse.requests.to_string())
                .into_iter()
                .collect()
        },
    },
    Setting {
        name: "reuse-concurrency",
        value_name: "N",
        help: "With `reuse`: requests one instance serves at once",
        default: "1",
        example: "16",
        form: Form::Number,
        apply: |s, v| {
            s.reuse.concurrency = count(v, u32::MAX)?;
            Ok(())
        },
        show: |s| {
            shown_when_reused(s, s.reuse.concurrency != 1)
                .then(|| s.reuse.concurrency.to_string())
                .into_iter()
                .collect()
        },
    },
    Setting {
        name: "reuse-idle",
        value_name: "DURATION",
        help: "With `reuse`: how long an instance waits for its next request before it is dropped",
        default: "1s",
        example: "10s",
        form: Form::Text,
        apply: |s, v| {
            s.reuse.idle = bounded_duration(v, MAX_TIMEOUT)?;
            Ok(())
        },
        show: |s| {
            shown_when_reused(s, s.reuse.idle != DEFAULT_REUSE_IDLE)
                .then(|| units::format_duration(s.reuse.idle))
                .into_iter()
                .collect()
        },
    },
    Setting {
        name: "websocket",
        value_name: "on|off",
        help: "Take WebSocket connections on the route: the host holds each one and POSTs its events to the function (Pushpin's WebSocket-over-HTTP), a fresh sandbox per batch",
        default: "off",
        example: "on",
        form: Form::Text,
        apply: |s, v| {
            s.websocket.enabled = switch(v)?;
            Ok(())
        },
        show: |s| shown_switch(s.websocket.enabled),
    },
    Setting {
        name: "websocket-origins",
        value_name: "ORIGIN",
        help: "With `websocket`: an `Origin` browsers may connect from (repeatable); a handshake from another origin is 403; none given: any origin",
        default: "none",
        example: "https://chat.example",
        form: Form::List,
        apply: |s, v| {
            let origin = v.trim_end_matches('/');
            let valid = origin.parse::<http::Uri>().is_ok_and(|uri| {
                matches!(uri.scheme_str(), Some("http" | "https"))
                    && uri.authority().is_some()
                    && uri.path_and_query().is_none_or(|p| p.as_str() == "/")
            });
            if !valid {
                return Err("an origin: `http(s)://HOST[:PORT]`, no path".to_owned());
            }
            let origin = origin.to_ascii_lowercase();
            if !s.websocket.origins.contains(&origin) {
                s.websocket.origins.push(origin);
            }
            Ok(())
        },
        show: |s| s.websocket.origins.clone(),
    },
    Setting {
        name: "websocket-max-connections",
        value_name: "N",
        help: "With `websocket`: its connections open at once on this host; past it a handshake is 503",
        default: "1000",
        example: "100",
        form: Form::Number,
        apply: |s, v| {
            s.websocket.max_connections = count(v, u32::MAX)?;
            Ok(())
        },
        show: |s| {
            let changed = s.websocket.max_connections != DEFAULT_WEBSOCKET_MAX_CONNECTIONS;
            (s.websocket.enabled || changed)
                .then(|| s.websocket.max_connections.to_string())
                .into_iter()
                .collect()
        },
    },
    Setting {
        name: "spin-route",
        value_name: "ROUTE",
        help: "The Spin route it serves (`wisp up -f spin.toml` sets it): `/hello` only that path, `/hello/...` everything under it, `/hello/:name` any one segment there, `private` no public request (only calls); the function gets Spin's `spin-*` request headers. Its fixed part (before any `:name`) must be the function's route",
        default: "none",
        example: "/hello/...",
        form: Form::Text,
        apply: |s, v| {
            s.spin_route = Some(crate::spin::route::SpinRoute::parse(v)?);
            Ok(())
        },
        show: |s| s.spin_route.iter().map(ToString::to_string).collect(),
    },
];

/// `on`/`off` (also `true`/`false`).
fn switch(text: &str) -> Result<bool, String> {
    match text {
        "on" | "true" => Ok(true),
        "off" | "false" => Ok(false),
        _ => Err("`on` or `off`".to_owned()),
    }
}

/// Whether an async cap is shown: when the function takes async calls, or
/// the cap was changed from its default.
fn shown_when_async(settings: &Settings, changed: bool) -> bool {
    settings.async_calls.enabled || changed
}

/// Whether a reuse detail is shown: when instances are reused, or the
/// detail was changed from its default.
fn shown_when_reused(settings: &Settings, changed: bool) -> bool {
    settings.reuse.is_on() || changed
}

/// A switch shown only when on (off is the default).
fn shown_switch(on: bool) -> Vec<String> {
    if on {
        vec!["on".to_owned()]
    } else {
        Vec::new()
    }
}

/// Splits a `KEY=VALUE` setting (a non-empty key, no NUL anywhere).
fn key_value_pair(typed: &str) -> Result<(String, String), String> {
    let expected = || "`KEY=VALUE` with a non-empty KEY".to_owned();
    let (key, value) = typed.split_once('=').ok_or_else(expected)?;
    if key.is_empty() || key.contains('\0') || value.contains('\0') {
        return Err(expected());
    }
    Ok((key.to_owned(), value.to_owned()))
}

/// The setting called `name`.
pub fn setting(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name == name)
}

/// The names of all settings, for error messages.
pub fn names() -> String {
    SETTINGS
        .iter()
        .map(|s| format!("`{}`", s.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The README's settings table, generated from [`SETTINGS`].
pub fn markdown_table() -> String {
    let mut table = String::from(
        "| setting (flag, query, manifest) | default | what it does |\n| --- | --- | --- |\n",
    );
    for s in SETTINGS {
        table.push_str(&format!(
            "| `{}` (`--{} {}`) | {} | {} |\n",
            s.name, s.name, s.example, s.default, s.help
        ));
    }
    table
}

// Each `Err` below is the accepted form, range included: the caller quotes
// the value as typed next to it.

fn bounded_size(text: &str, max: u64) -> Result<u64, String> {
    match units::parse_size(text) {
        Some(b) if b > 0 && b <= max => Ok(b),
        Some(_) if max == u64::MAX => Err("a size greater than 0".to_owned()),
        Some(_) => Err(format!("a size from 1B to {}", units::format_size(max))),
        None => Err(units::SIZE_FORMS.to_owned()),
    }
}

fn bounded_duration(text: &str, max: Duration) -> Result<Duration, String> {
    match units::parse_duration(text) {
        Some(d) if !d.is_zero() && d <= max => Ok(d),
        Some(_) => Err(format!(
            "a duration from 1ms to {}",
            units::format_duration(max)
        )),
        None => Err(units::DURATION_FORMS.to_owned()),
    }
}

/// A whole number from 1 to `max`; too large for `T` is out of range too, not
/// a different error.
fn count<T: TryFrom<u64> + Into<u64> + Copy>(text: &str, max: T) -> Result<T, String> {
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|n| (1..=max.into()).contains(n))
        .and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| format!("a whole number from 1 to {}", max.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::Limits;

    #[test]
    fn documented_defaults_are_the_real_defaults() {
        let defaults = Settings::default();
        assert_eq!(defaults.limits, Limits::default());
        // The async caps are shown only for a function that takes async
        // calls: there, they show their defaults.
        let mut taking_async = Settings::default();
        taking_async.async_calls.enabled = true;
        let mut reusing = Settings::default();
        reusing.reuse.requests = 2;
        let mut websocket = Settings::default();
        websocket.websocket.enabled = true;
        for s in SETTINGS {
            let shown = s.show(&defaults);
            match shown.as_slice() {
                [] if s.name.starts_with("async-max") => {
                    assert_eq!(s.show(&taking_async), [s.default], "{}", s.name);
                }
                [] if s.name.starts_with("reuse-") => {
                    assert_eq!(s.show(&reusing), [s.default], "{}", s.name);
                }
                [] if s.name == "websocket-max-connections" => {
                    assert_eq!(s.show(&websocket), [s.default], "{}", s.name);
                }
                [] => assert!(matches!(s.default, "none" | "off"), "{}", s.name),
                [one] => assert_eq!(one, s.default, "{}", s.name),
                many => panic!("{}: {many:?}", s.name),
            }
        }
        assert_eq!(crate::limits::DEFAULT_TIMEOUT, Duration::from_secs(30));
    }

    #[test]
    fn numbers_out_of_range_give_the_range() {
        let mut settings = Settings::default();
        let concurrency = setting("max-concurrency").unwrap();
        for typed in ["4294967296", "0", "99999999999999999999", "-1", "eight"] {
            assert_eq!(
                concurrency.apply(&mut settings, typed),
                Err("a whole number from 1 to 4294967295".to_owned()),
                "{typed}"
            );
        }
        assert_eq!(
            setting("fuel").unwrap().apply(&mut settings, "0"),
            Err("a whole number from 1 to 18446744073709551615".to_owned())
        );
    }

    #[test]
    fn sizes_and_durations_out_of_range_give_the_range() {
        let mut settings = Settings::default();
        let apply = |settings: &mut Settings, name: &str, typed: &str| {
            setting(name).unwrap().apply(settings, typed).unwrap_err()
        };
        assert_eq!(
            apply(&mut settings, "memory", "8GiB"),
            "a size from 1B to 4GiB"
        );
        assert_eq!(
            apply(&mut settings, "memory", "0"),
            "a size from 1B to 4GiB"
        );
        assert_eq!(
            apply(&mut settings, "max-request-body", "0"),
            "a size greater than 0"
        );
        assert_eq!(
            apply(&mut settings, "timeout", "2h"),
            "a duration from 1ms to 1h"
        );
        assert_eq!(
            apply(&mut settings, "timeout", "0s"),
            "a duration from 1ms to 1h"
        );
    }

    #[test]
    fn kv_grants_app_buckets_by_name_once_each() {
        let mut settings = Settings::default();
        let kv = setting("kv").unwrap();
        for typed in ["sessions", "cache", "sessions"] {
            kv.apply(&mut settings, typed).unwrap();
        }
        assert_eq!(kv.show(&settings), ["cache", "sessions"]);
        assert_eq!(
            kv.apply(&mut settings, "default").unwrap_err(),
            "an app bucket name; `default` is the function's own bucket, which is always open"
        );
        for typed in ["", "Sessions", "a/b", "-x"] {
            assert_eq!(
                kv.apply(&mut settings, typed).unwrap_err(),
                "a bucket name: 1 to 63 lowercase letters, digits, `-` or `_`, starting with a letter or digit",
                "{typed}"
            );
        }
        assert_eq!(settings.kv.len(), 2, "refused names are not granted");
    }

    #[test]
    fn every_example_is_accepted() {
        for s in SETTINGS {
            let mut settings = Settings::default();
            let example = if s.name == "dir" {
                "/tmp:/static"
            } else {
                s.example
            };
            s.apply(&mut settings, example)
                .unwrap_or_else(|e| panic!("{}: {e}", s.name));
            assert!(!s.show(&settings).is_empty(), "{}", s.name);
        }
    }
}
