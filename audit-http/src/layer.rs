//! The tower layer that opens each request's audit scope and settles its outcome.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use audit_runtime::{Action, AuditEvent, AuditScope, Category, SharedScope, WithAuditScope};
use http::header::{HeaderName, HeaderValue, USER_AGENT};
use http::request::Parts;
use http::{Request, Response, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

use crate::client_ip::TrustedProxies;
use crate::extract::RequestAudit;

type SessionId = Arc<dyn Fn(&Parts) -> Option<String> + Send + Sync>;

#[derive(Clone)]
struct Config {
    request_id_header: HeaderName,
    trusted: TrustedProxies,
    session_id: Option<SessionId>,
    record_denials: bool,
    refuse_unaudited: bool,
}

/// Opens an audit scope for every request: request id (taken from a header or a fresh
/// UUIDv7, echoed in the response), client IP (from the connection, or from forwarding
/// headers of trusted proxies only), user agent, session id (by a closure of yours) and trace
/// id (W3C `traceparent`, or the current span). The application's authentication, running
/// inside it, sets the actor and tenant with the [`RequestAudit`] extractor.
///
/// It also settles the outcome of the request's outermost `#[audited]` handler with the
/// status the client gets (a 403 is a failure, whatever the handler returned), records 401
/// and 403 answers of routes no audited fn covers as the standard `access.unauthenticated` /
/// `access.denied` actions (optional), and, when the failure mode is Refuse and no healthy
/// audit sink is installed, answers 503 instead of running the service (fail-closed).
///
/// ```
/// use audit_http::{AuditHttpLayer, TrustedProxies};
///
/// let layer = AuditHttpLayer::new()
///     .request_id_header("x-request-id")
///     .trusted_proxies(TrustedProxies::parse(["10.0.0.0/8"]).unwrap())
///     .session_id(|parts| parts.headers.get("x-session-id")?.to_str().ok().map(str::to_owned))
///     .record_denials(true);
/// let app: axum::Router = axum::Router::new().layer(layer);
/// # drop(app);
/// ```
#[derive(Clone)]
pub struct AuditHttpLayer {
    config: Arc<Config>,
}

impl std::fmt::Debug for AuditHttpLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditHttpLayer")
            .field("request_id_header", &self.config.request_id_header)
            .field("trusted", &self.config.trusted)
            .field("record_denials", &self.config.record_denials)
            .finish_non_exhaustive()
    }
}

impl Default for AuditHttpLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl AuditHttpLayer {
    /// The layer with its defaults: request ids in `x-request-id`, no trusted proxy, no
    /// session id, denials recorded, refusal when unaudited.
    pub fn new() -> Self {
        AuditHttpLayer {
            config: Arc::new(Config {
                request_id_header: HeaderName::from_static("x-request-id"),
                trusted: TrustedProxies::none(),
                session_id: None,
                record_denials: true,
                refuse_unaudited: true,
            }),
        }
    }

    fn config(mut self, change: impl FnOnce(&mut Config)) -> Self {
        change(Arc::make_mut(&mut self.config));
        self
    }

    /// The header that carries request ids in and out (default `x-request-id`).
    ///
    /// # Panics
    /// When `name` is not a valid header name: a programming error.
    pub fn request_id_header(self, name: &str) -> Self {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("a valid header name");
        self.config(|c| c.request_id_header = name)
    }

    /// The proxies whose `Forwarded` / `X-Forwarded-For` headers are believed (default none).
    pub fn trusted_proxies(self, trusted: TrustedProxies) -> Self {
        self.config(|c| c.trusted = trusted)
    }

    /// How to find the session id of a request (a cookie, a header): recorded as
    /// `context.session_id`. Record an opaque id or a hash, never a bearer secret.
    pub fn session_id(self, find: impl Fn(&Parts) -> Option<String> + Send + Sync + 'static) -> Self {
        self.config(|c| c.session_id = Some(Arc::new(find)))
    }

    /// Whether 401 and 403 answers of routes that recorded no event are recorded as the
    /// standard `access.unauthenticated` / `access.denied` (default true).
    pub fn record_denials(self, record: bool) -> Self {
        self.config(|c| c.record_denials = record)
    }

    /// Whether, when the failure mode is Refuse and no healthy audit sink is installed, every
    /// request is answered 503 instead of served (default true). Keep health checks outside
    /// the layer.
    pub fn refuse_when_unaudited(self, refuse: bool) -> Self {
        self.config(|c| c.refuse_unaudited = refuse)
    }
}

impl<S> Layer<S> for AuditHttpLayer {
    type Service = AuditHttp<S>;

