//! The host-wide settings table: every setting of [`HostConfig`] and
//! [`ServerOptions`] that an operator sets, declared once — its flag, value
//! placeholder, help, default (read from the struct's `Default`, or
//! described where it is computed at start), how its text fills the field,
//! and so its README row (a test keeps that row true). `wisp serve` makes its flags from these tables,
//! as `wisp deploy` makes its flags from the per-function settings table.
//!
//! The field each entry fills has the flag's name (`--max-upload` fills
//! `max_upload`). Not here: what `wisp serve` itself owns (its listeners,
//! the admin API's token, hosts and origins, the cluster connection and its
//! credentials, the manifest, the log format) and what only an embedder
//! sets (the compiler, the pooling allocator, trace export).

use super::config::HostConfig;
use crate::server::ServerOptions;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;
use wisp_spec::units;

/// How a setting is written on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `--flag VALUE`, once.
    One,
    /// `--flag VALUE`, repeatable; each adds one.
    Repeated,
    /// `--flag`, no value: turns the setting on.
    Switch,
}

/// One host-wide setting of the struct `T` it fills.
pub struct HostSetting<T: 'static> {
    /// The flag, without dashes; the field it fills has this name with `_`.
    pub flag: &'static str,
    /// The value's placeholder in help (`SIZE`, `DURATION`, `N`, …).
    pub value_name: &'static str,
    /// One paragraph of help.
    pub help: &'static str,
    /// How it is written.
    pub form: Form,
    /// The default as shown to people, read from `T::default()` (or a
    /// description, for one computed at start).
    pub default: fn(&T) -> String,
    /// Fills the field from the text of one value (`"true"` for a
    /// [`Form::Switch`]), or says what was expected.
    pub set: fn(&mut T, &str) -> Result<(), String>,
}

impl<T: Default> HostSetting<T> {
    /// The default as shown to people.
    pub fn default_text(&self) -> String {
        (self.default)(&T::default())
    }
}

/// A size: `200MiB`, `1KiB`, `512` (bytes).
fn size(text: &str) -> Result<u64, String> {
    units::parse_size(text).ok_or_else(|| format!("expected {}", units::SIZE_FORMS))
}

/// A size, or `0` for "no bound".
fn size_or_zero(text: &str) -> Result<u64, String> {
    if text.trim() == "0" {
        return Ok(0);
    }
    size(text)
}

/// A duration: `10s`, `500ms`, `24h`.
fn duration(text: &str) -> Result<Duration, String> {
    units::parse_duration(text).ok_or_else(|| format!("expected {}", units::DURATION_FORMS))
}

/// A whole number, zero allowed.
fn count<N: FromStr>(text: &str) -> Result<N, String> {
    text.parse()
        .map_err(|_| format!("expected a whole number, got `{text}`"))
}

/// A whole number of at least one.
fn at_least_one<N: FromStr + PartialOrd + From<u8>>(text: &str) -> Result<N, String> {
    match text.parse::<N>() {
        Ok(n) if n >= N::from(1) => Ok(n),
        _ => Err(format!(
            "expected a whole number of at least 1, got `{text}`"
        )),
    }
}

/// `true` or `false`.
fn boolean(text: &str) -> Result<bool, String> {
    text.parse()
        .map_err(|_| format!("expected `true` or `false`, got `{text}`"))
}

