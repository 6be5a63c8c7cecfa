//! What only process isolation has: the OS wall proven by an attacker on
//! the inside (the escape drill: a guest running raw system calls in its
//! worker through the test-only `wisp_drill` import), the blast radius of
//! a worker that dies mid-request, and the worker pool (jail, environment,
//! idle stop, the host-wide cap).

use crate::support::{Wisp, eventually};
use http::StatusCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use wisp_test_artifacts as artifacts;

/// What the wall may answer an attack with.
const EPERM: i32 = 1;
const EACCES: i32 = 13;
/// What a cap answers an attack with.
const EAGAIN: i32 = 11;
const ENOMEM: i32 = 12;

/// The live workers, from the admin API.
async fn workers(wisp: &Wisp) -> Vec<serde_json::Value> {
    let response = wisp.admin_get("/v1/workers").await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    response.json().as_array().cloned().unwrap_or_default()
}

/// The pid of `function`'s worker.
async fn worker_pid(wisp: &Wisp, function: &str) -> u32 {
    let listed = workers(wisp).await;
    let worker = listed
        .iter()
        .find(|w| w["function"] == function)
        .unwrap_or_else(|| panic!("no worker of `{function}`: {listed:?}"));
    u32::try_from(worker["pid"].as_u64().unwrap()).unwrap()
}

