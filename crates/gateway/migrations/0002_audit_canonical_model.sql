-- The audit table, version 2: the model id the rules compared (`gpt-5-mini` for a request that
-- sent `openai/gpt-5-mini`), beside `model` as sent; NULL when they are the same, and in every
-- row written before this version.

ALTER TABLE strata_audit ADD COLUMN canonical_model text;

CREATE INDEX strata_audit_canonical_model ON strata_audit (canonical_model, at);
