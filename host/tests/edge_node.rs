//! The edge-node example, run as a real process: its own route answers by
//! itself, and every other path reaches the embedded host's function.

#![allow(missing_docs, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the example when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `cargo test` builds the package's examples before it runs any test,
/// next to the test binaries' `deps/` folder.
fn example_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let binary = profile_dir.join("examples/edge_node");
    assert!(
        binary.exists(),
        "the edge_node example is not built at {}: run the tests with `cargo test -p wisp-host` (which builds examples)",
        binary.display()
    );
    binary
}

fn get(address: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap();
    (status, body)
}

#[test]
fn the_edge_node_serves_its_own_route_and_the_embedded_function() {
    let child = Command::new(example_binary())
        .args([
            "127.0.0.1:0",
            "hello",
            "/hello",
            wisp_test_artifacts::HELLO_COMPONENT,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut running = Running(child);
    let stdout = running.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let started = Instant::now();
    let address = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(120).saturating_sub(started.elapsed()))
            .expect("the edge node printed its address");
        if let Some(url) = line.strip_prefix("listening on http://") {
            break url.to_owned();
        }
    };

    let (status, body) = get(&address, "/edge/health");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, body) = get(&address, "/hello");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Hello, world!"), "{body}");
    let (status, body) = get(&address, "/nowhere");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no-route"), "{body}");
}
