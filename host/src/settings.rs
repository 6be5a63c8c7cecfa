//! A function's deploy settings: what the user typed, and the validated form.
//!
//! Settings arrive as query parameters (`?route=/hi&memory=64MiB`), as JSON,
//! as `wisp deploy` flags or as manifest fields; all become a [`RawSettings`]
//! (strings as typed) and then, in one step, [`Settings`] (typed, checked) —
//! the only form the rest of the host uses. Errors name the setting and the
//! accepted form. [`Settings::to_raw`] gives the canonical text back, which is
//! what `wisp ls` shows and what the data dir stores.

use crate::limits::{self, Limits};
use crate::route::{Route, RouteError};
use crate::units;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// A number or a string in a settings file: `fuel = 1000` and
/// `memory = "64MiB"` are both natural to write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    /// A bare number.
    Number(u64),
    /// Text, possibly with a unit.
    Text(String),
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Number(n) => write!(f, "{n}"),
            Scalar::Text(t) => f.write_str(t),
        }
    }
}

/// Environment variables as `["KEY=VALUE", …]` or as a `{KEY = "VALUE"}` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EnvSpec {
    /// `KEY=VALUE` strings.
    List(Vec<String>),
    /// A table of names to values.
    Map(BTreeMap<String, String>),
}

impl Default for EnvSpec {
    fn default() -> Self {
        EnvSpec::List(Vec::new())
    }
}

/// Settings as the user typed them. Every field is optional here; validation
/// fills defaults and rejects what is wrong.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawSettings {
    /// Path prefix the function serves, e.g. `/hello`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// Wall-clock deadline per request, e.g. `2s`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Scalar>,
    /// Linear memory cap, e.g. `64MiB`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<Scalar>,
    /// Requests served at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<Scalar>,
    /// Request body cap, e.g. `10MiB`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_request_body: Option<Scalar>,
    /// Response body cap, e.g. `10MiB`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_response_body: Option<Scalar>,
    /// Instruction budget per request (turns metering on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fuel: Option<Scalar>,
    /// Environment variables the guest sees.
    #[serde(default, skip_serializing_if = "EnvSpec::is_empty")]
    pub env: EnvSpec,
    /// Read-only directories, `HOST_DIR:GUEST_DIR`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dir: Vec<String>,
    /// Outbound HTTP destinations allowed, e.g. `https://api.example.com`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_outbound: Vec<String>,
}

impl EnvSpec {
    fn is_empty(&self) -> bool {
        match self {
            EnvSpec::List(list) => list.is_empty(),
            EnvSpec::Map(map) => map.is_empty(),
        }
    }
}

/// The names of all settings, as query parameters and flags use them.
pub const SETTING_NAMES: &[&str] = &[
    "route",
    "timeout",
    "memory",
    "max-concurrency",
    "max-request-body",
    "max-response-body",
    "fuel",
    "env",
    "dir",
    "allow-outbound",
];

/// A setting that is wrong: which one, what was given, what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid `{setting}` value `{value}`: expected {expected}")]
pub struct SettingsError {
    /// The setting's name, e.g. `memory` (the flag is `--memory`).
    pub setting: &'static str,
    /// What was given.
    pub value: String,
    /// What is accepted instead.
    pub expected: String,
}

impl SettingsError {
    fn new(setting: &'static str, value: impl fmt::Display, expected: impl Into<String>) -> Self {
        SettingsError {
            setting,
            value: value.to_string(),
            expected: expected.into(),
        }
    }