/// Requests `/hello` until stopped, counting answers other than 200.
struct Bystander {
    stop: Arc<AtomicBool>,
    failures: Arc<AtomicU64>,
    served: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Bystander {
    fn start(wisp: &Arc<Wisp>) -> Bystander {
        let stop = Arc::new(AtomicBool::new(false));
        let failures = Arc::new(AtomicU64::new(0));
        let served = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn({
            let (wisp, stop, failures, served) =
                (wisp.clone(), stop.clone(), failures.clone(), served.clone());
            async move {
                while !stop.load(Ordering::Relaxed) {
                    match wisp.get("/hello").await.status {
                        StatusCode::OK => served.fetch_add(1, Ordering::Relaxed),
                        _ => failures.fetch_add(1, Ordering::Relaxed),
                    };
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        });
        Bystander {
            stop,
            failures,
            served,
            task,
        }
    }

    /// Stops it; panics unless every one of its requests got 200.
    async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
        assert_eq!(
            self.failures.load(Ordering::Relaxed),
            0,
            "another function failed while a worker was attacked or killed"
        );
        assert!(self.served.load(Ordering::Relaxed) > 0);
    }
}

/// Runs attack `name` in the drill function's worker: its answer, or
/// `None` when the worker died instead (a 502).
async fn attack(wisp: &Wisp, name: &str) -> Option<i32> {
    let response = wisp.get(&format!("/drill?{name}")).await;
    if response.status == StatusCode::BAD_GATEWAY {
        assert_eq!(
            response.json()["kind"],
            "worker-failed",
            "{}",
            response.text()
        );
        return None;
    }
    assert_eq!(
        response.status,
        StatusCode::OK,
        "{name}: {}",
        response.text()
    );
    let text = response.text();
    let result = text.trim().rsplit(' ').next().unwrap_or_default();
    Some(result.parse().unwrap_or_else(|_| panic!("{name}: {text}")))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_escape_drill_meets_the_os_wall_and_only_the_attacker_notices() {
    let wisp = Arc::new(Wisp::start());
    let granted = tempfile::tempdir().unwrap();
    std::fs::write(granted.path().join("private.txt"), "another tenant's data").unwrap();
    wisp.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    wisp.deploy_ok("drill", artifacts::DRILL_MODULE, "route=/drill")
        .await;
    let dir = format!("dir={}:/data", granted.path().display());
    wisp.deploy_ok(
        "files",
        artifacts::HELLO_COMPONENT,
        &format!("route=/files&{dir}"),
    )
    .await;
    // The attacker's own key-value bucket exists: the database is on disk.
    let kv_db = crate::support::files_under(&wisp.data_dir())
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "redb"))
        .expect("the key-value database");
    let escaped = std::env::temp_dir().join(format!("wisp-drill-{}", std::process::id()));
    let admin_port = wisp
        .admin_url("/")
        .split(':')
        .nth(2)
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    let bystander = Bystander::start(&wisp);

    let front = wisp.pid();
    let refused = [
        format!("read:/proc/{front}/environ"),
        format!("read:/proc/{front}/cmdline"),
        format!("read:{}", kv_db.display()),
        format!("read:{}", granted.path().join("private.txt").display()),
        "read:/etc/shadow".to_owned(),
        format!("write:{}", escaped.display()),
        format!("connect:{admin_port}"),
        "socket".to_owned(),
        "fork".to_owned(),
    ];
    for name in &refused {
        let result = attack(&wisp, name).await;
        assert!(
            matches!(result, Some(EPERM | EACCES)),
            "attack `{name}` was not refused with EPERM or EACCES: {result:?}"
        );
    }
    assert!(!escaped.exists(), "the attacker wrote outside its worker");
    // Its code's memory file, which every worker of the same code maps, is
    // sealed: opened for writing through the worker's own descriptor, it
    // refuses the write.
    assert_eq!(attack(&wisp, "code").await, Some(EPERM));

    // The calls only an attacker makes kill its worker, and with it only
    // its own calls in flight.
    for (round, name) in ["exec".to_owned(), format!("ptrace:{front}")]
        .into_iter()
        .enumerate()
    {
        let in_flight = tokio::spawn({
            let wisp = wisp.clone();
            async move { wisp.get("/drill?sleep").await.status }
        });
        serving_calls(&wisp, "drill", 1).await;
        assert_eq!(
            attack(&wisp, &name).await,
            None,
            "`{name}` did not kill its worker"
        );
        assert_eq!(in_flight.await.unwrap(), StatusCode::BAD_GATEWAY);
        exits_counted(&wisp, "SIGSYS", (round + 1) as f64).await;
    }
    assert!(
        wisp.log().contains("killed by SIGSYS"),
        "the kill is not logged"
    );
    // A worker that garbles the framing of its calls is stopped, failing
    // only its own calls.
    let in_flight = tokio::spawn({
        let wisp = wisp.clone();
        async move { wisp.get("/drill?sleep").await.status }
    });
    serving_calls(&wisp, "drill", 1).await;
    assert_eq!(
        attack(&wisp, "garble").await,
        None,
        "garbling its calls did not fail them"
    );
    assert_eq!(in_flight.await.unwrap(), StatusCode::BAD_GATEWAY);
    exits_counted(&wisp, "broken", 1.0).await;
    assert!(
        wisp.log().contains("the worker broke the framing"),
        "the stop is not logged"
    );
    // The next request gets a new worker, jailed like the last.
    assert_eq!(attack(&wisp, "read:/etc/shadow").await, Some(EACCES));
    bystander.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_escaped_guest_takes_no_more_memory_threads_or_address_space_than_its_worker_may() {
    let wisp = Arc::new(Wisp::start());
    wisp.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    let small =
        "route=/drill&memory=16MiB&max-concurrency=1&max-request-body=1MiB&max-response-body=1MiB";
    wisp.deploy_ok("drill", artifacts::DRILL_MODULE, small)
        .await;
    let bystander = Bystander::start(&wisp);

    // Its address space: what its engine reserved, and 16 GiB more.
    assert_eq!(attack(&wisp, "alloc:20480").await, Some(ENOMEM));
    let pid = worker_pid(&wisp, "drill").await;
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let address_space = limits
        .lines()
        .find(|l| l.starts_with("Max address space"))
        .unwrap();
    assert!(!address_space.contains("unlimited"), "{limits}");

    // Its control groups, where the host can make them (as root, with a
    // memory and a pids hierarchy: CI's machine has cgroup v1 ones).
    let skipped = |controller: &str| {
        wisp.log()
            .contains(&format!("guest workers get no {controller} control group"))
    };
    if skipped("memory") || skipped("pids") {
        eprintln!(
            "NOT CHECKED: this host cannot make a memory or pids control group for its workers:\n{}",
            wisp.log()
        );
        assert!(
            !can_make_a_v1_memory_group(),
            "this machine lets a process make memory groups, yet the host made none"
        );
        bystander.stop().await;
        return;
    }
    let groups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let own = format!("/wisp-{}/worker-{pid}", wisp.pid());
    for controller in ["memory", "pids"] {
        assert!(
            groups
                .lines()
                .any(|l| l.contains(controller) && l.ends_with(&own)),
            "{controller}: {groups}"
        );
    }
    // Threads: refused at its pids group's cap.
    assert_eq!(attack(&wisp, "threads:100").await, Some(EAGAIN));
    // Memory: past its group's cap (16 MiB sandboxes, 1 MiB bodies, its
    // code and runtime), the kernel kills it — and only it.
    assert_eq!(attack(&wisp, "alloc:2048").await, None);
    exits_counted(&wisp, "oom", 1.0).await;
    assert!(
        wisp.log()
            .contains("more memory than its control group allows"),
        "the kill is not logged"
    );
    assert_eq!(attack(&wisp, "socket").await, Some(EPERM));
    bystander.stop().await;
}

/// Whether this process may make a group beneath its own in the cgroup v1
/// memory hierarchy (as the host does for its workers): tried, and undone.
fn can_make_a_v1_memory_group() -> bool {
    let groups = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let Some(own) = groups.lines().find_map(|l| {
        let mut fields = l.splitn(3, ':');
        let (_, names, path) = (fields.next()?, fields.next()?, fields.next()?);
        names.split(',').any(|n| n == "memory").then_some(path)
    }) else {
        return false;
    };
    let probe = std::path::Path::new("/sys/fs/cgroup/memory")
        .join(own.trim_start_matches('/'))
        .join(format!("wisp-probe-{}", std::process::id()));
    let made = std::fs::create_dir(&probe).is_ok();
    let _ = std::fs::remove_dir(&probe);
    made
}

/// Waits until `function`'s worker is serving `calls` calls.
async fn serving_calls(wisp: &Wisp, function: &str, calls: u64) {
    let running = eventually(Duration::from_secs(10), async || {
        workers(wisp)
            .await
            .iter()
            .any(|w| w["function"] == function && w["calls_in_flight"] == calls)
    })
    .await;
    assert!(
        running,
        "the slow calls never reached their worker: {:?}",
        workers(wisp).await
    );
}

/// Asserts a worker's end for `cause` is counted (`count` so far).
async fn exits_counted(wisp: &Wisp, cause: &str, count: f64) {
    let labels = [("cause", cause)];
    let series = format!("cause=\"{cause}\"");
    // The worker's end is counted once the front has reaped it, which may
    // be a moment after its calls failed: until then it has no sample.
    let counted = eventually(Duration::from_secs(5), async || {
        let metrics = wisp.metrics().await;
        let sampled = metrics
            .text
            .lines()
            .any(|l| l.starts_with("wisp_worker_exits_total{") && l.contains(&series));
        sampled && metrics.sum("wisp_worker_exits_total", &labels) == count
    })
    .await;
    assert!(
        counted,
        "{cause} is not counted: {}",
        wisp.metrics().await.text
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_or_crashing_mid_request_fails_that_request_only() {
    let wisp = Arc::new(Wisp::start());
    wisp.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    wisp.deploy_ok("sleep", artifacts::SLEEP_COMPONENT, "route=/sleep")
        .await;
    wisp.deploy_ok("drill", artifacts::DRILL_MODULE, "route=/drill")
        .await;
    assert_eq!(wisp.get("/sleep?ms=1").await.status, StatusCode::OK);
    let bystander = Bystander::start(&wisp);

    // SIGKILL from outside, mid-request.
    let pid = worker_pid(&wisp, "sleep").await;
    let in_flight = tokio::spawn({
        let wisp = wisp.clone();
        async move { wisp.get("/sleep?ms=5000").await }
    });
    serving_calls(&wisp, "sleep", 1).await;
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let response = in_flight.await.unwrap();
    assert_eq!(
        response.status,
        StatusCode::BAD_GATEWAY,
        "{}",
        response.text()
    );
    assert_eq!(response.json()["kind"], "worker-failed");
    exits_counted(&wisp, "SIGKILL", 1.0).await;
    // The next request gets a fresh worker.
    assert_eq!(wisp.get("/sleep?ms=1").await.text(), "slept 1 ms\n");
    assert_ne!(worker_pid(&wisp, "sleep").await, pid);

    // A real crash (a write through a null pointer) mid-request: the call
    // that crashed it and the other one in flight fail; nothing else does.
    let in_flight = tokio::spawn({
        let wisp = wisp.clone();
        async move { wisp.get("/drill?sleep").await.status }
    });
    serving_calls(&wisp, "drill", 1).await;
    assert_eq!(attack(&wisp, "segv").await, None);
    assert_eq!(in_flight.await.unwrap(), StatusCode::BAD_GATEWAY);
    exits_counted(&wisp, "SIGSEGV", 1.0).await;
    assert!(
        wisp.log().contains("killed by SIGSEGV"),
        "the crash is not logged"
    );
    assert_eq!(attack(&wisp, "socket").await, Some(EPERM));

    assert_eq!(
        wisp.metric("wisp_worker_starts_total", &[]).await,
        5.0,
        "hello's, sleep's twice, drill's twice"
    );
    assert_eq!(wisp.metric("wisp_workers", &[]).await, 3.0);
    bystander.stop().await;
    // The slots of the failed calls came back.
    assert_eq!(wisp.metric("wisp_pool_slots_in_use", &[]).await, 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_is_jailed_holds_no_environment_and_is_no_longer_root() {
    let wisp = Wisp::start_with_env(&[], &[("WISP_SOMETHING_SECRET", "front-only")]);
    wisp.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    assert_eq!(wisp.get("/hello").await.status, StatusCode::OK);
    let pid = worker_pid(&wisp, "hello").await;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(status.contains("\nSeccomp:\t2\n"), "{status}");
    assert!(status.contains("\nNoNewPrivs:\t1\n"), "{status}");
    if std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) == 0 {
        assert!(
            status.contains("\nUid:\t65534\t65534\t65534\t65534\n"),
            "{status}"
        );
    }
    // Nothing of the front's environment: only the size of its pool, a
    // spare's (the default concurrency, and one prepared sandbox), and the
    // cap on its user's threads.
    let environ = std::fs::read_to_string(format!("/proc/{pid}/environ")).unwrap();
    let (pool, threads) = environ.split_once('\0').unwrap();
    assert_eq!(pool, "WISP_WORKER_POOL=257");
    assert!(
        threads
            .strip_prefix("WISP_WORKER_USER_THREADS=")
            .and_then(|n| n.strip_suffix('\0'))
            .is_some_and(|n| n.parse::<u64>().is_ok()),
        "{environ}"
    );
    // A function allowed more than a spare holds gets a process sized for it.
    wisp.deploy_ok(
        "wide",
        artifacts::HELLO_COMPONENT,
        "route=/wide&max-concurrency=400",
    )
    .await;
    assert_eq!(wisp.get("/wide").await.status, StatusCode::OK);
    let wide = worker_pid(&wisp, "wide").await;
    let environ = std::fs::read_to_string(format!("/proc/{wide}/environ")).unwrap();
    assert!(environ.starts_with("WISP_WORKER_POOL=401\0"), "{environ}");
    let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    assert_eq!(
        cmdline.split('\0').nth(1),
        Some("__guest-worker"),
        "{cmdline}"
    );
    let listed = wisp.cli(&["workers"]);
    assert!(
        crate::support::stdout(&listed).contains(&pid.to_string()),
        "{}",
        crate::support::stdout(&listed)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_workers_stop_and_the_host_wide_cap_holds() {
    let wisp = Wisp::start_with(&["--max-workers", "2", "--worker-idle", "2s"]);
    for name in ["a", "b", "c"] {
        wisp.deploy_ok(name, artifacts::HELLO_COMPONENT, &format!("route=/{name}"))
            .await;
    }
    for name in ["a", "b", "c", "a"] {
        assert_eq!(wisp.get(&format!("/{name}")).await.status, StatusCode::OK);
        assert!(
            workers(&wisp).await.len() <= 2,
            "{:?}",
            workers(&wisp).await
        );
    }
    let evicted = [("cause", "evicted")];
    assert!(wisp.metric("wisp_worker_exits_total", &evicted).await >= 1.0);
    let all_idle = eventually(Duration::from_secs(15), async || {
        workers(&wisp).await.is_empty()
    })
    .await;
    assert!(
        all_idle,
        "idle workers still alive: {:?}",
        workers(&wisp).await
    );
    // A stopped worker leaves the list at once and is counted once its
    // process has ended, a moment later.
    eventually(Duration::from_secs(5), async || {
        let metrics = wisp.metrics().await;
        metrics
            .text
            .contains("wisp_worker_exits_total{cause=\"idle\"}")
            && metrics.sum("wisp_workers", &[]) == 0.0
    })
    .await;
    assert!(
        wisp.metric("wisp_worker_exits_total", &[("cause", "idle")])
            .await
            >= 1.0
    );
    assert_eq!(wisp.metric("wisp_workers", &[]).await, 0.0);
    // A stopped function's next request starts its worker again.
    assert_eq!(wisp.get("/b").await.text(), "Hello, world!\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_cannot_forge_a_runs_report_through_an_echoing_guest() {
    use base64::Engine;
    use http_body_util::{BodyExt, StreamBody};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let wisp = Wisp::start();
    wisp.deploy_ok("s", artifacts::SERVICE3_COMPONENT, "route=/s")
        .await;
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    // The worker's calls are numbered from 1: name each of the first few.
    for call in 1..=4u64 {
        let forged = serde_json::json!({
            "call": call, "wall_us": 1, "cpu_us": 1, "fuel": 999_999_999_999u64,
            "peak_memory_bytes": 1, "stdout": base64::engine::general_purpose::STANDARD.encode("FORGED-LOG"),
            "stderr": "", "counts": {"breaches": [], "prepared": 0, "prepared_used": 0},
        });
        // As a worker writes it: the report's JSON.
        let header = serde_json::to_string(&forged).unwrap();
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x-wisp-worker-report", header.parse().unwrap());
        trailers.insert("x-wisp-worker-done", "1".parse().unwrap());
        trailers.insert("x-checksum", "abc".parse().unwrap());
        let frames = vec![
            Ok::<_, std::convert::Infallible>(http_body::Frame::data(bytes::Bytes::from_static(
                b"body",
            ))),
            Ok(http_body::Frame::trailers(trailers)),
        ];
        let request = http::Request::post(wisp.url("/s/echo"))
            .body(StreamBody::new(futures_util::stream::iter(frames)))
            .unwrap();
        let response = client.request(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let collected = response.into_body().collect().await.unwrap();
        let echoed = collected.trailers().cloned().expect("trailers came back");
        assert_eq!(echoed["x-checksum"], "abc");
        assert!(!echoed.contains_key("x-wisp-worker-report"), "{echoed:?}");
        assert!(!echoed.contains_key("x-wisp-worker-done"), "{echoed:?}");
    }
    let usage = wisp.admin_get("/v1/functions/s/usage").await.json();
    assert!(
        usage["fuel"].as_u64().unwrap_or(0) < 999_999_999_999,
        "{usage}"
    );
    let logs = wisp.admin_get("/v1/functions/s/logs").await.text();
    assert!(!logs.contains("FORGED-LOG"), "{logs}");
    assert_eq!(wisp.metric("wisp_pool_slots_in_use", &[]).await, 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_whose_client_leaves_gives_its_slots_back_at_once() {
    use std::io::Write;
    let wisp = Wisp::start();
    wisp.deploy_ok("sleep", artifacts::SLEEP_COMPONENT, "route=/sleep")
        .await;
    let in_flight = async || {
        wisp.metric("wisp_in_flight_requests", &[("function", "sleep")])
            .await
    };
    // Clients that ask for a 20 s run and leave once it is running: their
    // runs are dropped with their calls, as in-process.
    let mut clients = Vec::new();
    for running in 1..=3 {
        let mut client = std::net::TcpStream::connect(wisp.public).unwrap();
        client
            .write_all(b"GET /sleep?ms=20000 HTTP/1.1\r\nhost: wisp\r\n\r\n")
            .unwrap();
        clients.push(client);
        serving_calls(&wisp, "sleep", running).await;
    }
    assert_eq!(in_flight().await, 3.0);
    let pid = worker_pid(&wisp, "sleep").await;
    drop(clients);
    // Their slots come back at once, not when the calls are overdue (the
    // function's 30 s timeout) nor when the runs would have ended, and the
    // worker serves on.
    let settled = eventually(Duration::from_secs(5), async || {
        in_flight().await == 0.0
            && workers(&wisp)
                .await
                .iter()
                .any(|worker| worker["pid"] == pid && worker["calls_in_flight"] == 0)
    })
    .await;
    assert!(
        settled,
        "in flight: {}, workers: {:?}",
        in_flight().await,
        workers(&wisp).await
    );
    assert_eq!(wisp.get("/sleep?ms=1").await.text(), "slept 1 ms\n");
}
