//! Size limits: every member of an event is bounded before it is serialized, so one oversized
//! field never costs the whole event and no record grows without bound.

use crate::event::{Actor, AuditEvent, Outcome};

/// Size limits applied to every event before it is serialized. Longer text is cut at a
/// character boundary and marked `…[truncated N bytes]`, so an oversized field never costs the
/// whole event.
///
/// Together they bound the record as a whole: [`Limits::max_record_bytes`] is the longest line
/// they allow, and [`AuditLayerBuilder::build`](crate::AuditLayerBuilder::build) refuses limits
/// whose records could outgrow what readers take (`audit_chain::read::MAX_LINE_BYTES`).
/// `before`/`after` also nest at most [`Changes::MAX_DEPTH`](crate::Changes::MAX_DEPTH)
/// levels, cut at capture.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Longest string member (ids, reasons, context values), in bytes.
    pub max_field_bytes: usize,
    /// Longest name of a free context key, in bytes.
    pub max_key_bytes: usize,
    /// Most free context keys (beside `ip`, `user_agent`, `request_id`, `session_id`,
    /// `trace_id`); the ones past it are dropped and counted in `truncated_context_keys`.
    pub max_context_keys: usize,
    /// Longest `changes` member once serialized; larger ones are replaced by
    /// `{"truncated":true,"bytes":N}`.
    pub max_changes_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_field_bytes: 4096,
            max_key_bytes: 128,
            max_context_keys: 32,
            max_changes_bytes: 256 << 10,
        }
    }
}

impl Limits {
    /// The longest record line these limits allow: every string member at its longest, each
    /// byte escaped to six (`\u0000`), with the marker of its truncation, plus `changes` and
    /// the fixed members.
    pub fn max_record_bytes(&self) -> usize {
        const ESCAPED: usize = 6;
        const MARKER: usize = 40; // `…[truncated N bytes]`
        const FIXED: usize = 1024; // member names, id, seq, timestamp, hashes, enums
        let field = (self.max_field_bytes + MARKER) * ESCAPED;
        let key = (self.max_key_bytes + MARKER) * ESCAPED;
        // chain, tenant, action, resource type and id, actor id, name and impersonator,
        // reason, and the five standard context members.
        let fields = 14 * field;
        let free_context = (self.max_context_keys + 1) * (key + field);
        FIXED + fields + free_context + self.max_changes_bytes
    }
}

/// Makes `event` ready to serialize: an event that names no actor gets the `unknown` system
/// actor, and every member is cut to `limits`. Run it once per event, before its chain key is
/// taken (the tenant is cut too).
pub(crate) fn prepare(event: &mut AuditEvent, limits: &Limits) {
    let max = limits.max_field_bytes;
    let cut = |s: &mut String| truncate(s, max);
    let actor = event.actor.get_or_insert_with(Actor::unknown);
    cut(&mut actor.id);
    if let Some(n) = &mut actor.name {
        cut(n);
    }
    if let Some(i) = &mut actor.impersonator {
        cut(&mut i.id);
    }
    if event.action.len() > max {
        let mut a = event.action.to_string();
        cut(&mut a);
        event.action = a.into();
    }
    if let Some(r) = &mut event.resource {
        if r.kind.len() > max {
            cut(r.kind.to_mut());
        }
        cut(&mut r.id);
    }
    if let Outcome::Failure { reason } = &mut event.outcome {
        cut(reason);
    }
    if let Some(t) = &mut event.tenant {
        cut(t);
    }
    let c = &mut event.context;
    for v in [
        &mut c.ip,
        &mut c.user_agent,
        &mut c.request_id,
        &mut c.session_id,
        &mut c.trace_id,
    ]
    .into_iter()
    .flatten()
    {
        cut(v);
    }
    if c.extra.len() > limits.max_context_keys || c.extra.keys().any(|k| k.len() > limits.max_key_bytes) {
        let extra = std::mem::take(&mut c.extra);
        let total = extra.len();
        for (mut key, value) in extra.into_iter().take(limits.max_context_keys) {
            truncate(&mut key, limits.max_key_bytes);
            c.extra.insert(key, value);
        }
        if total > limits.max_context_keys {
            c.extra.insert(
                "truncated_context_keys".to_owned(),
                (total - limits.max_context_keys).to_string(),
            );
        }
    }
    for v in c.extra.values_mut() {
        cut(v);
    }
}

/// Cuts `s` to at most `max` bytes (at a character boundary) plus a marker saying how much went.
fn truncate(s: &mut String, max: usize) {
    if s.len() <= max {
        return;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let dropped = s.len() - end;
    s.truncate(end);
    s.push_str(&format!("…[truncated {dropped} bytes]"));
}

#[cfg(test)]
mod tests {
    use super::truncate;

    #[test]
    fn truncation_is_marked_and_keeps_utf8() {
        let mut s = "é".repeat(10);
        truncate(&mut s, 5);
        assert_eq!(s, "éé…[truncated 16 bytes]");
    }
}
