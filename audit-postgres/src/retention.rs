use audit_runtime::retention::{Blocked, ChainRange, PurgeUnit, RetentionConfig, RetentionPlan, RetentionTarget};
use audit_runtime::{StoreError, Timestamp};

use crate::PgStore;
use crate::config::describe;
use crate::decode::hash_from;
use crate::months::{from_datetime, month_index, month_start, partition_month};
use crate::text::decode_owned;

impl RetentionTarget for PgStore {
    /// Whole monthly partitions, oldest first, while every chain in the partition may lose
    /// all its records there (policy, override, legal hold) and the month is over.
    fn plan(&mut self, config: &RetentionConfig, now: Timestamp) -> Result<RetentionPlan, StoreError> {
        let mut plan = RetentionPlan {
            store: describe(&self.config),
            now,
            units: Vec::new(),
            blocked: Vec::new(),
        };
        let err = self.err();
        let current_month = month_index(now);
        for part in self.partition_names()? {
            let Some(month) = partition_month(&part) else {
                continue;
            };
            if month >= current_month {
                plan.blocked.push(Blocked {
                    unit: part,
                    reason: "the month is not over".into(),
                });
                break;
            }
            // Distinct chains by skipping through the table's key (`audit_key(chain)`, ts, seq),
            // then each one's range. Through the parent with the month's bounds (pruned to the
            // one partition), because the retention role has rights on the parent only.
            let lower = month_start(month);
            let upper = month_start(month + 1);
            let rows = self
                .client
                .query(
                    &format!(
                        "WITH RECURSIVE c AS (
                             (SELECT {k}(chain) AS key, chain FROM {t} WHERE ts >= $1 AND ts < $2 ORDER BY {k}(chain) LIMIT 1)
                             UNION ALL
                             SELECT n.key, n.chain FROM c, LATERAL (
                                 SELECT {k}(p.chain) AS key, p.chain FROM {t} p
                                 WHERE p.ts >= $1 AND p.ts < $2 AND {k}(p.chain) > c.key ORDER BY {k}(p.chain) LIMIT 1) n)
                         SELECT c.chain, f.seq, f.ts, l.seq, l.ts, l.hash FROM c,
                             LATERAL (SELECT seq, ts FROM {t} p WHERE {k}(p.chain) = c.key AND p.ts >= $1 AND p.ts < $2
                                      ORDER BY ts, seq LIMIT 1) f,
                             LATERAL (SELECT seq, ts, hash FROM {t} p WHERE {k}(p.chain) = c.key AND p.ts >= $1 AND p.ts < $2
                                      ORDER BY ts DESC, seq DESC LIMIT 1) l
                         ORDER BY c.chain",
                        t = format!("\"{}\".audit_records", self.config.schema),
                        k = format!("\"{}\".audit_key", self.config.schema),
                    ),
                    &[&lower, &upper],
                )
                .map_err(&err)?;
            let mut chains = Vec::new();
            let mut reasons = Vec::new();
            for r in &rows {
                let range = ChainRange {
                    chain: decode_owned(r.get(0)),
                    first_seq: r.get::<_, i64>(1) as u64,
                    oldest: from_datetime(r.get(2)),
                    last_seq: r.get::<_, i64>(3) as u64,
                    newest: from_datetime(r.get(4)),
                    last_hash: hash_from(r.get(5))?,
                };
                match config.cutoff_for(&range.chain, now) {
                    Err(why) => reasons.push(why),
                    Ok(cutoff) if range.newest >= cutoff => reasons.push(format!(
                        "tenant `{}` keeps records from {} under policy `{}`",
                        range.chain,
                        cutoff,
                        config.policy_for(&range.chain).name
                    )),
                    Ok(_) => {}
                }
                chains.push(range);
            }
            if !reasons.is_empty() {
                plan.blocked.extend(reasons.into_iter().map(|reason| Blocked {
                    unit: part.clone(),
                    reason,
                }));
                break;
            }
            plan.units.push(PurgeUnit { name: part, chains });
        }
        Ok(plan)
    }

    fn purge(&mut self, plan: &RetentionPlan) -> Result<Vec<String>, StoreError> {
        self.reconnect_if_closed()?;
        let err = self.err();
        let mut removed = Vec::new();
        for unit in &plan.units {
            self.client
                .query(
                    &format!("SELECT * FROM \"{}\".audit_purge_partition($1)", self.config.schema),
                    &[&unit.name],
                )
                .map_err(&err)?;
            if let Some(m) = partition_month(&unit.name) {
                self.partitions.remove(&m);
            }
            removed.push(unit.name.clone());
        }
        Ok(removed)
    }
}
