//! `xdrsync check`: validates the configuration, gets a token for each audience, and reaches
//! Table and Queue storage, reporting each problem in plain words with the setting to fix.

use crate::error::{PortError, Reaction};
use crate::usecase::Ports;

/// One line of the report.
#[derive(Debug)]
pub struct CheckLine {
    pub what: String,
    pub ok: bool,
    pub detail: String,
}

fn advice(e: &PortError, settings: &str) -> String {
    match e.reaction() {
        Reaction::FixAccess => format!("{e}. Check {settings}."),
        Reaction::Retry => {
            format!("{e}. The endpoint did not answer; check the URL and network ({settings}).")
        }
        _ => format!("{e}. Check {settings}."),
    }
}

/// Runs every check; never panics, never prints secrets.
pub async fn run(services: &Ports) -> Vec<CheckLine> {
    let cfg = &services.config;
    let creds =
        "XDRSYNC_TENANT_ID, XDRSYNC_CLIENT_ID, XDRSYNC_CLIENT_SECRET (or the managed identity), XDRSYNC_AUTHORITY_HOST";
    let mut lines = vec![CheckLine { what: "configuration".into(), ok: true, detail: "all settings valid".into() }];
    for (audience, scope) in [
        ("Graph", &cfg.graph_scope),
        ("ARM (Sentinel)", &cfg.arm_scope),
        ("Monitor (Logs Ingestion)", &cfg.monitor_scope),
    ] {
        let r = services.tokens.token(scope).await;
        lines.push(CheckLine {
            what: format!("token for {audience}"),
            ok: r.is_ok(),
            detail: match r {
                Ok(_) => format!("got a token for {scope}"),
                Err(e) => advice(&e, creds),
            },
        });
    }
    let r = services.store.ensure_tables().await;
    lines.push(CheckLine {
        what: "table storage".into(),
        ok: r.is_ok(),
        detail: match r {
            Ok(()) => format!("tables {}* ready at {}", cfg.table_prefix, cfg.storage.table_endpoint),
            Err(e) => advice(&e, "AzureWebJobsStorage"),
        },
    });
    let r = services.queue.ensure_queue(&cfg.queue_name).await;
    lines.push(CheckLine {
        what: "queue storage".into(),
        ok: r.is_ok(),
        detail: match r {
            Ok(()) => format!("queue {} ready at {}", cfg.queue_name, cfg.storage.queue_endpoint),
            Err(e) => advice(&e, "AzureWebJobsStorage"),
        },
    });
    lines
}