    /// The same message with the setting written as a command-line flag.
    pub fn as_flag_message(&self) -> String {
        format!(
            "invalid value `{}` for `--{}`: expected {}",
            self.value, self.setting, self.expected
        )
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
    /// Parses `https://api.example.com` or `http://127.0.0.1:8080`.
    pub fn parse(text: &str) -> Option<OutboundRule> {
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
        self.scheme.eq_ignore_ascii_case(scheme)
            && self.host.eq_ignore_ascii_case(host)
            && self.port == port
    }
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

/// Validated settings: what the host runs a function with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The path prefix it serves.
    pub route: Route,
    /// Its resource limits.
    pub limits: Limits,
    /// Environment variables the guest sees (and nothing else of the host's).
    pub env: BTreeMap<String, String>,
    /// Read-only directories preopened for the guest.
    pub dirs: Vec<DirMount>,
    /// Outbound HTTP destinations it may call.
    pub allow_outbound: Vec<OutboundRule>,
}

impl RawSettings {
    /// Parses a query string such as `route=/hi&env=A=1&env=B=2`. Repeatable
    /// settings (`env`, `dir`, `allow-outbound`) may appear more than once.
    pub fn from_query(query: &str) -> Result<RawSettings, SettingsError> {
        let mut raw = RawSettings::default();
        let mut env = Vec::new();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let value = value.into_owned();
            let text = || Some(Scalar::Text(value.clone()));
            match key.as_ref() {
                "route" => raw.route = Some(value),
                "timeout" => raw.timeout = text(),
                "memory" => raw.memory = text(),
                "max-concurrency" => raw.max_concurrency = text(),
                "max-request-body" => raw.max_request_body = text(),
                "max-response-body" => raw.max_response_body = text(),
                "fuel" => raw.fuel = text(),
                "env" => env.push(value),
                "dir" => raw.dir.push(value),
                "allow-outbound" => raw.allow_outbound.push(value),
                other => {
                    return Err(SettingsError::new(
                        "setting",
                        other,
                        format!("a known setting: {}", SETTING_NAMES.join(", ")),
                    ));
                }
            }
        }
        raw.env = EnvSpec::List(env);
        Ok(raw)
    }

    /// Encodes these settings as a query string (the inverse of
    /// [`RawSettings::from_query`]).
    pub fn to_query(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        if let Some(route) = &self.route {
            q.append_pair("route", route);
        }
        let scalars = [
            ("timeout", &self.timeout),
            ("memory", &self.memory),
            ("max-concurrency", &self.max_concurrency),
            ("max-request-body", &self.max_request_body),
            ("max-response-body", &self.max_response_body),
            ("fuel", &self.fuel),
        ];
        for (name, value) in scalars {
            if let Some(value) = value {
                q.append_pair(name, &value.to_string());
            }
        }
        for pair in self.env_pairs_text() {
            q.append_pair("env", &pair);
        }
        for dir in &self.dir {
            q.append_pair("dir", dir);
        }
        for rule in &self.allow_outbound {
            q.append_pair("allow-outbound", rule);
        }
        q.finish()
    }

    fn env_pairs_text(&self) -> Vec<String> {
        match &self.env {
            EnvSpec::List(list) => list.clone(),
            EnvSpec::Map(map) => map.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        }
    }

    /// Validates everything that does not depend on the host's file system;
    /// `wisp deploy` runs this before it sends anything.
    pub fn check(&self) -> Result<Settings, SettingsError> {
        let route_text = self.route.as_deref().ok_or_else(|| {
            SettingsError::new(
                "route",
                "",
                "a path prefix such as `/hello` (it is required)",
            )
        })?;
        let route = Route::parse(route_text).map_err(|e: RouteError| {
            SettingsError::new(
                "route",
                route_text,
                format!("a path prefix such as `/hello` ({})", e.reason()),
            )
        })?;
        let defaults = Limits::default();
        let limits = Limits {
            memory_bytes: size(
                "memory",
                &self.memory,
                defaults.memory_bytes,
                limits::MAX_MEMORY_LIMIT_BYTES,
            )?,
            timeout: duration("timeout", &self.timeout, defaults.timeout)?,
            max_concurrency: count(
                "max-concurrency",
                &self.max_concurrency,
                defaults.max_concurrency.into(),
            )?
            .try_into()
            .map_err(|_| SettingsError::new("max-concurrency", "", "at most 4294967295"))?,
            max_request_body_bytes: size(
                "max-request-body",
                &self.max_request_body,
                defaults.max_request_body_bytes,
                u64::MAX,
            )?,
            max_response_body_bytes: size(
                "max-response-body",
                &self.max_response_body,
                defaults.max_response_body_bytes,
                u64::MAX,
            )?,
            fuel: match &self.fuel {
                None => None,
                Some(_) => Some(count("fuel", &self.fuel, 0)?),
            },
        };
        let mut env = BTreeMap::new();
        for pair in self.env_pairs_text() {
            let (key, value) = pair.split_once('=').unwrap_or((&pair, ""));
            let valid_key = !key.is_empty()
                && !key.contains('\0')
                && !value.contains('\0')
                && pair.contains('=');
            if !valid_key {
                return Err(SettingsError::new(
                    "env",
                    &pair,
                    "`KEY=VALUE` with a non-empty KEY",
                ));
            }
            env.insert(key.to_owned(), value.to_owned());
        }
        let mut dirs = Vec::new();
        for mount in &self.dir {
            let expected =
                "`HOST_DIR:GUEST_DIR` with an absolute GUEST_DIR, e.g. `./static:/static`";
            let (host, guest) = mount
                .rsplit_once(':')
                .ok_or_else(|| SettingsError::new("dir", mount, expected))?;
            let guest_ok =
                guest.starts_with('/') && !guest.split('/').any(|s| s == "..") && !host.is_empty();
            if !guest_ok {
                return Err(SettingsError::new("dir", mount, expected));
            }
            dirs.push(DirMount {
                host: PathBuf::from(host),
                guest: guest.to_owned(),
            });
        }
        let mut allow_outbound = Vec::new();
        for rule in &self.allow_outbound {
            let parsed = OutboundRule::parse(rule).ok_or_else(|| {
                SettingsError::new(
                    "allow-outbound",
                    rule,
                    "an origin: `http://` or `https://`, a host and an optional port, no path (e.g. `https://api.example.com`)",
                )
            })?;
            allow_outbound.push(parsed);
        }
        Ok(Settings {
            route,
            limits,
            env,
            dirs,
            allow_outbound,
        })
    }
}

