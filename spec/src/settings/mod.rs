//! A function's deploy settings: what the user typed, and the validated form.
//!
//! Settings arrive as query parameters (`?memory=64MiB&env=A=1`), as JSON, as
//! `wisp deploy` flags or as manifest fields; all become a [`RawSettings`]
//! (text as typed, keyed by setting name) and then, in one step, [`Settings`]
//! (typed, checked), the only form the rest of the host uses. What each
//! setting is, accepts and defaults to is declared once, in [`table`]. Errors
//! name the setting, quote the value and give the accepted form.
//! [`Settings::to_raw`] gives the canonical text back, which is what `wisp ls`
//! shows and what the data dir stores.
//!
//! The route is not a setting: it belongs to the function, not to a version.

pub mod table;

use crate::limits::Limits;
use crate::schedule::Schedule;
use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;
pub use table::{Form, SETTINGS, Setting, setting};

/// Settings as the user typed them: each setting's values, by name. Every
/// setting is optional here; validation fills defaults and rejects what is
/// wrong.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawSettings {
    values: BTreeMap<&'static str, Vec<String>>,
}

/// A setting that is wrong: which one, what was given, what is accepted.
///
/// Shown as ``invalid `NAME` value `VALUE`: expected …``, or, when the value
/// is empty, ``no value given for `NAME`: expected …``, so a message never
/// shows empty quotes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SettingsError {
    /// The setting's name, e.g. `memory` (the flag is `--memory`).
    pub setting: String,
    /// What was given.
    pub value: String,
    /// What is accepted instead.
    pub expected: String,
}

impl SettingsError {
    fn new(setting: &str, value: impl fmt::Display, expected: impl Into<String>) -> Self {
        SettingsError {
            setting: setting.to_owned(),
            value: value.to_string(),
            expected: expected.into(),
        }
    }

    /// Setting `setting` refused with `value`, saying what is `expected`
    /// instead (for checks made outside this crate, such as a host's
    /// policy).
    pub fn invalid(setting: &str, value: impl fmt::Display, expected: impl Into<String>) -> Self {
        SettingsError::new(setting, value, expected)
    }

    /// An unknown setting name.
    fn unknown(name: &str) -> Self {
        SettingsError::new(
            "setting",
            name,
            format!("a known setting: {}", table::names()),
        )
    }

    /// A non-repeatable setting given again: `value` after `first`.
    fn repeated(setting: &table::Setting, first: &str, value: &str) -> Self {
        let repeatable = SETTINGS
            .iter()
            .filter(|s| s.repeatable())
            .map(|s| format!("`{}`", s.name))
            .collect::<Vec<_>>()
            .join(", ");
        SettingsError::new(
            setting.name,
            value,
            format!(
                "`{}` once, but it is already given as `{first}` (only {repeatable} may be repeated)",
                setting.name
            ),
        )
    }

    /// The same message with the setting written as a command-line flag.
    pub fn as_flag_message(&self) -> String {
        if self.value.is_empty() {
            format!(
                "no value given for `--{}`: expected {}",
                self.setting, self.expected
            )
        } else {
            format!(
                "invalid value `{}` for `--{}`: expected {}",
                self.value, self.setting, self.expected
            )
        }
    }
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.value.is_empty() {
            write!(
                f,
                "no value given for `{}`: expected {}",
                self.setting, self.expected
            )
        } else {
            write!(
                f,
                "invalid `{}` value `{}`: expected {}",
                self.setting, self.value, self.expected
            )
        }
    }
}

/// A read-only directory given to the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirMount {
    /// Directory on the host.
    pub host: PathBuf,
    /// Where the guest sees it, e.g. `/static`.
    pub guest: String,
}

/// Whether a `dir` setting may grant the host's root directory, and with it
/// every file the host can read. Decided by the host's operator, not by the
/// deploy: `wisp serve --allow-root-dir`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RootDir {
    /// A `dir` whose host side is `/` (however written) is refused.
    #[default]
    Refused,
    /// The host's root directory may be granted.
    Allowed,
}

/// One allowed outbound destination: scheme, host and port must all match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundRule {
    /// `http` or `https`.
    pub scheme: String,
    /// Host name or IP, lowercase.
    pub host: String,
    /// Port (the scheme's default when not written).
    pub port: u16,
}

