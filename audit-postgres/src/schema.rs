//! The versioned schema: migrations, and the role setup SQL.

/// The schema version this crate writes and reads.
pub const SCHEMA_VERSION: i32 = 1;

/// One migration: its version, a description, and its SQL with `{s}` standing for the
/// quoted schema name.
pub(crate) struct Migration {
    pub version: i32,
    pub description: &'static str,
    pub sql: &'static str,
}

pub(crate) const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "partitioned records, heads, seals; append-only and chain-check triggers; partition and purge functions",
    sql: r#"
CREATE TABLE {s}.audit_records (
    chain         text        NOT NULL,
    seq           bigint      NOT NULL CHECK (seq > 0),
    ts            timestamptz NOT NULL,
    tenant        text,
    action        text        NOT NULL,
    category      text        NOT NULL,
    actor_id      text        NOT NULL,
    resource_type text,
    resource_id   text,
    outcome       text        NOT NULL,
    id            uuid        NOT NULL,
    line          text        NOT NULL,
    hash          bytea       NOT NULL CHECK (length(hash) = 32),
    prev_hash     bytea       NOT NULL CHECK (length(prev_hash) = 32),
    -- A unique key of a partitioned table must include the partition key: (chain, seq) is
    -- kept unique by the chain check below instead, which also keeps seq free of gaps.
    PRIMARY KEY (chain, ts, seq)
) PARTITION BY RANGE (ts);
CREATE INDEX audit_records_ts ON {s}.audit_records (ts, chain, seq);
CREATE INDEX audit_records_actor ON {s}.audit_records (actor_id, ts);
CREATE INDEX audit_records_resource ON {s}.audit_records (resource_type, resource_id, ts);

-- The head of every chain, maintained by the chain check only (seq 0: no record yet).
CREATE TABLE {s}.audit_heads (
    chain text        PRIMARY KEY,
    seq   bigint      NOT NULL,
    hash  bytea       NOT NULL,
    ts    timestamptz NOT NULL
);

CREATE TABLE {s}.audit_seals (
    chain     text        NOT NULL,
    seq       bigint      NOT NULL,
    hash      bytea       NOT NULL CHECK (length(hash) = 32),
    sealed_at timestamptz NOT NULL,
    purged    boolean     NOT NULL DEFAULT false,
    UNIQUE (chain, seq, hash, purged)
);

CREATE FUNCTION {s}.audit_reject() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % on %.% is not allowed', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'retention removes whole partitions with audit_purge_partition()';
END $$;

CREATE TRIGGER audit_records_append_only BEFORE UPDATE OR DELETE ON {s}.audit_records
    FOR EACH ROW EXECUTE FUNCTION {s}.audit_reject();
CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON {s}.audit_records
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.audit_reject();
CREATE TRIGGER audit_seals_append_only BEFORE UPDATE OR DELETE ON {s}.audit_seals
    FOR EACH ROW EXECUTE FUNCTION {s}.audit_reject();
CREATE TRIGGER audit_seals_no_truncate BEFORE TRUNCATE ON {s}.audit_seals
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.audit_reject();
CREATE TRIGGER audit_heads_no_delete BEFORE DELETE ON {s}.audit_heads
    FOR EACH ROW EXECUTE FUNCTION {s}.audit_reject();
CREATE TRIGGER audit_heads_no_truncate BEFORE TRUNCATE ON {s}.audit_heads
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.audit_reject();

-- Every insert must continue its chain: seq up by one from the stored head, prev_hash the
-- previous hash. Runs as the owner so that the application needs no right on the heads.
CREATE FUNCTION {s}.audit_chain_check() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = {s}, pg_catalog, pg_temp AS $$
DECLARE
    bad record;
    f record;
    h record;
