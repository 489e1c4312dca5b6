//! What the expansions of `#[audited]` need to know of HTTP responses: whether a returned
//! value is one and its status, and the 503 a refused handler answers instead of panicking.
//! The impls come with the `axum` feature; without it, no value is a response.
//!
//! Both use autoref specialization: a method call on `&&&Probe(&value)` picks the most
//! specific trait whose impl applies (a known status, then any response, then anything).

use std::marker::PhantomData;

use audit_runtime::AuditError;

/// What a returned value says of an HTTP response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpShape {
    /// Not a response.
    NotHttp,
    /// A response whose status only the HTTP layer learns (axum converts it later).
    Response,
    /// A response with this status and its canonical reason.
    Status(u16, &'static str),
}

/// A returned value, probed for its [`HttpShape`].
pub struct Probe<'a, T: ?Sized>(pub &'a T);

/// A value whose status is known now.
pub trait ProbeStatus {
    /// Its shape.
    fn audit_http(&self) -> HttpShape;
}

/// A value that becomes a response.
pub trait ProbeResponse {
    /// Its shape.
    fn audit_http(&self) -> HttpShape;
}

/// Anything else.
pub trait ProbeOther {
    /// Its shape: not a response.
    fn audit_http(&self) -> HttpShape;
}

impl<T: ?Sized> ProbeOther for Probe<'_, T> {
    #[inline(always)]
    fn audit_http(&self) -> HttpShape {
        HttpShape::NotHttp
    }
}

/// The error of an `Err`, probed for its failure reason: its `Display` where it has one, else
/// (with the `axum` feature) its HTTP status or the mere fact that it is an error response.
pub struct ReasonOf<'a, E: ?Sized>(pub &'a E);

/// An error that can say what went wrong.
pub trait ReasonDisplay {
    /// Its `Display`.
    fn audit_reason(&self) -> String;
}

impl<E: std::fmt::Display + ?Sized> ReasonDisplay for &&&ReasonOf<'_, E> {
    #[inline]
    fn audit_reason(&self) -> String {
        self.0.to_string()
    }
}

/// An error that is an HTTP status.
pub trait ReasonStatus {
    /// `HTTP 403 Forbidden`.
    fn audit_reason(&self) -> String;
}

/// An error that is an HTTP response whose status the layer learns.
pub trait ReasonResponse {
    /// A generic reason; the HTTP layer names the status.
    fn audit_reason(&self) -> String;
}

/// A type an audited fn refused by fail-closed can return instead of panicking: the 503
/// responses of the `axum` feature.
pub trait FromAuditRefusal {
    /// The refusal as this type.
    fn from_audit_refusal(error: AuditError) -> Self;
}

/// The refusal of an audited fn returning `R` (not a `Result`): a value where `R` can be one
/// ([`FromAuditRefusal`]), else a panic.
pub struct Refused<R> {
    action: &'static str,
    error: std::cell::Cell<Option<AuditError>>,
    _returns: PhantomData<fn() -> R>,
}

impl<R> Refused<R> {
    /// A refusal of `action`, recording the refused attempt.
    #[cold]
    pub fn new(action: &'static str, category: audit_runtime::Category, error: AuditError) -> Self {
        crate::support::refused_attempt(action, category);
        Refused {
            action,
            error: std::cell::Cell::new(Some(error)),
            _returns: PhantomData,
        }
    }

    fn take(&self) -> AuditError {
        self.error.take().unwrap_or(AuditError::NoSink)
    }
}

/// Refusal as a value.
pub trait RefuseAsValue<R> {
    /// The value.
    fn audit_refusal(&self) -> R;
}

impl<R: FromAuditRefusal> RefuseAsValue<R> for &Refused<R> {
    #[cold]
    fn audit_refusal(&self) -> R {
        R::from_audit_refusal(self.take())
    }
}

/// Refusal as a panic, for return types that cannot say it.
pub trait RefuseAsPanic<R> {
    /// Panics.
    fn audit_refusal(&self) -> R;
}

impl<R> RefuseAsPanic<R> for Refused<R> {
    #[cold]
    #[track_caller]
    fn audit_refusal(&self) -> R {
        panic!("audited action `{}` {}", self.action, self.take())
    }
}

#[cfg(feature = "axum")]
pub use axum_impls::{into_response, refusal_response};

#[cfg(feature = "axum")]
mod axum_impls {
    use audit_runtime::AuditError;
    use axum_core::response::{IntoResponse, Response};
    use http::{HeaderMap, StatusCode};

    use super::{FromAuditRefusal, HttpShape, Probe, ProbeResponse, ProbeStatus, ReasonOf};

    /// A value whose status can be read without converting it.
    pub trait HasStatus {
        /// The status.
        fn status(&self) -> StatusCode;
    }

    impl HasStatus for StatusCode {
        fn status(&self) -> StatusCode {
            *self
        }
    }

    impl<B> HasStatus for http::Response<B> {
        fn status(&self) -> StatusCode {
            self.status()
        }
    }

    impl<T> HasStatus for (StatusCode, T) {
        fn status(&self) -> StatusCode {
            self.0
        }
    }

    impl<T> HasStatus for (StatusCode, HeaderMap, T) {
        fn status(&self) -> StatusCode {
            self.0
        }
    }

    impl<T: HasStatus, E: HasStatus> HasStatus for Result<T, E> {
        fn status(&self) -> StatusCode {
            match self {
                Ok(v) => v.status(),
                Err(e) => e.status(),
            }
        }
    }

    impl<T: HasStatus + ?Sized> ProbeStatus for &&Probe<'_, T> {
        #[inline]
        fn audit_http(&self) -> HttpShape {
            let status = self.0.status();
            HttpShape::Status(status.as_u16(), status.canonical_reason().unwrap_or(""))
        }
    }

    impl<E: HasStatus + ?Sized> super::ReasonStatus for &&ReasonOf<'_, E> {
        fn audit_reason(&self) -> String {
            let status = self.0.status();
            format!("HTTP {} {}", status.as_u16(), status.canonical_reason().unwrap_or(""))
                .trim_end()
                .to_owned()
        }
    }

    impl<E: IntoResponse> super::ReasonResponse for &ReasonOf<'_, E> {
        fn audit_reason(&self) -> String {
            audit_runtime::RESPONSE_ERROR.to_owned()
        }
    }

    impl<T: IntoResponse> ProbeResponse for &Probe<'_, T> {
        #[inline]
        fn audit_http(&self) -> HttpShape {
            HttpShape::Response
        }
    }

    /// The body of an `-> impl IntoResponse` handler as the response it stands for, so that
    /// its status is known when the call is recorded.
    #[inline]
    pub fn into_response<T: IntoResponse>(value: T) -> Response {
        value.into_response()
    }

    /// What a refused handler answers: 503 with a JSON body saying why.
    #[cold]
    pub fn refusal_response(error: AuditError) -> Response {
        let body = serde_json::json!({ "error": "audit_unavailable", "message": error.to_string() });
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(http::header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response()
    }

    impl FromAuditRefusal for Response {
        fn from_audit_refusal(error: AuditError) -> Self {
            refusal_response(error)
        }
    }

    impl FromAuditRefusal for StatusCode {
        fn from_audit_refusal(_: AuditError) -> Self {
            StatusCode::SERVICE_UNAVAILABLE
        }
    }

    impl FromAuditRefusal for (StatusCode, String) {
        fn from_audit_refusal(error: AuditError) -> Self {
            (StatusCode::SERVICE_UNAVAILABLE, error.to_string())
        }
    }
}