/// Every setting of [`HostConfig`] an operator sets, in the order `wisp
/// serve --help` shows them.
pub static HOST_SETTINGS: &[HostSetting<HostConfig>] = &[
    HostSetting {
        flag: "data-dir",
        value_name: "DIR",
        help: "Directory for compiled artifacts, deploy records, key-value state, secrets and async calls.",
        form: Form::One,
        default: |c| c.data_dir.display().to_string(),
        set: |c, v| {
            c.data_dir = PathBuf::from(v);
            Ok(())
        },
    },
    HostSetting {
        flag: "max-upload",
        value_name: "SIZE",
        help: "Largest accepted upload (e.g. `200MiB`); a bigger one gets `400` (`upload-too-large`).",
        form: Form::One,
        default: |c| units::format_size(c.max_upload),
        set: |c, v| {
            c.max_upload = size(v)?;
            Ok(())
        },
    },
    HostSetting {
        flag: "max-instances",
        value_name: "N",
        help: "Instances alive at once across all functions (sizes the instance pool); a request past it waits `--queue-timeout`, then gets `503`.",
        form: Form::One,
        default: |c| c.max_instances.to_string(),
        set: |c, v| {
            c.max_instances = at_least_one(v)?;
            Ok(())
        },
    },
    HostSetting {
        flag: "queue-timeout",
        value_name: "DURATION",
        help: "Time a request waits for a concurrency slot (its function's `max-concurrency`, or the host's `--max-instances`) before it gets `503` with `Retry-After`.",
        form: Form::One,
        default: |c| units::format_duration(c.queue_timeout),
        set: |c, v| {
            c.queue_timeout = duration(v)?;
            Ok(())
        },
    },
    HostSetting {
        flag: "max-loaded",
        value_name: "N",
        help: "Functions' compiled code kept loaded at once (artifacts; versions with the same binary share one). Code loads on a function's first request; past this, the least recently used is evicted and loads again when next called. Idle functions then cost no code memory.",
        form: Form::One,
        default: |c| c.max_loaded.to_string(),
        set: |c, v| {
            c.max_loaded = at_least_one(v)?;
            Ok(())
        },
    },
    HostSetting {
        flag: "max-loaded-bytes",
        value_name: "SIZE",
        help: "Bytes of compiled code (artifact file sizes) kept loaded at once; past it, the least recently used is evicted.",
        form: Form::One,
        default: |c| units::format_size(c.max_loaded_bytes),
        set: |c, v| {
            c.max_loaded_bytes = size(v)?;
            Ok(())
        },
    },
    HostSetting {
        flag: "prepare",
        value_name: "N",
        help: "Fresh sandboxes made ahead of their request, host-wide: after a request of a component, its next sandbox is created in spare time, so the next request skips instantiation. Each serves one request, never more; one unused for 5 s is dropped. Their pool slots come on top of `--max-instances`. `0` turns it off.",
        form: Form::One,
        default: |c| c.prepare.to_string(),
        set: |c, v| {
            c.prepare = count(v)?;
            Ok(())
        },
    },
    HostSetting {
        flag: "keep-versions",
        value_name: "N",
        help: "Versions kept per function: the newest N, plus any that holds traffic or is the rollback target; older ones are garbage-collected.",
        form: Form::One,
        default: |c| c.keep_versions.to_string(),
        set: |c, v| {
            c.keep_versions = at_least_one(v)?;
            Ok(())
        },
    },
    HostSetting {
        flag: "body-timeout",
        value_name: "DURATION",
        help: "Longest pause in a request body before it gets `408`.",
        form: Form::One,
        default: |c| units::format_duration(c.body_timeout),
        set: |c, v| {
            c.body_timeout = duration(v)?;
            Ok(())
        },
    },
    HostSetting {
        flag: "min-body-rate",
        value_name: "SIZE",
        help: "Lowest average rate of a request body once it has taken longer than `--body-timeout`, per second (e.g. `1KiB`; `0` turns it off).",
        form: Form::One,
        default: |c| units::format_size(c.min_body_rate),
        set: |c, v| {
            c.min_body_rate = size_or_zero(v)?;
            Ok(())
        },
    },
    HostSetting {
        flag: "max-guest-memory",
        value_name: "SIZE",
        help: "Linear memory all running guests may hold together; past it a request gets `503` (`host-memory`).",
        form: Form::One,
        default: |_| "half of physical memory".to_owned(),
        set: |c, v| {
            c.max_guest_memory = size(v)?;
            Ok(())
        },
    },
    HostSetting {
        flag: "max-buffered",
        value_name: "SIZE",
        help: "Bytes of request bodies held in memory at once (CGI bodies are read whole); past it a request gets `503` (`buffer`).",
        form: Form::One,
        default: |_| "an eighth of physical memory".to_owned(),
        set: |c, v| {
            c.max_buffered = size(v)?;
            Ok(())
        },
    },
    HostSetting {
        flag: "max-compile-time",
        value_name: "DURATION",
        help: "Longest one compile may take; a module over it gets `400` (`compile-limit`).",
        form: Form::One,
        default: |c| units::format_duration(c.max_compile_time),
        set: |c, v| {
            c.max_compile_time = duration(v)?;
            Ok(())
        },
    },
    HostSetting {
        flag: "max-compile-memory",
        value_name: "SIZE",
        help: "Most memory one compile may use; compiles run in a child process capped at this.",
        form: Form::One,
        default: |c| units::format_size(c.max_compile_memory),
        set: |c, v| {
            c.max_compile_memory = size(v)?;
            Ok(())
        },
    },
    HostSetting {
        flag: "max-kv-key",
        value_name: "SIZE",
        help: "Longest key-value key a guest or operator may write.",
        form: Form::One,
        default: |c| units::format_size(c.max_kv_key),
        set: |c, v| {
            c.max_kv_key = size(v)?;
            Ok(())
        },
    },
    HostSetting {
        flag: "max-kv-value",
        value_name: "SIZE",
        help: "Largest key-value value; a bigger write is an error to the guest.",
        form: Form::One,
        default: |c| units::format_size(c.max_kv_value),
        set: |c, v| {
            c.max_kv_value = size(v)?;
            Ok(())
        },
    },
    HostSetting {
        flag: "max-kv-bucket",
        value_name: "SIZE",
        help: "Most bytes (keys plus values) one key-value bucket may hold.",
        form: Form::One,
        default: |c| units::format_size(c.max_kv_bucket),
        set: |c, v| {
            c.max_kv_bucket = size(v)?;
            Ok(())
        },
    },
    HostSetting {
        flag: "max-sqlite-size",
        value_name: "SIZE",
        help: "Largest SQLite database (`spin:sqlite`, one per function and per app-wide name); a write past it is `database-full` to the guest.",
        form: Form::One,
        default: |c| units::format_size(c.max_sqlite_size),
        set: |c, v| {
            c.max_sqlite_size = size(v)?;
            Ok(())
        },
    },
    HostSetting {
        flag: "async-workers",
        value_name: "N",
        help: "Async calls (`Prefer: respond-async`) run at once in the background (at most half of `--max-instances`). They take a slot only when one is free, so client requests never wait behind them.",
        form: Form::One,
        default: |c| c.async_workers.to_string(),
        set: |c, v| {
            c.async_workers = at_least_one(v)?;
            Ok(())
        },
    },
    HostSetting {
        flag: "retries",
        value_name: "N",
        help: "Retries of an async call whose attempt fails (5xx, trap or timeout) before it is dead-lettered as failed.",
        form: Form::One,
        default: |c| c.retries.to_string(),
        set: |c, v| {
            c.retries = count(v)?;
            Ok(())
        },
    },
    HostSetting {
        flag: "retry-backoff",
        value_name: "DURATION",
        help: "Wait before an async call's first retry; it doubles for each one after (at most an hour).",
        form: Form::One,
        default: |c| units::format_duration(c.retry_backoff),
        set: |c, v| {
            c.retry_backoff = duration(v)?;
            Ok(())
        },
    },
    HostSetting {
        flag: "call-retention",
        value_name: "DURATION",
        help: "How long a finished async call, and its result, is kept (its request body is deleted as soon as it finishes).",
        form: Form::One,
        default: |c| units::format_duration(c.call_retention),
        set: |c, v| {
            c.call_retention = duration(v)?;
            Ok(())
        },
    },
    HostSetting {
        flag: "max-queued-calls",
        value_name: "N",
        help: "Most async calls queued on this host at once, all functions together (each function also has its own `async-max-queued`); past it a new call is answered `429` with `Retry-After`. In a cluster, the cluster's.",
        form: Form::One,
        default: |c| c.max_queued_calls.to_string(),
        set: |c, v| {
            c.max_queued_calls = count(v)?;
            Ok(())
        },
    },
    HostSetting {
        flag: "max-queued-call-bytes",
        value_name: "SIZE",
        help: "Most bytes of queued async calls' request bodies at once, all functions together. In a cluster, request and kept result bodies.",
        form: Form::One,
        default: |c| units::format_size(c.max_queued_call_bytes),
        set: |c, v| {
            c.max_queued_call_bytes = size(v)?;
            Ok(())
        },
    },
    HostSetting {
        flag: "max-websockets",
        value_name: "N",
        help: "Most WebSocket connections open on this host at once, all functions together (each function also has its own `websocket-max-connections`); past it a handshake is answered `503` with `Retry-After`.",
        form: Form::One,
        default: |c| c.max_websockets.to_string(),
        set: |c, v| {
            c.max_websockets = at_least_one(v)?;
            Ok(())
        },
    },
    HostSetting {
        flag: "max-websockets-per-ip",
        value_name: "N",
        help: "Most WebSocket connections (and held streams and long-polls) open at once from one client address; past it a handshake is answered `503` with `Retry-After`. The listener's own `--max-connections-per-ip` counts a connection only until it is upgraded.",
        form: Form::One,
        default: |c| c.max_websockets_per_ip.to_string(),
        set: |c, v| {
            c.max_websockets_per_ip = at_least_one(v)?;
            Ok(())
        },
    },
    HostSetting {
        flag: "websocket-max-message",
        value_name: "SIZE",
        help: "Largest WebSocket message, from a client or a function; a client's larger one closes its connection with 1009.",
        form: Form::One,
        default: |c| units::format_size(c.websocket_max_message),
        set: |c, v| {
            c.websocket_max_message = size(v)?;
            Ok(())
        },
    },
    HostSetting {
        flag: "websocket-rate",
        value_name: "N",
        help: "Messages a second one WebSocket client may send (a burst of as many); past it its connection is closed with 1008.",
        form: Form::One,
        default: |c| c.websocket_rate.to_string(),
        set: |c, v| {
            c.websocket_rate = at_least_one(v)?;
            Ok(())
        },
    },
    HostSetting {
        flag: "websocket-idle",
        value_name: "DURATION",
        help: "How long a WebSocket connection may go without a frame from its client (the host pings it at half of this) before it is closed with 1001.",
        form: Form::One,
        default: |c| units::format_duration(c.websocket_idle),
        set: |c, v| {
            c.websocket_idle = duration(v)?;
            Ok(())
        },
    },
    HostSetting {
        flag: "websocket-send-timeout",
        value_name: "DURATION",
        help: "How long messages may wait for a WebSocket client that stopped reading (its queue of published messages full meanwhile) before its connection is dropped.",
        form: Form::One,
        default: |c| units::format_duration(c.websocket_send_timeout),
        set: |c, v| {
            c.websocket_send_timeout = duration(v)?;
            Ok(())
        },
    },
    HostSetting {
        flag: "allow-root-dir",
        value_name: "",
        help: "Let a function's `--dir` grant the host's root directory (`/`), and with it every file this process can read. Without it such a deploy is refused, and a stored version with one is not loaded.",
        form: Form::Switch,
        default: |c| c.allow_root_dir.to_string(),
        set: |c, v| {
            c.allow_root_dir = boolean(v)?;
            Ok(())
        },
    },
    HostSetting {
        flag: "dir-root",
        value_name: "DIR",
        help: "The only host directories a function's `--dir` may grant (each one or any directory below it); repeatable. Without it, any directory but the data dir (and `/`, see `--allow-root-dir`). Deploys, stored versions and cluster records granting anything else are refused.",
        form: Form::Repeated,
        default: |_| "any".to_owned(),
        set: |c, v| {
            c.dir_roots.push(PathBuf::from(v));
            Ok(())
        },
    },
    HostSetting {
        flag: "access-log",
        value_name: "BOOL",
        help: "Log one access line per request (`--access-log false` turns it off).",
        form: Form::One,
        default: |c| c.access_log.to_string(),
        set: |c, v| {
            c.access_log = boolean(v)?;
            Ok(())
        },
    },
];

