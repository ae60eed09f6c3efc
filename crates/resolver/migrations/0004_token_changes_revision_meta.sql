-- A replica following the store reads the tokens changed after the last change it applied
-- (strata_tokens.changed > n) instead of every token: an index makes that read proportional to
-- the changes.
CREATE INDEX strata_tokens_changed ON strata_tokens (changed);

-- What listing revisions shows without reading any revision's projects: how many projects it
-- has and which ones it changed (a project publish: that project). NULL / empty for revisions
-- stored before.
ALTER TABLE strata_revisions ADD COLUMN project_count bigint;
ALTER TABLE strata_revisions ADD COLUMN changed_projects text[] NOT NULL DEFAULT '{}';
