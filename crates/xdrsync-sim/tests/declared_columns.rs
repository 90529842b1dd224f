//! The product's alert rows carry only columns their DCR stream declares: Logs Ingestion would
//! drop any other one without a word (the simulator does too), so a column the product adds
//! without declaring it in the committed infra files would be lost silently. Here, not in the
//! simulator's sources, because only a test may join the product's code and the simulator's.

use serde_json::{json, Value};
use xdrsync_sim::sim::stream_columns::{declared, ALERTS_STREAM};

/// The product's alert row builder (xdrsync-core) sends only declared columns: a row with
/// every entity kind the rule maps, and one whose entities overflow (`EntitiesOmitted`).
#[test]
fn every_column_the_products_alert_rows_carry_is_declared() {
    use xdrsync_core::domain::alerts::{digest, row, with_row_digest, with_time_generated};
    use xdrsync_core::domain::defender::DefenderAlert;
    let ev = |t: &str, v: Value| {
        let mut v = v;
        v["@odata.type"] = json!(format!("#microsoft.graph.security.{t}"));
        v
    };
    let evidence = vec![
        ev(
            "deviceEvidence",
            json!({"deviceDnsName": "wks-1.contoso.com", "azureAdDeviceId": "d1", "mdeDeviceId": "m"}),
        ),
        ev(
            "userEvidence",
            json!({"userAccount": {"accountName": "ann", "userPrincipalName": "ann@contoso.com", "azureAdUserId": "u1"}}),
        ),
        ev("userEvidence", json!({"userAccount": {"accountName": "bob", "userPrincipalName": "bob@contoso.com"}})),
        ev("ipEvidence", json!({"ipAddress": "203.0.113.5"})),
        ev("ipEvidence", json!({"ipAddress": "203.0.113.6"})),
        ev("fileEvidence", json!({"fileDetails": {"fileName": "a.exe", "sha256": "ab".repeat(32)}})),
        ev("urlEvidence", json!({"url": "https://example.com/x"})),
        ev("mailboxEvidence", json!({"primaryAddress": "ann@contoso.com"})),
        ev(
            "processEvidence",
            json!({"processId": 4, "processCommandLine": "cmd /c x", "imageFile": {"fileName": "cmd.exe"}}),
        ),
        ev("cloudApplicationEvidence", json!({"appId": 7, "displayName": "App"})),
    ];
    let alert = |evidence: Vec<Value>| -> DefenderAlert {
        serde_json::from_value(json!({
            "id": "da1", "providerAlertId": "p1", "incidentId": "29", "status": "new", "severity": "high",
            "serviceSource": "microsoftDefenderForEndpoint", "detectionSource": "antivirus", "title": "t",
            "category": "Execution", "mitreTechniques": ["T1059"], "productName": "MDE",
            "createdDateTime": "2026-01-01T00:00:00Z", "lastUpdateDateTime": "2026-01-01T00:05:00Z",
            "alertWebUrl": "https://security.microsoft.com/alerts/da1", "evidence": evidence,
        }))
        .unwrap()
    };
    let many: Vec<Value> =
        (0..3_000).map(|i| ev("ipEvidence", json!({"ipAddress": format!("10.0.{}.{}", i / 256, i % 256)}))).collect();
    let declared = declared(ALERTS_STREAM).unwrap();
    for a in [alert(evidence), alert(many)] {
        let r = row(&a, "t", "29", &uuid::Uuid::nil());
        let d = digest(&r);
        let sent = with_time_generated(with_row_digest(r, &d), time::OffsetDateTime::UNIX_EPOCH);
        for key in sent.as_object().unwrap().keys() {
            assert!(declared.iter().any(|(c, _)| c == key), "{key} is sent but not declared for {ALERTS_STREAM}");
        }
        assert!(sent.get("EntityHostName").is_some() || sent.get("EntitiesOmitted").is_some());
    }
}