impl OutboundRule {
    /// Parses `https://api.example.com` or `http://127.0.0.1:8080`, or
    /// `http://*.wisp.internal` (every function, in-process; Spin's
    /// `http://*.spin.internal` too).
    pub fn parse(text: &str) -> Option<OutboundRule> {
        for domain in [INTERNAL_DOMAIN, SPIN_INTERNAL_DOMAIN] {
            if text.eq_ignore_ascii_case(&format!("http://*.{domain}")) {
                return Some(OutboundRule {
                    scheme: "http".into(),
                    host: format!("*.{domain}"),
                    port: 80,
                });
            }
        }
        let uri: http::Uri = text.parse().ok()?;
        let scheme = uri.scheme_str()?.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return None,
        };
        let path_is_root = uri.path_and_query().is_none_or(|p| p.as_str() == "/");
        if !path_is_root {
            return None;
        }
        let authority = uri.authority()?;
        if authority.as_str().contains('@') {
            return None;
        }
        Some(OutboundRule {
            host: authority.host().to_ascii_lowercase(),
            port: authority.port_u16().unwrap_or(default_port),
            scheme,
        })
    }

    /// True when a request to `scheme://host:port` is allowed by this rule.
    pub fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        let host_matches = match self.host.strip_prefix("*.") {
            Some(_) => internal_function(host).is_some(),
            None => self.host.eq_ignore_ascii_case(host),
        };
        self.scheme.eq_ignore_ascii_case(scheme) && host_matches && self.port == port
    }
}

/// True when one of `rules` allows a request to `uri` (no scheme counts as
/// https; no port as the scheme's default).
pub fn allow_list_allows(rules: &[OutboundRule], uri: &http::Uri) -> bool {
    let scheme = uri.scheme_str().unwrap_or("https");
    let default_port = if scheme.eq_ignore_ascii_case("http") {
        80
    } else {
        443
    };
    let Some(host) = uri.host() else { return false };
    let port = uri.port_u16().unwrap_or(default_port);
    rules.iter().any(|rule| rule.allows(scheme, host, port))
}

/// True when one of `rules` lets a guest call function `name` in-process,
/// under either internal domain (`NAME.wisp.internal`, `*.spin.internal`, …):
/// a call is addressed as `NAME.wisp.internal` once it leaves its caller.
pub fn allow_list_allows_function(rules: &[OutboundRule], name: &str) -> bool {
    !name.is_empty()
        && rules.iter().any(|rule| {
            rule.scheme == "http"
                && rule.port == 80
                && (rule.host.starts_with("*.") || internal_function(&rule.host) == Some(name))
        })
}

/// The domain under which functions call each other in-process:
/// `http://NAME.wisp.internal/PATH`.
pub const INTERNAL_DOMAIN: &str = "wisp.internal";

/// Spin's name for the same: a Spin app calls its component NAME as
/// `http://NAME.spin.internal/PATH`.
pub const SPIN_INTERNAL_DOMAIN: &str = "spin.internal";

/// The host a Spin component calls its own app by (`http://self.alt/PATH`,
/// which a `spin.toml`'s `http://self` or `http://self.alt` allows): the
/// function serving PATH on the public listener answers.
pub const SPIN_SELF_HOST: &str = "self.alt";

/// The function `host` names, if it is `NAME.wisp.internal` (or
/// `NAME.spin.internal`) with a valid function name.
pub fn internal_function(host: &str) -> Option<&str> {
    [INTERNAL_DOMAIN, SPIN_INTERNAL_DOMAIN]
        .into_iter()
        .find_map(|internal| {
            let lower = host.len().checked_sub(internal.len() + 1)?;
            let (name, domain) = host.split_at(lower);
            let domain_matches = domain
                .strip_prefix('.')
                .is_some_and(|d| d.eq_ignore_ascii_case(internal));
            (domain_matches && crate::name::validate_name(name).is_ok()).then_some(name)
        })
}

impl fmt::Display for OutboundRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let default = if self.scheme == "https" { 443 } else { 80 };
        if self.port == default {
            write!(f, "{}://{}", self.scheme, self.host)
        } else {
            write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
        }
    }
}