impl Settings {
    /// Validates `raw` fully, including that each host directory exists here.
    /// Host directories are made absolute so the function does not depend on
    /// the host's working directory later.
    pub fn validate(raw: &RawSettings) -> Result<Settings, SettingsError> {
        let mut settings = raw.check()?;
        for mount in &mut settings.dirs {
            let canonical = std::fs::canonicalize(&mount.host)
                .ok()
                .filter(|p| p.is_dir())
                .ok_or_else(|| {
                    SettingsError::new(
                        "dir",
                        format!("{}:{}", mount.host.display(), mount.guest),
                        "HOST_DIR must be an existing directory on the host",
                    )
                })?;
            mount.host = canonical;
        }
        Ok(settings)
    }

    /// The canonical text of these settings; `check` on it gives them back.
    pub fn to_raw(&self) -> RawSettings {
        let l = &self.limits;
        let text = |s: String| Some(Scalar::Text(s));
        RawSettings {
            route: Some(self.route.to_string()),
            timeout: text(units::format_duration(l.timeout)),
            memory: text(units::format_size(l.memory_bytes)),
            max_concurrency: Some(Scalar::Number(l.max_concurrency.into())),
            max_request_body: text(units::format_size(l.max_request_body_bytes)),
            max_response_body: text(units::format_size(l.max_response_body_bytes)),
            fuel: l.fuel.map(Scalar::Number),
            env: EnvSpec::Map(self.env.clone()),
            dir: self
                .dirs
                .iter()
                .map(|d| format!("{}:{}", d.host.display(), d.guest))
                .collect(),
            allow_outbound: self
                .allow_outbound
                .iter()
                .map(ToString::to_string)
                .collect(),
        }
    }
}

fn size(
    setting: &'static str,
    value: &Option<Scalar>,
    default: u64,
    max: u64,
) -> Result<u64, SettingsError> {
    let Some(value) = value else {
        return Ok(default);
    };
    let bytes = match value {
        Scalar::Number(n) => Some(*n),
        Scalar::Text(t) => units::parse_size(t),
    };
    match bytes {
        Some(b) if b > 0 && b <= max => Ok(b),
        Some(b) if b > max => Err(SettingsError::new(
            setting,
            value,
            format!("at most {}", units::format_size(max)),
        )),
        _ => Err(SettingsError::new(setting, value, units::SIZE_FORMS)),
    }
}