BEGIN
    SELECT x.chain, x.seq INTO bad FROM (
        SELECT n.chain, n.seq, n.prev_hash, n.ts,
               lag(n.seq) OVER w AS p_seq, lag(n.hash) OVER w AS p_hash, lag(n.ts) OVER w AS p_ts
        FROM new_rows n WINDOW w AS (PARTITION BY n.chain ORDER BY n.seq)) x
    WHERE x.p_seq IS NOT NULL AND (x.seq <> x.p_seq + 1 OR x.prev_hash <> x.p_hash OR x.ts < x.p_ts)
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'audit chain %: seq % does not link to the record before it', bad.chain, bad.seq
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    FOR f IN SELECT DISTINCT ON (n.chain) n.chain, n.seq, n.prev_hash FROM new_rows n ORDER BY n.chain, n.seq LOOP
        -- A new chain's head row is created first, so that two first inserts of one chain
        -- serialize on it (the second one then sees the first one's head).
        INSERT INTO audit_heads AS hh (chain, seq, hash, ts)
        VALUES (f.chain, 0, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea, '-infinity')
        ON CONFLICT (chain) DO NOTHING;
        SELECT hh.seq, hh.hash INTO h FROM audit_heads hh WHERE hh.chain = f.chain FOR UPDATE;
        IF f.seq <> h.seq + 1 OR f.prev_hash <> h.hash THEN
            RAISE EXCEPTION 'audit chain %: seq % does not continue the stored head at seq %', f.chain, f.seq, h.seq
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
    END LOOP;
    UPDATE audit_heads hh SET seq = l.seq, hash = l.hash, ts = l.ts
    FROM (SELECT DISTINCT ON (n.chain) n.chain, n.seq, n.hash, n.ts FROM new_rows n ORDER BY n.chain, n.seq DESC) l
    WHERE hh.chain = l.chain;
    RETURN NULL;
END $$;
CREATE TRIGGER audit_records_chain_check AFTER INSERT ON {s}.audit_records
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {s}.audit_chain_check();

-- Purge seals say where a purged chain resumes: only the owner (retention's function, or a
-- copy run as the owner) may write them. A chain with no record yet starts after one.
-- Deliberately not SECURITY DEFINER: `current_user` must be the caller (or the definer of
-- the purge function that calls it).
CREATE FUNCTION {s}.audit_seal_check() RETURNS trigger LANGUAGE plpgsql
SET search_path = {s}, pg_catalog, pg_temp AS $$
DECLARE
    owner name;
BEGIN
    IF NEW.purged THEN
        SELECT r.rolname INTO owner FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner
        WHERE c.oid = TG_RELID;
        IF NOT pg_has_role(current_user, owner, 'USAGE') THEN
            RAISE EXCEPTION 'only the audit schema owner may write purge seals' USING ERRCODE = 'insufficient_privilege';
        END IF;
        -- Only while the chain has no record here (a copy of a purged chain starts with its
        -- purge seals): otherwise the head is its newest record.
        IF NOT EXISTS (SELECT 1 FROM audit_records r WHERE r.chain = NEW.chain) THEN
            INSERT INTO audit_heads AS hh (chain, seq, hash, ts) VALUES (NEW.chain, NEW.seq, NEW.hash, NEW.sealed_at)
            ON CONFLICT (chain) DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash, ts = EXCLUDED.ts
            WHERE hh.seq < EXCLUDED.seq;
        END IF;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER audit_seals_check BEFORE INSERT ON {s}.audit_seals
    FOR EACH ROW EXECUTE FUNCTION {s}.audit_seal_check();

-- Locks a chain for one transaction and returns its stored head (a new snapshot is taken
-- after the lock, so the head is current).
CREATE FUNCTION {s}.audit_lock_chain(p_chain text, p_key bigint)
RETURNS TABLE (seq bigint, hash bytea, ts timestamptz) LANGUAGE plpgsql VOLATILE
SET search_path = {s}, pg_catalog, pg_temp AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(p_key);
    RETURN QUERY SELECT h.seq, h.hash, h.ts FROM audit_heads h WHERE h.chain = p_chain AND h.seq > 0;
END $$;

-- Creates the monthly partition holding `p_month` (if missing). Runs as the owner: the
-- application may insert, not create tables.
CREATE FUNCTION {s}.audit_ensure_partition(p_month date) RETURNS text LANGUAGE plpgsql SECURITY DEFINER
SET search_path = {s}, pg_catalog, pg_temp AS $$
DECLARE
    start date := date_trunc('month', p_month)::date;
    part text := 'audit_records_p' || to_char(start, 'YYYYMM');
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('audit partitions ' || current_schema()));
    IF to_regclass(format('%I.%I', current_schema(), part)) IS NULL THEN
        EXECUTE format('CREATE TABLE %I.%I PARTITION OF %I.audit_records FOR VALUES FROM (%L) TO (%L)',
                       current_schema(), part, current_schema(),
                       (start::timestamp AT TIME ZONE 'UTC'), ((start + interval '1 month') AT TIME ZONE 'UTC'));
        -- Statement triggers are not inherited: TRUNCATE of the partition itself is refused too.
        EXECUTE format('CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON %I.%I FOR EACH STATEMENT EXECUTE FUNCTION %I.audit_reject()',
                       current_schema(), part, current_schema());
    END IF;
    RETURN part;