/// Validated settings: what the host runs a function version with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// Its resource limits.
    pub limits: Limits,
    /// Environment variables the guest sees (and nothing else of the host's).
    pub env: BTreeMap<String, String>,
    /// Read-only directories preopened for the guest.
    pub dirs: Vec<DirMount>,
    /// Outbound HTTP destinations it may call.
    pub allow_outbound: Vec<OutboundRule>,
    /// App-wide key-value buckets it may open besides its own.
    pub kv: BTreeSet<String>,
    /// SQLite databases it may open: `default` (its own) and app-wide ones.
    pub sqlite: BTreeSet<String>,
    /// Configuration values the guest reads through `wasi:config` (secrets
    /// are kept apart from settings, by the host).
    pub config: BTreeMap<String, String>,
    /// Cron schedules: each tick sends the function a `POST`.
    pub cron: Vec<Schedule>,
    /// The path (and query) after the route that cron ticks request; the
    /// route itself when `None`.
    pub cron_path: Option<String>,
    /// Whether, and how much, it takes async calls.
    pub async_calls: AsyncSettings,
    /// Whether a WASI 0.3 instance serves more than one request.
    pub reuse: ReuseSettings,
    /// Functions whose `wasi:http/middleware` components are composed in
    /// front of this one's at deploy, outermost first.
    pub middleware: Vec<String>,
    /// Whether, and how, it takes WebSocket connections.
    pub websocket: WebSocketSettings,
    /// The Spin route it was deployed with (from a `spin.toml`): it gets
    /// Spin's request headers, and an exact route serves only its path.
    pub spin_route: Option<crate::spin::route::SpinRoute>,
}

/// How a function takes WebSocket connections: the host holds each one
/// and calls the function once per batch of its events, Pushpin's
/// WebSocket-over-HTTP protocol, each call in a fresh sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSocketSettings {
    /// Off (the default): an upgrade request is an ordinary request.
    pub enabled: bool,
    /// The `Origin`s a browser may connect from; empty: any.
    pub origins: Vec<String>,
    /// Its connections open at once; past it a handshake is 503.
    pub max_connections: u32,
}

/// Default cap on one function's open WebSocket connections.
pub const DEFAULT_WEBSOCKET_MAX_CONNECTIONS: u32 = 1000;

impl Default for WebSocketSettings {
    fn default() -> Self {
        WebSocketSettings {
            enabled: false,
            origins: Vec::new(),
            max_connections: DEFAULT_WEBSOCKET_MAX_CONNECTIONS,
        }
    }
}

/// Opt-in instance reuse for WASI 0.3 components (the model of `wasmtime
/// serve` and Spin): one instance serves up to `requests` requests, up to
/// `concurrency` at once, and is dropped after `idle` without one. Weaker
/// isolation than the default: the guest's memory survives between requests
/// of that one function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReuseSettings {
    /// Requests one instance serves; 1 (the default) is a fresh instance
    /// per request.
    pub requests: u32,
    /// Requests one instance serves at once.
    pub concurrency: u32,
    /// How long an instance waits for its next request before it is
    /// dropped.
    pub idle: Duration,
}

/// Default time a reused instance waits for its next request.
pub const DEFAULT_REUSE_IDLE: Duration = Duration::from_secs(1);

impl ReuseSettings {
    /// True when an instance may serve more than one request.
    pub fn is_on(&self) -> bool {
        self.requests > 1
    }
}

impl Default for ReuseSettings {
    fn default() -> Self {
        ReuseSettings {
            requests: 1,
            concurrency: 1,
            idle: DEFAULT_REUSE_IDLE,
        }
    }
}

/// Default cap on one function's queued async calls.
pub const DEFAULT_ASYNC_MAX_QUEUED: u32 = 1000;

/// Default cap on the request bodies of one function's queued async calls,
/// added up (64 MiB).
pub const DEFAULT_ASYNC_MAX_QUEUED_BYTES: u64 = 64 << 20;

/// How a function takes async calls (`Prefer: respond-async`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsyncSettings {
    /// Off (the default): a `Prefer: respond-async` request is served
    /// synchronously, as RFC 7240 lets a server ignore a preference.
    pub enabled: bool,
    /// Most calls queued (not yet finished) at once; past it, 429.
    pub max_queued: u32,
    /// Most bytes of queued calls' request bodies at once; past it, 429.
    pub max_queued_bytes: u64,
    /// Whether a stored call keeps the client's `Authorization`, `Cookie`
    /// and `Proxy-Authorization` headers (off: they are never written to
    /// disk, and the function does not see them on the async run).
    pub keep_credentials: bool,
}

