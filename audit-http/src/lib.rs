//! HTTP integration of the audit toolkit, for tower and axum services (hyper and tonic too):
//! a layer that opens each request's audit scope, an extractor for the authentication step,
//! an HTTP answer for refusals, and tokio tasks that keep the scope. Use it through the
//! `audit` facade (`audit::http`, feature `axum`).
//!
//! ```
//! use audit::{Actor, AuthMethod, audited};
//! use audit_http::{AuditHttpLayer, RequestAudit};
//! use axum::{Router, http::StatusCode, routing::post};
//!
//! #[audited(action = "billing.update", resource = "customer", id = customer)]
//! async fn update_billing(audit: RequestAudit, axum::extract::Path(customer): axum::extract::Path<String>) -> StatusCode {
//!     // A 403 here is recorded as a failure ("HTTP 403 Forbidden"), a 204 as a success.
//!     if customer.starts_with("cust_") { StatusCode::NO_CONTENT } else { StatusCode::FORBIDDEN }
//! }
//!
//! let app: Router = Router::new()
//!     .route("/customers/{customer}/billing", post(update_billing))
//!     .layer(AuditHttpLayer::new());
//! # drop(app);
//! ```

mod client_ip;
mod extract;
mod layer;
mod refusal;
pub mod task;

pub use client_ip::TrustedProxies;
pub use extract::RequestAudit;
pub use layer::{AuditHttp, AuditHttpLayer, ResponseFuture};
pub use refusal::AuditRejection;
