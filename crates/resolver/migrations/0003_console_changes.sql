-- The admin console's change log (who changed what, when), newest first by seq. Written by the
-- resolver process that serves the console; never holds a secret.
CREATE TABLE strata_changes (
    seq        bigserial PRIMARY KEY,
    at_unix_ms bigint NOT NULL,
    who        text NOT NULL,
    what       text NOT NULL,
    detail     text NOT NULL
);