impl Default for AsyncSettings {
    fn default() -> Self {
        AsyncSettings {
            enabled: false,
            max_queued: DEFAULT_ASYNC_MAX_QUEUED,
            max_queued_bytes: DEFAULT_ASYNC_MAX_QUEUED_BYTES,
            keep_credentials: false,
        }
    }
}

impl RawSettings {
    /// No settings: every default.
    pub fn new() -> RawSettings {
        RawSettings::default()
    }

    /// Sets setting `name` to `value` (a repeatable setting gains one more
    /// value). The value is checked when the settings are validated.
    pub fn set(&mut self, name: &str, value: impl Into<String>) -> Result<(), SettingsError> {
        let setting = table::setting(name).ok_or_else(|| SettingsError::unknown(name))?;
        let values = self.values.entry(setting.name).or_default();
        if !setting.repeatable() {
            values.clear();
        }
        values.push(value.into());
        Ok(())
    }

    /// These settings with `name` set to `value`.
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Result<Self, SettingsError> {
        self.set(name, value)?;
        Ok(self)
    }

    /// Takes from `previous` (a version's stored settings) every setting
    /// these do not give: a redeploy keeps what it does not change. Returns
    /// the names taken whose value is not the default, in table order (what
    /// a user would want to be told was kept).
    pub fn inherit(&mut self, previous: &RawSettings) -> Vec<&'static str> {
        let defaults = Settings::default().to_raw();
        let mut kept = Vec::new();
        for setting in SETTINGS {
            let name = setting.name;
            if self.values.contains_key(name) {
                continue;
            }
            let Some(values) = previous.values.get(name) else {
                continue;
            };
            if values.as_slice() != defaults.get(name) {
                kept.push(name);
            }
            self.values.insert(name, values.clone());
        }
        kept
    }

    /// The values given for setting `name` (empty when not given).
    pub fn get(&self, name: &str) -> &[String] {
        self.values.get(name).map_or(&[], Vec::as_slice)
    }

    /// Replaces the values of setting `name` (e.g. to make paths absolute).
    pub fn replace(&mut self, name: &str, values: Vec<String>) -> Result<(), SettingsError> {
        let setting = table::setting(name).ok_or_else(|| SettingsError::unknown(name))?;
        if values.is_empty() {
            self.values.remove(setting.name);
        } else {
            self.values.insert(setting.name, values);
        }
        Ok(())
    }

    /// True when nothing is set.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Parses a query string such as `memory=64MiB&env=A=1&env=B=2`.
    /// Repeatable settings may appear more than once; any other setting
    /// given twice is an error, as is an unknown name.
    pub fn from_query(query: &str) -> Result<RawSettings, SettingsError> {
        let mut raw = RawSettings::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            raw.add_once(&key, value.into_owned())?;
        }
        Ok(raw)
    }

    /// Like [`RawSettings::set`], but a non-repeatable setting given twice is
    /// an error.
    pub fn add_once(&mut self, name: &str, value: String) -> Result<(), SettingsError> {
        let setting = table::setting(name).ok_or_else(|| SettingsError::unknown(name))?;
        if !setting.repeatable()
            && let Some(first) = self.get(setting.name).first()
        {
            return Err(SettingsError::repeated(setting, first, &value));
        }
        self.set(name, value)
    }

    /// Every value given, as `(setting, value)` in table order.
    pub fn entries(&self) -> impl Iterator<Item = (&'static str, &str)> {
        SETTINGS.iter().flat_map(|setting| {
            self.get(setting.name)
                .iter()
                .map(|value| (setting.name, value.as_str()))
        })
    }

    /// Encodes these settings as a query string (the inverse of
    /// [`RawSettings::from_query`]).
    pub fn to_query(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (name, value) in self.entries() {
            q.append_pair(name, value);
        }
        q.finish()
    }

    /// Validates everything that does not depend on the host's file system;
    /// `wisp deploy` runs this before it sends anything.
    pub fn check(&self) -> Result<Settings, SettingsError> {
        let mut settings = Settings::default();
        for setting in SETTINGS {
            for value in self.get(setting.name) {
                setting
                    .apply(&mut settings, value)
                    .map_err(|expected| SettingsError::new(setting.name, value, expected))?;
            }
        }
        Ok(settings)
    }
}

