//! Test harness: the simulator in-process on a free port, Azurite as a child process on free
//! ports (killed on drop), and configuration pointing xdrsync at both. Azurite must be installed
//! (`npm ci`); a missing install fails the test loudly instead of skipping it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use xdrsync::config::Config;
use xdrsync::sim::{RunningSim, SimConfig};
use xdrsync::storage_conn::StorageConnection;

pub struct Azurite {
    child: Child,
    pub table_port: u16,
    pub queue_port: u16,
}

impl Azurite {
    pub fn connection_string(&self) -> String {
        StorageConnection::azurite_string(self.table_port, self.queue_port)
    }

    /// Starts Azurite (tables + queues, in memory, no telemetry) on free ports.
    pub fn start() -> Self {
        let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("node_modules/.bin/azurite");
        assert!(
            bin.exists(),
            "Azurite is not installed at {}: run `npm ci` in the repository root",
            bin.display()
        );
        let mut child = Command::new(&bin)
            .args([
                "--inMemoryPersistence",
                "--disableTelemetry",
                "--skipApiVersionCheck",
                "--disableProductStyleUrl",
                "--blobPort",
                "0",
                "--queuePort",
                "0",
                "--tablePort",
                "0",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("Azurite starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let port_of = |line: &str| {
            line.rsplit(':')
                .next()
                .and_then(|p| p.trim().parse::<u16>().ok())
        };
        let (mut table_port, mut queue_port) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(60);
        while table_port.is_none() || queue_port.is_none() {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("Azurite printed its ports in time");
            if line.contains("Table service is successfully listening") {
                table_port = port_of(&line);
            }
            if line.contains("Queue service is successfully listening") {
                queue_port = port_of(&line);
            }
        }
        Self {
            child,
            table_port: table_port.unwrap_or_default(),
            queue_port: queue_port.unwrap_or_default(),
        }
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the simulator on a free loopback port.
pub async fn start_sim(config: SimConfig) -> RunningSim {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    xdrsync::sim::spawn(listener, config)
        .await
        .expect("simulator starts")
}

static PREFIX: AtomicU32 = AtomicU32::new(0);

/// A unique table prefix, so tests sharing one Azurite never see each other's rows.
pub fn unique_prefix() -> String {
    format!(
        "t{}x{}",
        std::process::id(),
        PREFIX.fetch_add(1, Ordering::SeqCst)
    )
}

/// Settings for xdrsync pointed at `sim` and (when given) Azurite.
pub fn settings(sim: &RunningSim, storage: Option<&str>) -> HashMap<String, String> {
    let mut m: HashMap<String, String> =
        sim.sim.config.settings_for(sim.addr).into_iter().collect();
    m.insert(
        "AzureWebJobsStorage".into(),
        storage.unwrap_or("UseDevelopmentStorage=true").into(),
    );
    m.insert("XDRSYNC_TABLE_PREFIX".into(), unique_prefix());
    m.insert(
        "XDRSYNC_WEBHOOK_KEY".into(),
        "test-webhook-key-0123456789".into(),
    );
    m
}

pub fn config(settings: &HashMap<String, String>) -> Config {
    Config::from_vars(settings).expect("valid test configuration")
}

/// GET a control-API path of the simulator as JSON.
pub async fn sim_get(sim: &RunningSim, path: &str) -> serde_json::Value {
    reqwest::get(format!("{}{path}", sim.base_url()))
        .await
        .expect("sim reachable")
        .json()
        .await
        .expect("json")
}

/// POST JSON to a control-API path of the simulator.
pub async fn sim_post(sim: &RunningSim, path: &str, body: serde_json::Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}{path}", sim.base_url()))
        .json(&body)
        .send()
        .await
        .expect("sim reachable")
}

pub async fn sim_stat(sim: &RunningSim, key: &str) -> u64 {
    sim.sim.stats.snapshot().get(key).copied().unwrap_or(0)
}
