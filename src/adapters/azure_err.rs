//! Maps `azure_core` errors onto [`PortError`] through the one status classification, so the
//! storage adapters answer in the same vocabulary as the HTTP adapters.

use crate::adapters::status::{from_status, network};
use crate::error::PortError;

pub fn from_azure(service: &'static str, e: azure_core::Error) -> PortError {
    match e.kind() {
        azure_core::error::ErrorKind::HttpResponse { status, error_code } => {
            let status = u16::from(*status);
            let body = serde_json::json!({"error": {"code": error_code.clone().unwrap_or_default(), "message": error_code.clone().unwrap_or_default()}});
            from_status(service, status, None, &body.to_string())
        }
        azure_core::error::ErrorKind::Io => network(service, e),
        azure_core::error::ErrorKind::Credential => PortError::Unauthorized { service, message: e.to_string() },
        _ => PortError::decode(service, e),
    }
}