impl Settings {
    /// Validates `raw` fully, including that each host directory exists here
    /// and, unless `root` allows it, is not the host's root directory.
    /// Host directories are made canonical (absolute, no `.`, `..` or
    /// symlinks), so the function does not depend on the host's working
    /// directory later, and `/./`, `//` or a link to `/` are seen as `/`.
    pub fn validate(raw: &RawSettings, root: RootDir) -> Result<Settings, SettingsError> {
        let mut settings = raw.check()?;
        for mount in &mut settings.dirs {
            let typed = || format!("{}:{}", mount.host.display(), mount.guest);
            let canonical = std::fs::canonicalize(&mount.host)
                .ok()
                .filter(|p| p.is_dir())
                .ok_or_else(|| {
                    SettingsError::new(
                        "dir",
                        typed(),
                        "a HOST_DIR that is an existing directory on the host",
                    )
                })?;
            if canonical.parent().is_none() && root == RootDir::Refused {
                return Err(SettingsError::new(
                    "dir",
                    typed(),
                    "a HOST_DIR below the host's root directory: granting the host's root \
                     directory needs `wisp serve --allow-root-dir`",
                ));
            }
            mount.host = canonical;
        }
        Ok(settings)
    }

    /// The canonical text of these settings; `check` on it gives them back.
    pub fn to_raw(&self) -> RawSettings {
        let mut raw = RawSettings::default();
        for setting in SETTINGS {
            let shown = setting.show(self);
            if !shown.is_empty() {
                raw.values.insert(setting.name, shown);
            }
        }
        raw
    }
}

impl Serialize for RawSettings {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.values.len()))?;
        for setting in SETTINGS {
            let values = self.get(setting.name);
            if values.is_empty() {
                continue;
            }
            match setting.form {
                Form::Text => map.serialize_entry(setting.name, &values[values.len() - 1])?,
                Form::Number => {
                    let text = &values[values.len() - 1];
                    match text.trim().parse::<u64>() {
                        Ok(n) => map.serialize_entry(setting.name, &n)?,
                        Err(_) => map.serialize_entry(setting.name, text)?,
                    }
                }
                Form::List => map.serialize_entry(setting.name, values)?,
                Form::Pairs => {
                    let pairs: BTreeMap<&str, &str> = values
                        .iter()
                        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
                        .collect();
                    map.serialize_entry(setting.name, &pairs)?;
                }
            }
        }
        map.end()
    }
}

/// One setting's value as JSON or TOML gives it: a scalar, a list of them,
/// or a table of `KEY = VALUE`.
#[derive(Deserialize)]
#[serde(untagged)]
enum Given {
    Scalar(Scalar),
    List(Vec<Scalar>),
    Table(BTreeMap<String, String>),
}

/// A scalar of any JSON or TOML type. Each is kept as its text, so a wrong one
/// (`-1`, `1.5`, `true`) reaches validation and is quoted there, instead of
/// failing here with a message that does not show it.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Number(u64),
    Signed(i64),
    Float(f64),
    Bool(bool),
    Text(String),
}

impl Scalar {
    fn into_text(self) -> String {
        match self {
            Scalar::Number(n) => n.to_string(),
            Scalar::Signed(n) => n.to_string(),
            Scalar::Float(n) => n.to_string(),
            Scalar::Bool(b) => b.to_string(),
            Scalar::Text(t) => t,
        }
    }
}