END $$;

-- Retention: seals every chain at its last record in the oldest partition, then detaches
-- and drops that partition, in one transaction. Only the oldest partition, and only once its
-- month is over, so a purge always removes the beginning of every chain.
CREATE FUNCTION {s}.audit_purge_partition(p_part text)
RETURNS TABLE (chain text, seq bigint, hash bytea) LANGUAGE plpgsql SECURITY DEFINER
SET search_path = {s}, pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    oldest text;
    upper_bound timestamptz;
BEGIN
    LOCK TABLE audit_records IN ACCESS EXCLUSIVE MODE;
    SELECT c.relname INTO oldest FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'audit_records'::regclass ORDER BY c.relname LIMIT 1;
    IF oldest IS DISTINCT FROM p_part THEN
        RAISE EXCEPTION 'only the oldest partition (%) may be purged, not %', oldest, p_part;
    END IF;
    upper_bound := (to_date(substr(p_part, 16), 'YYYYMM') + interval '1 month') AT TIME ZONE 'UTC';
    IF upper_bound > now() THEN
        RAISE EXCEPTION 'partition % still receives records', p_part;
    END IF;
    RETURN QUERY EXECUTE format(
        'INSERT INTO audit_seals AS s (chain, seq, hash, sealed_at, purged)
         SELECT DISTINCT ON (p.chain) p.chain, p.seq, p.hash, now(), true FROM %I p ORDER BY p.chain, p.ts DESC, p.seq DESC
         ON CONFLICT DO NOTHING RETURNING s.chain, s.seq, s.hash', p_part);
    EXECUTE format('ALTER TABLE audit_records DETACH PARTITION %I', p_part);
    EXECUTE format('DROP TABLE %I', p_part);
END $$;

REVOKE EXECUTE ON FUNCTION {s}.audit_ensure_partition(date) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION {s}.audit_purge_partition(text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION {s}.audit_chain_check() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION {s}.audit_seal_check() FROM PUBLIC;
"#,
}];

/// SQL that sets up the three roles of an audit schema, for a DBA to run once (as a
/// superuser or a role with `CREATEROLE`), with passwords filled in:
///
/// - `owner` (no login) owns the schema and everything in it; migrations run as it
///   (`SET ROLE owner`, or log in as a member of it).
/// - `app` (the application's role) may only `INSERT` and `SELECT` records and seals and
///   create next month's partition through a function. `UPDATE`, `DELETE` and `TRUNCATE`
///   are refused, by privileges and by triggers.
/// - `retention` may read, and purge the oldest partition through
///   `audit_purge_partition()`, which seals the chains first. It cannot edit rows either.
///
/// ```
/// let sql = audit_postgres::role_setup_sql("audit", "audit_owner", "audit_app", "audit_retention");
/// assert!(sql.contains("GRANT SELECT, INSERT ON audit.audit_records, audit.audit_seals TO audit_app;"));
/// ```
pub fn role_setup_sql(schema: &str, owner: &str, app: &str, retention: &str) -> String {
    format!(
        r#"-- Roles (passwords: set your own, or use your platform's IAM).
CREATE ROLE {owner} NOLOGIN;
CREATE ROLE {app} LOGIN PASSWORD 'change-me';
CREATE ROLE {retention} LOGIN PASSWORD 'change-me';
-- Who runs migrations must be able to act as the owner.
GRANT {owner} TO CURRENT_USER;
CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION {owner};

-- Now create the tables as the owner: SET ROLE {owner}; then open a PgStore (it migrates),
-- or run `audit_postgres::migrate`. Then, still as the owner:
GRANT USAGE ON SCHEMA {schema} TO {app}, {retention};
GRANT SELECT, INSERT ON {schema}.audit_records, {schema}.audit_seals TO {app};
GRANT SELECT ON {schema}.audit_heads, {schema}.audit_schema_version TO {app}, {retention};
GRANT EXECUTE ON FUNCTION {schema}.audit_ensure_partition(date) TO {app};
GRANT SELECT ON {schema}.audit_records, {schema}.audit_seals TO {retention};
GRANT EXECUTE ON FUNCTION {schema}.audit_purge_partition(text) TO {retention};
"#
    )
}
