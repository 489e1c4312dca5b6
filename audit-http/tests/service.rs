//! An axum service behind the audit layer, driven over real HTTP on loopback: the evidence
//! each request leaves, in the natural shape of axum handlers.

use std::net::SocketAddr;
use std::path::Path;

use audit::http::{AuditHttpLayer, RequestAudit, TrustedProxies};
use audit::{Actor, AuditLayer, AuthMethod, FailureMode, FileStore, Record, WriterGuard, audited};
use axum::extract::{Path as UrlPath, Request};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tracing_subscriber::prelude::*;

#[audited(action = "billing.update", resource = "customer", id = id)]
async fn as_response(UrlPath(id): UrlPath<String>) -> Response {
    if id == "forbidden" {
        (StatusCode::FORBIDDEN, "not yours").into_response()
    } else {
        StatusCode::NO_CONTENT.into_response()
    }
}

#[audited(action = "billing.update", resource = "customer", id = id)]
async fn as_impl(UrlPath(id): UrlPath<String>) -> impl IntoResponse {
    if id == "forbidden" {
        (StatusCode::FORBIDDEN, "not yours")
    } else {
        (StatusCode::OK, "done")
    }
}

#[audited(action = "billing.update", resource = "customer", id = id)]
async fn as_status(UrlPath(id): UrlPath<String>) -> StatusCode {
    if id == "forbidden" {
        StatusCode::FORBIDDEN
    } else {
        StatusCode::OK
    }
}

#[audited(action = "billing.update", resource = "customer", id = id)]
async fn as_tuple(UrlPath(id): UrlPath<String>) -> (StatusCode, String) {
    if id == "forbidden" {
        (StatusCode::FORBIDDEN, "no".into())
    } else {
        (StatusCode::OK, "yes".into())
    }
}

/// An application error that is a response but not `Display`.
struct AppError(StatusCode);

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        (self.0, "application error").into_response()
    }
}

#[audited(action = "billing.update", resource = "customer", id = id)]
async fn as_result(UrlPath(id): UrlPath<String>) -> Result<Json<serde_json::Value>, AppError> {
    if id == "forbidden" {
        Err(AppError(StatusCode::FORBIDDEN))
    } else {
        Ok(Json(serde_json::json!({ "id": id })))
    }
}

/// A 404 is not a failure of this action (configured per fn).
#[audited(action = "customer_record.read", resource = "customer", id = id, failure_status = |status| status >= 500)]
async fn lookup(UrlPath(id): UrlPath<String>) -> StatusCode {
    if id == "missing" {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::OK
    }
}

/// No `#[audited]`: a 403 here is recorded as the standard `access.denied`.
async fn unaudited() -> StatusCode {
    StatusCode::FORBIDDEN
}

/// Synchronous work on the blocking pool keeps the request's scope.
async fn blocking() -> StatusCode {
    audit::http::task::spawn_blocking(|| audit::AuditEvent::of(audit::action!("data.export")).emit())
        .await
        .unwrap()
        .unwrap();
    StatusCode::OK
}

/// The application's authentication, after the audit layer opened the request's scope.
async fn authenticate(request: Request, next: Next) -> Response {
    if let Some(user) = request.headers().get("x-user").and_then(|v| v.to_str().ok()) {
        let audit = request
            .extensions()
            .get::<RequestAudit>()
            .cloned()
            .expect("the audit layer runs first");
        audit.set_actor(Actor::user(user, AuthMethod::Session));
        audit.set_tenant("acme");
    }
    next.run(request).await
}

struct Service {
    base: String,
    client: reqwest::Client,
    guard: WriterGuard,
    dir: tempfile::TempDir,
}

impl Service {
    async fn start(layer: AuditHttpLayer) -> Service {
        let dir = tempfile::tempdir().unwrap();
        let (audit_layer, guard) = AuditLayer::builder(FileStore::open(dir.path()).unwrap())
            .vocabulary(audit::vocabulary!())
            .build()
            .unwrap();
        // Global: axum runs handlers on the runtime's worker threads.
        tracing_subscriber::registry().with(audit_layer).init();
        let app = Router::new()
            .route("/response/{id}", post(as_response))
            .route("/impl/{id}", post(as_impl))
            .route("/status/{id}", post(as_status))
            .route("/tuple/{id}", post(as_tuple))
            .route("/result/{id}", post(as_result))
            .route("/lookup/{id}", get(lookup))
            .route("/admin", get(unaudited))
            .route("/export", post(blocking))
            .layer(middleware::from_fn(authenticate))
            .layer(layer);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
                .await
                .unwrap()
        });
        Service {
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            guard,
            dir,
        }
    }

    async fn post(&self, path: &str) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.base))
            .header("x-user", "usr_1")
            .header("user-agent", "audit-test/1.0")
            .send()
            .await
            .unwrap()
    }

    fn records(&self) -> Vec<Record> {
        self.guard.flush().unwrap();
        records(self.dir.path())
    }
}

