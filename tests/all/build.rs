//! Builds on the host: `wisp deploy NAME --source DIR` sends a source tree,
//! the host builds it with the language's real toolchain (clang with
//! wasi-libc, cargo) in a jailed child process and deploys the result. A
//! failed build deploys nothing; a build past its limits is stopped; a
//! build script cannot read the host's secrets or files, write outside its
//! directories, reach the network or signal the host.

use crate::support::{Wisp, committed, eventually, git, send, stderr, stdout};
use bytes::Bytes;
use http::{Method, StatusCode};
use std::path::Path;
use std::time::{Duration, Instant};

/// Writes `files` (path, text) under `dir`.
fn tree(dir: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

fn c_tree(dir: &Path, greeting: &str) {
    tree(
        dir,
        &[(
            "main.c",
            &format!(
                "#include <stdio.h>\nint main(void) {{ printf(\"Content-Type: text/plain\\r\\n\\r\\n{greeting}\\n\"); return 0; }}\n"
            ),
        )],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_c_tree_is_built_on_the_host_and_a_broken_one_leaves_it_serving() {
    let wisp = Wisp::start();
    let source = tempfile::tempdir().unwrap();
    let dir = source.path().to_str().unwrap();
    c_tree(source.path(), "built on the host");
    let deployed = wisp.cli(&["deploy", "greet", "--source", dir, "--route", "/greet"]);
    assert!(deployed.status.success(), "{}", stderr(&deployed));
    assert!(
        stderr(&deployed).contains("building `greet` with c: clang --target=wasm32-wasi"),
        "the build streams: {}",
        stderr(&deployed)
    );
    assert!(
        stdout(&deployed).contains("deployed greet v1 (cgi)"),
        "{}",
        stdout(&deployed)
    );
    let served = wisp.get("/greet").await;
    assert_eq!(served.status, StatusCode::OK);
    assert_eq!(served.text(), "built on the host\n");
    let versions = wisp.admin_get("/v1/functions/greet/versions").await.json();
    let origin = versions[0]["origin"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(origin.starts_with("built on the host (c, "), "{versions}");
    let listed = stdout(&wisp.cli(&["ls"]));
    assert!(listed.contains("builds from source"), "{listed}");
    let log = wisp.cli(&["logs", "greet", "--build"]);
    assert!(
        stdout(&log).contains("clang --target=wasm32-wasi"),
        "{}",
        stdout(&log)
    );

    // A tree that does not compile: the push fails with clang's own words,
    // and v1 keeps serving.
    tree(
        source.path(),
        &[("main.c", "int main(void) { return nope; }\n")],
    );
    let broken = wisp.cli(&["deploy", "greet", "--source", dir]);
    assert!(!broken.status.success());
    let said = stderr(&broken);
    assert!(
        said.contains("use of undeclared identifier 'nope'"),
        "{said}"
    );
    assert!(
        said.contains("the build command failed (exit status 1)"),
        "{said}"
    );
    assert_eq!(wisp.get("/greet").await.text(), "built on the host\n");
    let info = wisp.admin_get("/v1/functions/greet").await.json();
    assert_eq!(info["versions"].as_array().unwrap().len(), 1, "{info}");

    // Two builds of one function at once (each sleeps first, so they
    // overlap): the second waits for the first, and both land.
    c_tree(source.path(), "second");
    tree(
        source.path(),
        &[(
            "wisp.toml",
            "version = 1\n[functions.greet]\nroute = \"/greet\"\nbuild = \"sleep 2 && clang --target=wasm32-wasi --sysroot=/usr -O2 -o greet.wasm main.c\"\nwasm = \"greet.wasm\"\n",
        )],
    );
    let (a, b) = tokio::join!(
        tokio::task::spawn_blocking({
            let cli = wisp.cli_command(&["deploy", "greet", "--source", dir]);
            move || cli()
        }),
        tokio::task::spawn_blocking({
            let cli = wisp.cli_command(&["deploy", "greet", "--source", dir]);
            move || cli()
        }),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(
        a.status.success() && b.status.success(),
        "{} / {}",
        stderr(&a),
        stderr(&b)
    );
    assert!(
        format!("{}{}", stderr(&a), stderr(&b)).contains("waiting for the build of `greet`"),
        "{} / {}",
        stderr(&a),
        stderr(&b)
    );
    assert_eq!(wisp.get("/greet").await.text(), "second\n");

    // Removing the function removes its builds.
    assert!(wisp.data_dir().join("builds/greet").exists());
    assert!(wisp.cli(&["rm", "greet"]).status.success());
    assert!(!wisp.data_dir().join("builds/greet").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rust_tree_builds_with_cargo_and_its_second_build_reuses_the_cache() {
    let wisp = Wisp::start();
    let source = tempfile::tempdir().unwrap();
    let dir = source.path().to_str().unwrap();
    let main = |text: &str| {
        format!(
            "fn main() {{ print!(\"Content-Type: text/plain\\r\\n\\r\\n{{}}\\n\", helper::shout(\"{text}\")); }}\n"
        )
    };
    tree(
        source.path(),
        &[
            (
                "Cargo.toml",
                "[package]\nname = \"shout\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nhelper = { path = \"helper\" }\n\n[workspace]\n",
            ),
            (
                ".cargo/config.toml",
                "[build]\ntarget = \"wasm32-wasip1\"\n",
            ),
            ("src/main.rs", &main("first")),
            (
                "helper/Cargo.toml",
                "[package]\nname = \"helper\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
            ),
            (
                "helper/src/lib.rs",
                "pub fn shout(s: &str) -> String { s.to_uppercase() }\n",
            ),
        ],
    );
    let first = wisp.cli(&["deploy", "shout", "--source", dir, "--route", "/shout"]);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(
        stderr(&first).contains("Compiling helper"),
        "{}",
        stderr(&first)
    );
    assert_eq!(wisp.get("/shout").await.text(), "FIRST\n");

    tree(source.path(), &[("src/main.rs", &main("second"))]);
    let second = wisp.cli(&["deploy", "shout", "--source", dir]);
    assert!(second.status.success(), "{}", stderr(&second));
    let said = stderr(&second);
    assert!(said.contains("Compiling shout"), "{said}");
    assert!(
        !said.contains("Compiling helper"),
        "the dependency comes from the cache: {said}"
    );
    assert_eq!(wisp.get("/shout").await.text(), "SECOND\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_build_past_its_time_output_or_memory_is_stopped_and_reported() {
    let wisp = Wisp::start_with(&[
        "--build-timeout",
        "5s",
        "--build-memory",
        "64MiB",
        "--build-disk",
        "20MiB",
    ]);
    let source = tempfile::tempdir().unwrap();
    let dir = source.path().to_str().unwrap();
    let manifest = |build: &str| {
        format!(
            "version = 1\n[functions.limits]\nroute = \"/limits\"\nbuild = \"{build}\"\nwasm = \"out.wasm\"\n"
        )
    };

    tree(
        source.path(),
        &[("wisp.toml", &manifest("sleep 60 & sleep 60"))],
    );
    let started = Instant::now();
    let slow = wisp.cli(&["deploy", "limits", "--source", dir]);
    assert!(!slow.status.success());
    assert!(
        stderr(&slow).contains("the build ran out of time (5s"),
        "{}",
        stderr(&slow)
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );

    // Long lines, so the limit, not the time, stops it.
    tree(
        source.path(),
        &[
            ("wisp.toml", &manifest("sh loud.sh")),
            (
                "loud.sh",
                "line=$(printf '%01000d' 0)\nwhile :; do echo \"building $line\"; done\n",
            ),
        ],
    );
    let loud = wisp.cli(&["deploy", "limits", "--source", dir]);
    assert!(!loud.status.success());
    assert!(
        stderr(&loud).contains("the build wrote more than 8MiB of output"),
        "{}",
        stderr(&loud).lines().last().unwrap_or_default()
    );

    tree(
        source.path(),
        &[(
            "wisp.toml",
            &manifest("awk 'BEGIN { s = \\\"x\\\"; while (1) s = s s }'"),
        )],
    );
    let hungry = wisp.cli(&["deploy", "limits", "--source", dir]);
    assert!(!hungry.status.success());
    let said = stderr(&hungry);
    assert!(said.contains("the build command failed"), "{said}");
    assert!(
        !said.contains("ran out of time"),
        "stopped by its memory limit: {said}"
    );

    // Past its disk: 50 MB in a 20 MiB allowance, stopped before it ends.
    tree(
        source.path(),
        &[(
            "wisp.toml",
            &manifest("head -c 50000000 /dev/zero > big && sleep 60"),
        )],
    );
    let heavy = wisp.cli(&["deploy", "limits", "--source", dir]);
    let said = stderr(&heavy);
    assert!(!heavy.status.success());
    assert!(said.contains("passed 20MiB on disk"), "{said}");

    // A client that leaves mid-build: the build ends, nothing deploys.
    c_tree(source.path(), "never");
    tree(
        source.path(),
        &[(
            "wisp.toml",
            &manifest("sleep 2 && clang --target=wasm32-wasi --sysroot=/usr -o out.wasm main.c"),
        )],
    );
    let mut leaving = std::process::Command::new(crate::support::WISP)
        .args(["deploy", "limits", "--source", dir])
        .env("WISP_ADMIN_URL", wisp.admin_url(""))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        eventually(Duration::from_secs(10), async || {
            // The tree is unpacked: the build is under way.
            std::fs::read_dir(wisp.data_dir().join("builds/limits/work"))
                .is_ok_and(|mut d| d.next().is_some())
        })
        .await,
        "the build never started"
    );
    leaving.kill().unwrap();
    leaving.wait().unwrap();
    assert!(
        eventually(Duration::from_secs(15), async || {
            wisp.log()
                .contains("a build's client left before it ended: not deployed")
        })
        .await,
        "{}",
        wisp.log()
    );
    assert_eq!(wisp.get("/limits").await.status, StatusCode::NOT_FOUND);

    // No build process outlives its build.
    assert!(
        eventually(Duration::from_secs(5), async || {
            build_processes(wisp.pid()).is_empty()
        })
        .await,
        "left running: {:?}",
        build_processes(wisp.pid())
    );
    assert!(wisp.get("/limits").await.status == StatusCode::NOT_FOUND);
}

/// Processes of the builds above (`sleep 60`, `sh loud.sh`).
fn build_processes(_host: u32) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if text.starts_with("sleep 60") || text.starts_with("sh loud.sh") {
            found.push(text);
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn a_build_script_cannot_read_the_host_write_outside_or_reach_the_network() {
    let secrets = tempfile::tempdir().unwrap();
    let token_file = secrets.path().join("token");
    std::fs::write(&token_file, "s3cret-admin-token\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let wisp = Wisp::start_with(&["--admin-token-file", token_file.to_str().unwrap()]);
    let host = wisp.pid();
    let data = wisp.data_dir();
    let sysroot = String::from_utf8(
        std::process::Command::new("rustc")
            .args(["--print", "sysroot"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let script = format!(
        r#"try() {{ if "$@" >/dev/null 2>&1; then echo "ESCAPED: $*"; else echo "denied: $*"; fi; }}
try cat /proc/{host}/cmdline
try cat /proc/{host}/environ
try cat {token}
try ls {data}
try cat {data}/kv.redb
try cat /etc/shadow
try touch /usr/local/bin/wisp-escape
try touch {sysroot}/wisp-escape
try mkdir /var/tmp/wisp-escape
try bash -c 'echo hi > /dev/tcp/127.0.0.1/{admin_port}'
try kill -0 {host}
try setsid true
echo checked
exit 1
"#,
        token = token_file.display(),
        data = data.display(),
        sysroot = sysroot.trim(),
        admin_port = wisp.admin.port(),
    );
    let source = tempfile::tempdir().unwrap();
    tree(
        source.path(),
        &[
            (
                "wisp.toml",
                "version = 1\n[functions.esc]\nroute = \"/esc\"\nbuild = \"sh escape.sh\"\nwasm = \"out.wasm\"\n",
            ),
            ("escape.sh", &script),
        ],
    );
    let attempt = wisp.cli_with_env(
        &["deploy", "esc", "--source", source.path().to_str().unwrap()],
        &[("WISP_ADMIN_TOKEN", "s3cret-admin-token")],
    );
    let said = stderr(&attempt);
    assert!(said.contains("checked"), "the script ran: {said}");
    assert!(!said.contains("ESCAPED"), "{said}");
    assert_eq!(said.matches("denied: ").count(), 12, "{said}");
    assert!(!said.contains("s3cret-admin-token"), "{said}");
    assert!(!Path::new("/usr/local/bin/wisp-escape").exists());
    assert!(!Path::new(sysroot.trim()).join("wisp-escape").exists());
    assert!(!Path::new("/var/tmp/wisp-escape").exists());

    // Without the token, nothing is built.
    let anonymous = send(
        Method::POST,
        &wisp.admin_url("/v1/functions/esc/build"),
        &[],
        Bytes::from_static(b"not even a tar"),
    )
    .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread")]
async fn git_push_builds_and_deploys_and_a_push_that_does_not_build_is_rejected() {
    let wisp = Wisp::start_with(&["--admin-token", "adm1n"]);
    let remote =
        |name: &str, password: &str| format!("http://dev:{password}@{}/git/{name}.git", wisp.admin);
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("hello");
    std::fs::create_dir(&repo).unwrap();
    assert!(git(&repo, &["init", "-q", "-b", "main"]).status.success());
    c_tree(&repo, "pushed");
    committed(&repo, "first");

    // The admin token as the password: built, deployed at /hello (a new
    // function, no wisp.toml), and the build is told as `remote:` lines.
    let pushed = git(&repo, &["push", &remote("hello", "adm1n"), "main"]);
    let said = stderr(&pushed);
    assert!(pushed.status.success(), "{said}");
    assert!(
        said.contains("remote: wisp: building `hello` with c"),
        "{said}"
    );
    let url = format!("http://127.0.0.1:{}/hello", wisp.public.port());
    assert!(
        said.contains("remote: wisp: deployed hello v1 from "),
        "{said}"
    );
    assert!(
        said.contains(&url),
        "the push ends with the function's URL: {said}"
    );
    assert_eq!(wisp.get("/hello").await.text(), "pushed\n");
    let versions = wisp.cli_with_env(&["versions", "hello"], &[("WISP_ADMIN_TOKEN", "adm1n")]);
    assert!(
        stdout(&versions).contains("v1 from git "),
        "the version names its commit and build: {}",
        stdout(&versions)
    );

    // No credentials, a wrong one, another function's deploy token.
    let anonymous = git(
        &repo,
        &[
            "push",
            &format!("http://{}/git/hello.git", wisp.admin),
            "main",
        ],
    );
    assert!(!anonymous.status.success());
    assert!(
        stderr(&anonymous).contains("could not read Username"),
        "{}",
        stderr(&anonymous)
    );
    let wrong = git(&repo, &["push", &remote("hello", "guess"), "main"]);
    assert!(
        stderr(&wrong).contains("Authentication failed"),
        "{}",
        stderr(&wrong)
    );
    let made = wisp.cli_with_env(
        &["token", "create", "other"],
        &[("WISP_ADMIN_TOKEN", "adm1n")],
    );
    assert!(made.status.success(), "{}", stderr(&made));
    let token = stdout(&made).trim().to_owned();
    assert!(token.starts_with("wisp_dt_"), "{token}");
    let foreign = git(&repo, &["push", &remote("hello", &token), "main"]);
    assert!(!foreign.status.success());
    assert!(stderr(&foreign).contains("403"), "{}", stderr(&foreign));
    // A deploy token is not an admin token.
    let bearer = format!("Bearer {token}");
    let api = send(
        Method::GET,
        &wisp.admin_url("/v1/functions"),
        &[("authorization", bearer.as_str())],
        Bytes::new(),
    )
    .await;
    assert_eq!(api.status, StatusCode::UNAUTHORIZED);
    // Its own function: the first push creates it.
    let own = git(&repo, &["push", &remote("other", &token), "main"]);
    assert!(own.status.success(), "{}", stderr(&own));
    assert_eq!(wisp.get("/other").await.text(), "pushed\n");
    // A deploy token changes code only: a wisp.toml that would take
    // another route and settings is built, but its route and settings are
    // left out.
    std::fs::write(
        repo.join("wisp.toml"),
        "version = 1\n[functions.other]\nroute = \"/stolen\"\ntimeout = \"1s\"\nbuild = \"clang --target=wasm32-wasi --sysroot=/usr -o other.wasm main.c\"\nwasm = \"other.wasm\"\n",
    )
    .unwrap();
    committed(&repo, "take a route");
    let taking = git(&repo, &["push", &remote("other", &token), "main"]);
    let said = stderr(&taking);
    assert!(taking.status.success(), "{said}");
    assert!(said.contains("changes the code only"), "{said}");
    assert_eq!(wisp.get("/stolen").await.status, StatusCode::NOT_FOUND);
    let other = send(
        Method::GET,
        &wisp.admin_url("/v1/functions/other"),
        &[("authorization", "Bearer adm1n")],
        Bytes::new(),
    )
    .await
    .json();
    assert_eq!(other["route"], "/other", "{other}");
    let kept = other["versions"][1]["settings"].to_string();
    assert!(
        kept.contains("timeout") && !kept.contains("\"1s\""),
        "{other}"
    );
    assert!(git(&repo, &["rm", "-q", "wisp.toml"]).status.success());
    committed(&repo, "no manifest");

    // A commit that does not compile: rejected with clang's words, the
    // branch does not move, v1 keeps serving.
    std::fs::write(repo.join("main.c"), "int main(void) { return nope; }\n").unwrap();
    committed(&repo, "broken");
    let broken = git(&repo, &["push", &remote("hello", "adm1n"), "main"]);
    let said = stderr(&broken);
    assert!(!broken.status.success());
    assert!(
        said.contains("use of undeclared identifier 'nope'"),
        "{said}"
    );
    assert!(said.contains("pre-receive hook declined"), "{said}");
    assert_eq!(wisp.get("/hello").await.text(), "pushed\n");

    // Another branch is kept, not built.
    let side = git(&repo, &["push", &remote("hello", "adm1n"), "main:feature"]);
    assert!(side.status.success(), "{}", stderr(&side));
    assert!(
        stderr(&side).contains("is not the deploy branch (main)"),
        "{}",
        stderr(&side)
    );

    // Two pushes at once from two clones of the same commit: one lands,
    // the other is told to fetch first; the function serves the one.
    let clones: Vec<_> = ["a", "b"]
        .iter()
        .map(|which| {
            let dir = work.path().join(which);
            let cloned = git(
                work.path(),
                &[
                    "clone",
                    "-q",
                    &remote("hello", "adm1n"),
                    dir.to_str().unwrap(),
                ],
            );
            assert!(cloned.status.success(), "{}", stderr(&cloned));
            c_tree(&dir, &format!("from {which}"));
            committed(&dir, which);
            dir
        })
        .collect();
    let pushes: Vec<_> = clones
        .iter()
        .map(|dir| {
            let (dir, url) = (dir.clone(), remote("hello", "adm1n"));
            std::thread::spawn(move || git(&dir, &["push", &url, "main"]))
        })
        .collect();
    let results: Vec<_> = pushes.into_iter().map(|p| p.join().unwrap()).collect();
    let landed: Vec<bool> = results.iter().map(|r| r.status.success()).collect();
    assert_eq!(
        landed.iter().filter(|&&ok| ok).count(),
        1,
        "{} / {}",
        stderr(&results[0]),
        stderr(&results[1])
    );
    let winner = if landed[0] { "a" } else { "b" };
    assert_eq!(wisp.get("/hello").await.text(), format!("from {winner}\n"));

    // Removing the function removes its repository.
    let removed = wisp.cli_with_env(&["rm", "hello"], &[("WISP_ADMIN_TOKEN", "adm1n")]);
    assert!(removed.status.success(), "{}", stderr(&removed));
    let gone = git(
        work.path(),
        &["clone", "-q", &remote("hello", "adm1n"), "gone"],
    );
    assert!(!gone.status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_push_deploys_nothing_and_leaves_nothing_running() {
    let wisp = Wisp::start();
    let work = tempfile::tempdir().unwrap();
    let repo = work.path();
    assert!(git(repo, &["init", "-q", "-b", "main"]).status.success());
    c_tree(repo, "too late");
    tree(
        repo,
        &[(
            "wisp.toml",
            "version = 1\n[functions.slow]\nroute = \"/slow\"\nbuild = \"sleep 3 && clang --target=wasm32-wasi --sysroot=/usr -o slow.wasm main.c\"\nwasm = \"slow.wasm\"\n",
        )],
    );
    committed(repo, "slow");
    use std::os::unix::process::CommandExt;
    let mut pushing = std::process::Command::new("git")
        .args([
            "push",
            &format!("http://{}/git/slow.git", wisp.admin),
            "main",
        ])
        .current_dir(repo)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let builds = wisp.data_dir().join("builds/slow");
    assert!(
        eventually(Duration::from_secs(20), async || {
            // The tree is unpacked: the build is under way.
            std::fs::read_dir(builds.join("work")).is_ok_and(|mut d| d.next().is_some())
        })
        .await,
        "the build never started"
    );
    // The pusher goes away, git client and all.
    let group = rustix::process::Pid::from_raw(pushing.id() as i32).unwrap();
    rustix::process::kill_process_group(group, rustix::process::Signal::KILL).unwrap();
    pushing.wait().unwrap();
    assert!(
        eventually(Duration::from_secs(15), async || {
            wisp.log()
                .contains("a build's client left before it ended: not deployed")
        })
        .await,
        "{}",
        wisp.log()
    );
    // Nothing of the push (git's receive-pack, the hook) runs on in the
    // repository, and nothing was deployed.
    let repository = std::fs::canonicalize(builds.join("repo.git")).unwrap();
    let inside = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|p| {
                std::fs::read_link(p.path().join("cwd"))
                    .is_ok_and(|cwd| cwd.starts_with(&repository))
            })
            .count()
    };
    assert!(
        eventually(Duration::from_secs(5), async || inside() == 0).await,
        "{} processes still run in the repository",
        inside()
    );
    assert_eq!(wisp.get("/slow").await.status, StatusCode::NOT_FOUND);
}
