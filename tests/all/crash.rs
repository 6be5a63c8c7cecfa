//! Crash safety and bad data on disk: a host that crashes at any step of a
//! deploy, a traffic change or a garbage collection restarts with each
//! function whole (old or new) and nothing half-written or orphaned on disk;
//! corrupt artifacts are caught; another engine's artifacts are recompiled
//! from their sources; and a record damaged by hand makes its
//! function unavailable, saying why — in the log (naming the file) and in
//! `wisp ls` — until it is repaired.
//!
//! The crashes are not timed kills that may land anywhere: a debug build of
//! `wisp serve` aborts at the named crash point `WISP_CRASH_POINT` gives
//! (see `host/src/disk/crash_point.rs`), and each test checks first that
//! the crash landed where it should, by what it left on disk.

use crate::support::{Response, Wisp, files_under};
use bytes::Bytes;
use http::{Method, StatusCode};
use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use wisp_test_artifacts as artifacts;

/// The variable that arms a crash point in a debug build of `wisp serve`.
const CRASH_POINT: &str = "WISP_CRASH_POINT";

/// The signal `std::process::abort` raises (Linux).
const SIGABRT: i32 = 6;

/// The guests the crash tests deploy as `app` at `/app`, each answering
/// `GET /app` its own way, so a response tells which one serves.
#[derive(Debug, Clone, Copy)]
enum App {
    Hello,
    Counter,
    Echo,
}

impl App {
    fn wasm(self) -> &'static str {
        match self {
            App::Hello => artifacts::HELLO_COMPONENT,
            App::Counter => artifacts::COUNTER_COMPONENT,
            App::Echo => artifacts::ECHO_COMPONENT,
        }
    }

    fn answered(self, response: &Response) -> bool {
        match self {
            App::Hello => response.text() == "Hello, world!\n",
            App::Counter => response.text() == "1",
            App::Echo => response.header("x-echo-path") == Some("/app"),
        }
    }

    fn bytes(self) -> Bytes {
        Bytes::from(std::fs::read(self.wasm()).unwrap())
    }
}

/// Files under `artifacts/sources` and `artifacts/compiled`, relative to
/// `artifacts/`.
fn stored(data: &Path) -> BTreeSet<PathBuf> {
    let root = data.join("artifacts");
    ["sources", "compiled"]
        .iter()
        .flat_map(|dir| files_under(&root.join(dir)))
        .map(|path| path.strip_prefix(&root).unwrap().to_owned())
        .collect()
}

/// `(directory, extension)` of each of `files`, sorted.
fn kinds<'a>(files: impl IntoIterator<Item = &'a PathBuf>) -> Vec<(String, String)> {
    let mut kinds: Vec<(String, String)> = files
        .into_iter()
        .map(|file| {
            let dir = file.parent().unwrap().to_string_lossy().into_owned();
            let extension = file.extension().unwrap().to_string_lossy().into_owned();
            (dir, extension)
        })
        .collect();
    kinds.sort();
    kinds
}

/// Files a crash left half written: anything in `artifacts/tmp`, and any
/// `*.part` file elsewhere in the data dir.
fn temp_files(data: &Path) -> Vec<PathBuf> {
    let tmp = data.join("artifacts/tmp");
    files_under(data)
        .into_iter()
        .filter(|p| p.starts_with(&tmp) || p.extension().is_some_and(|e| e == "part"))
        .collect()
}

/// The record of `app` as stored.
fn stored_record(data: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(data.join("functions/app.json")).unwrap()).unwrap()
}

/// The numbers of `versions` in a record or a listing.
fn numbers(function: &serde_json::Value) -> Vec<u64> {
    function["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["number"].as_u64().unwrap())
        .collect()
}

/// A traffic split giving all of it to `version`, as records and listings
/// spell it.
fn all_to(version: u64) -> serde_json::Value {
    serde_json::json!([{"version": version, "weight": 100}])
}

/// Restarts `wisp` with `point` armed, sends the request that must reach
/// it, and checks that no answer came back, the process died of `SIGABRT`
/// and its log names the point. Returns the stopped server.
async fn crash_at(wisp: Wisp, point: &str, method: Method, path: &str, body: Bytes) -> Wisp {
    let mut wisp = wisp.restart_with_env(&[(CRASH_POINT, point)]);
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<Bytes>>();
    let request = http::Request::builder()
        .method(method)
        .uri(wisp.admin_url(path))
        .body(http_body_util::Full::new(body))
        .unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(120), client.request(request))
        .await
        .expect("the crash or an answer within 120 s");
    assert!(
        answer.is_err(),
        "`{point}` was not reached: the request was answered {:?}\n{}",
        answer.map(|r| r.status()),
        wisp.log()
    );
    let status = tokio::task::block_in_place(|| wisp.wait_for_exit());
    assert_eq!(status.signal(), Some(SIGABRT), "{status}\n{}", wisp.log());
    let log = wisp.log();
    assert!(
        log.contains(&format!("crash point `{point}` reached; aborting")),
        "{log}"
    );
    wisp
}