/// Every setting of [`ServerOptions`] an operator sets (on the public
/// listener; the admin listener takes the same timeouts).
pub static SERVER_SETTINGS: &[HostSetting<ServerOptions>] = &[
    HostSetting {
        flag: "header-timeout",
        value_name: "DURATION",
        help: "Time a client has to send its request headers, and a new connection its first request (e.g. `10s`).",
        form: Form::One,
        default: |o| units::format_duration(o.header_timeout),
        set: |o, v| {
            o.header_timeout = duration(v)?;
            Ok(())
        },
    },
    HostSetting {
        flag: "idle-timeout",
        value_name: "DURATION",
        help: "Time a connection with no request open is kept (HTTP/1 keep-alive and HTTP/2 alike).",
        form: Form::One,
        default: |o| units::format_duration(o.idle_timeout),
        set: |o, v| {
            o.idle_timeout = duration(v)?;
            Ok(())
        },
    },
    HostSetting {
        flag: "write-timeout",
        value_name: "DURATION",
        help: "Time a response may wait for its client to read before the connection is closed.",
        form: Form::One,
        default: |o| units::format_duration(o.write_timeout),
        set: |o, v| {
            o.write_timeout = duration(v)?;
            Ok(())
        },
    },
    HostSetting {
        flag: "max-connections",
        value_name: "N",
        help: "Open connections on the public listener at most (never more than half the open-file limit).",
        form: Form::One,
        default: |o| o.max_connections.to_string(),
        set: |o, v| {
            o.max_connections = at_least_one(v)?;
            Ok(())
        },
    },
    HostSetting {
        flag: "max-connections-per-ip",
        value_name: "N",
        help: "Open connections on the public listener from one IP address at most.",
        form: Form::One,
        default: |o| o.max_connections_per_ip.to_string(),
        set: |o, v| {
            o.max_connections_per_ip = at_least_one(v)?;
            Ok(())
        },
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's table of host-wide settings, one row per entry of both
    /// tables.
    fn markdown_table() -> String {
        let mut table = String::from("| flag | default | what it sets |\n| --- | --- | --- |\n");
        let mut row = |flag: &str, value_name: &str, default: String, help: &str| {
            let flag = match value_name {
                "" => format!("`--{flag}`"),
                name => format!("`--{flag} {name}`"),
            };
            table.push_str(&format!("| {flag} | {default} | {help} |\n"));
        };
        for s in HOST_SETTINGS {
            row(s.flag, s.value_name, s.default_text(), s.help);
        }
        for s in SERVER_SETTINGS {
            row(s.flag, s.value_name, s.default_text(), s.help);
        }
        table
    }

    /// Every entry's default, given back as text, sets the field to the
    /// default again: the shown default is the real one. Computed defaults
    /// are described, and skipped.
    #[test]
    fn shown_defaults_are_the_defaults() {
        for s in HOST_SETTINGS {
            let shown = s.default_text();
            if shown.contains(' ') || s.form == Form::Repeated {
                continue;
            }
            let mut config = HostConfig::default();
            (s.set)(&mut config, &shown).unwrap_or_else(|e| panic!("{}: {e}", s.flag));
            assert_eq!((s.default)(&config), shown, "{}", s.flag);
            assert_eq!(
                format!("{config:?}"),
                format!("{:?}", HostConfig::default()),
                "{}: its shown default `{shown}` is not its default",
                s.flag
            );
        }
        for s in SERVER_SETTINGS {
            let mut options = ServerOptions::default();
            (s.set)(&mut options, &s.default_text()).unwrap();
            assert_eq!(
                format!("{options:?}"),
                format!("{:?}", ServerOptions::default()),
                "{}",
                s.flag
            );
        }
    }

    /// Each entry fills the field named after its flag, and only that one.
    #[test]
    fn each_flag_fills_its_own_field() {
        let flags: Vec<_> = HOST_SETTINGS.iter().map(|s| s.flag).collect();
        let mut unique = flags.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), flags.len(), "a flag is declared twice");
        let samples = [
            ("SIZE", "3KiB"),
            ("DURATION", "7s"),
            ("N", "7"),
            ("DIR", "/x"),
            ("BOOL", "false"),
            ("", "true"),
        ];
        for s in HOST_SETTINGS {
            let value = samples
                .iter()
                .find(|(name, _)| *name == s.value_name)
                .unwrap()
                .1;
            let mut config = HostConfig::default();
            (s.set)(&mut config, value).unwrap_or_else(|e| panic!("{}: {e}", s.flag));
            let field = s.flag.replace('-', "_");
            let field = if field == "dir_root" {
                "dir_roots".to_owned()
            } else {
                field
            };
            let debug = format!("{config:?}");
            let before = format!("{:?}", HostConfig::default());
            assert_ne!(debug, before, "--{} changed nothing", s.flag);
            let changed: Vec<&str> = debug
                .split(", ")
                .zip(before.split(", "))
                .filter(|(a, b)| a != b)
                .map(|(a, _)| {
                    a.split(':')
                        .next()
                        .unwrap_or(a)
                        .trim_start_matches("HostConfig { ")
                })
                .collect();
            assert_eq!(changed, [field.as_str()], "--{}", s.flag);
        }
    }

    #[test]
    fn bad_values_say_what_was_expected() {
        let find = |flag: &str| HOST_SETTINGS.iter().find(|s| s.flag == flag).unwrap();
        let mut config = HostConfig::default();
        let err = (find("max-upload").set)(&mut config, "lots").unwrap_err();
        assert!(err.starts_with("expected"), "{err}");
        let err = (find("max-instances").set)(&mut config, "0").unwrap_err();
        assert!(err.contains("at least 1"), "{err}");
        let err = (find("body-timeout").set)(&mut config, "10").unwrap_err();
        assert!(err.contains("unit"), "{err}");
        assert!((find("min-body-rate").set)(&mut config, "0").is_ok());
    }

    #[test]
    fn the_readme_table_is_the_settings_table() {
        let readme = include_str!("../../../README.md");
        let table = markdown_table();
        assert!(
            readme.contains(&table),
            "README.md's table of host-wide settings is out of date; replace it with:\n{table}"
        );
    }
}