    fn layer(&self, inner: S) -> AuditHttp<S> {
        AuditHttp {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// The service of [`AuditHttpLayer`].
#[derive(Clone)]
pub struct AuditHttp<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for AuditHttp<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditHttp")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for AuditHttp<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<String>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let config = &self.config;
        if config.refuse_unaudited
            && let Err(error) = audit_runtime::ensure_sink(None)
        {
            return ResponseFuture::refused(error);
        }
        let (mut parts, body) = request.into_parts();
        let request_id = request_id(&parts, &config.request_id_header);
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<SocketAddr>>()
            .map(|c| c.0)
            .or_else(|| parts.extensions.get::<SocketAddr>().copied());
        let mut scope = AuditScope::inherit().context("request_id", request_id.as_str());
        if let Some(ip) = config.trusted.client_ip(peer, &parts.headers) {
            scope = scope.context("ip", ip.to_string());
        }
        if let Some(agent) = parts.headers.get(USER_AGENT) {
            scope = scope.context("user_agent", String::from_utf8_lossy(agent.as_bytes()));
        }
        if let Some(session) = config.session_id.as_ref().and_then(|find| find(&parts)) {
            scope = scope.context("session_id", session);
        }
        if let Some(trace) = trace_id(&parts) {
            scope = scope.context("trace_id", trace);
        }
        let shared = SharedScope::holding(scope);
        parts.extensions.insert(RequestAudit::new(shared.clone()));
        let route = format!("{} {}", parts.method, parts.uri.path());
        let inner = {
            let _scope = shared.scope().enter();
            self.inner.call(Request::from_parts(parts, body))
        };
        ResponseFuture {
            state: State::Running {
                inner: inner.with_shared_audit_scope(shared.clone()),
            },
            settle: Some(Settle {
                shared,
                request_id,
                header: config.request_id_header.clone(),
                route,
                record_denials: config.record_denials,
            }),
        }
    }
}

/// The request's id: the client's (or a proxy's) when it is a sensible token, else a fresh
/// UUIDv7.
fn request_id(parts: &Parts, header: &HeaderName) -> String {
    parts
        .headers
        .get(header)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

/// The trace id of a W3C `traceparent` header (`00-<32 hex>-<16 hex>-<2 hex>`), else the id
/// of the current `tracing` span.
fn trace_id(parts: &Parts) -> Option<String> {
    let from_header = parts
        .headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let mut fields = v.trim().split('-');
            let (version, trace, parent, flags) = (fields.next()?, fields.next()?, fields.next()?, fields.next()?);
            let hex =
                |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            let valid = hex(version, 2) && version != "ff" && hex(trace, 32) && hex(parent, 16) && hex(flags, 2);
            (valid && trace.bytes().any(|b| b != b'0')).then(|| trace.to_owned())
        });
    from_header.or_else(|| {
        tracing::Span::current()
            .id()
            .map(|id| format!("{:016x}", id.into_u64()))
    })
}

struct Settle {
    shared: SharedScope,
    request_id: String,
    header: HeaderName,
    route: String,
    record_denials: bool,
}

impl Settle {
    /// Settles the held events with the response's status, records a denial nothing else
    /// recorded, and echoes the request id.
    fn response<B>(self, response: &mut Response<B>) {
        let status = response.status();
        let reason = status.canonical_reason().unwrap_or("");
        self.shared.settle(Some((status.as_u16(), reason)));
        let denial = match status {
            StatusCode::UNAUTHORIZED => Some(("access.unauthenticated", Category::Authentication)),
            StatusCode::FORBIDDEN => Some(("access.denied", Category::Authorization)),
            _ => None,
        };
        if let Some((action, category)) = denial.filter(|_| self.record_denials && !self.shared.recorded()) {
            let event = AuditEvent::of(Action::__checked(action, category))
                .resource("http_route", &self.route)
                .failure(format!("HTTP {} {reason}", status.as_u16()).trim_end().to_owned());
            // Reported loudly by the runtime if undelivered.
            let _ = self.shared.scope().in_scope(|| event.emit());
        }
        if let Ok(value) = HeaderValue::from_str(&self.request_id) {
            response.headers_mut().insert(self.header, value);
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`AuditHttp`].
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
        settle: Option<Settle>,
    }

    impl<F> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            // Abandoned (the client went away): held events keep their call's outcome.
            if let Some(settle) = this.project().settle.take() {
                settle.shared.settle(None);
            }
        }
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F> {
        Running { #[pin] inner: audit_runtime::SharedScoped<F> },
        Refused { error: Option<audit_runtime::AuditError> },
    }
}

impl<F> ResponseFuture<F> {
    fn refused(error: audit_runtime::AuditError) -> Self {
        ResponseFuture {
            state: State::Refused { error: Some(error) },
            settle: None,
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: From<String>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.state.project() {
            StateProj::Refused { error } => {
                let error = error.take().unwrap_or(audit_runtime::AuditError::NoSink);
                Poll::Ready(Ok(crate::refusal::refusal_response(&error)))
            }
            StateProj::Running { inner } => {
                let result = std::task::ready!(inner.poll(cx));
                if let Some(settle) = this.settle.take() {
                    match &result {
                        Ok(_) => {}
                        Err(_) => settle.shared.settle(None),
                    }
                    return Poll::Ready(result.map(|mut response| {
                        settle.response(&mut response);
                        response
                    }));
                }
                Poll::Ready(result)
            }
        }
    }
}
