//! The stumbles of a new user's first hour, each run through the real
//! `wisp` binary against a real `wisp serve`: values shown as typed, errors
//! that say what to do, flags where a user puts them, nothing stored or
//! removed by surprise.

use crate::support::{WISP, Wisp, eventually, send, stderr, stdout};
use bytes::Bytes;
use http::{Method, StatusCode};
use std::process::{Command, Output};
use std::time::Duration;
use wisp_test_artifacts as artifacts;

/// Runs `wisp ARGS` against `wisp`'s admin API; returns its output.
fn cli(wisp: &Wisp, args: &[&str]) -> Output {
    tokio::task::block_in_place(|| wisp.cli(args))
}

/// Runs `wisp ARGS` with no admin URL in the environment.
fn bare(args: &[&str]) -> Output {
    tokio::task::block_in_place(|| {
        Command::new(WISP)
            .args(args)
            .env_remove("WISP_ADMIN_URL")
            .env_remove("WISP_ADMIN_TOKEN")
            .output()
            .expect("run wisp")
    })
}

fn ok(output: Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what} failed: {}",
        stderr(&output)
    );
    stdout(&output)
}

fn fails(output: Output, what: &str) -> String {
    assert!(
        !output.status.success(),
        "{what} should fail: {}",
        stdout(&output)
    );
    stderr(&output)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_shows_what_was_typed_and_says_what_to_do() {
    let wisp = Wisp::start();
    let empty = ok(cli(&wisp, &["ls"]), "ls");
    assert!(empty.contains("no functions yet"), "{empty}");

    ok(
        cli(
            &wisp,
            &[
                "deploy",
                "echo",
                artifacts::ECHO_COMPONENT,
                "--route",
                "/echo",
                "--env",
                "V=2",
                "--allow-outbound",
                "http://hello.wisp.internal",
                "--config",
                "greeting=Hello there",
            ],
        ),
        "deploy",
    );
    let versions = ok(cli(&wisp, &["versions", "echo"]), "versions");
    assert!(
        versions.contains("env=V=2")
            && versions.contains("allow-outbound=http://hello.wisp.internal")
            && versions.contains("config=\"greeting=Hello there\"")
            && !versions.contains("%3D")
            && !versions.contains("%3A"),
        "{versions}"
    );

    // `wisp invoke`: the host's refusal as an error; `-d` posts, `-X` wins.
    let missing = fails(cli(&wisp, &["invoke", "nosuch"]), "invoke nosuch");
    assert!(
        missing.contains("error: no function named `nosuch` is deployed"),
        "{missing}"
    );
    let posted = ok(
        cli(&wisp, &["invoke", "echo", "-i", "-d", "hi"]),
        "invoke -d",
    );
    assert!(
        posted.contains("x-echo-method: POST") && posted.ends_with("hi"),
        "{posted}"
    );
    let put = ok(
        cli(&wisp, &["invoke", "echo", "-i", "-X", "PUT", "-d", "hi"]),
        "invoke -X PUT",
    );
    assert!(put.contains("x-echo-method: PUT"), "{put}");

    // `--admin`, `--token` and `--json` before the verb as well as after.
    let admin = wisp.admin_url("");
    let listed = ok(
        bare(&["--admin", &admin, "--json", "ls"]),
        "wisp --admin URL --json ls",
    );
    let listed: serde_json::Value = serde_json::from_str(&listed).expect("JSON");
    assert_eq!(listed[0]["name"], "echo", "{listed}");
    ok(bare(&["ls", "--admin", &admin]), "wisp ls --admin URL");
    let refused = fails(bare(&["--json", "serve"]), "wisp --json serve");
    assert!(refused.contains("does not take `--json`"), "{refused}");
    // The public port is not the admin API, and the CLI says so.
    let public = wisp.url("");
    let wrong = fails(bare(&["ls", "--admin", &public]), "ls on the public port");
    assert!(
        wrong.contains("public listener") && wrong.contains("--admin URL"),
        "{wrong}"
    );
    let help = ok(bare(&["ls", "--help"]), "ls --help");
    assert!(
        help.contains("$WISP_ADMIN_URL") && !help.contains("WISP_ADMIN_URL="),
        "{help}"
    );

    // Secrets: nothing removed is not "removed"; nothing typed is not stored.
    let absent = fails(cli(&wisp, &["secret", "rm", "echo", "nope"]), "secret rm");
    assert!(absent.contains("echo has no secret named nope"), "{absent}");
    let empty = tokio::task::block_in_place(|| {
        wisp.cli_with_stdin(&["secret", "set", "echo", "token"], b"")
    });
    let empty = fails(empty, "secret set from empty stdin");
    assert!(empty.contains("stdin was empty"), "{empty}");
    let names = ok(cli(&wisp, &["secret", "ls", "echo"]), "secret ls");
    assert!(names.contains("echo has no secrets"), "{names}");

    let calls = ok(
        cli(&wisp, &["calls", "ls", "--function", "nosuch"]),
        "calls ls",
    );
    assert!(
        calls.contains("no function named nosuch is deployed"),
        "{calls}"
    );
    let dir = fails(
        cli(
            &wisp,
            &[
                "deploy",
                "other",
                artifacts::HELLO_COMPONENT,
                "--route",
                "/other",
                "--dir",
                "/no/such/dir:/static",
            ],
        ),
        "deploy with a missing --dir",
    );
    assert!(
        dir.contains("expected a HOST_DIR that is an existing directory"),
        "{dir}"
    );
    let removed = ok(cli(&wisp, &["rm", "echo"]), "rm");
    assert!(removed.contains("its logs"), "{removed}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_over_the_limit_is_refused_in_the_units_it_was_set_in() {
    let wisp = Wisp::start_with(&["--max-upload", "1KiB"]);
    let large = fails(
        cli(
            &wisp,
            &[
                "deploy",
                "hello",
                artifacts::HELLO_COMPONENT,
                "--route",
                "/h",
            ],
        ),
        "deploy over --max-upload",
    );
    assert!(large.contains("the limit of 1KiB"), "{large}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_data_dir_in_use_names_its_owner_and_a_failed_bind_leaves_nothing() {
    let wisp = Wisp::start();
    let data = wisp.data_dir();
    let second = tokio::task::block_in_place(|| {
        Command::new(WISP)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(["--admin-listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .output()
            .expect("run a second wisp serve")
    });
    let refused = fails(second, "a second host on one data dir");
    assert!(
        refused.contains("in use by another wisp host")
            && refused.contains(&format!("(PID {})", wisp.pid())),
        "{refused}"
    );
    // The first host is untouched.
    assert_eq!(wisp.admin_get("/healthz").await.status, StatusCode::OK);

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let parent = tempfile::tempdir().unwrap();
    let fresh = parent.path().join("fresh");
    let unbound = tokio::task::block_in_place(|| {
        Command::new(WISP)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--admin-listen", "127.0.0.1:0", "--data-dir"])
            .arg(&fresh)
            .output()
            .expect("run wisp serve")
    });
    let refused = fails(unbound, "serve on a port in use");
    assert!(refused.contains("binding the public listener"), "{refused}");
    assert!(!fresh.exists(), "a failed start leaves no data dir behind");
}

#[tokio::test(flavor = "multi_thread")]
async fn traces_say_where_they_go_and_warn_when_nothing_takes_them() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let wisp = Wisp::start_with_env(
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    assert!(
        wisp.log().contains("exporting traces over OTLP/HTTP")
            && wisp.log().contains(&format!("{endpoint}/v1/traces")),
        "{}",
        wisp.log()
    );
    wisp.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    let warned = eventually(Duration::from_secs(30), async || {
        send(Method::GET, &wisp.url("/hello"), &[], Bytes::new()).await;
        wisp.log().contains("exporting traces failed")
    })
    .await;
    assert!(warned, "{}", wisp.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn up_previews_with_dry_run_and_reports_in_json() {
    let wisp = Wisp::start();
    wisp.deploy_ok("stray", artifacts::ECHO_COMPONENT, "route=/stray")
        .await;
    let dir = tempfile::tempdir().unwrap();
    let wasm = std::fs::canonicalize(artifacts::HELLO_COMPONENT).unwrap();
    let manifest = dir.path().join("wisp.toml");
    std::fs::write(
        &manifest,
        format!(
            "version = 1\n[functions.hello]\nwasm = \"{}\"\nroute = \"/hello\"\n",
            wasm.display()
        ),
    )
    .unwrap();
    let manifest = manifest.to_str().unwrap();
    let preview = ok(
        cli(&wisp, &["up", "-f", manifest, "--prune", "--dry-run"]),
        "up --dry-run",
    );
    assert!(
        preview.contains("+ hello: would be created")
            && preview.contains("- stray: would be removed"),
        "{preview}"
    );
    let names = || async {
        let list = wisp.admin_get("/v1/functions").await.json();
        let mut names: Vec<String> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(names().await, ["stray"], "a dry run changes nothing");

    let done = ok(
        cli(&wisp, &["up", "-f", manifest, "--prune", "--json"]),
        "up --json",
    );
    let done: serde_json::Value = serde_json::from_str(&done).expect("JSON");
    assert_eq!(
        done,
        serde_json::json!([
            {"change": "created", "name": "hello", "version": 1},
            {"change": "removed", "name": "stray"},
        ])
    );
    assert_eq!(names().await, ["hello"]);
    let split = ok(
        cli(&wisp, &["--json", "traffic", "hello", "v1=100"]),
        "traffic --json",
    );
    let split: serde_json::Value = serde_json::from_str(&split).expect("JSON");
    assert_eq!(split["traffic"][0]["weight"], 100, "{split}");
}
