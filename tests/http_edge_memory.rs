//! The standalone HTTP edge under hostile traffic, measured on the real binary: 1,000 anonymous
//! connections (webhook bodies without the key, heads that never end) leave the process's
//! resident memory (VmRSS, from /proc) under a stated bound, and it answers again afterwards.

mod support;

use std::time::{Duration, Instant};

use support::*;
use tokio::io::AsyncWriteExt;
use xdrsync_sim::sim::SimConfig;

/// The process may grow by at most this much over its idle size while the connections are held
/// (before connections were bounded and the key checked first, 150 such clients took ~290 MB).
const GROWTH_BOUND_MB: u64 = 32;
const CONNECTIONS: usize = 1000;

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc readable");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("a number of kB")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Kills the child on drop.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One hostile client: half send a webhook head without the key and start a 1 MiB body, half a
/// head that grows and never ends. Holds the connection open until dropped.
async fn hostile(addr: std::net::SocketAddr, n: usize) -> Option<tokio::net::TcpStream> {
    let mut tcp =
        tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr)).await.ok()?.ok()?;
    let sent = if n % 2 == 0 {
        let mut req = b"POST /api/sentinel/incidents HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1048576\r\n\r\n".to_vec();
        req.extend(std::iter::repeat_n(b' ', 64 * 1024));
        req
    } else {
        let mut req = b"POST /api/sentinel/incidents HTTP/1.1\r\nHost: x\r\nX-Pad: ".to_vec();
        req.extend(std::iter::repeat_n(b'a', 48 * 1024));
        req
    };
    // Connections beyond the server's bound wait in the backlog: their bytes may not all fit.
    let _ = tokio::time::timeout(Duration::from_secs(2), tcp.write_all(&sent)).await;
    Some(tcp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_anonymous_connections_leave_memory_under_the_bound() {
    let sim = start_sim(SimConfig::demo()).await;
    let az = Azurite::start();
    let mut vars = settings(&sim, Some(&az.connection_string()));
    vars.insert("XDRSYNC_POLL_SCHEDULE".into(), "0 0 0 1 1 *".into());
    vars.insert("XDRSYNC_HTTP_BIND".into(), "127.0.0.1".into());
    let port = free_port();
    vars.insert("XDRSYNC_HTTP_PORT".into(), port.to_string());
    let dir = tempfile::tempdir().unwrap();
    let child = Child(spawn_run(&vars, dir.path()));
    let pid = child.0.id();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let health = format!("http://{addr}/api/health");
    let client = reqwest::Client::new();
    wait_for(60, "the binary to answer", || async { client.get(&health).send().await.ok().map(|_| ()) }).await;
    let idle_kb = rss_kb(pid);

    let clients: Vec<_> = (0..CONNECTIONS).map(|n| tokio::spawn(hostile(addr, n))).collect();
    let mut held = Vec::new();
    for c in clients {
        held.extend(c.await.unwrap());
    }
    assert!(held.len() >= CONNECTIONS * 9 / 10, "only {} connections were made", held.len());
    let mut peak_kb = rss_kb(pid);
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        peak_kb = peak_kb.max(rss_kb(pid));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let growth_mb = peak_kb.saturating_sub(idle_kb) / 1024;
    println!(
        "{} connections held: RSS idle {} MB, peak {} MB, growth {growth_mb} MB (bound {GROWTH_BOUND_MB} MB)",
        held.len(),
        idle_kb / 1024,
        peak_kb / 1024
    );
    assert!(growth_mb < GROWTH_BOUND_MB, "RSS grew by {growth_mb} MB");
    drop(held);
    // Once they are gone, the server answers again.
    wait_for(40, "health to answer after the flood", || async {
        client.get(&health).timeout(Duration::from_secs(2)).send().await.ok().map(|_| ())
    })
    .await;
}
