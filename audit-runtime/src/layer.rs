//! The `tracing` layer that takes audit events off the emitting thread.

use std::fmt;
use std::sync::Arc;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context as LayerContext;
use tracing_subscriber::registry::LookupSpan;

use crate::emit::{Claim, claim};
use crate::event::Context;
use crate::writer::Shared;

/// The `tracing` layer that receives audit events (target `audit`) and hands them to the
/// writer thread of a store.
///
/// Build one with [`AuditLayer::builder`]. It composes with any other layer; give the other
/// layers their own filters (`fmt::layer().with_filter(EnvFilter::from_default_env())`) so an
/// application setting such as `RUST_LOG=warn` never filters audit events out. It also reads
/// request context recorded on enclosing spans (fields `tenant`, `request_id`, `session_id`,
/// `trace_id`, `ip`/`client_ip`, `user_agent`, optionally prefixed `audit.`), and records the
/// current span's id as `span_id`, so audit records link to application logs.
#[derive(Clone)]
pub struct AuditLayer {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for AuditLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditLayer")
            .field("healthy", &self.is_healthy())
            .finish()
    }
}

impl AuditLayer {
    /// Whether the writer behind this layer is running and its store accepts writes.
    pub fn is_healthy(&self) -> bool {
        self.shared.is_healthy()
    }

    /// Whether an event emitted now would be taken: the writer runs, and its store is not
    /// failing under [`StoreFailure::Reject`](crate::StoreFailure::Reject).
    pub fn is_accepting(&self) -> bool {
        self.shared.accepting()
    }
}

/// Context fields found on the spans around an event, innermost first.
#[derive(Clone, Debug, Default)]
pub(crate) struct SpanCapture {
    pub span_id: u64,
    pub fields: Vec<Arc<SpanFields>>,
}

impl SpanCapture {
    /// Fills unset members of `context` and `tenant` from the spans (innermost wins).
    pub fn fill(&self, context: &mut Context, tenant: &mut Option<String>) {
        for span in &self.fields {
            context.fill_from(&span.context);
            if tenant.is_none() {
                tenant.clone_from(&span.tenant);
            }
        }
        context
            .extra
            .entry("span_id".to_owned())
            .or_insert_with(|| format!("{:016x}", self.span_id));
    }
}

#[derive(Clone, Debug, Default)]
pub(crate) struct SpanFields {
    context: Context,
    tenant: Option<String>,
}

impl Visit for SpanFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        let name = field.name();
        let name = name.strip_prefix("audit.").unwrap_or(name);
        match name {
            "tenant" => self.tenant = Some(value.to_owned()),
            "client_ip" => self.context.ip = Some(value.to_owned()),
            "ip" | "request_id" | "session_id" | "trace_id" | "user_agent" => self.context.set(name, value),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let name = field.name();
        if matches!(
            name.strip_prefix("audit.").unwrap_or(name),
            "tenant" | "client_ip" | "ip" | "request_id" | "session_id" | "trace_id" | "user_agent"
        ) {
            // `%value` fields arrive here formatted with Display through Debug.
            self.record_str(field, &format!("{value:?}"));
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.record_str(field, &value.to_string());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record_str(field, &value.to_string());
    }
}

impl SpanFields {
    fn is_empty(&self) -> bool {
        self.tenant.is_none() && self.context.is_empty()
    }
}

impl<S> Layer<S> for AuditLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: LayerContext<'_, S>) {
        let mut fields = SpanFields::default();
        attrs.record(&mut fields);
        if !fields.is_empty()
            && let Some(span) = ctx.span(id)
        {
            span.extensions_mut().insert(Arc::new(fields));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: LayerContext<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        let mut fields = ext
            .get_mut::<Arc<SpanFields>>()
            .map(|f| (**f).clone())
            .unwrap_or_default();
        values.record(&mut fields);
        if !fields.is_empty() {
            ext.replace(Arc::new(fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: LayerContext<'_, S>) {
        if event.metadata().target() != "audit" {
            return;
        }
        // Always claimed: the writer itself says why it cannot take an event, if it cannot.
        claim(|| {
            let span = ctx.event_span(event).map(|leaf| {
                let fields = leaf
                    .scope()
                    .filter_map(|s| s.extensions().get::<Arc<SpanFields>>().cloned())
                    .collect();
                SpanCapture {
                    span_id: leaf.id().into_u64(),
                    fields,
                }
            });
            Some(Claim {
                shared: Arc::clone(&self.shared),
                span,
            })
        });
    }
}