fn records(dir: &Path) -> Vec<Record> {
    let mut out = Vec::new();
    for chain in audit::store::file::chain_names(&dir.join("chains")).unwrap() {
        let chain_dir = dir.join("chains").join(audit::store::file::encode_chain(&chain));
        for segment in audit::store::file::segments(&chain_dir).unwrap() {
            for line in std::fs::read_to_string(segment).unwrap().lines() {
                out.push(Record::parse(line.as_bytes()).unwrap());
            }
        }
    }
    out.sort_by_key(|r| r.timestamp);
    out
}

fn outcome(r: &Record) -> String {
    match &r.outcome {
        audit::Outcome::Success => "success".into(),
        audit::Outcome::Failure { reason } => format!("failure: {reason}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_is_recorded_as_a_failure_whatever_the_handler_returns() {
    let service = Service::start(AuditHttpLayer::new()).await;
    for shape in ["response", "impl", "status", "tuple", "result"] {
        assert!(service.post(&format!("/{shape}/cust_1")).await.status().is_success());
        assert_eq!(service.post(&format!("/{shape}/forbidden")).await.status(), 403);
    }
    let records = service.records();
    let billing: Vec<String> = records
        .iter()
        .filter(|r| r.action == "billing.update")
        .map(|r| format!("{} {}", r.resource.as_ref().unwrap().id, outcome(r)))
        .collect();
    assert_eq!(
        billing,
        ["cust_1 success", "forbidden failure: HTTP 403 Forbidden"].repeat(5),
        "one record per request, the refusal a failure with its status"
    );
    // No second record for the refusal: the audited handler's record is it.
    assert!(records.iter().all(|r| r.action != "access.denied"));
    for r in &records {
        assert_eq!(r.actor.id, "usr_1", "the actor set by authentication inside the scope");
        assert_eq!(r.tenant.as_deref(), Some("acme"));
        let context = r.context.as_ref().unwrap();
        assert_eq!(context.ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(context.user_agent.as_deref(), Some("audit-test/1.0"));
        assert!(context.request_id.is_some());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn which_statuses_fail_is_set_per_fn_and_unaudited_denials_are_recorded() {
    let service = Service::start(AuditHttpLayer::new()).await;
    let get = |path: &str| service.client.get(format!("{}{path}", service.base)).send();
    assert_eq!(get("/lookup/missing").await.unwrap().status(), 404);
    assert_eq!(get("/admin").await.unwrap().status(), 403);
    let records = service.records();
    let seen: Vec<String> = records.iter().map(|r| format!("{} {}", r.action, outcome(r))).collect();
    assert_eq!(
        seen,
        [
            "customer_record.read success",
            "access.denied failure: HTTP 403 Forbidden"
        ]
    );
    assert_eq!(records[1].resource.as_ref().unwrap().id, "GET /admin");
    assert_eq!(records[1].actor.id, "unknown", "nobody authenticated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_client_ips_and_blocking_work_keep_the_request_context() {
    let layer = AuditHttpLayer::new().trusted_proxies(TrustedProxies::parse(["127.0.0.1"]).unwrap());
    let service = Service::start(layer).await;
    let response = service
        .client
        .post(format!("{}/export", service.base))
        .header("x-user", "usr_1")
        .header("x-request-id", "req-from-the-edge")
        .header("x-forwarded-for", "203.0.113.7")
        .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "req-from-the-edge", "echoed");
    let generated = service.post("/status/cust_2").await;
    let generated_id = generated.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(uuid::Uuid::parse_str(&generated_id).unwrap().get_version_num(), 7);
    let records = service.records();
    let export = records.iter().find(|r| r.action == "data.export").unwrap();
    let context = export.context.as_ref().unwrap();
    assert_eq!(context.request_id.as_deref(), Some("req-from-the-edge"));
    assert_eq!(context.ip.as_deref(), Some("203.0.113.7"), "a trusted proxy's header");
    assert_eq!(context.trace_id.as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
    assert_eq!(export.actor.id, "usr_1", "carried into spawn_blocking");
    let billing = records.iter().find(|r| r.action == "billing.update").unwrap();
    assert_eq!(
        billing.context.as_ref().unwrap().request_id.as_deref(),
        Some(generated_id.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_closed_answers_503_and_never_panics() {
    audit::set_failure_mode(FailureMode::Refuse);
    // No audit sink at all.
    let app = Router::new()
        .route("/response/{id}", post(as_response))
        .route("/impl/{id}", post(as_impl))
        .route("/status/{id}", post(as_status));
    let serve = |app: Router| async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    };
    let client = reqwest::Client::new();
    // Without the layer, the handlers themselves answer 503.
    let bare = serve(app.clone()).await;
    for shape in ["response", "impl", "status"] {
        let response = client.post(format!("{bare}/{shape}/cust_1")).send().await.unwrap();
        assert_eq!(response.status(), 503, "{shape}");
    }
    // With the layer, the layer answers before any handler runs.
    let layered = serve(app.layer(AuditHttpLayer::new())).await;
    let response = client.post(format!("{layered}/response/cust_1")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(body["error"], "audit_unavailable");
}
