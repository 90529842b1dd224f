//! Maps `azure_core` errors onto [`ApiError`] through the one status classification, so the
//! storage adapters answer in the same vocabulary as the HTTP adapters.

use crate::error::ApiError;

pub fn from_azure(service: &'static str, e: azure_core::Error) -> ApiError {
    match e.kind() {
        azure_core::error::ErrorKind::HttpResponse { status, error_code } => {
            let status = u16::from(*status);
            let body = serde_json::json!({"error": {"code": error_code.clone().unwrap_or_default(), "message": error_code.clone().unwrap_or_default()}});
            ApiError::from_status(service, status, None, &body.to_string())
        }
        azure_core::error::ErrorKind::Io => ApiError::network(service, e),
        azure_core::error::ErrorKind::Credential => ApiError::Auth { service, status: None, message: e.to_string() },
        _ => ApiError::decode(service, e),
    }
}
