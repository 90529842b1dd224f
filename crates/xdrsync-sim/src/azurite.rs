//! Local development helpers shared by the demo and the tests: Azurite as a child process on
//! free ports (tables, queues and blobs, in memory, telemetry off), killed on drop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Azurite's well-known development account (public, documented by Microsoft; not a secret).
pub(crate) const DEV_ACCOUNT: &str = "devstoreaccount1";
pub(crate) const DEV_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A connection string for Azurite listening on the given ports.
pub fn connection_string(table_port: u16, queue_port: u16) -> String {
    format!(
        "DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};TableEndpoint=http://127.0.0.1:{table_port}/{DEV_ACCOUNT};QueueEndpoint=http://127.0.0.1:{queue_port}/{DEV_ACCOUNT};"
    )
}

pub struct Azurite {
    child: Child,
    pub table_port: u16,
    pub queue_port: u16,
    pub blob_port: u16,
}

/// A connection string for Azurite's blob service (the Streaming API's storage account).
pub fn blob_connection_string(blob_port: u16) -> String {
    format!(
        "DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};BlobEndpoint=http://127.0.0.1:{blob_port}/{DEV_ACCOUNT};"
    )
}

/// Where `npm ci` puts Azurite, relative to a repository root.
pub fn azurite_bin(root: &Path) -> PathBuf {
    root.join("node_modules/.bin/azurite")
}

impl Azurite {
    pub fn connection_string(&self) -> String {
        connection_string(self.table_port, self.queue_port)
    }

    pub fn blob_connection_string(&self) -> String {
        blob_connection_string(self.blob_port)
    }

    /// The Azurite process id (a test pauses it with SIGSTOP to simulate a storage outage).
    pub fn pid(&self) -> u32 {
        self.child.id()
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
        let (mut table_port, mut queue_port, mut blob_port) = (None, None, None);
        let deadline = Instant::now() + Duration::from_secs(60);
        while table_port.is_none() || queue_port.is_none() || blob_port.is_none() {
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
            if line.contains("Blob service is successfully listening") {
                blob_port = port_of(&line);
            }
        }
        Ok(Self {
            child,
            table_port: table_port.unwrap_or_default(),
            queue_port: queue_port.unwrap_or_default(),
            blob_port: blob_port.unwrap_or_default(),
        })
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
