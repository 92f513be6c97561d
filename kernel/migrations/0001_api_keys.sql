-- API keys. Only a SHA-256 of each key is stored: keys are 256-bit random secrets, so a fast
-- hash is enough to make a stolen table useless, and lookups stay one index probe.
CREATE TYPE api_role AS ENUM ('platform', 'reviewer', 'lead', 'admin', 'auditor');

CREATE TABLE api_keys (
    id          bigserial PRIMARY KEY,
    key_prefix  text        NOT NULL UNIQUE,   -- the non-secret start of the key, safe to log
    key_hash    bytea       NOT NULL UNIQUE,
    role        api_role    NOT NULL,
    label       text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
