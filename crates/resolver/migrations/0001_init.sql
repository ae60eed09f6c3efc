-- Strata's store in PostgreSQL, version 1: bundles (content-addressed layer files), revisions, the
-- activation log, the active pointer, each project's layer history, gateway tokens (hashed) and
-- the resolver's own settings. Applied by the resolver at start (crates/resolver/src/pg.rs).

-- a layer's files: a protobuf StoredOrg or StoredProject, by the hex sha-256 of its bytes
CREATE TABLE strata_blobs (
    hash  text PRIMARY KEY,
    bytes bytea NOT NULL
);

CREATE TABLE strata_revisions (
    revision           text PRIMARY KEY,
    created_at_unix_ms bigint NOT NULL,
    kind               text NOT NULL,
    message            text NOT NULL,
    org_blob           text NOT NULL REFERENCES strata_blobs (hash)
);

-- the project layers a revision was compiled from
CREATE TABLE strata_revision_projects (
    revision text NOT NULL REFERENCES strata_revisions (revision),
    project  text NOT NULL,
    blob     text NOT NULL REFERENCES strata_blobs (hash),
    PRIMARY KEY (revision, project)
);

-- every activation (publish, rollback) in order
CREATE TABLE strata_activations (
    seq        bigserial PRIMARY KEY,
    revision   text NOT NULL REFERENCES strata_revisions (revision),
    kind       text NOT NULL,
    at_unix_ms bigint NOT NULL
);

-- exactly one row: the active revision (NULL until the first publish). Activation locks this row
-- (SELECT ... FOR UPDATE), checks it still names the revision the new one was built on, moves it
-- and NOTIFYs `strata_active`, all in one transaction.
CREATE TABLE strata_active (
    one        boolean PRIMARY KEY DEFAULT true CHECK (one),
    revision   text REFERENCES strata_revisions (revision),
    generation bigint NOT NULL DEFAULT 0
);
INSERT INTO strata_active (one) VALUES (true);

CREATE TABLE strata_project_history (
    seq     bigserial PRIMARY KEY,
    project text NOT NULL,
    blob    text NOT NULL REFERENCES strata_blobs (hash)
);
CREATE INDEX strata_project_history_project ON strata_project_history (project, seq);

-- `changed` grows with every write, so a replica can tell its token table is stale
CREATE SEQUENCE strata_token_changes;
CREATE TABLE strata_tokens (
    token_id           text PRIMARY KEY,
    hash               bytea NOT NULL,
    user_name          text NOT NULL,
    groups             text[] NOT NULL,
    projects           text[] NOT NULL,
    description        text NOT NULL,
    created_at_unix_ms bigint NOT NULL,
    revoked            boolean NOT NULL,
    changed            bigint NOT NULL DEFAULT nextval('strata_token_changes')
);

-- the admin and service token hashes
CREATE TABLE strata_meta (
    key   text PRIMARY KEY,
    value bytea NOT NULL
);
