//! `spin.toml` (Spin's application manifest, version 2) read as the
//! functions `wisp up` deploys.
//!
//! Each component an HTTP trigger names becomes a function of the same
//! name, at its route's fixed part with the `spin-route` setting. Its keys
//! map onto settings: `environment` → `env`, `allowed_outbound_hosts` →
//! `allow-outbound` (`http://NAME.spin.internal` is a call to function
//! NAME), `key_value_stores` → `kv` (`default` is the function's own
//! bucket), `sqlite_databases` → `sqlite`, `files` → read-only `dir`
//! mounts, `variables` → `config` values, or secrets when they draw on a
//! `secret` application variable.
//! Variables take their values from `SPIN_VARIABLE_NAME` in the deployer's
//! environment, else their `default`. A key wisp cannot honour is refused
//! with its name, never skipped.

use crate::manifest::{Download, Manifest, ManifestError, ManifestFunction};
use crate::name::validate_name;
use crate::settings::RawSettings;
use crate::spin::route::SpinRoute;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The manifest version this reads.
const SPIN_MANIFEST_VERSION: u32 = 2;

/// The file name Spin looks for.
pub const SPIN_MANIFEST: &str = "spin.toml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpin {
    spin_manifest_version: u32,
    /// Read so that its keys are checked; wisp names functions by component.
    #[serde(rename = "application")]
    _application: RawApplication,
    #[serde(default)]
    variables: BTreeMap<String, RawVariable>,
    #[serde(default)]
    trigger: BTreeMap<String, toml::Value>,
    #[serde(default)]
    component: BTreeMap<String, toml::Spanned<RawComponent>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApplication {
    #[serde(rename = "name")]
    _name: String,
    #[serde(default, rename = "version")]
    _version: Option<String>,
    #[serde(default, rename = "authors")]
    _authors: Vec<String>,
    #[serde(default, rename = "description")]
    _description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVariable {
    default: Option<String>,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    secret: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttpTrigger {
    #[serde(default, rename = "id")]
    _id: Option<String>,
    route: RawRoute,
    component: toml::Value,
    executor: Option<RawExecutor>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawRoute {
    Path(String),
    Private { private: bool },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExecutor {
    r#type: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawComponent {
    source: toml::Value,
    #[serde(default, rename = "description")]
    _description: Option<String>,
    #[serde(default)]
    files: Vec<RawFiles>,
    #[serde(default)]
    exclude_files: Vec<String>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    key_value_stores: Vec<String>,
    #[serde(default)]
    sqlite_databases: Vec<String>,
    #[serde(default)]
    ai_models: Vec<String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    build: Option<RawBuild>,
    /// Settings of other tools (`spin test`, …): not the runtime's.
    #[serde(default, rename = "tool")]
    _tool: Option<toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawFiles {
    Pattern(String),
    Mount { source: String, destination: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBuild {
    command: RawCommand,
    workdir: Option<String>,
    #[serde(default)]
    watch: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawCommand {
    One(String),
    Many(Vec<String>),
}

/// Whether `text` is a Spin manifest rather than a `wisp.toml`.
pub fn is_spin_manifest(path: &Path, text: &str) -> bool {
    path.file_name().is_some_and(|name| name == SPIN_MANIFEST)
        || text
            .lines()
            .any(|line| line.trim_start().starts_with("spin_manifest_version"))
}

/// Reads the Spin manifest `text` (from `path`), taking variables' values
/// from `env` (`SPIN_VARIABLE_NAME`).
pub fn parse(
    path: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Manifest, ManifestError> {
    let fail = |line: Option<usize>, message: String| ManifestError {
        path: path.to_owned(),
        line,
        message,
    };
    let raw: RawSpin = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|span| line_of(text, span.start));
        fail(line, e.message().trim().to_owned())
    })?;
    if raw.spin_manifest_version != SPIN_MANIFEST_VERSION {
        return Err(fail(
            None,
            format!(
                "unsupported `spin_manifest_version = {}`: wisp reads version {SPIN_MANIFEST_VERSION}",
                raw.spin_manifest_version
            ),
        ));
    }
    let variables = Variables::resolve(&raw.variables, env).map_err(|e| fail(None, e))?;
    let mut routes: BTreeMap<String, SpinRoute> = BTreeMap::new();
    for (kind, triggers) in &raw.trigger {
        if kind != "http" {
            return Err(fail(
                None,
                format!(
                    "trigger type `{kind}` is not supported: wisp serves HTTP triggers (`[[trigger.http]]`)"
                ),
            ));
        }
        let triggers: Vec<RawHttpTrigger> =
            triggers.clone().try_into().map_err(|e: toml::de::Error| {
                fail(None, format!("`[[trigger.http]]`: {}", e.message().trim()))
            })?;
        for trigger in &triggers {
            let component = trigger.component.as_str().ok_or_else(|| {
                fail(None, "a trigger's `component` must name a `[component.NAME]` table (inline components are not supported)".to_owned())
            })?;
            if let Some(executor) = &trigger.executor
                && !matches!(executor.r#type.as_str(), "spin" | "wagi")
            {
                return Err(fail(
                    None,
                    format!(
                        "component `{component}`: executor `{}` is not supported (`spin` or `wagi`)",
                        executor.r#type
                    ),
                ));
            }
            let route = match &trigger.route {
                RawRoute::Path(route) => SpinRoute::parse(route)
                    .map_err(|e| fail(None, format!("component `{component}`: {e}")))?,
                RawRoute::Private { private: false } => {
                    return Err(fail(
                        None,
                        format!(
                            "component `{component}`: a route is a path such as `/hello/...`, or `{{ private = true }}`"
                        ),
                    ));
                }
                RawRoute::Private { private: true } => {
                    SpinRoute::parse(crate::spin::route::PRIVATE)
                        .map_err(|e| fail(None, format!("component `{component}`: {e}")))?
                }
            };
            if routes.insert(component.to_owned(), route).is_some() {
                return Err(fail(
                    None,
                    format!(
                        "component `{component}` has two HTTP triggers: a wisp function has one route"
                    ),
                ));
            }
        }
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
    let mut functions = Vec::new();
    for (name, spanned) in raw.component {
        let line = line_of(text, spanned.span().start);
        let Some(route) = routes.remove(&name) else {
            // Spin runs only the components a trigger names.
            continue;
        };
        let component = spanned.into_inner();
        let function = map_component(&dir, &name, route, component, &variables)
            .map_err(|e| fail(Some(line), format!("component `{name}`: {e}")))?;
        functions.push(ManifestFunction { line, ..function });
    }
    if let Some(name) = routes.into_keys().next() {
        return Err(fail(
            None,
            format!("a trigger names component `{name}`, which has no `[component.{name}]` table"),
        ));
    }
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for function in &functions {
        if let Some(other) = seen.insert(&function.route, &function.name) {
            return Err(fail(
                Some(function.line),
                format!(
                    "components `{other}` and `{}` both live under `{}`: wisp mounts one function per path",
                    function.name, function.route
                ),
            ));
        }
    }
    Ok(Manifest {
        path: path.to_owned(),
        dir,
        functions,
    })
}

/// Where a component's binary is: a file beside the manifest, or a URL
/// pinned by its digest, fetched by `wisp up` into `.spin/wisp-downloads/`
/// under the digest's name (so a changed pin never reuses an old file).
fn source(dir: &Path, source: &toml::Value) -> Result<(PathBuf, Option<Download>), String> {
    if let Some(file) = source.as_str() {
        return Ok((dir.join(file), None));
    }
    let table = source
        .as_table()
        .ok_or("`source` must be a file name or `{ url, digest }`")?;
    if let Some(key) = table.keys().find(|key| *key != "url" && *key != "digest") {
        return Err(format!(
            "`source.{key}` is not supported by wisp: give a file, or `{{ url, digest }}`"
        ));
    }
    let url = table
        .get("url")
        .and_then(toml::Value::as_str)
        .ok_or("`source` needs a `url` beside its `digest`")?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!(
            "`source.url` `{url}` must be an http:// or https:// URL"
        ));
    }
    let digest = table
        .get("digest")
        .and_then(toml::Value::as_str)
        .ok_or("`source.digest` is required with a `url`: `sha256:` and 64 hex digits")?;
    let sha256 = digest
        .strip_prefix("sha256:")
        .filter(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| format!("`source.digest` `{digest}` must be `sha256:` and 64 hex digits"))?
        .to_ascii_lowercase();
    let wasm = dir
        .join(".spin/wisp-downloads")
        .join(format!("sha256-{sha256}.wasm"));
    let url = url.to_owned();
    Ok((wasm, Some(Download { url, sha256 })))
}

/// One component as a function; `Err` says which key wisp cannot honour.
fn map_component(
    dir: &Path,
    name: &str,
    route: SpinRoute,
    component: RawComponent,
    variables: &Variables,
) -> Result<ManifestFunction, String> {
    validate_name(name).map_err(|e| format!("its name cannot be a wisp function's: {e}"))?;
    let (wasm, download) = source(dir, &component.source)?;
    for (key, used) in [
        ("exclude_files", component.exclude_files.is_empty()),
        ("ai_models", component.ai_models.is_empty()),
    ] {
        if !used {
            return Err(format!("`{key}` is not supported by wisp"));
        }
    }
    let mut settings = RawSettings::new();
    let mut set =
        |setting: &str, value: String| settings.set(setting, value).map_err(|e| format!("{e}"));
    set("spin-route", route.to_string())?;
    for (key, value) in &component.environment {
        set("env", format!("{key}={value}"))?;
    }
    for files in &component.files {
        let (source, destination) = match files {
            RawFiles::Mount {
                source,
                destination,
            } => (source.as_str(), destination.clone()),
            RawFiles::Pattern(pattern) => {
                let directory = pattern
                    .strip_suffix("/**/*")
                    .or_else(|| pattern.strip_suffix("/**"))
                    .filter(|d| !d.contains(['*', '?', '[']))
                    .ok_or_else(|| format!("`files` pattern `{pattern}`: wisp mounts whole directories; write `\"DIR/**\"` or `{{ source = \"DIR\", destination = \"/DIR\" }}`"))?;
                (directory, format!("/{directory}"))
            }
        };
        set(
            "dir",
            format!("{}:{destination}", dir.join(source).display()),
        )?;
    }
    for host in &component.allowed_outbound_hosts {
        let host = variables.expand(host, false)?;
        // Spin's own app: calls to `http://self.alt/PATH` are served by the
        // function at PATH (a relative URL, which `http://self` allows in
        // Spin, has no authority, and wasi:http refuses it before wisp
        // sees it).
        let self_call = ["http://self", "http://self.alt"]
            .iter()
            .any(|spin| host.eq_ignore_ascii_case(spin));
        let host = if self_call {
            format!("http://{}", crate::settings::SPIN_SELF_HOST)
        } else {
            host
        };
        set("allow-outbound", host)?;
    }
    for store in &component.key_value_stores {
        if store != "default" {
            set("kv", store.clone())?;
        }
    }
    for database in &component.sqlite_databases {
        set("sqlite", database.clone())?;
    }
    let mut secrets = BTreeMap::new();
    for (key, template) in &component.variables {
        let secret = variables.is_secret(template);
        let value = variables.expand(template, true)?;
        if secret {
            secrets.insert(key.clone(), value);
        } else {
            set("config", format!("{key}={value}"))?;
        }
    }
    settings.check().map_err(|e| e.to_string())?;
    let (build, watch) = match component.build {
        Some(build) => {
            let command = match build.command {
                RawCommand::One(command) => command,
                RawCommand::Many(commands) => commands.join(" && "),
            };
            let command = match &build.workdir {
                Some(workdir) => format!("cd '{}' && {command}", workdir.replace('\'', r"'\''")),
                None => command,
            };
            let base = build
                .workdir
                .as_ref()
                .map_or_else(|| dir.to_owned(), |w| dir.join(w));
            (
                Some(command),
                build.watch.iter().map(|w| base.join(w)).collect(),
            )
        }
        None => (None, Vec::new()),
    };
    Ok(ManifestFunction {
        name: name.to_owned(),
        wasm,
        build,
        watch,
        // A private component's function holds a route no request is
        // served by, its own so that it claims no other's.
        route: if route.is_private() {
            format!("{}/{name}", crate::spin::route::PRIVATE_ROUTES)
        } else {
            route.base().to_string()
        },
        settings,
        secrets,
        download,
        line: 0,
    })
}

/// The application's variables, with their values.
struct Variables {
    /// Name → (value, secret).
    values: BTreeMap<String, (String, bool)>,
}

impl Variables {
    /// Each variable's value: `SPIN_VARIABLE_NAME` from `env`, else its
    /// default; a required one without either is an error.
    fn resolve(
        declared: &BTreeMap<String, RawVariable>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Variables, String> {
        let mut values = BTreeMap::new();
        for (name, variable) in declared {
            let from_env = format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase());
            let value = match (env(&from_env), &variable.default) {
                (Some(value), _) => value,
                (None, Some(default)) if !variable.required => default.clone(),
                (None, Some(_)) => {
                    return Err(format!(
                        "variable `{name}` is both `required` and has a `default`: Spin refuses that"
                    ));
                }
                (None, None) if variable.required => {
                    return Err(format!(
                        "variable `{name}` is required: set `{from_env}` in the environment of `wisp up`"
                    ));
                }
                (None, None) => {
                    return Err(format!(
                        "variable `{name}` needs a `default` or `required = true`"
                    ));
                }
            };
            values.insert(name.clone(), (value, variable.secret));
        }
        Ok(Variables { values })
    }

    /// Whether `template` draws on a secret variable.
    fn is_secret(&self, template: &str) -> bool {
        self.names(template).any(|name| {
            self.values
                .get(name.trim())
                .is_some_and(|(_, secret)| *secret)
        })
    }

    /// The names `{{ NAME }}` placeholders of `template` mention.
    fn names<'t>(&self, template: &'t str) -> impl Iterator<Item = &'t str> {
        template
            .split("{{")
            .skip(1)
            .filter_map(|part| part.split_once("}}").map(|(name, _)| name))
    }

    /// `template` with each `{{ NAME }}` replaced by its value; a secret
    /// one only where `secrets_allowed`.
    fn expand(&self, template: &str, secrets_allowed: bool) -> Result<String, String> {
        let mut out = String::new();
        let mut rest = template;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let (name, after) = rest[start + 2..]
                .split_once("}}")
                .ok_or_else(|| format!("`{template}`: a `{{{{` without its `}}}}`"))?;
            let name = name.trim();
            let (value, secret) = self.values.get(name).ok_or_else(|| {
                format!(
                    "`{template}` names variable `{name}`, which `[variables]` does not declare"
                )
            })?;
            if *secret && !secrets_allowed {
                return Err(format!(
                    "`{template}`: secret variable `{name}` may only be used in `variables`"
                ));
            }
            out.push_str(value);
            rest = after;
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_with(text: &str, env: &[(&str, &str)]) -> Result<Manifest, ManifestError> {
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        parse(Path::new("/app/spin.toml"), text, &|name| {
            env.get(name).cloned()
        })
    }

    const APP: &str = r#"
spin_manifest_version = 2

[application]
name = "shop"
version = "1.0.0"

[variables]
greeting = { default = "hello" }
token = { required = true, secret = true }

[[trigger.http]]
route = "/cart/..."
component = "cart"

[[trigger.http]]
route = "/about"
component = "about"

[component.cart]
source = "cart/target/cart.wasm"
environment = { MODE = "test" }
allowed_outbound_hosts = ["https://api.example.com", "http://about.spin.internal"]
key_value_stores = ["default", "sessions"]
sqlite_databases = ["default", "orders"]
files = [{ source = "assets", destination = "/assets" }, "static/**"]
variables = { message = "{{ greeting }}, world", api_key = "Bearer {{ token }}" }
[component.cart.build]
command = ["cargo build --release", "cp a b"]
workdir = "cart"
watch = ["src/**/*.rs"]

[component.about]
source = "about.wasm"

[component.unused]
source = "unused.wasm"
"#;

    #[test]
    fn components_become_functions_with_their_settings() {
        let manifest = parse_with(APP, &[("SPIN_VARIABLE_TOKEN", "s3cret")]).unwrap();
        let names: Vec<_> = manifest.functions.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["about", "cart"]);
        let cart = &manifest.functions[1];
        assert_eq!(cart.route, "/cart");
        assert_eq!(cart.settings.get("spin-route"), ["/cart/..."]);
        assert_eq!(cart.settings.get("env"), ["MODE=test"]);
        assert_eq!(cart.settings.get("kv"), ["sessions"]);
        assert_eq!(cart.settings.get("sqlite"), ["default", "orders"]);
        assert_eq!(
            cart.settings.get("allow-outbound"),
            ["https://api.example.com", "http://about.spin.internal"]
        );
        assert_eq!(cart.settings.get("config"), ["message=hello, world"]);
        assert_eq!(
            cart.secrets.get("api_key").map(String::as_str),
            Some("Bearer s3cret")
        );
        let dirs = cart.settings.get("dir");
        assert!(
            dirs[0].ends_with("assets:/assets") && dirs[1].ends_with("static:/static"),
            "{dirs:?}"
        );
        assert_eq!(
            cart.build.as_deref(),
            Some("cd 'cart' && cargo build --release && cp a b")
        );
        assert!(cart.watch[0].ends_with("cart/src/**/*.rs"));
        assert!(cart.wasm.ends_with("cart/target/cart.wasm"));
        let about = &manifest.functions[0];
        assert_eq!(
            (about.route.as_str(), about.settings.get("spin-route")),
            ("/about", &["/about".to_owned()][..])
        );
        let private = APP.replace("route = \"/about\"", "route = { private = true }");
        let private = parse_with(&private, &[("SPIN_VARIABLE_TOKEN", "x")]).unwrap();
        let about = &private.functions[0];
        assert_eq!(
            (about.route.as_str(), about.settings.get("spin-route")),
            ("/.spin-private/about", &["private".to_owned()][..])
        );
    }

    #[test]
    fn a_required_variable_must_come_from_the_environment() {
        let err = parse_with(APP, &[]).unwrap_err();
        assert!(err.message.contains("SPIN_VARIABLE_TOKEN"), "{err}");
    }

    #[test]
    fn keys_wisp_cannot_honour_are_named() {
        let with = |extra: &str| {
            let text = APP.replace(
                "[component.about]\n",
                &format!("[component.about]\n{extra}\n"),
            );
            parse_with(&text, &[("SPIN_VARIABLE_TOKEN", "x")])
                .unwrap_err()
                .to_string()
        };
        assert!(with("ai_models = [\"llama2-chat\"]").contains("`ai_models` is not supported"));
        assert!(with("sqlite_databases = [\"../x\"]").contains("a database name"));
        assert!(with("colour = \"blue\"").contains("colour"));
        let own = APP.replace(
            "[component.about]\n",
            "[component.about]\nallowed_outbound_hosts = [\"http://self\"]\n",
        );
        let own = parse_with(&own, &[("SPIN_VARIABLE_TOKEN", "x")]).unwrap();
        assert_eq!(
            own.functions[0].settings.get("allow-outbound"),
            ["http://self.alt"]
        );
        assert!(with("files = [\"*.txt\"]").contains("wisp mounts whole directories"));
        assert!(with("allowed_outbound_hosts = [\"{{ token }}\"]").contains("secret variable"));
        assert!(with("variables = { x = \"{{ nope }}\" }").contains("does not declare"));
        let redis = APP.replace(
            "[[trigger.http]]\nroute = \"/about\"",
            "[[trigger.redis]]\nroute = \"/about\"",
        );
        assert!(parse_with(&redis, &[("SPIN_VARIABLE_TOKEN", "x")]).is_err());
        let not_private = APP.replace("route = \"/about\"", "route = { private = false }");
        let err = parse_with(&not_private, &[("SPIN_VARIABLE_TOKEN", "x")]).unwrap_err();
        assert!(err.message.contains("or `{ private = true }`"), "{err}");
    }

    #[test]
    fn a_source_by_url_is_pinned_by_its_digest() {
        let hex = "AB".repeat(32);
        let with = |source: &str| {
            let text = APP.replace("source = \"about.wasm\"", &format!("source = {source}"));
            parse_with(&text, &[("SPIN_VARIABLE_TOKEN", "x")])
        };
        let manifest = with(&format!(
            "{{ url = \"https://example.com/about.wasm\", digest = \"sha256:{hex}\" }}"
        ))
        .unwrap();
        let about = &manifest.functions[0];
        let download = about.download.as_ref().unwrap();
        assert_eq!(download.url, "https://example.com/about.wasm");
        assert_eq!(download.sha256, hex.to_ascii_lowercase());
        assert!(
            about.wasm.ends_with(format!(
                ".spin/wisp-downloads/sha256-{}.wasm",
                download.sha256
            )),
            "{:?}",
            about.wasm
        );
        let refused = |source: &str| with(source).unwrap_err().message;
        assert!(
            refused("{ url = \"https://example.com/a.wasm\" }")
                .contains("`source.digest` is required")
        );
        assert!(
            refused("{ url = \"https://e.com/a.wasm\", digest = \"sha256:abc\" }")
                .contains("64 hex digits")
        );
        assert!(
            refused(&format!(
                "{{ url = \"file:///etc/passwd\", digest = \"sha256:{hex}\" }}"
            ))
            .contains("http://")
        );
        assert!(
            refused("{ registry = \"r.io\", package = \"a:b\", version = \"1\" }")
                .contains("is not supported by wisp: give a file")
        );
    }

    #[test]
    fn a_spin_manifest_is_told_from_a_wisp_manifest() {
        assert!(is_spin_manifest(Path::new("x/spin.toml"), ""));
        assert!(is_spin_manifest(
            Path::new("app.toml"),
            "spin_manifest_version = 2\n"
        ));
        assert!(!is_spin_manifest(Path::new("wisp.toml"), "version = 1\n"));
    }
}