/// Asserts what the restarted `wisp` has of `app`: exactly `versions`, all
/// loaded, `traffic`, `serving` answering `/app` as version `version`;
/// no temp file anywhere; and on disk the source of each listed version and
/// one compiled artifact with its checksum per source, nothing else.
async fn assert_whole(
    wisp: &Wisp,
    versions: &[u64],
    traffic: serde_json::Value,
    serving: App,
    version: u64,
) {
    let data = wisp.data_dir();
    assert_eq!(
        temp_files(&data),
        Vec::<PathBuf>::new(),
        "temp files remain"
    );
    let info = wisp.admin_get("/v1/functions/app").await.json();
    assert_eq!(numbers(&info), versions, "{info}");
    assert_eq!(info["traffic"], traffic, "{info}");
    assert!(info.get("unavailable").is_none(), "{info}");
    let listed = info["versions"].as_array().unwrap();
    assert!(listed.iter().all(|v| v["loaded"] == true), "{info}");
    let response = wisp.get("/app").await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    assert_eq!(
        response.header("x-wisp-version"),
        Some(version.to_string().as_str())
    );
    assert!(
        serving.answered(&response),
        "`/app` is not {serving:?}: {response:?}"
    );

    let sources: BTreeSet<PathBuf> = listed
        .iter()
        .map(|v| PathBuf::from(format!("sources/{}.wasm", v["source"].as_str().unwrap())))
        .collect();
    let on_disk = stored(&data);
    let (stored_sources, compiled): (BTreeSet<PathBuf>, BTreeSet<PathBuf>) = on_disk
        .iter()
        .cloned()
        .partition(|p| p.starts_with("sources"));
    assert_eq!(stored_sources, sources, "the sources are the listed ones");
    let stems: BTreeSet<_> = compiled.iter().map(|p| p.with_extension("")).collect();
    let expected: BTreeSet<PathBuf> = stems
        .iter()
        .flat_map(|stem| [stem.with_extension("cwasm"), stem.with_extension("sum")])
        .collect();
    assert_eq!(compiled, expected, "each artifact has its checksum, alone");
    assert_eq!(
        stems.len(),
        sources.len(),
        "one artifact per source: {on_disk:?}"
    );
}

