//! The soak's instances of one deployment on one storage account: `xdrsync run` processes
//! (standalone), or `xdrsync serve` custom handlers each behind its own Functions host emulator
//! (Functions mode: the host's timer and queue trigger drive it, as Azure does). An instance is
//! killed with SIGKILL (its host goes with it, as when a worker dies) and started again.
//!
//! Timers are singletons in Azure ("only a single instance of a timer-triggered function is run
//! across all instances", the timer trigger's documentation; the host holds a blob lease), and
//! xdrsync's Functions mode relies on it (no lease of its own). So only instance 0's host runs
//! the `IncidentPoller` timer; when instance 0 dies its restart takes the timer back at once
//! (Azure's lock moves after the lease lapses: seconds longer).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::host_queue::HostQueue;
use crate::demo::{ChildGuard, ChildMode, Stack};
use crate::functions_host::{FunctionsHost, HostConfig, HostHandle, MessageEncoding};

/// How the instances run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum SoakMode {
    /// `xdrsync run`.
    Standalone,
    /// `xdrsync serve` behind the Functions host emulator.
    Functions,
}

/// xdrsync's queue and functions (host.json, functions/*/function.json).
const QUEUE: &str = "xdrsync-incidents";
const SYNC_FUNCTION: &str = "IncidentSync";
const POLLER_FUNCTION: &str = "IncidentPoller";
const HEALTH_FUNCTION: &str = "Health";
/// The instance whose host runs the timer (a singleton in Azure).
const TIMER_HOLDER: usize = 0;

struct Instance {
    child: ChildGuard,
    port: u16,
    /// Functions mode: the host's trigger loops, held for their lifetime (dropping the handle
    /// stops them, with the instance).
    _host: Option<HostHandle>,
}

/// What one health probe saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// The answer's HTTP status and `status` field.
    Answered { status: u16, health: String },
    /// No answer within the probe's timeout.
    NoAnswer,
}

pub struct Fleet {
    mode: SoakMode,
    poll: Duration,
    instances: Vec<Instance>,
    /// Instances that exited without being killed (a crash): found by [`Fleet::crashed`].
    pub unexpected_exits: Vec<String>,
}

impl Fleet {
    /// Starts `n` instances on `stack` (whose own child, an idle `serve` nobody invokes, is not
    /// one of them).
    pub async fn start(stack: &Stack, mode: SoakMode, n: usize, poll: Duration) -> anyhow::Result<Self> {
        let mut fleet = Self { mode, poll, instances: Vec::new(), unexpected_exits: Vec::new() };
        for i in 0..n {
            let i = fleet.spawn(stack, i == TIMER_HOLDER).await?;
            fleet.instances.push(i);
        }
        Ok(fleet)
    }

    pub fn count(&self) -> usize {
        self.instances.len()
    }

    async fn spawn(&self, stack: &Stack, runs_timer: bool) -> anyhow::Result<Instance> {
        let child_mode = match self.mode {
            SoakMode::Standalone => ChildMode::Run,
            SoakMode::Functions => ChildMode::Serve,
        };
        let (child, port) = stack.spawn_instance(child_mode)?;
        stack.wait_answering(&child, port).await?;
        let host = match self.mode {
            SoakMode::Standalone => None,
            SoakMode::Functions => {
                let queue = Arc::new(HostQueue::new(stack.queue_port()));
                let config = HostConfig {
                    encoding: MessageEncoding::Base64,
                    ..HostConfig::from_repo_host_json(QUEUE, SYNC_FUNCTION)
                };
                let host = FunctionsHost::new(format!("http://127.0.0.1:{port}"), queue, config);
                Some(host.start(runs_timer.then_some((POLLER_FUNCTION, self.poll))))
            }
        };
        Ok(Instance { child, port, _host: host })
    }

    /// Kills instance `i` with SIGKILL and starts it again; returns how long the restart took
    /// until the new process answered.
    pub async fn kill_and_restart(&mut self, stack: &Stack, i: usize) -> anyhow::Result<Duration> {
        let old = self.instances.remove(i);
        // Dropping the guard sends SIGKILL (std's `Child::kill`) and reaps the process; the host
        // loops stop with it.
        drop(old);
        let started = Instant::now();
        let fresh = self.spawn(stack, i == TIMER_HOLDER).await?;
        self.instances.insert(i, fresh);
        Ok(started.elapsed())
    }

    /// Restarts every instance that exited on its own, recording why it exited.
    pub async fn restart_crashed(&mut self, stack: &Stack) -> anyhow::Result<()> {
        for i in 0..self.instances.len() {
            if let Some(why) = self.instances[i].child.exited() {
                self.unexpected_exits.push(why);
                self.kill_and_restart(stack, i).await?;
            }
        }
        Ok(())
    }

    /// Whether every instance process is still running.
    pub fn all_running(&self) -> bool {
        self.instances.iter().all(|i| i.child.exited().is_none())
    }

    /// Asks instance `i` for its health, as a probe would (anonymous), within `timeout`.
    pub async fn probe(&self, http: &reqwest::Client, i: usize, timeout: Duration) -> Probe {
        let port = self.instances[i].port;
        let answer = match self.mode {
            SoakMode::Standalone => {
                let r = http.get(format!("http://127.0.0.1:{port}/api/health")).timeout(timeout).send().await;
                match r {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        r.json::<Value>().await.ok().map(|v| (status, v))
                    }
                    Err(_) => None,
                }
            }
            SoakMode::Functions => {
                // The host's HTTP trigger invocation (forwarding off), as tests/functions_protocol.rs shows it.
                let req = json!({"Data": {"req": {"Url": "http://localhost:7071/api/health", "Method": "GET",
                    "Query": "{}", "Headers": {}, "Params": {}}}, "Metadata": {"sys": {"MethodName": HEALTH_FUNCTION}}});
                let r = http
                    .post(format!("http://127.0.0.1:{port}/{HEALTH_FUNCTION}"))
                    .json(&req)
                    .timeout(timeout)
                    .send()
                    .await;
                match r {
                    Ok(r) => r.json::<Value>().await.ok().and_then(|v| {
                        let res = &v["Outputs"]["res"];
                        let status = res["statusCode"].as_u64()? as u16;
                        let body = serde_json::from_str(res["body"].as_str()?).ok()?;
                        Some((status, body))
                    }),
                    Err(_) => None,
                }
            }
        };
        match answer {
            Some((status, body)) => {
                Probe::Answered { status, health: body["status"].as_str().unwrap_or_default().to_string() }
            }
            None => Probe::NoAnswer,
        }
    }
}
