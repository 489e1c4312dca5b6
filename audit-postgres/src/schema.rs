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
--
-- Every index holds such a value through audit_key(): a btree entry may not outgrow a third
-- of a page (2,704 bytes), and the values have no bound of their own (4 KiB and a truncation
-- marker after the runtime's default limits, any length in a copied file). The key is the
-- value's bytes up to 64 of them, else a zero byte and their SHA-256; no text holds a zero
-- byte, so two values share a key exactly when they are equal. Queries compare the keys and
-- then the values. Inlined where it is used (a plain SQL expression, not STRICT).
CREATE FUNCTION {s}.audit_key(value text) RETURNS bytea LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN octet_length(value) <= 64 THEN decode(replace(value, E'\\', E'\\\\'), 'escape')
            ELSE E'\\x00'::bytea || sha256(decode(replace(value, E'\\', E'\\\\'), 'escape')) END;

-- The JSON string serde_json writes for the event value a text column holds: to_json escapes
-- as serde_json does (`"`, `\`, and control characters, as \b \f \n \r \t or \u00xx), and the
-- column encoding's `\\` and `\0` become `\\` and `\u0000` (chr(1) stands in meanwhile: the
-- output of to_json holds none). NULL for NULL.
CREATE FUNCTION {s}.audit_json_text(value text) RETURNS text LANGUAGE sql STABLE PARALLEL SAFE
RETURN CASE WHEN strpos(value, E'\\') = 0 THEN to_json(value)::text
            ELSE replace(replace(replace(to_json(value)::text, E'\\\\\\\\', chr(1)), E'\\\\0', E'\\u0000'), chr(1), E'\\\\') END;

-- True if `value` is one JSON value as jsonb reads it, an error (SQLSTATE class 22 or 54)
-- otherwise. jsonb refuses the \u0000 that JSON allows, so each one is read as \u0001, which
-- is JSON exactly where \u0000 is (after an escaped backslash it is plain text either way).
CREATE FUNCTION {s}.audit_json_ok(value text) RETURNS boolean LANGUAGE sql STABLE PARALLEL SAFE
RETURN (CASE WHEN strpos(value, E'\\') = 0 THEN value ELSE replace(value, E'\\u0000', E'\\u0001') END)::jsonb IS NOT NULL;

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
    prev_hash     bytea       NOT NULL CHECK (length(prev_hash) = 32)
) PARTITION BY RANGE (ts);
-- The table's key, in place of a primary key (which cannot hold an expression). A unique key
-- of a partitioned table must include the partition key: (chain, seq) is kept unique by the
-- chain check below instead, which also keeps seq free of gaps. Along a chain time never
-- decreases, so this is chain order too.
CREATE UNIQUE INDEX audit_records_key ON {s}.audit_records ({s}.audit_key(chain), ts, seq);
-- Time order across chains is (ts, chain, seq): ties in ts are rare, so a sort of each run of
-- equal times (an incremental sort) costs less than chain keys of any length in the index.
CREATE INDEX audit_records_ts ON {s}.audit_records (ts);
CREATE INDEX audit_records_actor ON {s}.audit_records ({s}.audit_key(actor_id), ts);
CREATE INDEX audit_records_resource ON {s}.audit_records ({s}.audit_key(resource_type), {s}.audit_key(resource_id), ts);
-- Seals name a record by (chain, seq), without its time: the seal check looks it up here.
CREATE INDEX audit_records_chain_seq ON {s}.audit_records ({s}.audit_key(chain), seq);

-- The head of every chain, maintained by the chain check only (seq 0: no record yet; ts
-- '-infinity': no time constraint, for a head that a purge seal set).
CREATE TABLE {s}.audit_heads (
    chain text        NOT NULL,
    seq   bigint      NOT NULL,
    hash  bytea       NOT NULL,
    ts    timestamptz NOT NULL
);
CREATE UNIQUE INDEX audit_heads_chain ON {s}.audit_heads ({s}.audit_key(chain));

CREATE TABLE {s}.audit_seals (
    chain     text        NOT NULL,
    seq       bigint      NOT NULL,
    hash      bytea       NOT NULL CHECK (length(hash) = 32),
    sealed_at timestamptz NOT NULL,
    purged    boolean     NOT NULL DEFAULT false
);
CREATE UNIQUE INDEX audit_seals_unique ON {s}.audit_seals ({s}.audit_key(chain), seq, hash, purged);

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

-- Every insert must hold records that are what their columns say (Contracts 1 and 2) and
-- that continue their chain: seq up by one from the stored head, prev_hash the previous
-- hash, time never going back. Runs as the owner so that the application needs no right on
-- the heads.
CREATE FUNCTION {s}.audit_chain_check() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = {s}, pg_catalog, pg_temp AS $$
DECLARE
    bad record;
    f record;
    h record;
    bad_chain text;
    bad_seq bigint;
    problem text;
    set_state text;
    set_message text;
BEGIN
    -- The content check: one set-based query over the new rows (per-row PL/pgSQL would cost
    -- more than the insert), a cheap test of every row and the reason only for the first bad
    -- one. Contract 1 fixes the members' order and the writer's serde_json their bytes, so
    -- each line must be exactly these bytes: the framing of its columns (id, chain, seq,
    -- timestamp; prev_hash, hash; `hash` the SHA-256 of the rest, Contract 2); the actor,
    -- whose type and auth words are read from the line, with the actor_id column as its id;
    -- the action, category, resource, outcome and tenant members of the columns, present
    -- exactly when the columns are; and between them the members that are no column (the
    -- actor's name and impersonator, the outcome's reason, context, changes), each parsed
    -- alone as the JSON value it must be. Since every piece is a whole JSON value and the
    -- pieces are laid out as an object's members, the line is that object: no member twice,
    -- none missing, nothing between them.
    --
    -- The members that are no column are found without parsing: their ends are the bytes of
    -- the next member, which no JSON string holds (each quote in a string is escaped, and the
    -- next member starts `,"`) and no context holds (it has strings only). Positions are
    -- bytes (text functions count characters, a scan each); each layer of the query adds
    -- positions computed once (OFFSET 0 keeps the planner from copying the expressions into
    -- every use).
    --
    -- A member that is not JSON raises an error that names no row: then the same query runs
    -- again row by row to name it.
    FOR f IN SELECT NULL::text AS chain, NULL::bigint AS seq UNION ALL SELECT n.chain, n.seq FROM new_rows n LOOP
        BEGIN
            SELECT x.chain, x.seq, CASE
                WHEN x.len < 200 THEN 'too short to be a record'
                WHEN strpos(x.line, E'\n') > 0 OR strpos(x.line, E'\r') > 0 THEN 'the line holds a raw line break'
                WHEN NOT (strpos(x.chain, E'\\') = 0 OR x.chain ~ E'^([^\\\\]|\\\\[\\\\0])*$')
                    THEN 'the chain column is not in the column encoding'
                WHEN NOT starts_with(x.line, x.prefix)
                    THEN 'the line does not start with the id, chain, seq and timestamp of its columns: ' || x.prefix
                WHEN substr(x.b, x.len - 153) <> convert_to(x.suffix, 'UTF8')
                    THEN 'the line does not end with the prev_hash and hash of its columns'
                WHEN sha256(substr(x.b, 1, x.len - 75) || '}'::bytea) <> x.hash
                    THEN 'hash is not the SHA-256 of the line without its hash member'
                WHEN NOT starts_with(x.line, x.prefix || '"actor":{"type":"')
                    THEN 'the line does not go on with its actor after the timestamp'
                WHEN x.head IS NULL OR NOT starts_with(x.line, x.head)
                    THEN 'the line''s actor is not an actor of Contract 1 (type, id, auth) with the actor_id column as its id'
                WHEN strpos(x.line, '},"action":' || audit_json_text(x.action) || ',"category":"') = 0
                    THEN 'the line''s action is not the action column'
                WHEN strpos(x.line, '},"action":' || audit_json_text(x.action) || ',"category":"' || x.category || '"') = 0
                    THEN 'the line''s category is not the category column'
                WHEN x.glue IS NULL OR strpos(x.line, '},"action":' || audit_json_text(x.action) || ',"category":"' || x.category || '"'
                         || CASE WHEN x.resource_type IS NULL THEN '' ELSE ',"resource":{"type":' || audit_json_text(x.resource_type)
                                 || ',"id":' || audit_json_text(x.resource_id) || '}' END || ',"outcome":{"status":"') = 0
                    THEN 'the line''s resource is not the resource_type and resource_id columns'
                WHEN strpos(x.line, x.glue || CASE WHEN x.failed THEN ',"reason":"' ELSE '}' END) = 0
                    THEN 'the line''s outcome is not the outcome column'
                WHEN CASE WHEN x.tenant IS NULL THEN strpos(x.line, '},"tenant":') > 0 ELSE strpos(x.line, x.tenant_member) = 0 END
                    THEN 'the line''s tenant is not the tenant column'
                ELSE 'the line''s members after the timestamp are not those of Contract 1 in its order, each once, with nothing between them'
                END
            INTO bad_chain, bad_seq, problem
            FROM (SELECT r7.*,
                -- The members that are no column, as they stand in the line, each taken only
                -- between the ASCII bytes that must bound it (so each is whole UTF-8).
                CASE WHEN r7.ea > r7.hl + 1 AND substr(r7.b, r7.hl, 2) = '",'::bytea AND substr(r7.b, r7.ea, 1) = '}'::bytea
                     THEN convert_from(substr(r7.b, r7.hl + 1, r7.ea - r7.hl - 1), 'UTF8') ELSE '' END AS actor_rest,
                CASE WHEN r7.failed AND r7.q - r7.o >= 12 AND substr(r7.b, r7.o + 10, 1) = '"'::bytea AND substr(r7.b, r7.q - 1, 1) = '"'::bytea
                     THEN convert_from(substr(r7.b, r7.o + 10, r7.q - r7.o - 10), 'UTF8') END AS reason,
                CASE WHEN r7.has_context AND r7.ce > r7.q + 12 AND substr(r7.b, r7.ce, 1) = '}'::bytea
                     THEN convert_from(substr(r7.b, r7.q + 12, r7.ce - r7.q - 11), 'UTF8') END AS context,
                CASE WHEN r7.has_changes AND r7.len - 164 > r7.cs + 11 AND substr(r7.b, r7.cs + 11, 1) = '{'::bytea
                          AND substr(r7.b, r7.len - 154, 1) = '}'::bytea
                     THEN convert_from(substr(r7.b, r7.cs + 11, r7.len - 164 - r7.cs), 'UTF8') END AS changes
            FROM (SELECT r6.*,
                -- The context's closing brace (before the tenant member and changes, or the
                -- end), and where `,"changes":` starts.
                CASE WHEN r6.has_changes THEN r6.t0 - 1 ELSE r6.len - 154 - octet_length(r6.tenant_member) END AS ce,
                r6.t0 + octet_length(r6.tenant_member) AS cs
            FROM (SELECT r5.*,
                -- Where the tenant member (or `,"changes":`, without one) starts, if changes
                -- follow: nothing before it holds the two in a row.
                CASE WHEN r5.has_changes
                     THEN r5.q + position(convert_to(r5.tenant_member || ',"changes":{', 'UTF8') IN substr(r5.b, r5.q + 1)) END AS t0
            FROM (SELECT r4.*,
                substr(r4.b, r4.q + 1, 12) = ',"context":{'::bytea AS has_context,
                -- A tenant member ends in a quote, changes in a brace.
                CASE WHEN r4.tenant IS NOT NULL THEN substr(r4.b, r4.len - 154, 1) = '}'::bytea
                     ELSE position(',"changes":{'::bytea IN substr(r4.b, r4.q + 1)) > 0 END AS has_changes
            FROM (SELECT r3.*,
                -- o: the byte after the outcome's status; q: the outcome's closing brace, after
                -- its reason if it failed.
                r3.ea + octet_length(r3.glue) AS o,
                CASE WHEN r3.failed
                     THEN r3.ea + octet_length(r3.glue) + 9 + position('},"'::bytea IN substr(r3.b, r3.ea + octet_length(r3.glue) + 10))
                     ELSE r3.ea + octet_length(r3.glue) END AS q
            FROM (SELECT r2.*,
                -- The actor's closing brace, where the glue follows: right after auth, or
                -- after the actor's name and impersonator.
                CASE WHEN substr(r2.b, r2.hl + 1, 11) = '},"action":'::bytea THEN r2.hl + 1
                     ELSE r2.hl + position(convert_to(r2.glue, 'UTF8') IN substr(r2.b, r2.hl + 1)) END AS ea
            FROM (SELECT r1.*, octet_length(r1.head) AS hl
            FROM (SELECT ra.*,
                -- The line's start up to the actor's auth, with the type and auth words of the
                -- line if they are words of Contract 1 (NULL otherwise).
                ra.prefix || '"actor":{"type":"' || ra.actor_type || '","id":' || ra.actor_json || ',"auth":"' || (CASE
                    substr(ra.b, ra.auth_at, greatest(position('"'::bytea IN substr(ra.b, ra.auth_at, 9)) - 1, 0))
                    WHEN 'password' THEN 'password' WHEN 'sso' THEN 'sso' WHEN 'api_key' THEN 'api_key' WHEN 'mfa' THEN 'mfa'
                    WHEN 'session' THEN 'session' WHEN 'token' THEN 'token' WHEN 'none' THEN 'none' END) || '"' AS head
            FROM (SELECT r0.*,
                CASE WHEN substr(r0.b, octet_length(r0.prefix) + 18, 5) = 'user"'::bytea THEN 'user'
                     WHEN substr(r0.b, octet_length(r0.prefix) + 18, 8) = 'service"'::bytea THEN 'service'
                     WHEN substr(r0.b, octet_length(r0.prefix) + 18, 7) = 'system"'::bytea THEN 'system' END AS actor_type,
                -- Where the auth word starts, after `"actor":{"type":"`, the type, `","id":`,
                -- the id and `,"auth":"`.
                octet_length(r0.prefix) + 34 + octet_length(r0.actor_json) + CASE
                    WHEN substr(r0.b, octet_length(r0.prefix) + 18, 5) = 'user"'::bytea THEN 4
                    WHEN substr(r0.b, octet_length(r0.prefix) + 18, 8) = 'service"'::bytea THEN 7 ELSE 6 END AS auth_at
            FROM (SELECT n.*,
                n.outcome = 'failure' AS failed,
                octet_length(n.line) AS len,
                convert_to(n.line, 'UTF8') AS b,
                '{"v":1,"id":"' || n.id::text || '","chain":' || audit_json_text(n.chain) || ',"seq":' || n.seq || ',"timestamp":"'
                    || to_char(n.ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') || '",' AS prefix,
                ',"prev_hash":"' || encode(n.prev_hash, 'hex') || '","hash":"' || encode(n.hash, 'hex') || '"}' AS suffix,
                audit_json_text(n.actor_id) AS actor_json,
                -- The glue: from the actor's closing brace to the outcome's status (NULL for
                -- half a resource).
                '},"action":' || audit_json_text(n.action) || ',"category":"' || n.category || '"'
                    || CASE WHEN n.resource_type IS NULL AND n.resource_id IS NULL THEN ''
                            ELSE ',"resource":{"type":' || audit_json_text(n.resource_type) || ',"id":' || audit_json_text(n.resource_id) || '}' END
                    || ',"outcome":{"status":"' || n.outcome || '"' AS glue,
                coalesce(',"tenant":' || audit_json_text(n.tenant), '') AS tenant_member
            FROM new_rows n WHERE f.chain IS NULL OR (n.chain = f.chain AND n.seq = f.seq)
            OFFSET 0) r0 OFFSET 0) ra OFFSET 0) r1 OFFSET 0) r2 OFFSET 0) r3 OFFSET 0) r4 OFFSET 0) r5 OFFSET 0) r6 OFFSET 0) r7 OFFSET 0) x
            -- AND runs left to right: each test guards the ones after it, and the members
            -- that are no column are parsed only once the line is known to be laid out
            -- around them.
            WHERE NOT coalesce(
                x.len >= 200
                AND strpos(x.line, E'\n') = 0 AND strpos(x.line, E'\r') = 0
                AND (strpos(x.chain, E'\\') = 0 OR x.chain ~ E'^([^\\\\]|\\\\[\\\\0])*$')
                AND x.line = x.head || x.actor_rest || x.glue
                    || CASE WHEN x.failed THEN ',"reason":' || x.reason ELSE '' END
                    || CASE WHEN x.has_context THEN '},"context":' || x.context ELSE '}' END
                    || x.tenant_member
                    || CASE WHEN x.has_changes THEN ',"changes":' || x.changes ELSE '' END
                    || x.suffix
                AND sha256(substr(x.b, 1, x.len - 75) || '}'::bytea) = x.hash
                AND (x.actor_rest = ''
                     OR x.actor_rest ~ E'^(,"name":"([^"\\\\]|\\\\.)*")?(,"impersonator":\\{"type":"(user|service|system)","id":"([^"\\\\]|\\\\.)*"\\})?$'
                        AND audit_json_ok('{' || substr(x.actor_rest, 2) || '}'))
                AND (NOT x.failed OR audit_json_ok(x.reason))
                AND (NOT x.has_context OR audit_json_ok(x.context))
                AND (NOT x.has_changes OR audit_json_ok(x.changes)),
                false)
            LIMIT 1;
        EXCEPTION WHEN data_exception OR program_limit_exceeded THEN
            IF f.chain IS NULL THEN
                set_state := SQLSTATE;
                set_message := SQLERRM;
                CONTINUE;
            END IF;
            bad_chain := f.chain;
            bad_seq := f.seq;
            problem := 'a member that is no column (the actor''s name or impersonator, the reason, context or changes) is not JSON: ' || SQLERRM;
        END;
        EXIT WHEN f.chain IS NULL OR problem IS NOT NULL;
    END LOOP;
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION 'audit chain %: seq %: %', bad_chain, bad_seq, problem
            USING ERRCODE = 'data_exception', TABLE = TG_TABLE_NAME, SCHEMA = TG_TABLE_SCHEMA;
    ELSIF set_state IS NOT NULL THEN
        RAISE EXCEPTION '%', set_message USING ERRCODE = set_state;
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
        ON CONFLICT (audit_key(chain)) DO NOTHING;
        SELECT hh.seq, hh.hash, hh.ts INTO h FROM audit_heads hh
        WHERE audit_key(hh.chain) = audit_key(f.chain) AND hh.chain = f.chain FOR UPDATE;
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
    WHERE audit_key(hh.chain) = audit_key(l.chain) AND hh.chain = l.chain;
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
        SELECT r.hash INTO stored FROM audit_records r
        WHERE audit_key(r.chain) = audit_key(NEW.chain) AND r.chain = NEW.chain AND r.seq = NEW.seq;
        IF FOUND THEN
            IF stored <> NEW.hash THEN
                RAISE EXCEPTION 'audit chain %: the seal of seq % does not match the stored record''s hash', NEW.chain, NEW.seq
                    USING ERRCODE = 'integrity_constraint_violation';
            END IF;
        ELSIF NOT EXISTS (SELECT 1 FROM audit_seals s WHERE audit_key(s.chain) = audit_key(NEW.chain) AND s.chain = NEW.chain
                                                         AND s.purged AND s.seq >= NEW.seq) THEN
            RAISE EXCEPTION 'audit chain %: the seal of seq % names no stored record', NEW.chain, NEW.seq
                USING ERRCODE = 'integrity_constraint_violation';
        ELSIF EXISTS (SELECT 1 FROM audit_seals s WHERE audit_key(s.chain) = audit_key(NEW.chain) AND s.chain = NEW.chain
                                                     AND s.seq = NEW.seq AND s.hash <> NEW.hash) THEN
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
    IF NOT EXISTS (SELECT 1 FROM audit_records r WHERE audit_key(r.chain) = audit_key(NEW.chain) AND r.chain = NEW.chain) THEN
        INSERT INTO audit_heads AS hh (chain, seq, hash, ts) VALUES (NEW.chain, NEW.seq, NEW.hash, '-infinity')
        ON CONFLICT (audit_key(chain)) DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash, ts = EXCLUDED.ts
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
    RETURN QUERY SELECT h.seq, h.hash, nullif(h.ts, '-infinity') FROM audit_heads h
                 WHERE audit_key(h.chain) = audit_key(p_chain) AND h.chain = p_chain AND h.seq > 0;
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