fn duration(
    setting: &'static str,
    value: &Option<Scalar>,
    default: Duration,
) -> Result<Duration, SettingsError> {
    let Some(value) = value else {
        return Ok(default);
    };
    let parsed = match value {
        Scalar::Number(_) => None,
        Scalar::Text(t) => units::parse_duration(t),
    };
    match parsed {
        Some(d) if !d.is_zero() && d <= limits::MAX_TIMEOUT => Ok(d),
        Some(d) if d > limits::MAX_TIMEOUT => Err(SettingsError::new(setting, value, "at most 1h")),
        _ => Err(SettingsError::new(setting, value, units::DURATION_FORMS)),
    }
}

fn count(
    setting: &'static str,
    value: &Option<Scalar>,
    default: u64,
) -> Result<u64, SettingsError> {
    let Some(value) = value else {
        return Ok(default);
    };
    let parsed = match value {
        Scalar::Number(n) => Some(*n),
        Scalar::Text(t) => t.trim().parse().ok(),
    };
    parsed
        .filter(|n| *n > 0)
        .ok_or_else(|| SettingsError::new(setting, value, "a whole number greater than 0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(query: &str) -> RawSettings {
        RawSettings::from_query(query).unwrap()
    }

    #[test]
    fn defaults_fill_what_is_not_given() {
        let s = raw("route=/hello").check().unwrap();
        assert_eq!(s.route.as_str(), "/hello");
        assert_eq!(s.limits, Limits::default());
        assert!(s.env.is_empty() && s.dirs.is_empty() && s.allow_outbound.is_empty());
    }

    #[test]
    fn every_setting_parses_from_a_query() {
        let s = raw(
            "route=/a&timeout=2s&memory=64MiB&max-concurrency=8&fuel=1000\
                     &max-request-body=1MiB&max-response-body=2MiB&env=A%3D1&env=B=x%3Dy\
                     &dir=/tmp:/data&allow-outbound=https://api.example.com",
        )
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
    fn bad_values_name_the_setting_and_the_accepted_form() {
        let err = raw("route=/a&memory=lots").check().unwrap_err();
        assert_eq!(err.setting, "memory");
        assert!(err.as_flag_message().contains("`--memory`"));
        assert!(err.to_string().contains("MiB"), "{err}");
        for (query, setting) in [
            ("memory=1MiB", "route"),
            ("route=nope", "route"),
            ("route=/a&timeout=30", "timeout"),
            ("route=/a&timeout=2h", "timeout"),
            ("route=/a&max-concurrency=0", "max-concurrency"),
            ("route=/a&memory=8GiB", "memory"),
            ("route=/a&env=NOVALUE", "env"),
            ("route=/a&dir=relative", "dir"),
            ("route=/a&allow-outbound=ftp://x", "allow-outbound"),
            ("route=/a&allow-outbound=https://x/path", "allow-outbound"),
        ] {
            assert_eq!(raw(query).check().unwrap_err().setting, setting, "{query}");
        }
        let unknown = RawSettings::from_query("colour=blue").unwrap_err();
        assert!(unknown.to_string().contains("colour"));
    }

    #[test]
    fn canonical_text_round_trips() {
        let s =
            raw("route=/a&timeout=1500ms&memory=3MiB&env=K=V&allow-outbound=http://127.0.0.1:9000")
                .check()
                .unwrap();
        assert_eq!(s.to_raw().check().unwrap(), s);
        let again = RawSettings::from_query(&s.to_raw().to_query()).unwrap();
        assert_eq!(again.check().unwrap(), s);
    }

    #[test]
    fn json_and_toml_forms_accept_numbers_and_tables() {
        let json = r#"{"route": "/a", "fuel": 5, "memory": 1048576, "env": {"K": "V"}}"#;
        let s = serde_json::from_str::<RawSettings>(json)
            .unwrap()
            .check()
            .unwrap();
        assert_eq!(s.limits.fuel, Some(5));
        assert_eq!(s.limits.memory_bytes, 1 << 20);
        assert_eq!(s.env["K"], "V");
        assert!(serde_json::from_str::<RawSettings>(r#"{"rout": "/a"}"#).is_err());
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
        let err = Settings::validate(&raw("route=/a&dir=/definitely/not/here:/d")).unwrap_err();
        assert_eq!(err.setting, "dir");
        let dir = std::env::temp_dir();
        let ok = Settings::validate(&raw(&format!("route=/a&dir={}:/d", dir.display()))).unwrap();
        assert!(ok.dirs[0].host.is_absolute());
    }
}
