-- A revision's projects in buckets of blobs (StoredRevision.project_buckets): a project publish
-- writes one bucket instead of a row per project. Revisions stored before keep their rows in
-- strata_revision_projects and an empty list here.
ALTER TABLE strata_revisions ADD COLUMN project_buckets text[] NOT NULL DEFAULT '{}';
