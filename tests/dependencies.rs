//! The dependency facts docs/ARCHITECTURE.md states ("Tokens are our own code over reqwest"): no
//! azure_identity, and one azure_core (every azure_* crate of one release line) in Cargo.lock.

#[test]
fn one_azure_core_and_no_azure_identity_in_the_lock_file() {
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock")).unwrap();
    let versions = |name: &str| -> Vec<String> {
        lock.split("[[package]]")
            .filter(|p| p.contains(&format!("name = \"{name}\"\n")))
            .filter_map(|p| p.lines().find_map(|l| l.strip_prefix("version = ")).map(str::to_string))
            .collect()
    };
    assert_eq!(versions("azure_core").len(), 1, "one azure_core: {:?}", versions("azure_core"));
    assert!(versions("azure_identity").is_empty(), "tokens are our own code (adapters/auth.rs)");
    let core = &versions("azure_core")[0];
    for crate_name in ["azure_storage", "azure_data_tables", "azure_storage_queues", "azure_storage_blobs"] {
        assert_eq!(versions(crate_name), vec![core.clone()], "{crate_name} on azure_core's release line");
    }
}