/// Deploys hello as v1, crashes at `point` while deploying echo as v2, and
/// checks the crash left a temp file (`temp_left`) and added exactly
/// `added` — `(directory, extension)` under `artifacts/` — to what v1
/// stored. After a restart v1 is whole: it serves alone, its record and its
/// files are exactly as before, the temp file and the added files are gone.
async fn assert_cut_off_deploy_keeps_the_old_version(
    point: &str,
    temp_left: bool,
    added: &[(&str, &str)],
) {
    let wisp = Wisp::start();
    wisp.deploy_ok("app", App::Hello.wasm(), "route=/app").await;
    let data = wisp.data_dir();
    let record = std::fs::read(data.join("functions/app.json")).unwrap();
    let before = stored(&data);

    let wisp = crash_at(
        wisp,
        point,
        Method::PUT,
        "/v1/functions/app?route=/app",
        App::Echo.bytes(),
    )
    .await;
    assert_eq!(
        !temp_files(&data).is_empty(),
        temp_left,
        "{:?}",
        temp_files(&data)
    );
    let after_crash = stored(&data);
    assert!(after_crash.is_superset(&before), "v1's files are intact");
    let expected: Vec<(String, String)> = added
        .iter()
        .map(|(dir, extension)| ((*dir).to_owned(), (*extension).to_owned()))
        .collect();
    assert_eq!(kinds(after_crash.difference(&before)), expected);

    let wisp = wisp.restart_stopped();
    assert_whole(&wisp, &[1], all_to(1), App::Hello, 1).await;
    assert_eq!(
        std::fs::read(data.join("functions/app.json")).unwrap(),
        record,
        "the record is v1's, byte for byte"
    );
    assert_eq!(stored(&data), before, "exactly v1's files remain");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_before_a_temp_file_is_renamed_keeps_the_old_version_and_no_temp_file() {
    assert_cut_off_deploy_keeps_the_old_version("temp-written", true, &[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_after_the_source_is_stored_keeps_the_old_version_and_drops_the_source() {
    assert_cut_off_deploy_keeps_the_old_version("source-written", false, &[("sources", "wasm")])
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_before_the_artifact_is_summed_keeps_the_old_version_and_drops_the_artifact() {
    assert_cut_off_deploy_keeps_the_old_version(
        "compiled-written",
        false,
        &[("compiled", "cwasm"), ("sources", "wasm")],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_before_the_record_is_written_keeps_the_old_version_and_drops_its_files() {
    assert_cut_off_deploy_keeps_the_old_version(
        "artifact-written",
        false,
        &[
            ("compiled", "cwasm"),
            ("compiled", "sum"),
            ("sources", "wasm"),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_after_the_record_is_written_serves_the_new_version_and_drops_the_retired_one() {
    // Keeping one version, deploying v3 retires v1 (v2 stays as the rollback
    // target): the record drops v1 before garbage collection removes its files.
    let wisp = Wisp::start_with(&["--keep-versions", "1"]);
    wisp.deploy_ok("app", App::Hello.wasm(), "route=/app").await;
    let data = wisp.data_dir();
    let v1_files = stored(&data);
    wisp.deploy_ok("app", App::Counter.wasm(), "route=/app")
        .await;

    let wisp = crash_at(
        wisp,
        "record-written",
        Method::PUT,
        "/v1/functions/app?route=/app",
        App::Echo.bytes(),
    )
    .await;
    let record = stored_record(&data);
    assert_eq!(numbers(&record), [2, 3], "{record}");
    assert_eq!(record["traffic"], all_to(3), "{record}");
    let after_crash = stored(&data);
    assert!(
        after_crash.is_superset(&v1_files),
        "no garbage was collected yet"
    );

    let wisp = wisp.restart_stopped();
    assert_whole(&wisp, &[2, 3], all_to(3), App::Echo, 3).await;
    let v2_and_v3: BTreeSet<PathBuf> = after_crash.difference(&v1_files).cloned().collect();
    assert_eq!(stored(&data), v2_and_v3, "v1's files are collected");
    cli_ok(&wisp, &["rollback", "app"]);
    assert!(
        App::Counter.answered(&wisp.get("/app").await),
        "v2 is whole"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_after_a_traffic_change_is_recorded_serves_the_new_split() {
    let wisp = Wisp::start();
    wisp.deploy_ok("app", App::Hello.wasm(), "route=/app").await;
    wisp.deploy_ok("app", App::Echo.wasm(), "route=/app").await;
    let data = wisp.data_dir();
    let before = stored(&data);

    let wisp = crash_at(
        wisp,
        "record-written",
        Method::PUT,
        "/v1/functions/app/traffic",
        Bytes::from(all_to(1).to_string()),
    )
    .await;
    assert_eq!(stored_record(&data)["traffic"], all_to(1));

    let wisp = wisp.restart_stopped();
    assert_whole(&wisp, &[1, 2], all_to(1), App::Hello, 1).await;
    assert_eq!(stored(&data), before, "no file was added or collected");
    assert_eq!(
        stored_record(&data)["previous_traffic"],
        all_to(2),
        "the rollback target is the split before the change"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_midway_through_garbage_collection_finishes_it_at_start() {
    let wisp = Wisp::start();
    wisp.deploy_ok("app", App::Hello.wasm(), "route=/app").await;
    let data = wisp.data_dir();
    let v1_files = stored(&data);
    wisp.deploy_ok("app", App::Echo.wasm(), "route=/app").await;
    let v2_files: BTreeSet<PathBuf> = stored(&data).difference(&v1_files).cloned().collect();

    let wisp = crash_at(
        wisp,
        "gc-midway",
        Method::DELETE,
        "/v1/functions/app/versions/1",
        Bytes::new(),
    )
    .await;
    assert_eq!(numbers(&stored_record(&data)), [2]);
    let left_of_v1: Vec<PathBuf> = stored(&data).difference(&v2_files).cloned().collect();
    assert_eq!(
        kinds(&left_of_v1),
        [
            ("compiled".to_owned(), "cwasm".to_owned()),
            ("compiled".to_owned(), "sum".to_owned())
        ],
        "v1's source went first, its artifact was left"
    );

    let wisp = wisp.restart_stopped();
    assert_whole(&wisp, &[2], all_to(2), App::Echo, 2).await;
    assert_eq!(stored(&data), v2_files, "exactly v2's files remain");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_in_the_middle_of_rm_deletes_the_bucket_and_secrets_at_start() {
    let wisp = Wisp::start();
    wisp.deploy_ok("kept", artifacts::KV_DRAFT_COMPONENT, "route=/kept")
        .await;
    let url = wisp.url("/kept?op=set&key=k");
    let set = crate::support::send(Method::PUT, &url, &[], Bytes::from_static(b"v")).await;
    assert_eq!(set.status, StatusCode::OK);
    let secret = wisp.cli_with_stdin(&["secret", "set", "kept", "TOKEN"], b"t");
    assert!(secret.status.success(), "{secret:?}");
    let secrets_file = wisp.data_dir().join("secrets/kept.json");
    assert!(secrets_file.exists());

    let wisp = crash_at(
        wisp,
        "record-removed",
        Method::DELETE,
        "/v1/functions/kept",
        Bytes::new(),
    )
    .await;
    let wisp = wisp.restart_stopped();
    assert!(
        wisp.log().contains("removed before a crash"),
        "{}",
        wisp.log()
    );
    assert!(!secrets_file.exists(), "the secrets went with the function");
    assert_eq!(
        wisp.admin_get("/v1/functions/kept").await.status,
        StatusCode::NOT_FOUND
    );
    wisp.deploy_ok("kept", artifacts::KV_DRAFT_COMPONENT, "route=/kept")
        .await;
    let fresh = wisp.get("/kept?key=k").await;
    assert_eq!(
        fresh.status,
        StatusCode::NOT_FOUND,
        "a new function starts with an empty bucket"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn corrupt_or_truncated_artifacts_are_rebuilt_from_source() {
    let mut wisp = Wisp::start();
    wisp.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    wisp.deploy_ok("cgi", artifacts::CGI_HELLO_MODULE, "route=/cgi")
        .await;
    wisp.kill9();
    let data = wisp.data_dir();
    let mut artifacts_on_disk: Vec<_> = files_under(&data.join("artifacts/compiled"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    artifacts_on_disk.sort();
    assert_eq!(artifacts_on_disk.len(), 2);
    // One truncated, one with a flipped byte and its length unchanged.
    let first = std::fs::read(&artifacts_on_disk[0]).unwrap();
    std::fs::write(&artifacts_on_disk[0], &first[..first.len() / 2]).unwrap();
    let mut second = std::fs::read(&artifacts_on_disk[1]).unwrap();
    let middle = second.len() / 2;
    second[middle] ^= 0xff;
    std::fs::write(&artifacts_on_disk[1], &second).unwrap();

    let wisp = wisp.restart_stopped();
    assert_eq!(
        wisp.admin_get("/healthz").await.json()["compilations"],
        0,
        "code loads (and is checked) on its first request, not at start"
    );
    assert_eq!(wisp.get("/hello").await.text(), "Hello, world!\n");
    assert!(wisp.get("/cgi").await.text().starts_with("Hello from CGI!"));
    assert_eq!(
        wisp.admin_get("/healthz").await.json()["compilations"],
        2,
        "both were rebuilt"
    );
    assert!(wisp.log().contains("corrupt"), "the corruption is logged");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unrecoverable_function_is_reported_and_the_rest_still_serve() {
    let mut wisp = Wisp::start();
    let report = wisp
        .deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    wisp.deploy_ok("cgi", artifacts::CGI_HELLO_MODULE, "route=/cgi")
        .await;
    wisp.kill9();
    let data = wisp.data_dir();
    let source = report["source"].as_str().unwrap();
    std::fs::write(
        data.join(format!("artifacts/sources/{source}.wasm")),
        b"garbage",
    )
    .unwrap();
    let compiled = files_under(&data.join("artifacts/compiled"));
    assert_eq!(
        compiled.len(),
        4,
        "an artifact and its checksum per function: {compiled:?}"
    );
    for artifact in compiled {
        std::fs::write(artifact, b"garbage").unwrap();
    }
    std::fs::write(data.join("functions/zzz.json"), b"{ this is not a record").unwrap();

    let wisp = wisp.restart_stopped();
    assert!(
        wisp.get("/cgi").await.text().starts_with("Hello from CGI!"),
        "cgi was rebuilt from its source"
    );
    assert_eq!(
        wisp.admin_get("/healthz").await.json()["compilations"],
        1,
        "only cgi could be rebuilt"
    );
    let broken = wisp.get("/hello").await;
    assert_eq!(
        broken.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        broken.text()
    );
    assert!(
        broken.json()["error"]
            .as_str()
            .unwrap()
            .contains("could not be loaded")
    );
    let info = wisp.admin_get("/v1/functions/hello").await.json();
    assert_eq!(info["versions"][0]["loaded"], false);
    let log = wisp.log();
    assert!(log.contains("version not loaded"), "{log}");
    assert!(log.contains("unreadable record skipped"), "{log}");
}

/// Stops `wisp`, lets `damage` edit its data dir, and starts a new server on it.
fn restart_after(mut wisp: Wisp, damage: impl FnOnce(&Path)) -> Wisp {
    wisp.kill9();
    damage(&wisp.data_dir());
    wisp.restart_stopped()
}

/// Rewrites the record of `name` through `edit`.
fn edit_record(data: &Path, name: &str, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = data.join(format!("functions/{name}.json"));
    let mut record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut record);
    std::fs::write(&path, serde_json::to_vec_pretty(&record).unwrap()).unwrap();
}

fn cli_ok(wisp: &Wisp, args: &[&str]) -> String {
    let output = tokio::task::block_in_place(|| wisp.cli(args));
    assert!(
        output.status.success(),
        "wisp {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Why `wisp ls --json` says `name` is unavailable, if it does.
fn unavailable(wisp: &Wisp, name: &str) -> Option<String> {
    let functions: serde_json::Value =
        serde_json::from_str(&cli_ok(wisp, &["ls", "--json"])).unwrap();
    let function = functions
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("`{name}` is not listed: {functions}"));
    function["unavailable"].as_str().map(str::to_owned)
}

/// Asserts that `name` is unavailable for a reason containing `needle`: in
/// `wisp ls --json`, in the `wisp ls` table, in a warning naming its record
/// file, and to requests on `path` (503) and through `wisp invoke`.
async fn assert_unavailable(wisp: &Wisp, name: &str, path: &str, needle: &str) {
    let reason =
        unavailable(wisp, name).unwrap_or_else(|| panic!("`{name}` is not marked unavailable"));
    assert!(reason.contains(needle), "{reason}");
    let table = cli_ok(wisp, &["ls"]);
    assert!(
        table.contains(&format!("{name} is unavailable: {reason}")),
        "{table}"
    );
    let record = wisp.data_dir().join(format!("functions/{name}.json"));
    let log = wisp.log();
    assert!(
        log.lines().any(|l| l.contains("WARN")
            && l.contains(&record.display().to_string())
            && l.contains(needle)),
        "no warning names `{}` with `{needle}`:\n{log}",
        record.display()
    );
    let response = wisp.get(path).await;
    assert_eq!(
        response.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        response.text()
    );
    assert_eq!(response.json()["kind"], "unavailable");
    let invoked = tokio::task::block_in_place(|| wisp.cli(&["invoke", name]));
    assert!(!invoked.status.success(), "a damaged function was invoked");
}

#[tokio::test(flavor = "multi_thread")]
async fn traffic_naming_a_missing_version_is_reported_until_repaired() {
    let wisp = Wisp::start();
    wisp.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    let wisp = restart_after(wisp, |data| {
        edit_record(data, "hello", |r| {
            r["traffic"] = serde_json::json!([{"version": 9, "weight": 100}]);
        });
    });
    assert_unavailable(&wisp, "hello", "/hello", "there is no version 9").await;

    cli_ok(&wisp, &["traffic", "hello", "v1=100"]);
    assert_eq!(unavailable(&wisp, "hello"), None);
    assert_eq!(wisp.get("/hello").await.text(), "Hello, world!\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn weights_not_summing_to_100_are_reported_until_repaired() {
    let wisp = Wisp::start();
    wisp.deploy_ok("app", artifacts::HELLO_COMPONENT, "route=/app")
        .await;
    wisp.deploy_ok("app", artifacts::COUNTER_COMPONENT, "route=/app")
        .await;
    let wisp = restart_after(wisp, |data| {
        edit_record(data, "app", |r| {
            r["traffic"] =
                serde_json::json!([{"version": 1, "weight": 50}, {"version": 2, "weight": 40}]);
        });
    });
    assert_unavailable(&wisp, "app", "/app", "weights sum to 90, not 100").await;

    cli_ok(&wisp, &["traffic", "app", "v1=50", "v2=50"]);
    assert_eq!(unavailable(&wisp, "app"), None);
    assert_eq!(wisp.get("/app").await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_route_claimed_by_two_functions_serves_neither_until_one_leaves() {
    let wisp = Wisp::start();
    wisp.deploy_ok("a", artifacts::HELLO_COMPONENT, "route=/a")
        .await;
    wisp.deploy_ok("b", artifacts::COUNTER_COMPONENT, "route=/b")
        .await;
    let wisp = restart_after(wisp, |data| {
        edit_record(data, "b", |r| r["route"] = "/a".into());
    });
    assert_unavailable(&wisp, "a", "/a", "also claimed by function `b`").await;
    assert_unavailable(&wisp, "b", "/a", "also claimed by function `a`").await;
    assert_eq!(wisp.get("/b").await.status, StatusCode::NOT_FOUND);

    cli_ok(&wisp, &["rm", "b"]);
    assert_eq!(unavailable(&wisp, "a"), None);
    assert_eq!(wisp.get("/a").await.text(), "Hello, world!\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_version_whose_source_is_missing_is_reported_and_the_log_names_the_file() {
    let wisp = Wisp::start();
    let report = wisp
        .deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    let hash = report["source"].as_str().unwrap().to_owned();
    let source = wisp
        .data_dir()
        .join(format!("artifacts/sources/{hash}.wasm"));
    let wisp = restart_after(wisp, |_| std::fs::remove_file(&source).unwrap());
    let reason = format!("the stored source of v1 (`{hash}`) is missing from the data dir");
    assert_unavailable(&wisp, "hello", "/hello", &reason).await;
    let listed = unavailable(&wisp, "hello").unwrap();
    assert!(
        !listed.contains(&wisp.data_dir().display().to_string()),
        "the admin API names no host path: {listed}"
    );
    assert!(
        wisp.log().contains(&source.display().to_string()),
        "the host log names the missing file"
    );

    // A new version takes the traffic; retiring the damaged one repairs it.
    wisp.deploy_ok("hello", artifacts::COUNTER_COMPONENT, "route=/hello")
        .await;
    assert!(unavailable(&wisp, "hello").is_some(), "v1 is still damaged");
    cli_ok(&wisp, &["retire", "hello", "v1"]);
    assert_eq!(unavailable(&wisp, "hello"), None);
    assert_eq!(wisp.get("/hello").await.text(), "1");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_engine_recompiles_from_source() {
    let mut wisp = Wisp::start();
    wisp.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    wisp.kill9();
    // Artifacts are keyed by the engine's compatibility fingerprint (with
    // the source's hash). What an engine with another fingerprint left is
    // an artifact and checksum under another key: this engine's key is
    // renamed to one it would never compute.
    let compiled = wisp.data_dir().join("artifacts/compiled");
    let ours = files_under(&compiled);
    assert_eq!(ours.len(), 2, "an artifact and its checksum: {ours:?}");
    let key = ours[0].file_stem().unwrap().to_str().unwrap().to_owned();
    assert_eq!(key.len(), 64, "a blake3 hex key: {key}");
    let other: String = key.chars().rev().collect();
    assert_ne!(other, key);
    for extension in ["cwasm", "sum"] {
        std::fs::rename(
            compiled.join(format!("{key}.{extension}")),
            compiled.join(format!("{other}.{extension}")),
        )
        .unwrap();
    }

    let wisp = wisp.restart_stopped();
    assert_eq!(
        wisp.admin_get("/healthz").await.json()["compilations"],
        1,
        "hello was recompiled from its stored source"
    );
    assert_eq!(wisp.metric("wisp_compilations_total", &[]).await, 1.0);
    assert_eq!(wisp.get("/hello").await.text(), "Hello, world!\n");
    // Compiled again under this engine's key; the other engine's is collected.
    let now: Vec<_> = files_under(&compiled)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(now, [format!("{key}.cwasm"), format!("{key}.sum")]);
}
