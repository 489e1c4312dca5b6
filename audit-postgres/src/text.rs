//! The encoding of text columns that hold values from events (chain keys, tenants, actions,
//! actor and resource ids): PostgreSQL's `text` cannot hold U+0000, which JSON and the file
//! store carry without trouble, so these columns hold `\` as `\\` and U+0000 as `\0`.

use std::borrow::Cow;

/// Encodes `value` for a text column that holds event values (see the crate's "Schema"
/// section): `\` becomes `\\` and U+0000 becomes `\0`; everything else stays as it is, so
/// most values are unchanged. Filters must compare encoded values with encoded values.
///
/// ```
/// use audit_postgres::{decode_text, encode_text};
/// assert_eq!(encode_text("acme"), "acme");
/// assert_eq!(encode_text("a\\b\0c"), "a\\\\b\\0c");
/// assert_eq!(decode_text(&encode_text("a\\0\0")), "a\\0\0");
/// ```
pub fn encode_text(value: &str) -> Cow<'_, str> {
    if !value.contains(['\\', '\0']) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// [`encode_text`] of an owned value, without copying the usual value that needs no escape.
pub(crate) fn encode_owned(value: String) -> String {
    match encode_text(&value) {
        Cow::Borrowed(_) => value,
        Cow::Owned(encoded) => encoded,
    }
}

/// Decodes a column value written by [`encode_text`]. A backslash before anything but `\`
/// or `0` (which the encoding never writes) is kept as it stands.
pub fn decode_text(column: &str) -> Cow<'_, str> {
    if !column.contains('\\') {
        return Cow::Borrowed(column);
    }
    let mut out = String::with_capacity(column.len());
    let mut chars = column.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('0') => out.push('\0'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    Cow::Owned(out)
}

/// [`decode_text`] into an owned value.
pub(crate) fn decode_owned(column: String) -> String {
    match decode_text(&column) {
        Cow::Borrowed(_) => column,
        Cow::Owned(decoded) => decoded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_encoding_round_trips_and_is_injective_and_prefix_preserving() {
        let values = [
            "",
            "acme",
            "\0",
            "\\",
            "\\0",
            "\0\\",
            "a\\\\0\0b",
            "ü\0ñ",
            "\\\\\0\0",
            "0\\",
        ];
        for v in values {
            assert!(!encode_text(v).contains('\0'), "{v:?}");
            assert_eq!(decode_text(&encode_text(v)), v, "{v:?}");
            for w in values {
                assert_eq!(v == w, encode_text(v) == encode_text(w), "{v:?} {w:?}");
                // Prefix filters (`billing.*`) compare encoded prefixes.
                assert_eq!(
                    w.starts_with(v),
                    encode_text(w).starts_with(&*encode_text(v)),
                    "{v:?} {w:?}"
                );
            }
        }
        assert!(matches!(encode_text("plain"), Cow::Borrowed(_)));
        assert_eq!(decode_text("odd\\x\\"), "odd\\x\\");
    }
}
