//! What a request the toolkit refuses is answered: 503 with a JSON body saying why.

use audit_runtime::AuditError;
use axum::response::{IntoResponse, Response};
use http::{Response as HttpResponse, StatusCode, header};

/// The toolkit's error as an HTTP answer: 503 (the audited action did not run because its
/// event could not be recorded) with `{"error":"audit_unavailable","message":...}`. Handlers
/// returning `Result<T, AuditRejection>` (or an error type `From<AuditError>` that converts
/// through it) answer this instead of panicking when refused.
#[derive(Debug)]
pub struct AuditRejection(pub AuditError);

impl From<AuditError> for AuditRejection {
    fn from(error: AuditError) -> Self {
        AuditRejection(error)
    }
}

impl std::fmt::Display for AuditRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl IntoResponse for AuditRejection {
    fn into_response(self) -> Response {
        refusal_response(&self.0)
    }
}

/// The 503 answer, for any body type that can hold text.
pub(crate) fn refusal_response<B: From<String>>(error: &AuditError) -> HttpResponse<B> {
    let body = serde_json::json!({ "error": "audit_unavailable", "message": error.to_string() });
    let mut response = HttpResponse::new(B::from(body.to_string()));
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}
