//! Local development helpers shared by the demo and the tests: Azurite as a child process on
//! free ports (tables + queues, in memory, telemetry off), killed on drop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::storage_conn::StorageConnection;

pub struct Azurite {
    child: Child,
    pub table_port: u16,
    pub queue_port: u16,
}

/// Where `npm ci` puts Azurite, relative to a repository root.
pub fn azurite_bin(root: &Path) -> PathBuf {
    root.join("node_modules/.bin/azurite")
}

impl Azurite {
    pub fn connection_string(&self) -> String {
        StorageConnection::azurite_string(self.table_port, self.queue_port)
    }

    /// Starts Azurite from `bin` and waits until it listens.
    pub fn start(bin: &Path) -> anyhow::Result<Self> {
        if !bin.exists() {
            anyhow::bail!("Azurite is not installed at {}: run `npm ci` in the repository root", bin.display());
        }
        let mut child = Command::new(bin)
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
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow::anyhow!("no stdout from Azurite"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Keep draining after the ports are known: Azurite logs every request to stdout and
            // dies of a broken pipe if nobody reads it.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let port_of = |line: &str| line.rsplit(':').next().and_then(|p| p.trim().parse::<u16>().ok());
        let (mut table_port, mut queue_port) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(60);
        while table_port.is_none() || queue_port.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = rx.recv_timeout(left) else {
                let _ = child.kill();
                anyhow::bail!("Azurite did not report its ports within 60 s");
            };
            if line.contains("Table service is successfully listening") {
                table_port = port_of(&line);
            }
            if line.contains("Queue service is successfully listening") {
                queue_port = port_of(&line);
            }
        }
        Ok(Self { child, table_port: table_port.unwrap_or_default(), queue_port: queue_port.unwrap_or_default() })
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
