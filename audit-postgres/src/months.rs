use audit_runtime::Timestamp;
use chrono::{DateTime, Datelike, Utc};

pub(crate) fn month_index(ts: Timestamp) -> i32 {
    let dt = to_datetime(ts);
    dt.year() * 12 + dt.month0() as i32
}

/// Midnight UTC of the first day of a month index (`year * 12 + month0`).
pub(crate) fn month_start(month: i32) -> DateTime<Utc> {
    chrono::NaiveDate::from_ymd_opt(month.div_euclid(12), month.rem_euclid(12) as u32 + 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
        .unwrap_or_default()
}

pub(crate) fn to_datetime(ts: Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(ts.unix_micros()).unwrap_or_default()
}

pub(crate) fn from_datetime(dt: DateTime<Utc>) -> Timestamp {
    Timestamp::from_unix_micros(dt.timestamp_micros())
}

pub(crate) fn partition_month(name: &str) -> Option<i32> {
    let digits = name.strip_prefix("audit_records_p")?;
    if digits.len() != 6 {
        return None;
    }
    let year: i32 = digits[..4].parse().ok()?;
    let month: i32 = digits[4..].parse().ok()?;
    Some(year * 12 + month - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock_key;

    #[test]
    fn partition_names_map_to_months() {
        assert_eq!(partition_month("audit_records_p202611"), Some(2026 * 12 + 10));
        assert_eq!(month_index(Timestamp::parse("2026-11-26").unwrap()), 2026 * 12 + 10);
        assert_ne!(lock_key("audit", "acme"), lock_key("audit", "acme2"));
        assert_ne!(lock_key("audit", "acme"), lock_key("audit2", "acme"));
    }
}
