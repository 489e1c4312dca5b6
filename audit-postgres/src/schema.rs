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
    description: "partitioned records, heads, seals, set-aside records; append-only, chain and content checks; partition, purge and grant functions",
    sql: r#"
-- Text columns holding event values (chain .. resource_id) are encoded: `\` as `\\`, U+0000
-- as `\0` (PostgreSQL's text cannot hold U+0000; see the crate's "Schema" docs).
CREATE TABLE {s}.audit_records (
    chain         text        NOT NULL,
    seq           bigint      NOT NULL CHECK (seq > 0),
    ts            timestamptz NOT NULL,
    tenant        text,
    action        text        NOT NULL,
    category      text        NOT NULL
                  CHECK (category IN ('authentication', 'authorization', 'data_access', 'mutation', 'admin')),
    actor_id      text        NOT NULL,
    resource_type text,
    resource_id   text,
    outcome       text        NOT NULL CHECK (outcome IN ('success', 'failure')),
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
-- Seals name a record by (chain, seq), without its time: the seal check looks it up here.
CREATE INDEX audit_records_chain_seq ON {s}.audit_records (chain, seq);

-- The head of every chain, maintained by the chain check only (seq 0: no record yet; ts
-- '-infinity': no time constraint, for a head that a purge seal set).
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

-- Events a store refused, kept apart instead of dropped: `event` holds whatever it was.
CREATE TABLE {s}.audit_set_aside (
    chain        text        NOT NULL,
    set_aside_at timestamptz NOT NULL,
    reason       text        NOT NULL,
    event        bytea       NOT NULL
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
CREATE TRIGGER audit_set_aside_append_only BEFORE UPDATE OR DELETE ON {s}.audit_set_aside
    FOR EACH ROW EXECUTE FUNCTION {s}.audit_reject();
CREATE TRIGGER audit_set_aside_no_truncate BEFORE TRUNCATE ON {s}.audit_set_aside
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.audit_reject();

-- Every insert must hold records (Contract 2: `hash` is SHA-256 of the line without its
-- `hash` member; the line's members are the row's columns) that continue their chain: seq
-- up by one from the stored head, prev_hash the previous hash, time never going back. Runs
-- as the owner so that the application needs no right on the heads.
CREATE FUNCTION {s}.audit_chain_check() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = {s}, pg_catalog, pg_temp AS $$
DECLARE
    bad record;
    f record;
    h record;
    bad_chain text;
    bad_seq bigint;
    problem text;
BEGIN
    -- One set-based pass over the new rows (per-row PL/pgSQL would cost more than the insert):
    -- a cheap test of every row, and the reason only for the first bad one. Positions are
    -- taken on bytes (text functions count characters, a scan each). The members between
    -- `timestamp` and `prev_hash` are compared as JSON; the rest of the line is compared as
    -- text, and the canonical prefix makes the first `,"timestamp":"` the real one, so the
    -- middle parses as an object only if it is the line's own run of top-level members. jsonb
    -- refuses \u0000, so a middle with a backslash is first rewritten into the column encoding
    -- (\\ for a backslash, \0 for U+0000), escaped backslashes parked on chr(1) meanwhile (a
    -- line holding a raw chr(1) is refused). Members are compared as text, with their JSON
    -- type checked where a non-string could print as the column (category and outcome are
    -- checked words); a JSON null reads as an absent member, as serde reads it.
    BEGIN
        SELECT n.chain, n.seq, CASE
            WHEN octet_length(n.line) < 200 THEN 'too short to be a record'
            WHEN strpos(n.line, E'\n') > 0 OR strpos(n.line, E'\r') > 0
                 OR (strpos(n.line, E'\\') > 0 AND strpos(n.line, chr(1)) > 0)
                THEN 'the line holds a raw line break or control character'
            WHEN NOT (strpos(n.chain, E'\\') = 0 OR n.chain ~ E'^([^\\\\]|\\\\[\\\\0])*$')
                THEN 'the chain column is not in the column encoding'
            WHEN NOT starts_with(n.line, p.prefix)
                THEN 'the line does not start with the id, chain, seq and timestamp of its columns: ' || p.prefix
            WHEN substr(p.b, octet_length(n.line) - 153) <> p.suffix
                THEN 'the line does not end with the prev_hash and hash of its columns'
            WHEN sha256(substr(p.b, 1, octet_length(n.line) - 75) || '\x7d'::bytea) <> n.hash
                THEN 'hash is not the SHA-256 of the line without its hash member'
            WHEN num_nulls(m.v, m.id, m.chain, m.seq, m."timestamp", m.prev_hash, m.hash) < 7
                THEN 'the line repeats one of v, id, chain, seq, timestamp, prev_hash and hash'
            WHEN m.action IS DISTINCT FROM to_jsonb(n.action) THEN 'the line''s action is not the action column'
            WHEN m.category IS DISTINCT FROM n.category THEN 'the line''s category is not the category column'
            WHEN m.actor -> 'id' IS DISTINCT FROM to_jsonb(n.actor_id) THEN 'the line''s actor id is not the actor_id column'
            WHEN m.outcome ->> 'status' IS DISTINCT FROM n.outcome THEN 'the line''s outcome is not the outcome column'
            WHEN m.tenant IS DISTINCT FROM to_jsonb(n.tenant) THEN 'the line''s tenant is not the tenant column'
            ELSE 'the line''s resource is not the resource_type and resource_id columns'
            END
        INTO bad_chain, bad_seq, problem
        FROM new_rows n
        CROSS JOIN LATERAL (SELECT
            convert_to(n.line, 'UTF8') AS b,
            '{"v":1,"id":"' || n.id::text || '","chain":'
                || CASE WHEN strpos(n.chain, E'\\') = 0 THEN to_json(n.chain)::text
                        ELSE replace(replace(replace(to_json(n.chain)::text, E'\\\\\\\\', chr(1)), E'\\\\0', E'\\u0000'), chr(1), E'\\\\') END
                || ',"seq":' || n.seq || ',"timestamp":"'
                || to_char(n.ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') || '",' AS prefix,
            convert_to(',"prev_hash":"' || encode(n.prev_hash, 'hex') || '","hash":"' || encode(n.hash, 'hex') || '"}', 'UTF8') AS suffix,
            -- Where the members after `"timestamp":"<27 characters>",` start.
            position('\x2c2274696d657374616d70223a22'::bytea IN convert_to(n.line, 'UTF8')) + 43 AS mid) p
        LEFT JOIN LATERAL jsonb_to_record(('{'
            || CASE WHEN strpos(n.line, E'\\') = 0
                    THEN convert_from(substr(p.b, p.mid, greatest(octet_length(n.line) - p.mid - 153, 0)), 'UTF8')
                    ELSE replace(replace(replace(
                             convert_from(substr(p.b, p.mid, greatest(octet_length(n.line) - p.mid - 153, 0)), 'UTF8'),
                             E'\\\\', chr(1)), E'\\u0000', E'\\\\0'), chr(1), E'\\\\\\\\') END
            || '}')::jsonb)
            AS m(action jsonb, category text, actor jsonb, resource jsonb, outcome jsonb, tenant jsonb,
                 v jsonb, id jsonb, chain jsonb, seq jsonb, "timestamp" jsonb, prev_hash jsonb, hash jsonb) ON true
        -- AND runs left to right: the length test guards the substr() calls after it.
        WHERE NOT coalesce(
            octet_length(n.line) >= 200
            AND strpos(n.line, E'\n') = 0 AND strpos(n.line, E'\r') = 0
            AND (strpos(n.line, E'\\') = 0 OR strpos(n.line, chr(1)) = 0)
            AND (strpos(n.chain, E'\\') = 0 OR n.chain ~ E'^([^\\\\]|\\\\[\\\\0])*$')
            AND starts_with(n.line, p.prefix)
            AND substr(p.b, octet_length(n.line) - 153) = p.suffix
            AND sha256(substr(p.b, 1, octet_length(n.line) - 75) || '\x7d'::bytea) = n.hash
            AND num_nulls(m.v, m.id, m.chain, m.seq, m."timestamp", m.prev_hash, m.hash) = 7
            AND m.category = n.category AND m.outcome ->> 'status' = n.outcome
            AND jsonb_typeof(m.action) = 'string' AND m.action #>> '{}' = n.action
            AND jsonb_typeof(m.actor -> 'id') = 'string' AND m.actor ->> 'id' = n.actor_id
            AND (CASE WHEN n.tenant IS NULL THEN m.tenant IS NULL
                      ELSE jsonb_typeof(m.tenant) = 'string' AND m.tenant #>> '{}' = n.tenant END)
            AND (CASE WHEN n.resource_type IS NULL AND n.resource_id IS NULL THEN m.resource IS NULL
                      ELSE jsonb_typeof(m.resource -> 'type') = 'string' AND m.resource ->> 'type' = n.resource_type
                           AND jsonb_typeof(m.resource -> 'id') = 'string' AND m.resource ->> 'id' = n.resource_id END), false)
        LIMIT 1;
    EXCEPTION WHEN data_exception OR program_limit_exceeded THEN
        -- Some line is no JSON at all (or nested too deep): find it, to name it.
        FOR f IN SELECT n.chain, n.seq, n.line FROM new_rows n LOOP
            BEGIN
                PERFORM ('{' || replace(replace(replace(convert_from(substr(convert_to(f.line, 'UTF8'),
                            position('\x2c2274696d657374616d70223a22'::bytea IN convert_to(f.line, 'UTF8')) + 43,
                            greatest(octet_length(f.line) - position('\x2c2274696d657374616d70223a22'::bytea IN convert_to(f.line, 'UTF8')) - 196, 0)), 'UTF8'),
                        E'\\\\', chr(1)), E'\\u0000', E'\\\\0'), chr(1), E'\\\\\\\\') || '}')::jsonb;
            EXCEPTION WHEN data_exception OR program_limit_exceeded THEN
                bad_chain := f.chain;
                bad_seq := f.seq;
                problem := 'the members between timestamp and prev_hash are not JSON: ' || SQLERRM;
                EXIT;
            END;
        END LOOP;
        IF problem IS NULL THEN
            RAISE;
        END IF;
    END;
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION 'audit chain %: seq %: %', bad_chain, bad_seq, problem
            USING ERRCODE = 'data_exception', TABLE = TG_TABLE_NAME, SCHEMA = TG_TABLE_SCHEMA;
    END IF;

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
    FOR f IN SELECT DISTINCT ON (n.chain) n.chain, n.seq, n.prev_hash, n.ts FROM new_rows n ORDER BY n.chain, n.seq LOOP
        -- A new chain's head row is created first, so that two first inserts of one chain
        -- serialize on it (the second one then sees the first one's head).
        INSERT INTO audit_heads AS hh (chain, seq, hash, ts)
        VALUES (f.chain, 0, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea, '-infinity')
        ON CONFLICT (chain) DO NOTHING;
        SELECT hh.seq, hh.hash, hh.ts INTO h FROM audit_heads hh WHERE hh.chain = f.chain FOR UPDATE;
        IF f.seq <> h.seq + 1 OR f.prev_hash <> h.hash THEN
            RAISE EXCEPTION 'audit chain %: seq % does not continue the stored head at seq %', f.chain, f.seq, h.seq
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        -- Readers take (ts, seq) order for chain order: a record older than its head would
        -- read as reordered for ever.
        IF f.ts < h.ts THEN
            RAISE EXCEPTION 'audit chain %: seq % goes back in time before the stored head at seq %', f.chain, f.seq, h.seq
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

-- A plain seal must vouch for the stored record at its (chain, seq), or, below a purge seal
-- of its chain (where the records are gone), at least not contradict a seal stored there.
-- Purge seals say where a purged chain resumes: only the owner (retention's function, or a
-- copy run as the owner) may write them; a chain with no record yet starts after one.
-- Deliberately not SECURITY DEFINER: `current_user` must be the caller (or the definer of
-- the purge function that calls it).
CREATE FUNCTION {s}.audit_seal_check() RETURNS trigger LANGUAGE plpgsql
SET search_path = {s}, pg_catalog, pg_temp AS $$
DECLARE
    owner name;
    stored bytea;
BEGIN
    IF NOT NEW.purged THEN
        SELECT r.hash INTO stored FROM audit_records r WHERE r.chain = NEW.chain AND r.seq = NEW.seq;
        IF FOUND THEN
            IF stored <> NEW.hash THEN
                RAISE EXCEPTION 'audit chain %: the seal of seq % does not match the stored record''s hash', NEW.chain, NEW.seq
                    USING ERRCODE = 'integrity_constraint_violation';
            END IF;
        ELSIF NOT EXISTS (SELECT 1 FROM audit_seals s WHERE s.chain = NEW.chain AND s.purged AND s.seq >= NEW.seq) THEN
            RAISE EXCEPTION 'audit chain %: the seal of seq % names no stored record', NEW.chain, NEW.seq
                USING ERRCODE = 'integrity_constraint_violation';
        ELSIF EXISTS (SELECT 1 FROM audit_seals s WHERE s.chain = NEW.chain AND s.seq = NEW.seq AND s.hash <> NEW.hash) THEN
            RAISE EXCEPTION 'audit chain %: the seal of seq % contradicts the seal stored for that (purged) record', NEW.chain, NEW.seq
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        RETURN NEW;
    END IF;
    SELECT r.rolname INTO owner FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner
    WHERE c.oid = TG_RELID;
    IF NOT pg_has_role(current_user, owner, 'USAGE') THEN
        RAISE EXCEPTION 'only the audit schema owner may write purge seals' USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- Only while the chain has no record here (a copy of a purged chain starts with its
    -- purge seals): otherwise the head is its newest record.
    IF NOT EXISTS (SELECT 1 FROM audit_records r WHERE r.chain = NEW.chain) THEN
        INSERT INTO audit_heads AS hh (chain, seq, hash, ts) VALUES (NEW.chain, NEW.seq, NEW.hash, '-infinity')
        ON CONFLICT (chain) DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash, ts = EXCLUDED.ts
        WHERE hh.seq < EXCLUDED.seq;
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
    RETURN QUERY SELECT h.seq, h.hash, nullif(h.ts, '-infinity') FROM audit_heads h WHERE h.chain = p_chain AND h.seq > 0;
END $$;

-- Creates the monthly partition holding `p_month` (if missing), with the caller's rights:
-- only the owner may (a copy of old records, an import).
CREATE FUNCTION {s}.audit_create_partition(p_month date) RETURNS text LANGUAGE plpgsql
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
        -- Whoever creates it (a superuser, a member of the owner role), the owner owns it, so
        -- that the purge function (running as the owner) may drop it.
        EXECUTE format('ALTER TABLE %I.%I OWNER TO %I', current_schema(), part,
                       (SELECT r.rolname FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner
                        WHERE c.oid = 'audit_records'::regclass));
    END IF;
    RETURN part;
END $$;

-- The application's way to a partition: runs as the owner, but only for the months an
-- append can need (last month, this month and next month, UTC), so that the application
-- can neither litter the table with partitions nor bring back a month retention purged.
CREATE FUNCTION {s}.audit_ensure_partition(p_month date) RETURNS text LANGUAGE plpgsql SECURITY DEFINER
SET search_path = {s}, pg_catalog, pg_temp AS $$
DECLARE
    this_month date := date_trunc('month', now() AT TIME ZONE 'UTC')::date;
    start date := date_trunc('month', p_month)::date;
BEGIN
    IF start < this_month - interval '1 month' OR start > this_month + interval '1 month' THEN
        RAISE EXCEPTION 'audit_ensure_partition: the month of % is not last, this or next month (UTC); only the schema owner creates other partitions', p_month
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'records of other months go in as the schema owner (audit copy with the owner''s role)';
    END IF;
    RETURN audit_create_partition(p_month);
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

-- Grants the roles named after the schema what each needs, if they exist: `<schema>_app`
-- appends and reads; `<schema>_reader` reads; `<schema>_retention` reads, records its purge
-- events like the application and purges. Run by the migrations (as the owner), and by hand
-- after creating one of these roles later. Partitions get no grants: everything goes through
-- the parent table, whose statement trigger a direct insert into a partition would skip.
CREATE FUNCTION {s}.audit_grant_access() RETURNS void LANGUAGE plpgsql
SET search_path = {s}, pg_catalog, pg_temp AS $$
DECLARE
    s text := current_schema();
    grantee text;
BEGIN
    FOREACH grantee IN ARRAY ARRAY[s || '_app', s || '_reader', s || '_retention'] LOOP
        CONTINUE WHEN to_regrole(quote_ident(grantee)) IS NULL;
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', s, grantee);
        EXECUTE format('GRANT SELECT ON %I.audit_records, %I.audit_seals, %I.audit_heads, %I.audit_set_aside, %I.audit_schema_version TO %I',
                       s, s, s, s, s, grantee);
        IF grantee <> s || '_reader' THEN
            EXECUTE format('GRANT INSERT ON %I.audit_records, %I.audit_seals, %I.audit_set_aside TO %I', s, s, s, grantee);
            EXECUTE format('GRANT EXECUTE ON FUNCTION %I.audit_ensure_partition(date) TO %I', s, grantee);
        END IF;
        IF grantee = s || '_retention' THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION %I.audit_purge_partition(text) TO %I', s, grantee);
        END IF;
    END LOOP;
END $$;

REVOKE EXECUTE ON FUNCTION {s}.audit_create_partition(date) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION {s}.audit_ensure_partition(date) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION {s}.audit_purge_partition(text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION {s}.audit_chain_check() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION {s}.audit_seal_check() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION {s}.audit_grant_access() FROM PUBLIC;
"#,
}];

/// The SQL a DBA runs once, as a superuser or a role with `CREATEROLE`, to set up the roles
/// of an audit schema (the README shows it for schema `audit`, and a test runs that text):
///
/// - `<schema>_owner` (no login) owns the schema and everything in it. The migrations run as
///   it: open the first [`PgStore`](crate::PgStore) with the owner's rights (log in as a
///   member of it with `?options=-c%20role%3D<schema>_owner`, or `SET ROLE`); they create the
///   tables and grant the three roles below what each needs (`audit_grant_access()`).
/// - `<schema>_app`, the application: appends records, seals and set-aside records, reads,
///   and creates the partitions of last, this and next month (through a function).
///   `UPDATE`, `DELETE` and `TRUNCATE` are refused, by privileges and by triggers, and the
///   database checks every row it inserts.
/// - `<schema>_reader`: reads (verify, export, queries, the viewer).
/// - `<schema>_retention`: what the application may, and purging the oldest month through
///   `audit_purge_partition()`, which seals the chains first (`audit retention` records its
///   purge events in the same store).
///
/// The capabilities follow the role names, so the migrations of later versions grant them
/// too. To log in under other names, make those roles members (`GRANT audit_app TO
/// billing_service`); after creating one of the roles later, run `SELECT
/// <schema>.audit_grant_access()` as the owner.
///
/// ```
/// let sql = audit_postgres::role_setup_sql("audit");
/// assert!(sql.contains("CREATE SCHEMA audit AUTHORIZATION audit_owner;"));
/// ```
pub fn role_setup_sql(schema: &str) -> String {
    format!(
        r#"-- Passwords: set your own, or use your platform's IAM.
CREATE ROLE {schema}_owner NOLOGIN;
CREATE ROLE {schema}_app LOGIN PASSWORD 'change-me';
CREATE ROLE {schema}_reader LOGIN PASSWORD 'change-me';
CREATE ROLE {schema}_retention LOGIN PASSWORD 'change-me';
-- Who creates the schema for the owner, and runs the migrations, must be a member of it.
GRANT {schema}_owner TO CURRENT_USER;
CREATE SCHEMA {schema} AUTHORIZATION {schema}_owner;
"#
    )
}
