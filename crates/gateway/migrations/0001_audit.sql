-- The gateways' audit records in PostgreSQL, version 1: one row per request, as in the JSON-lines
-- files (docs/operations.md, "Audit"). Applied by a gateway at start (crates/gateway/src/audit/pg.rs),
-- recorded in strata_audit_migrations, apart from the resolver's strata_migrations, so that the
-- two can share a database and be upgraded independently.

CREATE TABLE strata_audit (
    at                  timestamptz NOT NULL,
    decision_id         text NOT NULL,
    user_name           text NOT NULL,
    project             text NOT NULL,
    client              text NOT NULL,
    api                 text NOT NULL,
    provider            text NOT NULL,
    model               text NOT NULL,
    key_mode            text NOT NULL,
    key_hint            text NOT NULL,
    decision            text NOT NULL,
    error               text,
    rules               text[] NOT NULL,
    revision            text NOT NULL,
    upstream_status     integer,
    status              integer NOT NULL,
    decision_ms         double precision NOT NULL,
    upstream_ms         double precision,
    first_byte_ms       double precision,
    total_ms            double precision NOT NULL,
    -- NULL when the upstream reported no usage
    input_tokens        bigint,
    output_tokens       bigint,
    cache_read_tokens   bigint,
    cache_write_tokens  bigint,
    stream              boolean NOT NULL,
    client_disconnected boolean NOT NULL
);

-- `policy audit` filters: a time range, and user, project, model or decision within it; the time
-- index also serves retention (DELETE ... WHERE at < cutoff)
CREATE INDEX strata_audit_at ON strata_audit (at);
CREATE INDEX strata_audit_user ON strata_audit (user_name, at);
CREATE INDEX strata_audit_project ON strata_audit (project, at);
CREATE INDEX strata_audit_model ON strata_audit (model, at);
CREATE INDEX strata_audit_decision ON strata_audit (decision, at);
