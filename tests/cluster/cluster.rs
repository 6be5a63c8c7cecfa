//! Cluster mode end to end: real `wisp serve --cluster` processes sharing
//! one real `nats-server -js`, with haproxy in front (the config shipped in
//! `examples/cluster/`). The tests run one at a time (`SERIAL`).

use crate::services::{Haproxy, Nats};
use crate::support::{Wisp, accept, costly_to_compile, cron_runs, eventually, finished, send};
use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use wisp_test_artifacts as artifacts;

/// The cluster tests run one at a time: a deploy's convergence is timed,
/// and every host compiles it.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Starts `count` hosts of the cluster on `nats`, each with its own data
/// dir, and waits until each has caught up with the desired state.
async fn hosts(nats: &Nats, count: usize) -> Vec<Wisp> {
    let mut hosts = Vec::new();
    for _ in 0..count {
        hosts.push(join(nats, &[]).await);
    }
    hosts
}

/// Starts one more host of the cluster on `nats` and waits until it is in
/// sync.
async fn join(nats: &Nats, extra: &[&str]) -> Wisp {
    let url = nats.url();
    let mut args = vec!["--cluster", url.as_str()];
    args.extend_from_slice(extra);
    let host = Wisp::start_with(&args);
    assert!(
        eventually(Duration::from_secs(20), async || synced(&host).await).await,
        "the host did not sync with the cluster:\n{}",
        host.log()
    );
    host
}

/// The host's `/healthz` says it is connected and caught up.
async fn synced(host: &Wisp) -> bool {
    let health = host.admin_get("/healthz").await.json();
    health["cluster"]["synced"] == true && health["cluster"]["behind"] == 0
}

/// The function listing of `host` (`GET /v1/functions`): names, routes,
/// versions, sources, settings, traffic and whether each version loaded.
async fn listing(host: &Wisp) -> serde_json::Value {
    host.admin_get("/v1/functions").await.json()
}

async fn serves(host: &Wisp, path: &str, within: Duration) -> bool {
    eventually(within, async || {
        host.get(path).await.status == StatusCode::OK
    })
    .await
}