impl<'de> Deserialize<'de> for RawSettings {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RawVisitor;
        impl<'de> Visitor<'de> for RawVisitor {
            type Value = RawSettings;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of deploy settings")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawSettings, A::Error> {
                let mut raw = RawSettings::default();
                while let Some(name) = map.next_key::<String>()? {
                    let Some(setting) = table::setting(&name) else {
                        return Err(de::Error::custom(format!(
                            "unknown setting `{name}`, expected one of {}",
                            table::names()
                        )));
                    };
                    let values = match map.next_value::<Given>()? {
                        Given::Scalar(one) => vec![one.into_text()],
                        Given::List(items) => items.into_iter().map(Scalar::into_text).collect(),
                        Given::Table(pairs) if setting.form == Form::Pairs => {
                            pairs.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
                        }
                        Given::Table(_) => {
                            return Err(de::Error::custom(format!(
                                "`{name}` takes a value, not a table"
                            )));
                        }
                    };
                    if values.len() > 1 && !setting.repeatable() {
                        let given = values
                            .iter()
                            .map(|v| format!("`{v}`"))
                            .collect::<Vec<_>>()
                            .join(", ");
                        return Err(de::Error::custom(format!(
                            "`{name}` takes one value, not a list ({given})"
                        )));
                    }
                    raw.replace(setting.name, values)
                        .map_err(de::Error::custom)?;
                }
                Ok(raw)
            }
        }
        deserializer.deserialize_map(RawVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn raw(query: &str) -> RawSettings {
        RawSettings::from_query(query).unwrap()
    }

    #[test]
    fn functions_are_named_under_wisps_and_spins_internal_domains() {
        assert_eq!(internal_function("cart.wisp.internal"), Some("cart"));
        assert_eq!(internal_function("cart.SPIN.internal"), Some("cart"));
        assert_eq!(internal_function("cart.example.internal"), None);
        assert_eq!(internal_function("spin.internal"), None);
        let rule = OutboundRule::parse("http://*.spin.internal").unwrap();
        assert!(rule.allows("http", "cart.spin.internal", 80));
        assert!(!rule.allows("http", "example.com", 80));
        let named = [OutboundRule::parse("http://cart.spin.internal").unwrap()];
        assert!(allow_list_allows_function(&named, "cart"));
        assert!(!allow_list_allows_function(&named, "about"));
        assert!(allow_list_allows_function(&[rule], "about"));
        let outside = [OutboundRule::parse("http://cart.example.com").unwrap()];
        assert!(!allow_list_allows_function(&outside, "cart"));
    }

    #[test]
    fn defaults_fill_what_is_not_given() {
        let s = raw("").check().unwrap();
        assert_eq!(s.limits, Limits::default());
        assert!(s.env.is_empty() && s.dirs.is_empty() && s.allow_outbound.is_empty());
    }

    #[test]
    fn every_setting_parses_from_a_query() {
        let s = raw("timeout=2s&memory=64MiB&max-concurrency=8&fuel=1000\
                     &max-request-body=1MiB&max-response-body=2MiB&env=A%3D1&env=B=x%3Dy\
                     &dir=/tmp:/data&allow-outbound=https://api.example.com")
        .check()
        .unwrap();
        assert_eq!(s.limits.timeout, Duration::from_secs(2));
        assert_eq!(s.limits.memory_bytes, 64 << 20);
        assert_eq!(s.limits.max_concurrency, 8);
        assert_eq!(s.limits.fuel, Some(1000));
        assert_eq!(s.limits.max_request_body_bytes, 1 << 20);
        assert_eq!(s.limits.max_response_body_bytes, 2 << 20);
        assert_eq!(s.env["A"], "1");
        assert_eq!(s.env["B"], "x=y");
        assert_eq!(s.dirs[0].guest, "/data");
        assert_eq!(s.allow_outbound[0].to_string(), "https://api.example.com");
    }

    #[test]
    fn bad_values_name_the_setting_quote_the_value_and_give_the_form() {
        let err = raw("memory=lots").check().unwrap_err();
        assert_eq!(err.setting, "memory");
        assert!(err.as_flag_message().contains("`--memory`"));
        assert!(err.to_string().contains("MiB"), "{err}");
        let err = raw("max-concurrency=4294967296").check().unwrap_err();
        assert!(err.to_string().contains("`4294967296`"), "{err}");
        for (query, setting) in [
            ("timeout=30", "timeout"),
            ("timeout=2h", "timeout"),
            ("max-concurrency=0", "max-concurrency"),
            ("memory=8GiB", "memory"),
            ("env=NOVALUE", "env"),
            ("dir=relative", "dir"),
            ("allow-outbound=ftp://x", "allow-outbound"),
            ("allow-outbound=https://x/path", "allow-outbound"),
        ] {
            assert_eq!(raw(query).check().unwrap_err().setting, setting, "{query}");
        }
        let unknown = RawSettings::from_query("colour=blue").unwrap_err();
        assert!(unknown.to_string().contains("colour"));
    }

    #[test]
    fn a_single_setting_given_twice_is_refused() {
        let err = RawSettings::from_query("memory=1MiB&memory=2MiB").unwrap_err();
        assert_eq!(err.setting, "memory");
        assert!(RawSettings::from_query("env=A=1&env=B=2").is_ok());
    }

    #[test]
    fn a_repeated_parameter_is_named_with_both_values() {
        let err = RawSettings::from_query("timeout=1s&timeout=2s").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid `timeout` value `2s`: expected `timeout` once, but it is already \
             given as `1s` (only `env`, `dir`, `allow-outbound`, `kv`, `sqlite`, `config`, `cron`, `middleware`, `websocket-origins` may be repeated)"
        );
        let same = RawSettings::from_query("fuel=5&fuel=5").unwrap_err();
        assert!(same.to_string().contains("already given as `5`"), "{same}");
    }

    #[test]
    fn repeatable_settings_keep_every_value() {
        let s = raw("env=A=1&env=B=2&dir=/tmp:/a&dir=/tmp:/b\
                     &allow-outbound=https://a.example&allow-outbound=https://b.example\
                     &kv=sessions&kv=cache")
        .check()
        .unwrap();
        assert_eq!(s.env.len(), 2);
        assert_eq!(s.dirs.len(), 2);
        assert_eq!(s.allow_outbound.len(), 2);
        assert_eq!(s.kv.len(), 2);
    }

    #[test]
    fn every_bad_value_is_quoted_as_typed() {
        for query in [
            "timeout=soon",
            "timeout=0s",
            "memory=0",
            "memory=8GiB",
            "max-concurrency=4294967296",
            "max-concurrency=-3",
            "max-request-body=lots",
            "max-response-body=1 parsec",
            "fuel=0",
            "fuel=1.5",
            "env=NOVALUE",
            "dir=relative",
            "allow-outbound=ftp://x",
        ] {
            let (_, typed) = query.split_once('=').unwrap();
            let err = raw(query).check().unwrap_err();
            assert!(
                err.to_string().contains(&format!("value `{typed}`")),
                "{err}"
            );
            let flag = err.as_flag_message();
            assert!(flag.contains(&format!("value `{typed}` for `--")), "{flag}");
        }
    }

    #[test]
    fn concurrency_past_u32_gives_the_allowed_range() {
        let err = raw("max-concurrency=4294967296").check().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid `max-concurrency` value `4294967296`: expected a whole number from 1 to 4294967295"
        );
        let zero = raw("max-concurrency=0").check().unwrap_err();
        assert!(zero.to_string().contains("from 1 to 4294967295"), "{zero}");
    }

    #[test]
    fn an_empty_value_is_called_missing_not_shown_as_empty_quotes() {
        let err = raw("timeout=").check().unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "no value given for `timeout`: expected {}",
                crate::units::DURATION_FORMS
            )
        );
        assert!(!err.as_flag_message().contains("``"), "{err}");
    }

    #[test]
    fn json_values_of_the_wrong_type_are_quoted() {
        for (json, typed) in [
            (r#"{"max-concurrency": -1}"#, "-1"),
            (r#"{"fuel": 1.5}"#, "1.5"),
            (r#"{"memory": true}"#, "true"),
            (r#"{"max-concurrency": 4294967296}"#, "4294967296"),
        ] {
            let raw = serde_json::from_str::<RawSettings>(json).unwrap();
            let err = raw.check().unwrap_err();
            assert!(err.to_string().contains(&format!("`{typed}`")), "{err}");
        }
        let list = serde_json::from_str::<RawSettings>(r#"{"memory": ["1MiB", "2MiB"]}"#);
        let err = list.unwrap_err().to_string();
        assert!(
            err.contains("`memory`") && err.contains("`1MiB`, `2MiB`"),
            "{err}"
        );
    }

    #[test]
    fn canonical_text_round_trips() {
        let s = raw("timeout=1500ms&memory=3MiB&env=K=V&allow-outbound=http://127.0.0.1:9000")
            .check()
            .unwrap();
        assert_eq!(s.to_raw().check().unwrap(), s);
        let again = RawSettings::from_query(&s.to_raw().to_query()).unwrap();
        assert_eq!(again.check().unwrap(), s);
        let json = serde_json::to_string(&s.to_raw()).unwrap();
        let back: RawSettings = serde_json::from_str(&json).unwrap();
        assert_eq!(back.check().unwrap(), s);
    }

    #[test]
    fn json_accepts_numbers_lists_and_tables_and_shows_each_form() {
        let json = r#"{"fuel": 5, "memory": 1048576, "env": {"K": "V"}, "max-concurrency": "8"}"#;
        let raw = serde_json::from_str::<RawSettings>(json).unwrap();
        let s = raw.check().unwrap();
        assert_eq!(s.limits.fuel, Some(5));
        assert_eq!(s.limits.memory_bytes, 1 << 20);
        assert_eq!(s.env["K"], "V");
        let shown = serde_json::to_value(s.to_raw()).unwrap();
        assert_eq!(shown["max-concurrency"], 8);
        assert_eq!(shown["fuel"], 5);
        assert_eq!(shown["memory"], "1MiB");
        assert_eq!(shown["env"]["K"], "V");
        let list = serde_json::from_str::<RawSettings>(r#"{"env": ["A=1", "B=2"]}"#).unwrap();
        assert_eq!(list.check().unwrap().env.len(), 2);
        assert!(serde_json::from_str::<RawSettings>(r#"{"colour": "blue"}"#).is_err());
        assert!(serde_json::from_str::<RawSettings>(r#"{"memory": ["1MiB", "2MiB"]}"#).is_err());
    }

    #[test]
    fn outbound_rules_match_scheme_host_and_port() {
        let rule = OutboundRule::parse("https://API.example.com").unwrap();
        assert!(rule.allows("https", "api.example.com", 443));
        assert!(!rule.allows("http", "api.example.com", 443));
        assert!(!rule.allows("https", "api.example.com", 8443));
        assert!(!rule.allows("https", "evil.com", 443));
        assert!(OutboundRule::parse("https://user@host").is_none());
    }

    #[test]
    fn missing_host_dirs_are_refused_at_validation() {
        let err =
            Settings::validate(&raw("dir=/definitely/not/here:/d"), RootDir::Refused).unwrap_err();
        assert_eq!(err.setting, "dir");
        let dir = std::env::temp_dir();
        let ok = Settings::validate(&raw(&format!("dir={}:/d", dir.display())), RootDir::Refused)
            .unwrap();
        assert!(ok.dirs[0].host.is_absolute());
    }

    #[test]
    fn the_root_directory_however_written_is_refused_unless_allowed() {
        let link_dir = tempfile::tempdir().unwrap();
        let link = link_dir.path().join("to-root");
        std::os::unix::fs::symlink("/", &link).unwrap();
        let via_link = format!("{}:/host", link.display());
        for value in [
            "/:/host",
            "/./:/host",
            "//:/host",
            "/tmp/..:/host",
            &via_link,
        ] {
            let settings = raw("").with("dir", value).unwrap();
            let err = Settings::validate(&settings, RootDir::Refused).unwrap_err();
            assert_eq!(err.setting, "dir");
            assert_eq!(
                err.to_string(),
                format!(
                    "invalid `dir` value `{value}`: expected a HOST_DIR below the host's root \
                     directory: granting the host's root directory needs \
                     `wisp serve --allow-root-dir`"
                )
            );
            let allowed = Settings::validate(&settings, RootDir::Allowed).unwrap();
            assert_eq!(allowed.dirs[0].host, std::path::Path::new("/"), "{value}");
        }
        let below = Settings::validate(&raw("dir=/tmp/.:/t"), RootDir::Refused).unwrap();
        assert_ne!(below.dirs[0].host, std::path::Path::new("/"));
    }

    #[test]
    fn a_redeploy_inherits_what_it_does_not_give_and_names_what_is_not_default() {
        let previous = raw("timeout=2s&env=A=1&env=B=2&config=greeting=Howdy&memory=128MiB");
        let previous = previous.check().unwrap().to_raw();
        let mut given = raw("env=C=3");
        let kept = given.inherit(&previous);
        assert_eq!(kept, ["timeout", "config"]);
        let settings = given.check().unwrap();
        assert_eq!(settings.limits.timeout, std::time::Duration::from_secs(2));
        assert_eq!(
            settings.env.len(),
            1,
            "a given setting replaces the old one whole"
        );
        assert_eq!(settings.config["greeting"], "Howdy");
    }
}
