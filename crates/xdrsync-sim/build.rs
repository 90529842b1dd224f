//! Copies `infra/alert-trigger-columns.json` into the build's output directory, or `null` when
//! the repository does not have it yet, so the simulator's Logs Ingestion can embed the trigger
//! stream's declared columns and treat the stream as undeclared until the file exists.

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let infra = manifest.join("../../infra");
    // A directory is scanned for changes, so the file appearing later reruns this script.
    println!("cargo:rerun-if-changed={}", infra.display());
    let text = std::fs::read_to_string(infra.join("alert-trigger-columns.json")).unwrap_or_else(|_| "null".into());
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("alert-trigger-columns.json");
    std::fs::write(out, text).expect("OUT_DIR is writable");
}