#[tokio::test]
async fn three_hosts_behind_haproxy_converge_fail_over_and_rejoin() {
    let _serial = SERIAL.lock().await;
    let nats = Nats::start().await;
    let mut hosts = hosts(&nats, 3).await;

    // A deploy through host 1 is served by hosts 2 and 3 soon after: the
    // converger reacts to the watch at once (about 0.1 s here); 15 s
    // leaves a loaded two-core machine a wide margin.
    let deployed = Instant::now();
    hosts[0]
        .deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    let answered = deployed.elapsed();
    for host in &hosts[1..] {
        assert!(
            serves(host, "/hello", Duration::from_secs(15)).await,
            "not served within 15 s of the deploy:\n{}",
            host.log()
        );
    }
    eprintln!(
        "deploy on host 1 answered after {answered:?}, served on all after {:?}",
        deployed.elapsed()
    );
    let first = listing(&hosts[0]).await;
    assert_eq!(first[0]["name"], "hello");
    assert_eq!(first[0]["versions"][0]["loaded"], true);
    for host in &hosts[1..] {
        assert_eq!(listing(host).await, first, "every host lists the same");
        let ls = host.cli(&["ls"]);
        assert!(String::from_utf8_lossy(&ls.stdout).contains("hello"));
    }

    // A bounded steady load through haproxy while host 2 is killed.
    let lb = Haproxy::start(
        &hosts
            .iter()
            .map(|h| (h.public, h.admin.port()))
            .collect::<Vec<_>>(),
    )
    .await;
    assert!(
        eventually(Duration::from_secs(10), async || {
            send(Method::GET, &lb.url("/hello"), &[], Bytes::new())
                .await
                .status
                == StatusCode::OK
        })
        .await
    );
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (url, stop, ok, failed) =
                (lb.url("/hello"), stop.clone(), ok.clone(), failed.clone());
            tokio::spawn(async move {
                let client: Client<_, Full<Bytes>> =
                    Client::builder(TokioExecutor::new()).build_http();
                while !stop.load(Ordering::Acquire) {
                    let request = http::Request::get(&url)
                        .body(Full::new(Bytes::new()))
                        .unwrap();
                    let answered =
                        tokio::time::timeout(Duration::from_secs(10), client.request(request))
                            .await;
                    let good = match answered {
                        Ok(Ok(response)) => {
                            let status = response.status();
                            response.into_body().collect().await.is_ok() && status == StatusCode::OK
                        }
                        _ => false,
                    };
                    let counter = if good { &ok } else { &failed };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before_kill = ok.load(Ordering::Relaxed);
    hosts[1].kill9();
    tokio::time::sleep(Duration::from_millis(3000)).await;
    stop.store(true, Ordering::Release);
    for client in clients {
        client.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!("through haproxy: {ok} ok ({before_kill} before the kill), {failed} failed");
    assert_eq!(
        failed, 0,
        "requests failed while host 2 was killed ({ok} ok)"
    );
    assert!(
        ok > before_kill + 100,
        "the load went on after the kill: {before_kill} then {ok}"
    );

    // A change made while host 2 is down reaches it when it comes back.
    hosts[0]
        .deploy_ok("echo", artifacts::ECHO_COMPONENT, "route=/echo")
        .await;
    let host2 = hosts.remove(1).restart_stopped();
    assert!(serves(&host2, "/hello", Duration::from_secs(5)).await);
    assert!(
        serves(&host2, "/echo", Duration::from_secs(5)).await,
        "the restarted host did not pick up the deploy it missed:\n{}",
        host2.log()
    );
    // A brand-new host serves everything with no deploy.
    let fresh = join(&nats, &[]).await;
    assert!(serves(&fresh, "/hello", Duration::from_secs(5)).await);
    assert!(serves(&fresh, "/echo", Duration::from_secs(5)).await);
    assert_eq!(listing(&fresh).await, listing(&hosts[0]).await);

    // A removal through any host leaves every host.
    let removed = fresh.cli(&["rm", "echo"]);
    assert!(
        removed.status.success(),
        "{}",
        String::from_utf8_lossy(&removed.stderr)
    );
    for host in [&hosts[0], &host2] {
        assert!(
            eventually(Duration::from_secs(5), async || {
                host.get("/echo").await.status == StatusCode::NOT_FOUND
            })
            .await
        );
    }
}

#[tokio::test]
async fn concurrent_deploys_of_one_function_through_two_hosts_both_get_a_version() {
    let _serial = SERIAL.lock().await;
    let nats = Nats::start().await;
    let hosts = hosts(&nats, 2).await;
    let hello = bytes::Bytes::from(std::fs::read(artifacts::HELLO_COMPONENT).unwrap());
    let echo = bytes::Bytes::from(std::fs::read(artifacts::ECHO_COMPONENT).unwrap());
    for round in 0..3 {
        let (a, b) = tokio::join!(
            hosts[0].deploy("f", hello.clone(), "route=/f"),
            hosts[1].deploy("f", echo.clone(), "route=/f"),
        );
        for (response, host) in [(&a, &hosts[0]), (&b, &hosts[1])] {
            assert_eq!(
                response.status,
                StatusCode::CREATED,
                "round {round}: {}\n{}",
                response.text(),
                host.log()
            );
        }
        let (va, vb) = (
            a.json()["version"].as_u64().unwrap(),
            b.json()["version"].as_u64().unwrap(),
        );
        assert_ne!(va, vb, "round {round}: two deploys got one version number");
        for host in &hosts {
            assert!(
                eventually(Duration::from_secs(5), async || {
                    let info = host.admin_get("/v1/functions/f").await.json();
                    let numbers: Vec<u64> = info["versions"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v["number"].as_u64().unwrap())
                        .collect();
                    numbers.contains(&va) && numbers.contains(&vb)
                })
                .await,
                "round {round}: a host lost one of v{va} and v{vb}"
            );
        }
    }

    // A change made on a stale view is refused. Host 1 is behind while it
    // compiles a version deployed through host 0 (a module that takes
    // seconds to compile): a traffic change through it meanwhile gets
    // `409 conflict` naming the function, and changes nothing; once caught
    // up, the same change goes through.
    let deployed = hosts[0]
        .deploy("f", costly_to_compile(40_000), "no-traffic=true")
        .await;
    assert_eq!(deployed.status, StatusCode::CREATED, "{}", deployed.text());
    let slow = deployed.json()["version"].as_u64().unwrap();
    let shift = async |host: &Wisp| {
        let split = serde_json::json!([{"version": slow - 1, "weight": 100}]);
        send(
            Method::PUT,
            &host.admin_url("/v1/functions/f/traffic"),
            &[("content-type", "application/json")],
            Bytes::from(split.to_string()),
        )
        .await
    };
    let stale = shift(&hosts[1]).await;
    assert_eq!(stale.status, StatusCode::CONFLICT, "{}", stale.text());
    assert_eq!(stale.json()["kind"], "conflict");
    assert!(stale.error().contains("`f`"), "{}", stale.text());
    assert!(
        eventually(Duration::from_secs(30), async || synced(&hosts[1]).await).await,
        "host 1 did not catch up:\n{}",
        hosts[1].log()
    );
    let fresh = shift(&hosts[1]).await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.text());
}

#[tokio::test]
async fn key_value_increments_are_exact_across_hosts() {
    let _serial = SERIAL.lock().await;
    let nats = Nats::start().await;
    let hosts = hosts(&nats, 2).await;
    hosts[0]
        .deploy_ok("counter", artifacts::KV_DRAFT_COMPONENT, "route=/count")
        .await;
    assert!(
        eventually(Duration::from_secs(5), async || {
            hosts[1].admin_get("/v1/functions/counter").await.status == StatusCode::OK
        })
        .await
    );
    let clients: Vec<_> = (0..16)
        .map(|i| {
            let url = hosts[i % 2].url("/count?op=incr&key=hits");
            tokio::spawn(async move {
                for _ in 0..25 {
                    let response = send(Method::POST, &url, &[], Bytes::new()).await;
                    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
                }
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
    for host in &hosts {
        assert_eq!(host.get("/count?key=hits").await.text(), "400");
    }
    // The operator's view is the cluster's too.
    let got = hosts[1].cli(&["kv", "get", "counter", "hits"]);
    assert_eq!(String::from_utf8_lossy(&got.stdout).trim(), "400");

    // A WASI 0.3 component deployed through one host serves from the other,
    // its bucket shared by both.
    hosts[0]
        .deploy_ok("state3", artifacts::STATE3_COMPONENT, "route=/state3")
        .await;
    assert!(serves(&hosts[1], "/state3", Duration::from_secs(10)).await);
    let hits = |text: String| -> u64 {
        text.strip_prefix("hits=")
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{text}"))
    };
    let first = hits(hosts[0].get("/state3").await.text());
    let second = hits(hosts[1].get("/state3").await.text());
    assert_eq!(second, first + 1, "one bucket across hosts");
}

#[tokio::test]
async fn a_cron_tick_runs_once_per_cluster() {
    let _serial = SERIAL.lock().await;
    let nats = Nats::start().await;
    let hosts = hosts(&nats, 2).await;
    hosts[0]
        .deploy_ok(
            "ticker",
            artifacts::KV_DRAFT_COMPONENT,
            "route=/ticker&cron=*%20*%20*%20*%20*%20*&cron-path=/%3Fop%3Dincr%26key%3Dticks",
        )
        .await;
    let started = Instant::now();
    assert!(serves(&hosts[1], "/ticker?key=ticks", Duration::from_secs(10)).await);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let ticks: u64 = hosts[1]
        .get("/ticker?key=ticks")
        .await
        .text()
        .parse()
        .unwrap();
    let elapsed = started.elapsed().as_secs() + 2;
    let runs: usize = hosts
        .iter()
        .map(|h| cron_runs(&h.log(), "ticker").len())
        .sum();
    eprintln!("{ticks} ticks counted, {runs} cron runs over both hosts, in about {elapsed} s");
    assert!(ticks >= 3, "{ticks} ticks");
    assert!(
        ticks <= elapsed,
        "{ticks} ticks in {elapsed} s: some ran on both hosts"
    );
    assert!(
        runs.abs_diff(ticks as usize) <= 2,
        "{runs} runs, {ticks} ticks"
    );
}

#[tokio::test]
async fn async_calls_accepted_by_one_host_run_on_any_and_are_read_from_every_host() {
    let _serial = SERIAL.lock().await;
    let nats = Nats::start().await;
    let retries = ["--retries", "2", "--retry-backoff", "200ms"];
    let mut hosts = [join(&nats, &retries).await, join(&nats, &retries).await];
    hosts[0]
        .deploy_ok("sleep", artifacts::SLEEP_COMPONENT, "route=/sleep&async=on")
        .await;
    hosts[0]
        .deploy_ok("echo", artifacts::ECHO_COMPONENT, "route=/echo&async=on")
        .await;
    assert!(serves(&hosts[1], "/sleep?ms=1", Duration::from_secs(5)).await);

    // Bodies travel: accepted on host 1, read back from host 2.
    let id = accept(&hosts[0], "/echo/x", &[], "the body").await;
    let call = finished(&hosts[1], &id, Duration::from_secs(30)).await;
    assert_eq!(call["state"], "done", "{call}");
    assert_eq!(call["response"]["body"], "the body", "{call}");

    // A failing call is retried after its backoff (on any host), then
    // dead-lettered.
    hosts[0]
        .deploy_ok(
            "hostile",
            artifacts::HOSTILE_COMPONENT,
            "route=/hostile&async=on",
        )
        .await;
    let id = accept(&hosts[0], "/hostile/panic", &[], "").await;
    let call = finished(&hosts[1], &id, Duration::from_secs(30)).await;
    assert_eq!(call["state"], "failed", "{call}");
    assert_eq!(call["attempts"], 3, "one try and two retries: {call}");
    let waited =
        call["finished_unix_ms"].as_u64().unwrap() - call["accepted_unix_ms"].as_u64().unwrap();
    assert!(
        waited >= 600,
        "backoff of 200 ms then 400 ms, but done in {waited} ms"
    );

    // Many calls accepted by host 1: host 2's workers run some of them.
    let sends = (0..24).map(|_| accept(&hosts[0], "/sleep?ms=200", &[], ""));
    let ids = futures_util::future::join_all(sends).await;
    for id in &ids {
        let call = finished(&hosts[1], id, Duration::from_secs(60)).await;
        assert_eq!(call["state"], "done", "{call}");
        assert_eq!(call["response"]["status"], 200, "{call}");
    }
    let runs = |host: &Wisp| {
        host.log()
            .lines()
            .filter(|l| {
                l.contains("wisp::access")
                    && l.contains("trigger=\"async\"")
                    && l.contains("function=\"sleep\"")
            })
            .count()
    };
    let (first, second) = (runs(&hosts[0]), runs(&hosts[1]));
    eprintln!("host 1 ran {first} calls, host 2 ran {second}");
    assert!(first + second >= 24, "{first} + {second} runs for 24 calls");
    assert!(second > 0, "host 2 ran none of the calls host 1 accepted");
    let listed = hosts[1]
        .admin_get("/v1/calls?function=sleep&state=done&limit=100")
        .await
        .json();
    assert_eq!(listed["calls"].as_array().unwrap().len(), 24, "{listed}");

    // A call whose host dies mid-run moves to the other host once its
    // message's ack wait (30 s) passes, and runs there again.
    let id = accept(&hosts[0], "/sleep?ms=4000", &[], "").await;
    let mut runner = None;
    let found = eventually(Duration::from_secs(10), async || {
        for (i, host) in hosts.iter().enumerate() {
            if host
                .metric("wisp_in_flight_requests", &[("function", "sleep")])
                .await
                == 1.0
            {
                runner = Some(i);
                return true;
            }
        }
        false
    })
    .await;
    assert!(found, "no host started the call");
    let runner = runner.unwrap();
    hosts[runner].kill9();
    let survivor = &hosts[1 - runner];
    let call = finished(survivor, &id, Duration::from_secs(60)).await;
    assert_eq!(call["state"], "done", "{call}");
    assert_eq!(call["response"]["body"], "slept 4000 ms\n", "{call}");
    // The survivor's run started once the dead host's claim lapsed (a lower
    // bound: redelivery cannot come sooner).
    let moved_after =
        call["started_unix_ms"].as_u64().unwrap() - call["accepted_unix_ms"].as_u64().unwrap();
    assert!(
        moved_after >= 29_000,
        "rerun after {moved_after} ms: {call}"
    );
}

#[tokio::test]
async fn without_nats_hosts_keep_serving_refuse_writes_and_resync_after() {
    let _serial = SERIAL.lock().await;
    let mut nats = Nats::start().await;
    let hosts = hosts(&nats, 2).await;
    hosts[0]
        .deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    assert!(serves(&hosts[1], "/hello", Duration::from_secs(5)).await);

    nats.kill();
    for host in &hosts {
        assert!(
            eventually(Duration::from_secs(10), async || {
                host.admin_get("/healthz").await.json()["cluster"]["connected"] == false
            })
            .await
        );
        assert_eq!(
            host.get("/hello").await.status,
            StatusCode::OK,
            "serving goes on"
        );
    }
    let wasm = std::fs::read(artifacts::ECHO_COMPONENT).unwrap();
    let refused = hosts[0].deploy("echo", wasm, "route=/echo").await;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        refused.text()
    );
    assert_eq!(refused.json()["kind"], "cluster-unavailable");
    assert!(
        refused.error().contains("unreachable"),
        "{}",
        refused.text()
    );
    let traffic = hosts[1].cli(&["rm", "hello"]);
    assert!(!traffic.status.success());
    assert!(String::from_utf8_lossy(&traffic.stderr).contains("unreachable"));
    assert_eq!(
        hosts[1].get("/hello").await.status,
        StatusCode::OK,
        "nothing was removed"
    );

    nats.resume().await;
    for host in &hosts {
        assert!(
            eventually(Duration::from_secs(20), async || synced(host).await).await,
            "no resync:\n{}",
            host.log()
        );
    }
    hosts[1]
        .deploy_ok("echo", artifacts::ECHO_COMPONENT, "route=/echo")
        .await;
    assert!(serves(&hosts[0], "/echo", Duration::from_secs(5)).await);
}

#[test]
fn the_kubernetes_example_is_valid_yaml_whose_flags_wisp_serve_accepts() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/cluster/kubernetes.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let docs = yaml_rust2::YamlLoader::load_from_str(&text).expect("valid YAML");
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(kinds, ["Service", "StatefulSet", "Deployment", "Service"]);
    let of_kind = |kind: &str| {
        docs.iter()
            .find(|d| d["kind"].as_str() == Some(kind))
            .unwrap()
    };
    let nats = &of_kind("StatefulSet")["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        nats["args"][1].as_str(),
        Some("/etc/nats/nats-server.conf"),
        "NATS runs the shipped config: TLS and users"
    );
    let wisp = &of_kind("Deployment")["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = wisp["args"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[0], "serve");
    assert!(args.contains(&"--cluster"));
    assert!(
        args.contains(&"--cluster-tls-ca") && args.iter().any(|a| a.starts_with("tls://wisp:"))
    );
    assert_eq!(
        wisp["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/healthz")
    );
    let help = std::process::Command::new(crate::support::WISP)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in args.iter().filter(|a| a.starts_with("--")) {
        assert!(
            help.contains(&format!("{flag} ")),
            "`wisp serve` has no {flag}"
        );
    }
}

/// Connects to `nats` over TLS with the test's client certificate, as
/// `user` (none: anonymous); server errors go to `errors`.
async fn nats_client(
    nats: &Nats,
    user: Option<(&str, &str)>,
    errors: tokio::sync::mpsc::UnboundedSender<String>,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    let secured = nats.secured();
    let mut options = async_nats::ConnectOptions::new()
        .require_tls(true)
        .add_root_certificates(secured.file("ca.pem"))
        .add_client_certificate(secured.file("client.pem"), secured.file("client.key"))
        .event_callback(move |event| {
            let errors = errors.clone();
            async move {
                if let async_nats::Event::ServerError(error) = event {
                    let _ = errors.send(error.to_string());
                }
            }
        });
    if let Some((user, password)) = user {
        options = options.user_and_password(user.into(), password.into());
    }
    options.connect(nats.url()).await
}

#[tokio::test]
async fn a_cluster_on_authenticated_tls_nats_obeys_its_hosts_only_and_never_shows_the_password() {
    let _serial = SERIAL.lock().await;
    let nats = Nats::start_secured().await;
    let secured = nats.secured();
    let password = secured.host_password.clone();
    let url = nats
        .url()
        .replacen("tls://", &format!("tls://wisp:{password}@"), 1);
    let (ca, cert, key) = (
        secured.file("ca.pem"),
        secured.file("client.pem"),
        secured.file("client.key"),
    );
    let args = [
        "--cluster",
        url.as_str(),
        "--cluster-tls-ca",
        ca.to_str().unwrap(),
        "--cluster-tls-cert",
        cert.to_str().unwrap(),
        "--cluster-tls-key",
        key.to_str().unwrap(),
    ];
    let host = Wisp::start_with(&args);
    assert!(
        eventually(Duration::from_secs(20), async || synced(&host).await).await,
        "the host did not join the secured cluster:\n{}",
        host.log()
    );
    host.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    assert!(serves(&host, "/hello", Duration::from_secs(10)).await);

    // The password shows nowhere: not in /healthz (no token needed), not in
    // the log.
    let health = host.admin_get("/healthz").await;
    assert!(!health.text().contains(&password), "{}", health.text());
    assert_eq!(health.json()["cluster"]["url"], nats.url().as_str());
    assert!(!host.log().contains(&password), "{}", host.log());
    let revision = health.json()["cluster"]["revision"].clone();

    // A client without host rights cannot change the desired state.
    let (errors_tx, mut errors) = tokio::sync::mpsc::unbounded_channel();
    let observer = nats_client(
        &nats,
        Some(("observer", &secured.observer_password)),
        errors_tx.clone(),
    )
    .await
    .expect("the observer may connect");
    let forged = serde_json::json!({"name": "hello", "route": "/pwned", "versions": []});
    observer
        .publish("$KV.wisp-functions.hello", forged.to_string().into())
        .await
        .unwrap();
    observer.flush().await.unwrap();
    let refused = tokio::time::timeout(Duration::from_secs(10), errors.recv()).await;
    let refused = refused.expect("the server answers").unwrap_or_default();
    assert!(refused.contains("Permissions Violation"), "{refused}");
    let js = async_nats::jetstream::new(observer.clone());
    assert!(
        js.get_key_value("wisp-functions").await.is_err(),
        "the observer has no JetStream API"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = host.admin_get("/healthz").await.json();
    assert_eq!(
        after["cluster"]["revision"], revision,
        "nothing was written"
    );
    assert_eq!(listing(&host).await[0]["route"], "/hello");
    assert_eq!(host.get("/hello").await.status, StatusCode::OK);

    // Without credentials, no connection at all.
    let anonymous = nats_client(&nats, None, errors_tx).await;
    assert!(anonymous.is_err(), "an anonymous client connected");
}

#[tokio::test]
async fn records_and_calls_forged_in_nats_are_refused_and_poison_is_dead_lettered() {
    let _serial = SERIAL.lock().await;
    let nats = Nats::start().await;
    let host = join(&nats, &[]).await;
    host.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client.clone());
    let records = js.get_key_value("wisp-functions").await.unwrap();

    // A record under a name the admin API would refuse (a path).
    let stored = records.get("hello").await.unwrap().unwrap();
    let mut record: serde_json::Value = serde_json::from_slice(&stored).unwrap();
    let mut evil = record.clone();
    evil["name"] = "evil/escape".into();
    records
        .put("evil/escape", evil.to_string().into())
        .await
        .unwrap();
    // A new version granting the host's own secrets directory.
    let mut granted = record["versions"][0].clone();
    granted["number"] = 2.into();
    let secrets = host.data_dir().join("secrets");
    granted["settings"]["dir"] = serde_json::json!([format!("{}:/s", secrets.display())]);
    record["versions"].as_array_mut().unwrap().push(granted);
    record["traffic"] = serde_json::json!([{"version": 2, "weight": 100}]);
    records
        .put("hello", record.to_string().into())
        .await
        .unwrap();
    let refused = eventually(Duration::from_secs(10), async || {
        let log = host.log();
        log.contains("invalid name") && log.contains("outside the host's data directory")
    })
    .await;
    assert!(refused, "{}", host.log());
    assert!(
        !host.data_dir().join("functions/evil").exists(),
        "nothing was written for it"
    );
    let names: Vec<String> = listing(&host)
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["hello"]);

    // A call message that can never run is dead-lettered once, not
    // redelivered forever.
    let queue_made = eventually(Duration::from_secs(10), async || {
        js.get_stream("WISP_CALLS").await.is_ok()
    })
    .await;
    assert!(queue_made, "the host made no call queue");
    js.publish("wisp.calls.run", "not-a-call-id".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let dead = eventually(Duration::from_secs(15), async || {
        let Ok(mut stream) = js.get_stream("WISP_CALLS_DEAD").await else {
            return false;
        };
        stream
            .info()
            .await
            .is_ok_and(|info| info.state.messages == 1)
    })
    .await;
    assert!(
        dead,
        "the poison message was not dead-lettered:\n{}",
        host.log()
    );
    assert!(host.log().contains("dead-lettered"), "{}", host.log());
    let mut queue = js.get_stream("WISP_CALLS").await.unwrap();
    assert_eq!(
        queue.info().await.unwrap().state.messages,
        0,
        "not redelivered"
    );
}

#[tokio::test]
async fn a_commit_pushed_to_two_hosts_is_built_once_and_serves_on_both() {
    use crate::support::{committed, git, stderr};
    let _serial = SERIAL.lock().await;
    let nats = Nats::start().await;
    let hosts = hosts(&nats, 2).await;
    let work = tempfile::tempdir().unwrap();
    let repo = work.path();
    assert!(git(repo, &["init", "-q", "-b", "main"]).status.success());
    std::fs::write(
        repo.join("main.c"),
        "#include <stdio.h>\nint main(void) { printf(\"Content-Type: text/plain\\r\\n\\r\\nonce\\n\"); }\n",
    )
    .unwrap();
    committed(repo, "first");

    // Host 0 builds and deploys; the cluster's source store carries the
    // binary to host 1, which compiles it as for any deploy.
    let remote = |host: &Wisp| format!("http://{}/git/once.git", host.admin);
    let first = git(repo, &["push", &remote(&hosts[0]), "main"]);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(
        stderr(&first).contains("building `once` with c"),
        "{}",
        stderr(&first)
    );
    assert!(serves(&hosts[1], "/once", Duration::from_secs(20)).await);

    // The same commit pushed to host 1 (its own repository): not built again.
    let second = git(repo, &["push", &remote(&hosts[1]), "main"]);
    let said = stderr(&second);
    assert!(second.status.success(), "{said}");
    assert!(said.contains("already serves as v1"), "{said}");
    assert!(!said.contains("building `once`"), "{said}");
    for host in &hosts {
        assert_eq!(host.get("/once").await.text(), "once\n");
        let info = host.admin_get("/v1/functions/once").await.json();
        assert_eq!(info["versions"].as_array().unwrap().len(), 1, "{info}");
    }
}

/// The next text `client` gets that is not a `ping` (the probes that
/// found the cluster's bus ready).
async fn next_message(client: &mut crate::ws_client::Client) -> String {
    loop {
        let text = crate::ws_client::next_text(client).await;
        if !text.starts_with("ping") {
            return text;
        }
    }
}

#[tokio::test]
async fn a_chat_room_spans_hosts_and_survives_one_dying() {
    use crate::ws_client::{join_chat, say};
    let _serial = SERIAL.lock().await;
    let nats = Nats::start().await;
    let mut hosts = hosts(&nats, 2).await;
    hosts[0]
        .deploy_ok(
            "chat",
            artifacts::CHAT_COMPONENT,
            "route=/chat&websocket=on&allow-outbound=http://wisp.internal",
        )
        .await;
    assert!(serves(&hosts[1], "/chat", Duration::from_secs(10)).await);
    let mut ann = join_chat(&hosts[0], "/chat").await;
    let mut bob = join_chat(&hosts[1], "/chat").await;
    let mut cat = join_chat(&hosts[1], "/chat").await;
    // A publish through one host reaches the other's sockets once the
    // bus is up: probe until bob, on the other host, hears one.
    let publish = async |host: &Wisp, text: &str| {
        let body = format!(
            r#"{{"items": [{{"channel": "lobby", "ws-message": {{"content": "{text}"}}}}]}}"#
        );
        let response = send(
            Method::POST,
            &host.admin_url("/v1/functions/chat/publish"),
            &[("content-type", "application/json")],
            Bytes::from(body),
        )
        .await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    };
    let mut heard = false;
    for probe in 0..50 {
        publish(&hosts[0], &format!("ping {probe}")).await;
        if let Ok(Some(Ok(_))) = tokio::time::timeout(
            Duration::from_millis(200),
            futures_util::StreamExt::next(&mut bob),
        )
        .await
        {
            heard = true;
            break;
        }
    }
    assert!(heard, "the cluster's bus never carried a publish");
    // A message said on one host reaches every client on both.
    say(&mut ann, "hello").await;
    for client in [&mut ann, &mut bob, &mut cat] {
        assert_eq!(next_message(client).await, "anonymous: hello");
    }
    // An operator's publish through the other host reaches them too.
    publish(&hosts[1], "from ops").await;
    for client in [&mut ann, &mut bob, &mut cat] {
        assert_eq!(next_message(client).await, "from ops");
    }
    // The host of bob and cat dies: bob reconnects to the other, and the
    // room keeps working.
    hosts[1].kill9();
    drop((bob, cat));
    let mut bob = join_chat(&hosts[0], "/chat").await;
    say(&mut bob, "back").await;
    for client in [&mut ann, &mut bob] {
        assert_eq!(next_message(client).await, "anonymous: back");
    }
}
