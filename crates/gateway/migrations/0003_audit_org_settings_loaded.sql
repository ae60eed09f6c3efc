-- The audit table, version 3: whether the request's gateway token had loaded Droid's org level
-- from this gateway (a client without it may run without the org's client-side rules); NULL
-- before a decision, and in every row written before this version.

ALTER TABLE strata_audit ADD COLUMN org_settings_loaded boolean;
